import type { AdminStore } from '../../store/admin-store.js';
import { adminDetail, type AdminActor } from './actor.js';
import { noSuchUser, targetUserId } from './target-user.js';

export interface RevokeUserSessionsDeps {
  admin: Pick<AdminStore, 'revokeSessions'>;
  clock: () => Date;
}

/**
 * `DELETE /admin/users/:id/sessions` and `tessera users revoke-sessions`: ends every session
 * of the user (reason `admin`; the revocation feed lists them) and records `admin_action`
 * (`sessions.revoke_all`). Returns how many were active; 404 for no such user.
 */
export async function revokeUserSessions(deps: RevokeUserSessionsDeps, actor: AdminActor, id: string): Promise<number> {
  const userId = targetUserId(id);
  const count = await deps.admin.revokeSessions(userId, deps.clock(), adminDetail(actor, 'sessions.revoke_all', userId));
  if (count === undefined) throw noSuchUser();
  return count;
}
