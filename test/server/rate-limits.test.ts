import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BACKENDS, type Backend } from '../helpers/backends.js';
import { newEmail, PASSWORD, refreshCookie, startTestApp, type TestApp, type TokenBody, expectProblem } from '../helpers/app.js';

/**
 * SPEC §4 Limits: login failures per account per IP, login attempts per IP, login
 * failures per account from everywhere (known clients may keep trying), register per
 * IP, refresh per session and per IP; 429 `rate_limited` with Retry-After.
 *
 * The failure counters run on the app's (frozen) clock, so their windows are tested
 * by advancing it. @fastify/rate-limit's per-IP and per-session counters run on real
 * time: for those only the 429 and its Retry-After are checked, and every test uses
 * IPs of its own.
 */

const LIMITS = {
  loginFailuresPerAccountIp: 3,
  loginAttemptsPerIp: 5,
  registerPerIp: 2,
  refreshPerSession: 3,
  refreshPerIp: 6,
  loginFailuresPerAccount: 4,
};
const WRONG = 'not the right password';

let ipCounter = 0;
/** A fresh client IP for each call, so the real-time per-IP counters never leak between tests. */
function nextIp(): string {
  ipCounter++;
  return `10.${(ipCounter >> 16) & 255}.${(ipCounter >> 8) & 255}.${ipCounter & 255}`;
}

function expectRateLimited(res: LightMyRequestResponse, maxSeconds: number) {
  expect(res.statusCode, res.body).toBe(429);
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(res.json()).toMatchObject({ status: 429, code: 'rate_limited' });
  const retryAfter = res.headers['retry-after'];
  expect(typeof retryAfter, 'a single Retry-After header').toBe('string');
  expect(retryAfter).toMatch(/^\d+$/);
  const seconds = Number(retryAfter);
  expect(seconds).toBeGreaterThan(0);
  expect(seconds).toBeLessThanOrEqual(maxSeconds);
  expect(res.headers['cache-control']).toBe('no-store');
  expect(refreshCookie(res)?.value ?? '').toBe('');
  return seconds;
}

function registerFrom(t: TestApp, ip: string, email = newEmail(), headers: Record<string, string> = {}) {
  return t.app.inject({
    method: 'POST', url: '/auth/register', remoteAddress: ip, headers,
    payload: { email, password: PASSWORD, transport: 'body' },
  });
}

async function newUser(t: TestApp, ip = nextIp()) {
  const res = await registerFrom(t, ip);
  expect(res.statusCode, res.body).toBe(201);
  const body = res.json() as TokenBody;
  return { email: body.user!.email, ip, tokens: body };
}

function loginFrom(
  t: TestApp, ip: string, email: string,
  options: { password?: string; headers?: Record<string, string>; cookies?: Record<string, string>; transport?: 'body' | 'cookie' } = {},
) {
  return t.app.inject({
    method: 'POST', url: '/auth/login', remoteAddress: ip, headers: options.headers, cookies: options.cookies,
    payload: { email, password: options.password ?? PASSWORD, transport: options.transport ?? 'body' },
  });
}

function refreshFrom(t: TestApp, ip: string, refreshToken: string) {
  return t.app.inject({ method: 'POST', url: '/auth/refresh', remoteAddress: ip, payload: { refreshToken } });
}

function sessionIdOf(accessToken: string): string {
  return (JSON.parse(Buffer.from(accessToken.split('.')[1]!, 'base64url').toString('utf8')) as { sid: string }).sid;
}

async function sessionsFrom(t: TestApp, email: string, ip: string) {
  return t.db.store.db
    .selectFrom('sessions')
    .innerJoin('users', 'users.id', 'sessions.user_id')
    .select(['sessions.id', 'sessions.ip'])
    .where('users.email', '=', email)
    .where('sessions.ip', '=', ip)
    .execute();
}

