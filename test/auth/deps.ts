/**
 * The real parts the use cases of src/auth run on, without Fastify: a migrated store, a frozen
 * clock, argon2, rate limits counting on that clock, a fresh Ed25519 key and the refresh-token
 * codec. Each `…Deps` function builds exactly what one use case asks for, with no casts, so
 * a use case that starts asking for more fails to compile here first.
 */
import { generateKeyPair } from 'jose';
import type { AuthenticateDeps } from '../../src/auth/authenticate.js';
import type { ChangePasswordDeps } from '../../src/auth/change-password.js';
import type { KeyRing } from '../../src/auth/key-ring.js';
import { PasswordHasher } from '../../src/auth/password-hasher.js';
import { RateLimits } from '../../src/auth/rate-limits.js';
import type { RefreshGrantDeps } from '../../src/auth/refresh-grant.js';
import { register, type RegisterDeps } from '../../src/auth/register.js';
import type { RevokeSessionDeps } from '../../src/auth/revoke-session.js';
import type { SignInDeps } from '../../src/auth/sign-in.js';
import type { SignOutDeps } from '../../src/auth/sign-out.js';
import { MemoryWindowCounter } from '../../src/auth/window-counter.js';
import { accessTokenOptions } from '../../src/core/access-token.js';
import { loadConfig, type RateLimitConfig } from '../../src/core/config.js';
import { TesseraError } from '../../src/core/errors.js';
import { deriveKeys } from '../../src/core/derive-key.js';
import { MfaTokenCodec } from '../../src/core/mfa-token.js';
import { RefreshTokenCodec } from '../../src/core/refresh-token.js';
import { AccountStore } from '../../src/store/account-store.js';
import { SecondFactorStore } from '../../src/store/second-factor-store.js';
import type { RequestMeta, RevokeReason } from '../../src/core/vocabulary.js';
import { openTestStore, type Backend } from '../helpers/backends.js';
import { FrozenClock, PASSWORD, TEST_SECRET, newEmail } from '../helpers/app.js';

export { PASSWORD, newEmail };

export const META: RequestMeta = { ip: '203.0.113.7', userAgent: 'auth-test/1.0' };

export type World = Awaited<ReturnType<typeof openWorld>>;

