import { TesseraError } from '../core/errors.js';
import type { RequestMeta } from '../core/vocabulary.js';
import type { AccountStore } from '../store/account-store.js';
import type { Store, UserRecord } from '../store/store.js';

export interface UpdateProfileDeps {
  store: Pick<Store, 'findUserById'>;
  accounts: Pick<AccountStore, 'updateName'>;
  clock: () => Date;
}

/** `PATCH /auth/me {name?}` → the user as it is now. Tokens carry the new name from the next refresh. */
export async function updateProfile(deps: UpdateProfileDeps, userId: string, changes: { name?: string }, meta: RequestMeta): Promise<UserRecord> {
  if (changes.name !== undefined && !(await deps.accounts.updateName(userId, changes.name.trim(), deps.clock(), meta))) {
    throw new TesseraError('unauthorized');
  }
  const user = await deps.store.findUserById(userId);
  if (!user) throw new TesseraError('unauthorized');
  const { passwordHash: _hash, disabled: _disabled, ...record } = user;
  return record;
}
