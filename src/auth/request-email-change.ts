import type { Config } from '../core/config.js';
import { TesseraError } from '../core/errors.js';
import { normalizeEmail } from '../core/password-policy.js';
import type { RequestMeta } from '../core/vocabulary.js';
import type { AccountStore } from '../store/account-store.js';
import type { Store } from '../store/store.js';
import { newLinkRequest } from './account-links.js';
import { confirmPassword, type ConfirmPasswordDeps } from './confirm-password.js';
import type { RateLimits } from './rate-limits.js';

export interface RequestEmailChangeDeps extends ConfirmPasswordDeps {
  store: Pick<Store, 'findUserById' | 'findUserByEmail'>;
  accounts: Pick<AccountStore, 'requestLink'>;
  limits: Pick<RateLimits, 'take' | 'clear' | 'spend'>;
  config: Pick<Config, 'emailVerificationTtl'>;
  clock: () => Date;
}

export interface RequestEmailChangeInput {
  userId: string;
  newEmail: string;
  currentPassword: string;
  meta: RequestMeta;
}

/**
 * `POST /auth/email {newEmail, currentPassword}` → 202: a link to the new address (the change
 * happens when it is used) and a notice to the old one. An address that already has an
 * account is 409 `email_taken` now, as at sign-up; one taken later fails when the link is used.
 */
export async function requestEmailChange(deps: RequestEmailChangeDeps, input: RequestEmailChangeInput): Promise<void> {
  const user = await confirmPassword(deps, input.userId, input.currentPassword);
  const newEmail = normalizeEmail(input.newEmail);
  if (newEmail === user.email) throw new TesseraError('invalid_request', { detail: 'This is already the account\'s email address' });
  if (await deps.store.findUserByEmail(newEmail)) throw new TesseraError('email_taken');
  // Silent past the limit: the address cannot be flooded with links, and the answer stays 202.
  if ((await deps.limits.spend('verification', newEmail)).exceeded) return;
  const request = newLinkRequest('change_email', user.id, newEmail, deps.clock(), deps.config.emailVerificationTtl);
  await deps.accounts.requestLink(
    request,
    { template: 'change_email', to: newEmail, name: user.name },
    'email_change_requested',
    input.meta,
    { template: 'email_change_requested', to: user.email, name: user.name, newEmail },
  );
}
