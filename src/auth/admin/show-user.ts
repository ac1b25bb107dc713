import type { AdminStore, AdminUserRecord, SecondFactorSummary } from '../../store/admin-store.js';
import { noSuchUser, targetUserId } from './target-user.js';

export interface ShowUserDeps {
  admin: Pick<AdminStore, 'findUser' | 'listSecondFactors'>;
  clock: () => Date;
}

/** A user as operators see it: every field, how many sessions are active, and its second factors. */
export interface AdminUserView extends AdminUserRecord {
  /** The confirmed authenticator app, the set of recovery codes and each passkey (SPEC §8). */
  factors: SecondFactorSummary[];
}

/** `GET /admin/users/:id` and `tessera users show`: the user, or 404 `not_found`. */
export async function showUser(deps: ShowUserDeps, id: string): Promise<AdminUserView> {
  const userId = targetUserId(id);
  const user = await deps.admin.findUser(userId, deps.clock());
  if (!user) throw noSuchUser();
  return { ...user, factors: await deps.admin.listSecondFactors(userId) };
}
