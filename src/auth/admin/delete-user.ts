import type { AccountStore } from '../../store/account-store.js';
import type { AdminStore } from '../../store/admin-store.js';
import { adminDetail, type AdminActor } from './actor.js';
import { noSuchUser, targetUserId } from './target-user.js';

export interface DeleteUserDeps {
  accounts: Pick<AccountStore, 'deleteUser'>;
  admin: Pick<AdminStore, 'recordAction'>;
  clock: () => Date;
}

/**
 * `DELETE /admin/users/:id` and `tessera users delete`: the account goes as with `DELETE
 * /auth/me` (sessions revoked, personal data removed, security events kept without IP or user
 * agent); its `account_deleted` event names the actor. 404 if there is no such user.
 *
 * `admin_action` (`users.delete`) is recorded as well, after the deletion committed, so that
 * every admin action is found under that one type; the `account_deleted` written with the
 * deletion is the record that cannot be missing.
 */
export async function deleteUser(deps: DeleteUserDeps, actor: AdminActor, id: string): Promise<void> {
  const userId = targetUserId(id);
  const now = deps.clock();
  const detail = adminDetail(actor, 'users.delete', userId);
  if (!(await deps.accounts.deleteUser(userId, now, detail))) throw noSuchUser();
  await deps.admin.recordAction(userId, now, detail);
}