describe.each(BACKENDS)('rate limits on %s', (backend: Backend) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(backend, {}, LIMITS);
  });
  afterAll(() => t.close());

  describe('login failures per account per IP', () => {
    it('blocks even the right password from that IP, not from another, until the window passes', async () => {
      const { email } = await newUser(t);
      const attacker = nextIp();
      for (let i = 0; i < LIMITS.loginFailuresPerAccountIp; i++) {
        expectProblem(await loginFrom(t, attacker, email, { password: WRONG }), 401, 'invalid_credentials');
      }
      const blocked = await loginFrom(t, attacker, email);
      const retryAfter = expectRateLimited(blocked, 15 * 60);
      expect(retryAfter).toBeGreaterThan(15 * 60 - 5);
      expect(await sessionsFrom(t, email, attacker)).toEqual([]);

      // the real user elsewhere is not locked out
      const other = nextIp();
      const ok = await loginFrom(t, other, email);
      expect(ok.statusCode, ok.body).toBe(200);
      expect(await sessionsFrom(t, email, other)).toHaveLength(1);

      // the window is 15 minutes of the app's clock
      t.clock.advance(15 * 60);
      const later = await loginFrom(t, attacker, email);
      expect(later.statusCode, later.body).toBe(200);
      expect(await sessionsFrom(t, email, attacker)).toHaveLength(1);
    });

    it('Retry-After counts down with the clock', async () => {
      const { email } = await newUser(t);
      const ip = nextIp();
      for (let i = 0; i < LIMITS.loginFailuresPerAccountIp; i++) {
        expectProblem(await loginFrom(t, ip, email, { password: WRONG }), 401, 'invalid_credentials');
      }
      t.clock.advance(10 * 60);
      const seconds = expectRateLimited(await loginFrom(t, ip, email), 5 * 60);
      expect(seconds).toBeGreaterThan(5 * 60 - 5);
      t.clock.advance(5 * 60);
      expect((await loginFrom(t, ip, email)).statusCode).toBe(200);
    });

    it('counts per account: the same IP may still sign in to another account', async () => {
      const a = await newUser(t);
      const b = await newUser(t);
      const ip = nextIp();
      for (let i = 0; i < LIMITS.loginFailuresPerAccountIp; i++) {
        expectProblem(await loginFrom(t, ip, a.email, { password: WRONG }), 401, 'invalid_credentials');
      }
      expectRateLimited(await loginFrom(t, ip, a.email), 15 * 60);
      expect((await loginFrom(t, ip, b.email)).statusCode).toBe(200);
    });

    it('a successful sign-in resets the count for that account and IP', async () => {
      const { email } = await newUser(t);
      const ip = nextIp();
      expectProblem(await loginFrom(t, ip, email, { password: WRONG }), 401, 'invalid_credentials');
      expectProblem(await loginFrom(t, ip, email, { password: WRONG }), 401, 'invalid_credentials');
      expect((await loginFrom(t, ip, email)).statusCode).toBe(200);
      expectProblem(await loginFrom(t, ip, email, { password: WRONG }), 401, 'invalid_credentials');
      // without the reset this would be the 4th failure in the window: 429
      expectProblem(await loginFrom(t, ip, email, { password: WRONG }), 401, 'invalid_credentials');
    });

    it('unknown emails count too (same response as a wrong password)', async () => {
      const email = newEmail();
      const ip = nextIp();
      for (let i = 0; i < LIMITS.loginFailuresPerAccountIp; i++) {
        expectProblem(await loginFrom(t, ip, email), 401, 'invalid_credentials');
      }
      expectRateLimited(await loginFrom(t, ip, email), 15 * 60);
    });

    it('X-Forwarded-For is ignored when TRUST_PROXY is off: spoofing it escapes nothing', async () => {
      const { email } = await newUser(t);
      const ip = nextIp();
      for (let i = 0; i < LIMITS.loginFailuresPerAccountIp; i++) {
        const res = await loginFrom(t, ip, email, { password: WRONG, headers: { 'x-forwarded-for': `203.0.113.${i + 1}` } });
        expectProblem(res, 401, 'invalid_credentials');
      }
      expectRateLimited(await loginFrom(t, ip, email, { headers: { 'x-forwarded-for': '203.0.113.99' } }), 15 * 60);
      expectRateLimited(await loginFrom(t, ip, email, { headers: { 'x-forwarded-for': '198.51.100.7, 203.0.113.100' } }), 15 * 60);

      // and the session records the socket address, not the header
      const other = nextIp();
      const ok = await loginFrom(t, other, email, { headers: { 'x-forwarded-for': '203.0.113.50' } });
      expect(ok.statusCode).toBe(200);
      const row = await t.db.store.db.selectFrom('sessions').select('ip').where('id', '=', sessionIdOf((ok.json() as TokenBody).accessToken)).executeTakeFirstOrThrow();
      expect(row.ip).toBe(other);
    });
  });

  describe('login failures per account from all IPs', () => {
    it('after the limit a new IP is refused even with the right password; known IPs and session cookies still get in', async () => {
      const registeredFrom = nextIp();
      const { email } = await newUser(t, registeredFrom);
      // the real user signs in from home with a browser (cookie transport)
      const home = nextIp();
      const homeLogin = await loginFrom(t, home, email, { transport: 'cookie' });
      expect(homeLogin.statusCode, homeLogin.body).toBe(200);
      const cookie = refreshCookie(homeLogin)!.value;

      // an attacker spreads failures over many IPs, below the per-IP limit on each
      for (let i = 0; i < LIMITS.loginFailuresPerAccount; i++) {
        expectProblem(await loginFrom(t, nextIp(), email, { password: WRONG }), 401, 'invalid_credentials');
      }

      const stranger = nextIp();
      const refused = await loginFrom(t, stranger, email);
      const retryAfter = expectRateLimited(refused, 60 * 60);
      expect(retryAfter).toBeGreaterThan(60 * 60 - 5);
      expect(await sessionsFrom(t, email, stranger)).toEqual([]);
      expectRateLimited(await loginFrom(t, nextIp(), email, { password: WRONG }), 60 * 60);
      // a garbage or foreign cookie does not make a client known
      expectRateLimited(await loginFrom(t, nextIp(), email, { cookies: { tessera_refresh: 'tsr_garbage' } }), 60 * 60);
      const someoneElse = await newUser(t);
      const foreign = await loginFrom(t, nextIp(), someoneElse.email, { transport: 'cookie' });
      expect(foreign.statusCode).toBe(200);
      expectRateLimited(await loginFrom(t, nextIp(), email, { cookies: { tessera_refresh: refreshCookie(foreign)!.value } }), 60 * 60);

      // the IP that signed in before, the IP that registered, and a browser holding a session cookie get in
      expect((await loginFrom(t, home, email)).statusCode).toBe(200);
      expect((await loginFrom(t, registeredFrom, email)).statusCode).toBe(200);
      const travelling = nextIp();
      const withCookie = await loginFrom(t, travelling, email, { cookies: { tessera_refresh: cookie } });
      expect(withCookie.statusCode, withCookie.body).toBe(200);
      expect(await sessionsFrom(t, email, travelling)).toHaveLength(1);

      // the window is an hour of the app's clock
      t.clock.advance(60 * 60);
      const later = await loginFrom(t, stranger, email);
      expect(later.statusCode, later.body).toBe(200);
    });
  });

  describe('per-IP request limits (@fastify/rate-limit)', () => {
    it('login attempts per IP: the next attempt is 429 with Retry-After, whatever the account', async () => {
      const { email } = await newUser(t);
      const ip = nextIp();
      for (let i = 0; i < LIMITS.loginAttemptsPerIp; i++) {
        expectProblem(await loginFrom(t, ip, newEmail()), 401, 'invalid_credentials');
      }
      expectRateLimited(await loginFrom(t, ip, email), 15 * 60);
      expectRateLimited(await loginFrom(t, ip, newEmail(), { password: 'short' }), 15 * 60);
      expect((await loginFrom(t, nextIp(), email)).statusCode).toBe(200);
    });

    it('register per IP: the next one is 429 and creates nothing; another IP may register', async () => {
      const ip = nextIp();
      for (let i = 0; i < LIMITS.registerPerIp; i++) {
        expect((await registerFrom(t, ip)).statusCode).toBe(201);
      }
      const email = newEmail();
      expectRateLimited(await registerFrom(t, ip, email), 60 * 60);
      const created = await t.db.store.db.selectFrom('users').select('id').where('email', '=', email).execute();
      expect(created).toEqual([]);
      expect((await registerFrom(t, nextIp(), email)).statusCode).toBe(201);
    });

    it('X-Forwarded-For does not escape the per-IP limit when TRUST_PROXY is off', async () => {
      const ip = nextIp();
      for (let i = 0; i < LIMITS.registerPerIp; i++) {
        const res = await registerFrom(t, ip, newEmail(), { 'x-forwarded-for': `198.51.100.${i + 1}` });
        expect(res.statusCode).toBe(201);
      }
      expectRateLimited(await registerFrom(t, ip, newEmail(), { 'x-forwarded-for': '198.51.100.200' }), 60 * 60);
    });

    it('refresh per IP', async () => {
      const ip = nextIp();
      for (let i = 0; i < LIMITS.refreshPerIp; i++) {
        expectProblem(await refreshFrom(t, ip, `tsr_garbage${i}`), 401, 'invalid_refresh_token');
      }
      expectRateLimited(await refreshFrom(t, ip, 'tsr_garbage'), 60);
    });
  });

  describe('refresh per session', () => {
    it('the next refresh of the session is 429 and does not move it; other sessions are unaffected', async () => {
      const { tokens } = await newUser(t);
      const sid = sessionIdOf(tokens.accessToken);
      const ip = nextIp();
      let token = tokens.refreshToken!;
      for (let i = 0; i < LIMITS.refreshPerSession; i++) {
        const res = await refreshFrom(t, ip, token);
        expect(res.statusCode, res.body).toBe(200);
        token = (res.json() as TokenBody).refreshToken!;
      }
      expectRateLimited(await refreshFrom(t, ip, token), 60);
      const row = await t.db.store.db.selectFrom('sessions').select(['generation', 'revoked_at']).where('id', '=', sid).executeTakeFirstOrThrow();
      expect(row.generation).toBe(1 + LIMITS.refreshPerSession);
      expect(row.revoked_at).toBeNull();

      // the limit follows the session, not the IP
      expectRateLimited(await refreshFrom(t, nextIp(), token), 60);
      const other = await newUser(t);
      const res = await refreshFrom(t, ip, other.tokens.refreshToken!);
      expect(res.statusCode, res.body).toBe(200);
    });

    it('the cookie transport counts against the same session budget', async () => {
      const ip = nextIp();
      const reg = await t.app.inject({ method: 'POST', url: '/auth/register', remoteAddress: ip, payload: { email: newEmail(), password: PASSWORD } });
      expect(reg.statusCode).toBe(201);
      let cookie = refreshCookie(reg)!.value;
      for (let i = 0; i < LIMITS.refreshPerSession; i++) {
        const res = await t.app.inject({ method: 'POST', url: '/auth/refresh', remoteAddress: ip, cookies: { tessera_refresh: cookie }, headers: { 'x-tessera-csrf': '1' } });
        expect(res.statusCode, res.body).toBe(200);
        cookie = refreshCookie(res)!.value;
      }
      const limited = await t.app.inject({ method: 'POST', url: '/auth/refresh', remoteAddress: ip, cookies: { tessera_refresh: cookie }, headers: { 'x-tessera-csrf': '1' } });
      expectRateLimited(limited, 60);
    });
  });
});

