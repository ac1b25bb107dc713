import { randomUUID } from 'node:crypto';
import { TesseraError } from '../../core/errors.js';
import type { MfaTokenCodec } from '../../core/mfa-token.js';
import type { MfaMethod, Transport } from '../../core/vocabulary.js';
import type { SecondFactors, SecondFactorStore } from '../../store/second-factor-store.js';

/** How long an mfaToken may finish its sign-in (SPEC §8). */
export const MFA_LOGIN_TTL_SECONDS = 5 * 60;
/** Wrong codes an mfaToken survives; the attempt that makes this many spends it. */
export const MFA_LOGIN_MAX_FAILURES = 5;

export interface ChallengeDeps {
  factors: Pick<SecondFactorStore, 'secondFactors' | 'createMfaLogin'>;
  mfaTokens: Pick<MfaTokenCodec, 'make'>;
}

/** The `methods` that can finish a sign-in of a user with these factors. */
export function mfaMethods(factors: SecondFactors): MfaMethod[] {
  return [
    ...(factors.totp ? ['totp' as const] : []),
    ...(factors.recoveryCodes > 0 ? ['recovery_code' as const] : []),
    ...(factors.passkeys ? ['passkey' as const] : []),
  ];
}

/**
 * After a correct password: if the user has a second factor, no session is created, whatever
 * the transport. A pending sign-in is written (5 minutes, at most 5 wrong codes, on this
 * transport) and the answer is 403 `mfa_required` with its `mfaToken` and `methods`.
 * Returns, and the sign-in goes on, for a user without one.
 */
export async function challengeSecondFactor(deps: ChallengeDeps, userId: string, transport: Transport, now: Date): Promise<void> {
  const factors = await deps.factors.secondFactors(userId);
  if (!factors.totp && !factors.passkeys) return;
  const login = { userId, id: randomUUID(), transport, now, expiresAt: new Date(now.getTime() + MFA_LOGIN_TTL_SECONDS * 1000) };
  await deps.factors.createMfaLogin(login);
  throw new TesseraError('mfa_required', {
    detail: 'Finish signing in with a second factor: POST /auth/mfa/verify with the mfaToken',
    extensions: { mfaToken: deps.mfaTokens.make({ userId, loginId: login.id, transport }), methods: mfaMethods(factors) },
  });
}
