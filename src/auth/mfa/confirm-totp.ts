import { TesseraError } from '../../core/errors.js';
import { newRecoveryCodes, recoveryCodeHashes } from '../../core/recovery-code.js';
import type { RequestMeta } from '../../core/vocabulary.js';
import type { SecondFactorStore } from '../../store/second-factor-store.js';
import { codeAccepted, newestStep, spendCodeAttempt, wrongCode, type CodeCheckDeps } from './code-check.js';
import type { Caller } from './recent-authentication.js';

export interface ConfirmTotpDeps extends CodeCheckDeps {
  factors: Pick<SecondFactorStore, 'findTotp' | 'confirmTotp' | 'recordCodeFailure'>;
}

/**
 * `POST /auth/mfa/totp/confirm {code}`: a code of the secret being set up turns it into the
 * user's second factor, and ten recovery codes are made, shown this once and stored as HMACs,
 * with `mfa_enabled` (which mails the `factor_added` notice), in one transaction. The code's
 * step is used like any other (it cannot sign in afterwards). A wrong code is 400
 * `invalid_code` and spends the account's budget like any wrong code.
 */
export async function confirmTotp(deps: ConfirmTotpDeps, caller: Caller, code: string, meta: RequestMeta): Promise<string[]> {
  const userId = caller.user.id;
  const totp = await deps.factors.findTotp(userId);
  if (!totp) throw new TesseraError('invalid_request', { detail: 'No authenticator app is being set up: start with POST /auth/mfa/totp/setup' });
  if (totp.confirmedAt) throw new TesseraError('totp_already_enabled');
  await spendCodeAttempt(deps, userId, caller.sessionId, meta);
  const now = deps.clock();
  const step = newestStep(deps, totp.secretSealed, code, now);
  if (step === undefined) throw await wrongCode(deps, userId, caller.sessionId, meta, 'wrong or malformed confirmation code');
  const codes = newRecoveryCodes();
  const hashes = codes.map((c) => recoveryCodeHashes(deps.recoveryCodeKeys, userId, c)![0]!);
  if (!(await deps.factors.confirmTotp(userId, totp.secretSealed, step, hashes, now, meta))) {
    throw await wrongCode(deps, userId, caller.sessionId, meta, 'confirmation code replayed, or the setup changed meanwhile');
  }
  await codeAccepted(deps, userId);
  return codes;
}
