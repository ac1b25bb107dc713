import { TesseraError } from '../core/errors.js';
import type { RequestMeta } from '../core/vocabulary.js';
import type { AccountStore } from '../store/account-store.js';
import { checkLink, invalidLink, type LinkDeps } from './account-links.js';

export interface VerifyEmailDeps extends LinkDeps {
  accounts: Pick<AccountStore, 'findLink' | 'verifyEmail' | 'changeEmail'>;
}

/**
 * `POST /auth/email/verify {token}` → 204, for both links that prove an address: sign-up's
 * verification, and an email change's link to the new address, which moves the account to
 * it then (409 `email_taken` if someone took the address meanwhile). A reset link is no
 * verification link: `invalid_token`.
 */
export async function verifyEmail(deps: VerifyEmailDeps, token: string, meta: RequestMeta): Promise<void> {
  const link = await checkLink(deps, token, ['verify_email', 'change_email']);
  const now = deps.clock();
  if (link.purpose === 'verify_email') {
    if (!(await deps.accounts.verifyEmail(link.userId, link.requestId, link.email, now, meta))) throw invalidLink('used meanwhile');
    return;
  }
  const outcome = await deps.accounts.changeEmail(link.userId, link.requestId, link.email, now, meta);
  if (outcome === 'taken') throw new TesseraError('email_taken');
  if (outcome === 'invalid') throw invalidLink('used meanwhile');
}
