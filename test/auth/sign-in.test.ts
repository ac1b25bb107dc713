/** `signIn` without HTTP: tokens, refusals, the deferred `login_failed`, the per-account-IP limit, cookie replacement. */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { authenticate } from '../../src/auth/authenticate.js';
import { signIn, type SignInInput } from '../../src/auth/sign-in.js';
import { BACKENDS } from '../helpers/backends.js';
import {
  META, PASSWORD, authenticateDeps, caught, eventTypes, newAccount, newEmail, openWorld, revokedReasons, sessionIdOf, signInDeps, type World,
} from './deps.js';

const LIMIT = 3;
const WRONG = 'not the password at all';

describe.each(BACKENDS)('signIn on %s', (backend) => {
  let w: World;
  beforeAll(async () => {
    w = await openWorld(backend, { loginFailuresPerAccountIp: LIMIT });
  });
  afterAll(() => w.close());

  /** Signs in with the body transport; tasks handed to `afterResponse` are kept, not run. */
  function attempt(email: string, password: string, more: Partial<SignInInput> = {}) {
    const deferred: (() => Promise<void>)[] = [];
    const result = signIn(signInDeps(w), {
      email, password, transport: 'body', meta: META, afterResponse: (task) => deferred.push(task), ...more,
    });
    return { result, deferred };
  }

  it('returns tokens of a new session at generation 1 whose access token authenticates', async () => {
    const { email, userId, sessionId: registered } = await newAccount(w);
    const tokens = await attempt(` ${email.toUpperCase()}`, PASSWORD).result;

    const parsed = w.refreshTokens.parse(tokens.refreshToken);
    expect(parsed?.generation).toBe(1);
    expect(parsed?.sessionId).not.toBe(registered);
    expect(tokens).toMatchObject({ user: { id: userId, email }, expiresIn: w.accessTokenOptions.ttl });
    // the user record of a token response never carries credentials
    expect(Object.keys(tokens.user).sort()).toEqual(['createdAt', 'email', 'emailVerified', 'id', 'metadata', 'name', 'orgId', 'roles']);
    const caller = await authenticate(authenticateDeps(w), tokens.accessToken);
    expect(caller).toEqual({ sessionId: parsed?.sessionId, user: { id: userId, email, name: '', createdAt: tokens.user.createdAt, roles: [], orgId: null, metadata: {}, emailVerified: false } });
    expect(await eventTypes(w, userId)).toEqual(['registered', 'login_succeeded']);
  });

  it('refuses a wrong password with `invalid_credentials`; `login_failed` is written only by the deferred task', async () => {
    const { email, userId } = await newAccount(w);
    const { result, deferred } = attempt(email, WRONG);

    expect(await caught(result)).toMatchObject({ code: 'invalid_credentials', status: 401 });
    expect(deferred).toHaveLength(1);
    expect(await eventTypes(w, userId)).toEqual(['registered']);
    await deferred[0]!();
    expect(await eventTypes(w, userId)).toEqual(['registered', 'login_failed']);
  });

  it('refuses an unknown email with `invalid_credentials` and defers nothing', async () => {
    const afterResponse = vi.fn();
    const error = await caught(signIn(signInDeps(w), { email: newEmail(), password: PASSWORD, transport: 'body', meta: META, afterResponse }));

    expect(error).toMatchObject({ code: 'invalid_credentials', status: 401 });
    expect(afterResponse).not.toHaveBeenCalled();
  });

  it('refuses a disabled user with the right password with `account_disabled` and creates no session', async () => {
    const { email, userId, sessionId } = await newAccount(w);
    expect(await w.store.setUserDisabled(email, true, w.now())).toBe(true);

    expect(await caught(attempt(email, PASSWORD).result)).toMatchObject({ code: 'account_disabled', status: 403 });
    expect(Object.keys(await revokedReasons(w, userId))).toEqual([sessionId]);
  });

  it(`refuses attempt ${LIMIT + 1} from one IP with \`rate_limited\` until the window ends; other IPs are unaffected`, async () => {
    const { email } = await newAccount(w);
    for (let i = 0; i < LIMIT; i++) expect((await caught(attempt(email, WRONG).result)).code).toBe('invalid_credentials');

    const limited = await caught(attempt(email, WRONG).result);
    expect(limited.code).toBe('rate_limited');
    expect(limited.retryAfter).toBeGreaterThan(0);
    // Counted before the check: the right password from here is refused too.
    expect((await caught(attempt(email, PASSWORD).result)).code).toBe('rate_limited');
    await expect(attempt(email, PASSWORD, { meta: { ...META, ip: '198.51.100.9' } }).result).resolves.toMatchObject({ user: { email } });

    w.clock.advance(limited.retryAfter!);
    await expect(attempt(email, PASSWORD).result).resolves.toMatchObject({ user: { email } });
  });

  it('a success clears the failures counted for the account and IP', async () => {
    const { email } = await newAccount(w);
    for (let i = 0; i < LIMIT - 1; i++) await caught(attempt(email, WRONG).result);
    await attempt(email, PASSWORD).result;

    for (let i = 0; i < LIMIT; i++) expect((await caught(attempt(email, WRONG).result)).code).toBe('invalid_credentials');
    expect((await caught(attempt(email, WRONG).result)).code).toBe('rate_limited');
  });

  it("with the cookie transport, ends the previous cookie's session (`logout`) and keeps the new one", async () => {
    const { email, userId, sessionId: previous, tokens } = await newAccount(w);
    const next = await attempt(email, PASSWORD, { transport: 'cookie', cookieToken: tokens.refreshToken }).result;

    expect(await revokedReasons(w, userId)).toEqual({ [previous]: 'logout', [sessionIdOf(w, next.refreshToken)]: null });
    expect(await eventTypes(w, userId)).toEqual(['registered', 'login_succeeded', 'logout']);
  });

  it('with the body transport, leaves the session a cookie names alone', async () => {
    const { email, userId, sessionId: previous, tokens } = await newAccount(w);
    const next = await attempt(email, PASSWORD, { cookieToken: tokens.refreshToken }).result;

    expect(await revokedReasons(w, userId)).toEqual({ [previous]: null, [sessionIdOf(w, next.refreshToken)]: null });
  });
});
