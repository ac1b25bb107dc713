import type { Config } from '../core/config.js';
import { TesseraError } from '../core/errors.js';
import { assertPasswordLength, normalizeEmail } from '../core/password-policy.js';
import type { RequestMeta, Transport } from '../core/vocabulary.js';
import type { RefreshTokenCodec } from '../core/refresh-token.js';
import type { Store } from '../store/store.js';
import { mailOn } from './account-links.js';
import { endReplacedSession } from './end-replaced-session.js';
import { issueTokens, type IssueDeps, type Tokens } from './issue-tokens.js';
import { noteDevice, type KnownDeviceDeps } from './known-device.js';
import { challengeSecondFactor, type ChallengeDeps } from './mfa/challenge.js';
import { newSession, type SessionLifetimes } from './new-session.js';
import type { PasswordHasher } from './password-hasher.js';
import type { RateLimits } from './rate-limits.js';
import { tryRecognise, type Recognised, type RecogniseDeps } from './recognise-refresh-token.js';

export interface SignInDeps extends RecogniseDeps, IssueDeps, KnownDeviceDeps, ChallengeDeps {
  refreshTokens: Pick<RefreshTokenCodec, 'parse' | 'verify' | 'issue'>;
  store: Pick<
    Store,
    'findUserByEmail' | 'hasSignedInFrom' | 'updatePasswordHash' | 'createSession' | 'recordEvent' | 'findSessionForRefresh' | 'revokeSession'
  >;
  hasher: Pick<PasswordHasher, 'verify' | 'hash' | 'needsRehash'>;
  limits: Pick<RateLimits, 'spend' | 'take' | 'refund' | 'clear' | 'refuse'>;
  config: SessionLifetimes & Pick<Config, 'requireVerifiedEmail' | 'mail'>;
  clock: () => Date;
}

export interface SignInInput {
  email: string;
  password: string;
  transport: Transport;
  /** The browser's refresh cookie, if it sent one: it may prove a known client, and it names a session to replace. */
  cookieToken?: string;
  /** The browser's device cookie (cookie transport), for "sign-in from a new device" notices. */
  deviceCookie?: string;
  meta: RequestMeta;
  /**
   * Runs a task once the answer has been sent. `login_failed` is written there: the
   * unknown-email path makes no such write, and any time it took before the answer
   * would tell an attacker that the account exists.
   */
  afterResponse: (task: () => Promise<void>) => void;
}

/**
 * Email and password sign-in (`POST /auth/login`) with its limits, equal timing
 * for unknown emails and wrong passwords, rehashing of old hashes, and the replacement of
 * a browser's previous session. A user with a second factor gets 403 `mfa_required` instead
 * of a session (src/auth/mfa/challenge.ts); `POST /auth/mfa/verify` finishes the sign-in.
 */
export async function signIn(deps: SignInDeps, input: SignInInput): Promise<Tokens> {
  const { store, hasher, limits } = deps;
  assertPasswordLength(input.password);
  const email = normalizeEmail(input.email);
  const { meta } = input;
  // The browser's refresh cookie, looked at once and only if needed.
  let cookieSession: Promise<Recognised | undefined> | undefined;
  const fromCookie = () => (cookieSession ??= tryRecognise(deps, input.cookieToken));

  // Every attempt is counted before the password is checked, so guesses sent in parallel cannot
  // all pass the check at once; a successful sign-in takes its attempt back.
  await limits.take('login_account_ip', `${email}|${meta.ip}`);
  const user = await store.findUserByEmail(email);
  const perAccount = await limits.spend('login_account', email);
  // An account under attack from everywhere: only places it has signed in from before may keep trying,
  // so the attacker cannot lock the real user out.
  if (perAccount.exceeded) {
    const known = user && ((await fromCookie())?.session.user.id === user.id || (meta.ip !== null && (await store.hasSignedInFrom(user.id, meta.ip))));
    if (!known) throw limits.refuse('login_account', perAccount.retryAfter);
  }

  // Unknown email and wrong password take the same path and the same time: one argon2 verification.
  const ok = await hasher.verify(user?.passwordHash, input.password);
  if (!ok || !user) {
    if (user) {
      const at = deps.clock();
      input.afterResponse(() => store.recordEvent(user.id, null, 'login_failed', meta, at));
    }
    throw new TesseraError('invalid_credentials');
  }
  await Promise.all([limits.clear('login_account_ip', `${email}|${meta.ip}`), limits.refund('login_account', email)]);
  if (user.disabled) throw new TesseraError('account_disabled');
  // Only after a correct password: an unverified address is no secret from the account's owner.
  if (deps.config.requireVerifiedEmail && mailOn(deps.config) && !user.emailVerified) throw new TesseraError('email_not_verified');
  if (hasher.needsRehash(user.passwordHash)) {
    // bcrypt (imported) or old argon2 parameters: replaced now that the password is known. A failure (hash
    // queue full, database write refused) must not fail a sign-in that succeeded: the next one tries again.
    // Awaited, so the next sign-in on any node finds argon2id and shutdown (which drains requests) never cuts
    // it off; conditional on the old hash, so a password change committed meanwhile is never undone.
    await hasher
      .hash(input.password)
      .then((upgraded) => store.updatePasswordHash(user.id, upgraded, user.passwordHash))
      .catch(() => {});
  }

  const now = deps.clock();
  // With a second factor, no session yet, whatever the transport: 403 mfa_required with its mfaToken.
  await challengeSecondFactor(deps, user.id, input.transport, now);
  const session = newSession(deps.config, user.id, now);
  await store.createSession(session, meta);
  await noteDevice(deps, user.id, session.id, { transport: input.transport, cookie: input.deviceCookie, meta });
  if (input.transport === 'cookie') await endReplacedSession(deps, await fromCookie(), now, meta);
  // The record without its credentials: tokens and what callers log never carry the hash.
  const { passwordHash: _hash, disabled: _disabled, ...record } = user;
  return issueTokens(deps, { session: { ...session, user: record, authTime: now }, generation: 1, expiresAt: session.expiresAt, now });
}
