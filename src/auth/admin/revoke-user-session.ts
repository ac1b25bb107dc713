import { TesseraError } from '../../core/errors.js';
import { isUuid } from '../../core/uuid.js';
import type { AdminStore } from '../../store/admin-store.js';
import { adminDetail, type AdminActor } from './actor.js';
import { targetUserId } from './target-user.js';

export interface RevokeUserSessionDeps {
  admin: Pick<AdminStore, 'revokeSession'>;
  clock: () => Date;
}

/**
 * `DELETE /admin/users/:id/sessions/:sid`: ends one active session of the user (reason
 * `admin`) and records `admin_action` (`sessions.revoke`). 404 unless `sid` is an active
 * session of that user.
 */
export async function revokeUserSession(deps: RevokeUserSessionDeps, actor: AdminActor, id: string, sessionId: string): Promise<void> {
  const userId = targetUserId(id);
  const sid = sessionId.toLowerCase();
  const revoked = isUuid(sid) && (await deps.admin.revokeSession(userId, sid, deps.clock(), adminDetail(actor, 'sessions.revoke', userId, { sessionId: sid })));
  if (!revoked) throw new TesseraError('not_found', { detail: 'The user has no active session with this id' });
}
