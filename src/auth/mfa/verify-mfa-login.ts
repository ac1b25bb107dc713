import type { MfaTokenCodec } from '../../core/mfa-token.js';
import type { RefreshTokenCodec } from '../../core/refresh-token.js';
import { TesseraError } from '../../core/errors.js';
import type { RequestMeta, Transport } from '../../core/vocabulary.js';
import type { CodeUse, SecondFactorStore } from '../../store/second-factor-store.js';
import type { Store, UserRecord } from '../../store/store.js';
import { endReplacedSession } from '../end-replaced-session.js';
import { issueTokens, type IssueDeps, type Tokens } from '../issue-tokens.js';
import { noteDevice, type KnownDeviceDeps } from '../known-device.js';
import { newSession, type SessionLifetimes } from '../new-session.js';
import { tryRecognise, type RecogniseDeps } from '../recognise-refresh-token.js';
import { MFA_LOGIN_MAX_FAILURES } from './challenge.js';
import { codeAccepted, codeUse, proofOf, spendCodeAttempt, wrongCode, type CodeCheckDeps } from './code-check.js';

/** `amr` of a sign-in finished with an authenticator app's code or a recovery code (RFC 8176, SPEC §8). */
export const OTP_LOGIN_AMR: readonly string[] = Object.freeze(['pwd', 'otp', 'mfa']);

export interface OpenMfaLoginDeps {
  mfaTokens: Pick<MfaTokenCodec, 'parse' | 'verify'>;
  factors: Pick<SecondFactorStore, 'countMfaAttempt'>;
  store: Pick<Store, 'findUserById'>;
  clock: () => Date;
}

export interface FinishMfaLoginDeps extends IssueDeps, KnownDeviceDeps, RecogniseDeps {
  refreshTokens: Pick<RefreshTokenCodec, 'parse' | 'verify' | 'issue'>;
  factors: Pick<SecondFactorStore, 'completeMfaLogin' | 'recordCodeFailure'>;
  store: Pick<Store, 'findSessionForRefresh' | 'revokeSession' | 'recordEvent'>;
  config: SessionLifetimes;
  clock: () => Date;
}

export interface VerifyMfaDeps extends OpenMfaLoginDeps, FinishMfaLoginDeps, CodeCheckDeps {
  factors: Pick<SecondFactorStore, 'countMfaAttempt' | 'completeMfaLogin' | 'findTotp' | 'recordCodeFailure'>;
  store: Pick<Store, 'findUserById' | 'findSessionForRefresh' | 'revokeSession' | 'recordEvent'>;
}

/** Where the sign-in is finished from: as for `POST /auth/login`. */
export interface MfaLoginContext {
  transport: Transport;
  /** The browser's refresh cookie, if it sent one: with the cookie transport its session is replaced. */
  cookieToken?: string;
  /** The browser's device cookie (cookie transport), for "sign-in from a new device" notices. */
  deviceCookie?: string;
  meta: RequestMeta;
}

export interface VerifyMfaInput extends MfaLoginContext {
  mfaToken: string;
  code?: string;
  recoveryCode?: string;
}

/** A pending sign-in whose token checked out and whose attempt was counted. */
export interface OpenMfaLogin {
  userId: string;
  loginId: string;
  user: UserRecord;
}

/**
 * `POST /auth/mfa/verify`: finishes a sign-in answered `mfa_required` with an authenticator
 * app's code or a recovery code, and answers as `POST /auth/login` does on that transport.
 * The mfaToken works once, for 5 minutes, on its transport, for at most 5 wrong codes (400
 * `invalid_token` after); every wrong code is 400 `invalid_code`, records `mfa_failed` and
 * spends the account's budget (429 past 20 a day). A step or a recovery code is used once,
 * whatever races with it.
 */
export async function verifyMfaLogin(deps: VerifyMfaDeps, input: VerifyMfaInput): Promise<Tokens> {
  const proof = proofOf(input);
  const login = await openMfaLogin(deps, input.mfaToken, input.transport);
  await spendCodeAttempt(deps, login.userId, null, input.meta);
  const now = deps.clock();
  const use = await codeUse(deps, login.userId, proof, now);
  if (!use) throw await wrongCode(deps, login.userId, null, input.meta, 'wrong, malformed or out of the window');
  const tokens = await finishMfaLogin(deps, login, use, OTP_LOGIN_AMR, input, now);
  await codeAccepted(deps, login.userId);
  return tokens;
}

/**
 * Hook shared with passkeys: reads an mfaToken, checks its MAC for the transport, counts one
 * attempt at its pending sign-in (before any factor is checked), and reads its user. Every
 * failure is the same 400 `invalid_token`; the log learns which. A user disabled since the
 * password was checked is 403 `account_disabled`.
 */
export async function openMfaLogin(deps: OpenMfaLoginDeps, mfaToken: string, transport: Transport): Promise<OpenMfaLogin> {
  const parsed = deps.mfaTokens.parse(mfaToken);
  if (!parsed || !deps.mfaTokens.verify(parsed, transport)) throw invalidMfaToken('malformed, forged, or for the other transport');
  const attempt = await deps.factors.countMfaAttempt(parsed.userId, parsed.loginId, transport, deps.clock(), MFA_LOGIN_MAX_FAILURES);
  if (attempt === undefined) throw invalidMfaToken('used, expired, spent by wrong codes, or begun on the other transport');
  const user = await deps.store.findUserById(parsed.userId);
  if (!user) throw invalidMfaToken('the user is gone');
  if (user.disabled) throw new TesseraError('account_disabled');
  const { passwordHash: _hash, disabled: _disabled, ...record } = user;
  return { userId: parsed.userId, loginId: parsed.loginId, user: record };
}

/**
 * Hook shared with passkeys: uses the factor (`use`) and ends the pending sign-in, creating its
 * session with `amr`, in one transaction; then what a sign-in does after its session exists
 * (the device noted, a browser's replaced session ended) and its tokens. A factor used already
 * is a wrong code; a pending sign-in finished by a racing request is `invalid_token`.
 */
export async function finishMfaLogin(
  deps: FinishMfaLoginDeps, login: OpenMfaLogin, use: CodeUse, amr: readonly string[], context: MfaLoginContext, now: Date,
): Promise<Tokens> {
  const session = { ...newSession(deps.config, login.userId, now), amr: [...amr] };
  const outcome = await deps.factors.completeMfaLogin({ userId: login.userId, id: login.loginId }, use, session, context.meta);
  if (outcome === 'wrong') throw await wrongCode(deps, login.userId, null, context.meta, 'already used');
  // Not a wrong code: another request finished this sign-in first (nothing was written, the code not spent).
  if (outcome === 'gone') throw invalidMfaToken('finished by a racing request');
  await noteDevice(deps, login.userId, session.id, { transport: context.transport, cookie: context.deviceCookie, meta: context.meta });
  if (context.transport === 'cookie') await endReplacedSession(deps, await tryRecognise(deps, context.cookieToken), now, context.meta);
  return issueTokens(deps, { session: { ...session, user: login.user, authTime: now }, generation: 1, expiresAt: session.expiresAt, now });
}

function invalidMfaToken(reason: string): TesseraError {
  return new TesseraError('invalid_token', {
    detail: 'The mfaToken is not valid: it was used, has expired, or had too many wrong codes. Sign in again.',
    cause: new Error(`mfa token: ${reason}`),
  });
}
