import type { Config } from '../core/config.js';
import { normalizeEmail } from '../core/password-policy.js';
import type { RequestMeta } from '../core/vocabulary.js';
import type { AccountStore } from '../store/account-store.js';
import type { Store } from '../store/store.js';
import { newLinkRequest } from './account-links.js';
import type { RateLimits } from './rate-limits.js';

export interface ForgotPasswordDeps {
  store: Pick<Store, 'findUserByEmail'>;
  accounts: Pick<AccountStore, 'requestLink'>;
  limits: Pick<RateLimits, 'spend'>;
  config: Pick<Config, 'passwordResetTtl'>;
  clock: () => Date;
}

export interface ForgotPasswordInput {
  email: string;
  meta: RequestMeta;
  /** Runs a task once the answer has been sent (see sign-in): the mail is written there. */
  afterResponse: (task: () => Promise<void>) => void;
}

/**
 * `POST /auth/password/forgot` → 202, whatever happens: an unknown address, a disabled
 * account and a limit that trips look exactly like a mail sent. Both paths make the same
 * reads and spend the same limits before the answer; the only write (the link and its mail)
 * happens after it, so its time tells nothing either.
 */
export async function forgotPassword(deps: ForgotPasswordDeps, input: ForgotPasswordInput): Promise<void> {
  const email = normalizeEmail(input.email);
  const user = await deps.store.findUserByEmail(email);
  const [perIp, perAccount] = await Promise.all([
    deps.limits.spend('forgot_ip', input.meta.ip ?? 'unknown'),
    deps.limits.spend('reset_account', email),
  ]);
  if (!user || user.disabled || perIp.exceeded || perAccount.exceeded) return;
  const now = deps.clock();
  const request = newLinkRequest('reset_password', user.id, user.email, now, deps.config.passwordResetTtl);
  input.afterResponse(() =>
    deps.accounts.requestLink(request, { template: 'reset_password', to: user.email, name: user.name }, 'password_reset_requested', input.meta),
  );
}
