import type { Config } from '../core/config.js';
import { normalizeEmail } from '../core/password-policy.js';
import type { RequestMeta } from '../core/vocabulary.js';
import type { AccountStore } from '../store/account-store.js';
import type { Store, UserWithCredentials } from '../store/store.js';
import { newLinkRequest } from './account-links.js';
import type { RateLimits } from './rate-limits.js';

export interface ResendVerificationDeps {
  store: Pick<Store, 'findUserByEmail' | 'findUserById'>;
  accounts: Pick<AccountStore, 'requestLink'>;
  limits: Pick<RateLimits, 'spend'>;
  config: Pick<Config, 'emailVerificationTtl'>;
  clock: () => Date;
}

/** Who asks: the signed-in user, or anyone naming an address. */
export type ResendFor = { userId: string } | { email: string };

/**
 * `POST /auth/email/verify/resend` → 202 always: a new verification link (the previous one
 * stops working) if the account exists and is not verified yet, and the address's limit
 * allows. Asked by address, the answer says nothing of the account, and the mail is written
 * after the answer.
 */
export async function resendVerification(
  deps: ResendVerificationDeps, who: ResendFor, meta: RequestMeta, afterResponse: (task: () => Promise<void>) => void,
): Promise<void> {
  const user: UserWithCredentials | undefined =
    'userId' in who ? await deps.store.findUserById(who.userId) : await deps.store.findUserByEmail(normalizeEmail(who.email));
  const spent = await deps.limits.spend('verification', user?.email ?? ('email' in who ? normalizeEmail(who.email) : who.userId));
  if (!user || user.emailVerified || user.disabled || spent.exceeded) return;
  const request = newLinkRequest('verify_email', user.id, user.email, deps.clock(), deps.config.emailVerificationTtl);
  afterResponse(() => deps.accounts.requestLink(request, { template: 'verify_email', to: user.email, name: user.name }, null, meta));
}