describe.each(BACKENDS)('rate limits behind a trusted proxy on %s', (backend: Backend) => {
  let t: TestApp;
  const PROXY = '10.250.0.1';
  beforeAll(async () => {
    t = await startTestApp(backend, { TRUST_PROXY: 'on' }, LIMITS);
  });
  afterAll(() => t.close());

  it('X-Forwarded-For names the client when TRUST_PROXY is on', async () => {
    const res = await registerFrom(t, PROXY, newEmail(), { 'x-forwarded-for': '203.0.113.200' });
    expect(res.statusCode).toBe(201);
    const body = res.json() as TokenBody;
    const row = await t.db.store.db.selectFrom('sessions').select('ip').where('id', '=', sessionIdOf(body.accessToken)).executeTakeFirstOrThrow();
    expect(row.ip).toBe('203.0.113.200');
  });

  it('the per-account-per-IP failure limit follows the forwarded client IP', async () => {
    const user = await registerFrom(t, PROXY, newEmail(), { 'x-forwarded-for': '203.0.113.1' });
    expect(user.statusCode).toBe(201);
    const email = (user.json() as TokenBody).user!.email;
    const attacker = { 'x-forwarded-for': '203.0.113.5' };
    for (let i = 0; i < LIMITS.loginFailuresPerAccountIp; i++) {
      expectProblem(await loginFrom(t, PROXY, email, { password: WRONG, headers: attacker }), 401, 'invalid_credentials');
    }
    expectRateLimited(await loginFrom(t, PROXY, email, { headers: attacker }), 15 * 60);
    // another client behind the same proxy is not blocked, and is recorded by its own IP
    const ok = await loginFrom(t, PROXY, email, { headers: { 'x-forwarded-for': '203.0.113.6' } });
    expect(ok.statusCode, ok.body).toBe(200);
    const row = await t.db.store.db.selectFrom('sessions').select('ip').where('id', '=', sessionIdOf((ok.json() as TokenBody).accessToken)).executeTakeFirstOrThrow();
    expect(row.ip).toBe('203.0.113.6');
    // a sixth login through the proxy socket: the per-IP attempt limit counts clients, not the proxy
    const sixth = await loginFrom(t, PROXY, email, { headers: { 'x-forwarded-for': '203.0.113.7' } });
    expect(sixth.statusCode, sixth.body).toBe(200);
  });

  it('the per-IP register limit follows the forwarded client IP', async () => {
    const client = { 'x-forwarded-for': '198.51.100.10' };
    for (let i = 0; i < LIMITS.registerPerIp; i++) {
      expect((await registerFrom(t, PROXY, newEmail(), client)).statusCode).toBe(201);
    }
    expectRateLimited(await registerFrom(t, PROXY, newEmail(), client), 60 * 60);
    expect((await registerFrom(t, PROXY, newEmail(), { 'x-forwarded-for': '198.51.100.11' })).statusCode).toBe(201);
  });
});

