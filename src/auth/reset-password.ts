import { assertPasswordPolicy } from '../core/password-policy.js';
import type { RequestMeta } from '../core/vocabulary.js';
import type { AccountStore } from '../store/account-store.js';
import { checkLink, invalidLink, type LinkDeps } from './account-links.js';
import type { PasswordHasher } from './password-hasher.js';

export interface ResetPasswordDeps extends LinkDeps {
  accounts: Pick<AccountStore, 'findLink' | 'resetPassword'>;
  hasher: Pick<PasswordHasher, 'hash'>;
}

export interface ResetPasswordInput {
  token: string;
  newPassword: string;
  meta: RequestMeta;
}

/**
 * `POST /auth/password/reset` → 204: the new password is set, the address counts as verified
 * (the mail reached it), and every session of the account ends in the same transaction.
 * The link works once: of two requests racing with it, one wins and the other is
 * `invalid_token`.
 */
export async function resetPassword(deps: ResetPasswordDeps, input: ResetPasswordInput): Promise<void> {
  const link = await checkLink(deps, input.token, ['reset_password']);
  assertPasswordPolicy(input.newPassword);
  const passwordHash = await deps.hasher.hash(input.newPassword);
  const done = await deps.accounts.resetPassword(link.userId, link.requestId, link.email, passwordHash, deps.clock(), input.meta);
  if (!done) throw invalidLink('used meanwhile');
}
