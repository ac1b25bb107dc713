import type { AdminStore } from '../../store/admin-store.js';
import { adminDetail, type AdminActor } from './actor.js';
import { noSuchUser, targetUserId } from './target-user.js';

export interface ResetFactorsDeps {
  admin: Pick<AdminStore, 'removeSecondFactors'>;
  clock: () => Date;
}

/**
 * `DELETE /admin/users/:id/factors` and `tessera users reset-factors`: removes the user's
 * second factors and passkeys, for a user locked out of them, and records `admin_action`
 * (`factors.reset`). The user then signs in with the password alone. Returns how many were
 * removed (the authenticator app and the set of recovery codes count one each); 404 for no such user.
 */
export async function resetFactors(deps: ResetFactorsDeps, actor: AdminActor, id: string): Promise<number> {
  const userId = targetUserId(id);
  const removed = await deps.admin.removeSecondFactors(userId, deps.clock(), adminDetail(actor, 'factors.reset', userId));
  if (removed === undefined) throw noSuchUser();
  return removed;
}
