import { TesseraError } from '../../core/errors.js';
import type { PurposeKeys } from '../../core/derive-key.js';
import { recoveryCodeHashes } from '../../core/recovery-code.js';
import type { Sealer } from '../../core/seal.js';
import { base32Decode, matchingSteps } from '../../core/totp.js';
import type { RequestMeta } from '../../core/vocabulary.js';
import type { CodeUse, SecondFactorStore } from '../../store/second-factor-store.js';
import type { RateLimits } from '../rate-limits.js';

/** A second factor as sent: an authenticator app's code, or a recovery code. */
export type Proof = { code: string; recoveryCode?: undefined } | { recoveryCode: string; code?: undefined };

/** What checking a code asks for: the user's app, its sealed secret's key, the recovery-code key, the per-account budget. */
export interface CodeCheckDeps {
  factors: Pick<SecondFactorStore, 'findTotp' | 'recordCodeFailure'>;
  totpSecrets: Pick<Sealer, 'unseal'>;
  recoveryCodeKeys: PurposeKeys;
  limits: Pick<RateLimits, 'spend' | 'refuse' | 'refund'>;
  clock: () => Date;
}

/** Exactly one of `code` and `recoveryCode`, else 400 `invalid_request`. */
export function proofOf(input: { code?: string | undefined; recoveryCode?: string | undefined }): Proof {
  const { code, recoveryCode } = input;
  if (code !== undefined && recoveryCode === undefined) return { code };
  if (recoveryCode !== undefined && code === undefined) return { recoveryCode };
  throw new TesseraError('invalid_request', { detail: 'Send exactly one of code and recoveryCode' });
}

/**
 * Counts one code attempt against the account's budget (`mfa_account`, 20 a day) before the
 * code is checked, so guesses sent in parallel cannot all pass a check made before they count;
 * a right code gives its attempt back (`codeAccepted`). A correct password never touches it.
 * Past the budget: 429 `rate_limited`; the attempt that first goes past it records
 * `mfa_failed` and mails the user (`mfa_locked`), once per window.
 */
export async function spendCodeAttempt(deps: CodeCheckDeps, userId: string, sessionId: string | null, meta: RequestMeta): Promise<void> {
  const spent = await deps.limits.spend('mfa_account', userId);
  if (!spent.exceeded) return;
  if (spent.crossed) await deps.factors.recordCodeFailure(userId, sessionId, meta, deps.clock(), true);
  throw deps.limits.refuse('mfa_account', spent.retryAfter);
}

/** A right code gives back the attempt `spendCodeAttempt` counted: only wrong codes spend the budget. */
export function codeAccepted(deps: { limits: Pick<RateLimits, 'refund'> }, userId: string): Promise<void> {
  return deps.limits.refund('mfa_account', userId);
}

/**
 * What `proof` would use if it is right: the newest step within ±1 of now that an `code` is the
 * code of (for the user's confirmed app), or the stored forms of a recovery code; undefined when
 * it is wrong or malformed. Whether it was used before is the store's conditional update.
 */
export async function codeUse(deps: CodeCheckDeps, userId: string, proof: Proof, now: Date): Promise<CodeUse | undefined> {
  if (proof.recoveryCode !== undefined) {
    const hashes = recoveryCodeHashes(deps.recoveryCodeKeys, userId, proof.recoveryCode);
    return hashes && { kind: 'recovery_code', hashes };
  }
  const totp = await deps.factors.findTotp(userId);
  if (!totp?.confirmedAt) return undefined;
  const step = newestStep(deps, totp.secretSealed, proof.code, now);
  return step === undefined ? undefined : { kind: 'totp', step };
}

/** The newest step within the window `code` is the code of, under a sealed secret; undefined if none. */
export function newestStep(deps: Pick<CodeCheckDeps, 'totpSecrets'>, secretSealed: string, code: string, now: Date): number | undefined {
  const secret = base32Decode(deps.totpSecrets.unseal(secretSealed));
  if (!secret) throw new Error('a stored TOTP secret is not base32');
  const steps = matchingSteps(secret, code, now);
  return steps.length ? Math.max(...steps) : undefined;
}

/**
 * A wrong code: `mfa_failed` recorded, and the 400 `invalid_code` to throw. Wrong, malformed,
 * replayed and out-of-window codes look the same to the client; the log learns which.
 */
export async function wrongCode(
  deps: { factors: Pick<SecondFactorStore, 'recordCodeFailure'>; clock: () => Date }, userId: string, sessionId: string | null, meta: RequestMeta, reason: string,
): Promise<TesseraError> {
  await deps.factors.recordCodeFailure(userId, sessionId, meta, deps.clock());
  return new TesseraError('invalid_code', { cause: new Error(`second-factor code: ${reason}`) });
}
