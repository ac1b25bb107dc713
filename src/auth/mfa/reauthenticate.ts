import { TesseraError } from '../../core/errors.js';
import type { RequestMeta } from '../../core/vocabulary.js';
import type { SecondFactorStore } from '../../store/second-factor-store.js';
import type { Store } from '../../store/store.js';
import { confirmPassword, type ConfirmPasswordDeps } from '../confirm-password.js';
import type { RateLimits } from '../rate-limits.js';
import { issueTokens, type IssueDeps, type Tokens } from '../issue-tokens.js';
import { codeAccepted, codeUse, spendCodeAttempt, wrongCode, type CodeCheckDeps, type Proof } from './code-check.js';
import type { Caller } from './recent-authentication.js';

export interface ReauthenticateDeps extends ConfirmPasswordDeps, CodeCheckDeps, IssueDeps {
  factors: Pick<SecondFactorStore, 'findTotp' | 'recordCodeFailure' | 'reauthenticate'>;
  store: Pick<Store, 'findUserById' | 'findSessionForRefresh'>;
  limits: Pick<RateLimits, 'take' | 'clear' | 'spend' | 'refuse' | 'refund'>;
}

/** Exactly one: the password, an authenticator app's code, or a recovery code. */
export type ReauthProof = { password: string } | Proof;

/**
 * `POST /auth/reauthenticate`: proves the user again within the session, setting its
 * `auth_time` to now and its `amr` to what was proven (`['pwd']` for the password, so a password
 * can never stand in for a factor; the session's methods plus `otp` and `mfa` for a code), and
 * returns a new access token that carries them. The refresh token does not change; its next
 * refresh carries them too. A wrong password is 403 `invalid_credentials` (counted as on
 * `POST /auth/password`); a wrong code 400 `invalid_code` (the account's code budget).
 */
export async function reauthenticate(deps: ReauthenticateDeps, caller: Caller, proof: ReauthProof, meta: RequestMeta): Promise<Tokens> {
  const userId = caller.user.id;
  const now = deps.clock();
  let amr: string[];
  if ('password' in proof) {
    await confirmPassword(deps, userId, proof.password);
    amr = ['pwd'];
    if ((await deps.factors.reauthenticate(userId, caller.sessionId, amr, now, meta)) !== 'done') throw sessionEnded();
  } else {
    await spendCodeAttempt(deps, userId, caller.sessionId, meta);
    const use = await codeUse(deps, userId, proof, now);
    if (!use) throw await wrongCode(deps, userId, caller.sessionId, meta, 'wrong, malformed or out of the window');
    amr = [...new Set([...caller.amr, 'otp', 'mfa'])];
    const outcome = await deps.factors.reauthenticate(userId, caller.sessionId, amr, now, meta, use);
    if (outcome === 'wrong') throw await wrongCode(deps, userId, caller.sessionId, meta, 'already used');
    if (outcome === 'gone') throw sessionEnded();
    await codeAccepted(deps, userId);
  }
  const session = await deps.store.findSessionForRefresh(userId, caller.sessionId);
  if (!session) throw sessionEnded();
  return issueTokens(deps, { session: { ...session, amr, authTime: now }, generation: session.generation, expiresAt: session.expiresAt, now });
}

function sessionEnded(): TesseraError {
  return new TesseraError('unauthorized', { detail: 'The session has ended' });
}