/** One backend's database and the real collaborators around it; `rateLimits` overrides the defaults. */
export async function openWorld(backend: Backend, rateLimits: Partial<RateLimitConfig> = {}) {
  const loaded = loadConfig({ TESSERA_SECRET: TEST_SECRET });
  if (!loaded.ok) throw new Error(loaded.errors.join('\n'));
  const { config } = loaded;
  const db = await openTestStore(backend);
  const clock = new FrozenClock();
  const limits = new RateLimits(true, { ...config.rateLimits, ...rateLimits }, new MemoryWindowCounter(() => clock.time));
  const { privateKey, publicKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519' });
  const key = { kid: 'test-key', alg: 'EdDSA' as const, signsFrom: new Date(0), privateKey, publicKey, publicJwk: {} };
  const keys: Pick<KeyRing, 'signingKey' | 'publicKey'> = {
    signingKey: () => key,
    publicKey: async (kid) => (kid === 'test-key' ? { key: publicKey, alg: 'EdDSA' } : undefined),
  };
  return {
    store: db.store,
    clock,
    now: clock.now,
    hasher: new PasswordHasher(2, 100),
    limits,
    keys,
    refreshTokens: new RefreshTokenCodec(TEST_SECRET),
    accessTokenOptions: accessTokenOptions(config),
    lifetimes: { refreshTokenTtl: config.refreshTokenTtl, sessionMaxAge: config.sessionMaxAge },
    // Email features as a development server has them (mails to the log): sign-up writes its link.
    accountConfig: {
      mail: config.mail, emailVerificationTtl: config.emailVerificationTtl, passwordResetTtl: config.passwordResetTtl,
      requireVerifiedEmail: config.requireVerifiedEmail,
    },
    accounts: new AccountStore(db.store.db, db.store.events),
    factors: new SecondFactorStore(db.store.db, db.store.events),
    mfaTokens: new MfaTokenCodec(deriveKeys(TEST_SECRET, undefined, 'mfa-token')),
    deviceKeys: deriveKeys(TEST_SECRET, undefined, 'device'),
    refreshPolicy: { graceMs: config.refreshReuseGrace * 1000, idleTtlMs: config.refreshTokenTtl * 1000 },
    graceSeconds: config.refreshReuseGrace,
    close: async () => {
      await limits.close();
      await db.close();
    },
  };
}

export const registerDeps = (w: World): RegisterDeps => ({
  store: w.store, hasher: w.hasher, config: { ...w.lifetimes, ...w.accountConfig }, clock: w.now, accounts: w.accounts, deviceKeys: w.deviceKeys,
  keys: w.keys, refreshTokens: w.refreshTokens, accessTokenOptions: w.accessTokenOptions,
});

export const signInDeps = (w: World): SignInDeps => ({
  store: w.store, hasher: w.hasher, limits: w.limits, config: { ...w.lifetimes, ...w.accountConfig }, clock: w.now,
  accounts: w.accounts, deviceKeys: w.deviceKeys, factors: w.factors, mfaTokens: w.mfaTokens,
  keys: w.keys, refreshTokens: w.refreshTokens, accessTokenOptions: w.accessTokenOptions,
});

export const refreshDeps = (w: World): RefreshGrantDeps => ({
  store: w.store, limits: w.limits, refreshPolicy: w.refreshPolicy, clock: w.now,
  keys: w.keys, refreshTokens: w.refreshTokens, accessTokenOptions: w.accessTokenOptions,
});

export const signOutDeps = (w: World): SignOutDeps => ({
  store: w.store, refreshPolicy: w.refreshPolicy, clock: w.now,
  keys: w.keys, refreshTokens: w.refreshTokens, accessTokenOptions: w.accessTokenOptions,
});

export const authenticateDeps = (w: World): AuthenticateDeps => ({
  store: w.store, clock: w.now, keys: w.keys, accessTokenOptions: w.accessTokenOptions,
});

export const changePasswordDeps = (w: World): ChangePasswordDeps => ({
  store: w.store, hasher: w.hasher, limits: w.limits, clock: w.now,
});

export const revokeSessionDeps = (w: World): RevokeSessionDeps => ({ store: w.store, clock: w.now });

/** A new account with the body transport: its email, user id, first session id and tokens. */
export async function newAccount(w: World, email = newEmail()) {
  const tokens = await register(registerDeps(w), { email, password: PASSWORD, transport: 'body', meta: META });
  return { email, userId: tokens.user.id, sessionId: sessionIdOf(w, tokens.refreshToken), tokens };
}

export function sessionIdOf(w: World, refreshToken: string): string {
  const parsed = w.refreshTokens.parse(refreshToken);
  if (!parsed) throw new Error(`not a refresh token: ${refreshToken}`);
  return parsed.sessionId;
}

/** The TesseraError a promise rejects with; fails the test if it resolves or throws anything else. */
export async function caught(promise: Promise<unknown>): Promise<TesseraError> {
  const error = await promise.then(() => 'resolved', (e: unknown) => e);
  if (!(error instanceof TesseraError)) throw new Error(`expected a TesseraError, got ${String(error)}`);
  return error;
}

/** Each session of the user: revoked_reason null while it is active. */
export async function revokedReasons(w: World, userId: string): Promise<Record<string, RevokeReason | null>> {
  const rows = await w.store.db.selectFrom('sessions').select(['id', 'revoked_reason']).where('user_id', '=', userId).execute();
  return Object.fromEntries(rows.map((r) => [r.id, r.revoked_reason]));
}

/** The user's security event types, oldest first. */
export async function eventTypes(w: World, userId: string): Promise<string[]> {
  return (await w.store.listEvents(userId)).map((e) => e.type).reverse();
}