describe.each(BACKENDS)('RATE_LIMITS=off on %s', (backend: Backend) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(backend, { RATE_LIMITS: 'off' }, LIMITS);
  });
  afterAll(() => t.close());

  it('disables every limit', async () => {
    const ip = '10.99.0.1';
    const emails: string[] = [];
    for (let i = 0; i < LIMITS.registerPerIp + 1; i++) {
      const res = await registerFrom(t, ip);
      expect(res.statusCode, res.body).toBe(201);
      emails.push((res.json() as TokenBody).user!.email);
    }
    const email = emails[0]!;
    for (let i = 0; i < LIMITS.loginFailuresPerAccount + 1; i++) {
      expectProblem(await loginFrom(t, ip, email, { password: WRONG }), 401, 'invalid_credentials');
    }
    // past the per-account-per-IP, per-account and per-IP login limits
    const ok = await loginFrom(t, ip, email);
    expect(ok.statusCode, ok.body).toBe(200);
    expect((await loginFrom(t, '10.99.0.2', email)).statusCode).toBe(200);

    let token = (ok.json() as TokenBody).refreshToken!;
    for (let i = 0; i < Math.max(LIMITS.refreshPerSession, LIMITS.refreshPerIp) + 1; i++) {
      const res = await refreshFrom(t, ip, token);
      expect(res.statusCode, res.body).toBe(200);
      token = (res.json() as TokenBody).refreshToken!;
    }
  });
});
