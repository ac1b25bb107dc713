import { randomUUID } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { TesseraError } from '../../core/errors.js';
import { assertPasswordLength, assertPasswordPolicy, normalizeEmail } from '../../core/password-policy.js';
import { newSessionSalt } from '../../core/refresh-token.js';
import type { NewSession, UserWithCredentials } from '../../store/store.js';
import type { App, Tessera } from '../context.js';
import { readRefreshCookie } from '../cookie-transport.js';
import { issueTokens } from '../issue-tokens.js';
import { requestMeta } from '../request-meta.js';
import { tryRecognise, type Recognised } from '../refresh-grant.js';
import { LoginBody, Problem, RegisterBody, TokenResponse } from '../schemas.js';
import { rateLimitPerIp } from '../rate-limits.js';

/** POST /auth/register and POST /auth/login: the two ways a session begins. */
export function registerAndLoginRoutes(app: App, tessera: Tessera) {
  const { config, store, hasher, counters, clock } = tessera;
  const limits = config.rateLimits;

  app.post('/auth/register', {
    schema: {
      summary: 'Create an account and sign in',
      tags: ['sessions'],
      body: RegisterBody,
      response: { 201: TokenResponse, '4xx': Problem, '5xx': Problem },
    },
    config: rateLimitPerIp(config, limits.registerPerIp, limits.registerPerIpWindow),
  }, async (request, reply) => {
    const { password, transport = 'cookie' } = request.body;
    assertPasswordPolicy(password);
    const email = normalizeEmail(request.body.email);
    const passwordHash = await hasher.hash(password);
    const now = clock();
    const session = newSession(tessera, randomUUID(), now);
    const user = await store.createUserWithSession(
      { id: session.userId, email, name: request.body.name?.trim() ?? '', passwordHash },
      session,
      requestMeta(request),
    );
    if (!user) throw new TesseraError('email_taken');
    if (transport === 'cookie') await endReplacedSession(tessera, request, await tryRecognise(tessera, readRefreshCookie(request)), now);
    reply.code(201);
    return issueTokens(tessera, reply, { session: { ...session, user }, generation: 1, expiresAt: session.expiresAt, now }, transport);
  });

  app.post('/auth/login', {
    schema: {
      summary: 'Sign in with email and password',
      tags: ['sessions'],
      body: LoginBody,
      response: { 200: TokenResponse, '4xx': Problem, '5xx': Problem },
    },
    config: rateLimitPerIp(config, limits.loginAttemptsPerIp, limits.loginAttemptsPerIpWindow),
  }, async (request, reply) => {
    const { password, transport = 'cookie' } = request.body;
    assertPasswordLength(password);
    const email = normalizeEmail(request.body.email);
    const meta = requestMeta(request);
    const accountIpKey = `login:${email}|${meta.ip}`;
    const accountKey = `login:${email}`;
    // The browser's refresh cookie, looked at once: it may prove a known client, and it names a session to replace.
    let cookieSession: Promise<Recognised | undefined> | undefined;
    const fromCookie = () => (cookieSession ??= tryRecognise(tessera, readRefreshCookie(request)));

    // Every attempt is counted before the password is checked, so guesses sent in parallel cannot
    // all pass the check at once; a successful sign-in takes its attempt back.
    if (config.rateLimitsEnabled) {
      const perAccountIp = await counters.increment(accountIpKey, limits.loginFailuresPerAccountIpWindow);
      if (perAccountIp.count > limits.loginFailuresPerAccountIp) {
        throw new TesseraError('rate_limited', { retryAfter: perAccountIp.resetIn });
      }
    }
    const user = await store.findUserByEmail(email);
    if (config.rateLimitsEnabled) {
      const perAccount = await counters.increment(accountKey, limits.loginFailuresPerAccountWindow);
      // An account under attack from everywhere: only places it has signed in from before may keep trying,
      // so the attacker cannot lock the real user out.
      if (perAccount.count > limits.loginFailuresPerAccount && !(user && (await isKnownClient(tessera, request, user, fromCookie)))) {
        throw new TesseraError('rate_limited', { retryAfter: perAccount.resetIn });
      }
    }

    // Unknown email and wrong password take the same path and the same time: one argon2 verification.
    const ok = await hasher.verify(user?.passwordHash, password);
    if (!ok || !user) {
      // Written once the response is out: the unknown-email path makes no such write, and
      // any time it took before the response would tell an attacker the account exists.
      if (user) {
        const at = clock();
        reply.raw.once('finish', () => {
          store.recordEvent(user.id, null, 'login_failed', meta, at).catch((err: Error) => request.log.warn({ err: { message: err.message } }, 'could not record login_failed'));
        });
      }
      throw new TesseraError('invalid_credentials');
    }
    if (config.rateLimitsEnabled) await Promise.all([counters.reset(accountIpKey), counters.decrement(accountKey)]);
    if (user.disabled) throw new TesseraError('account_disabled');
    if (hasher.needsRehash(user.passwordHash)) {
      const rehash = await hasher.hash(password);
      await store.updatePasswordHash(user.id, rehash);
    }

    const now = clock();
    const session = newSession(tessera, user.id, now);
    await store.createSession(session, meta);
    if (transport === 'cookie') await endReplacedSession(tessera, request, await fromCookie(), now);
    return issueTokens(tessera, reply, { session: { ...session, user }, generation: 1, expiresAt: session.expiresAt, now }, transport);
  });
}

function newSession(tessera: Tessera, userId: string, now: Date): NewSession {
  const { refreshTokenTtl, sessionMaxAge } = tessera.config;
  const absoluteExpiresAt = new Date(now.getTime() + sessionMaxAge * 1000);
  const expiresAt = new Date(Math.min(now.getTime() + refreshTokenTtl * 1000, absoluteExpiresAt.getTime()));
  return { id: randomUUID(), userId, salt: newSessionSalt(), now, expiresAt, absoluteExpiresAt };
}

/**
 * Signing in again in a browser replaces its refresh cookie, so the session the old cookie
 * named could never be used from here again: end it rather than leave it alive (ASVS 7.2.4).
 */
async function endReplacedSession(tessera: Tessera, request: FastifyRequest, previous: Recognised | undefined, now: Date): Promise<void> {
  if (previous) await tessera.store.revokeSession(previous.session.user.id, previous.session.id, 'logout', 'logout', now, requestMeta(request));
}

/** Has this client signed in to this account before: from this IP, or holding one of its session cookies? */
async function isKnownClient(
  tessera: Tessera, request: FastifyRequest, user: UserWithCredentials, fromCookie: () => Promise<Recognised | undefined>,
): Promise<boolean> {
  return (await fromCookie())?.session.user.id === user.id || tessera.store.hasSignedInFrom(user.id, request.ip);
}
