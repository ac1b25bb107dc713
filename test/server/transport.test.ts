import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BACKENDS, type Backend } from '../helpers/backends.js';
import { newEmail, PASSWORD, refreshCookie, startTestApp, type TestApp, type TokenBody, expectProblem } from '../helpers/app.js';

/**
 * SPEC §4 Transport, CSRF and CORS: the refresh cookie's attributes, the cross-site
 * checks of cookie-mode refresh and logout, body-over-cookie precedence, CORS and
 * Cache-Control.
 */

const APP_ORIGIN = 'https://app.example.com';
const CSRF = { 'x-tessera-csrf': '1' };

/** Every Set-Cookie header line of a response. */
function setCookieLines(res: LightMyRequestResponse): string[] {
  const raw = res.headers['set-cookie'];
  if (raw === undefined) return [];
  return Array.isArray(raw) ? raw : [String(raw)];
}

/** The tessera_refresh Set-Cookie line, split into lower-cased attribute names and values. */
function cookieAttributes(res: LightMyRequestResponse): Map<string, string> {
  const line = setCookieLines(res).find((l) => l.startsWith('tessera_refresh='));
  expect(line, 'a tessera_refresh Set-Cookie header').toBeDefined();
  const attributes = new Map<string, string>();
  for (const part of line!.split(';').slice(1)) {
    const [name, ...value] = part.trim().split('=');
    attributes.set(name!.toLowerCase(), value.join('='));
  }
  return attributes;
}

/** A cookie that sets a real token (not one that clears the cookie). */
function issuedCookie(res: LightMyRequestResponse) {
  const c = refreshCookie(res);
  return c && c.value !== '' && (c.maxAge === undefined || c.maxAge > 0) ? c : undefined;
}

async function sessionRow(t: TestApp, id: string) {
  return t.db.store.db.selectFrom('sessions').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
}

async function sessionsOf(t: TestApp, email: string) {
  return t.db.store.db
    .selectFrom('sessions')
    .innerJoin('users', 'users.id', 'sessions.user_id')
    .select(['sessions.id', 'sessions.generation', 'sessions.revoked_at', 'sessions.expires_at', 'sessions.absolute_expires_at'])
    .where('users.email', '=', email)
    .execute();
}

function sessionIdOfAccessToken(accessToken: string): string {
  const payload = JSON.parse(Buffer.from(accessToken.split('.')[1]!, 'base64url').toString('utf8')) as { sid: string };
  return payload.sid;
}

async function registerCookie(t: TestApp, email = newEmail()) {
  const res = await t.app.inject({ method: 'POST', url: '/auth/register', payload: { email, password: PASSWORD } });
  expect(res.statusCode, res.body).toBe(201);
  const cookie = issuedCookie(res);
  expect(cookie).toBeDefined();
  return { email, res, token: cookie!.value, body: res.json() as TokenBody };
}

async function registerBody(t: TestApp, email = newEmail()) {
  const res = await t.app.inject({ method: 'POST', url: '/auth/register', payload: { email, password: PASSWORD, transport: 'body' } });
  expect(res.statusCode, res.body).toBe(201);
  return { email, res, body: res.json() as TokenBody };
}

function cookieRefresh(t: TestApp, token: string, headers: Record<string, string> = CSRF) {
  return t.app.inject({ method: 'POST', url: '/auth/refresh', cookies: { tessera_refresh: token }, headers });
}

describe.each(BACKENDS)('HTTP transport on %s', (backend: Backend) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(backend, { CORS_ORIGINS: `${APP_ORIGIN}, http://localhost:5173` });
  });
  afterAll(() => t.close());

  describe('the refresh cookie (default transport)', () => {
    it('register sets an HttpOnly, Path=/auth, SameSite=Strict cookie, not Secure on http, and no refreshToken in the body', async () => {
      const { res, body, token, email } = await registerCookie(t);
      expect(body.refreshToken).toBeUndefined();
      expect(res.body).not.toContain(token);
      expect(body.accessToken).toEqual(expect.any(String));
      expect(body.tokenType).toBe('Bearer');
      expect(body.user?.email).toBe(email);

      const a = cookieAttributes(res);
      expect(a.has('httponly')).toBe(true);
      expect(a.get('path')).toBe('/auth');
      expect(a.get('samesite')).toBe('Strict');
      expect(a.has('secure')).toBe(false);
      expect(a.has('domain')).toBe(false);
      expect(token).toMatch(/^tsr_[A-Za-z0-9_-]+$/);

      // Max-Age no longer than the session's remaining (idle) life.
      const maxAge = Number(a.get('max-age'));
      expect(Number.isInteger(maxAge)).toBe(true);
      expect(maxAge).toBeGreaterThan(0);
      const [session] = await sessionsOf(t, email);
      const remaining = (new Date(session!.expires_at).getTime() - t.clock.time) / 1000;
      expect(maxAge).toBeLessThanOrEqual(remaining);
      expect(maxAge).toBeGreaterThan(remaining - 5);
    });

    it('login sets the same cookie and keeps the token out of the body', async () => {
      const { email } = await registerBody(t);
      const res = await t.app.inject({ method: 'POST', url: '/auth/login', payload: { email, password: PASSWORD } });
      expect(res.statusCode, res.body).toBe(200);
      const body = res.json() as TokenBody;
      expect(body.refreshToken).toBeUndefined();
      const cookie = issuedCookie(res)!;
      expect(cookie).toBeDefined();
      expect(res.body).not.toContain(cookie.value);
      const a = cookieAttributes(res);
      expect(a.has('httponly')).toBe(true);
      expect(a.get('path')).toBe('/auth');
      expect(a.get('samesite')).toBe('Strict');
      expect(a.has('secure')).toBe(false);

      const sid = sessionIdOfAccessToken(body.accessToken);
      const row = await sessionRow(t, sid);
      expect(Number(a.get('max-age'))).toBeLessThanOrEqual((new Date(row.expires_at).getTime() - t.clock.time) / 1000);
    });

    it('body transport sets no cookie and returns the token in the body', async () => {
      const { res, body } = await registerBody(t);
      expect(body.refreshToken).toMatch(/^tsr_/);
      expect(refreshCookie(res)).toBeUndefined();
    });
  });

  describe('cookie-mode refresh', () => {
    it('is refused with 403 csrf_failed without X-Tessera-CSRF: 1, and the session does not move', async () => {
      const { token, body } = await registerCookie(t);
      const sid = sessionIdOfAccessToken(body.accessToken);
      for (const headers of [{}, { 'x-tessera-csrf': '0' }, { 'x-tessera-csrf': 'true' }, { 'x-tessera-csrf': '' }] as Record<string, string>[]) {
        const res = await cookieRefresh(t, token, headers);
        expectProblem(res, 403, 'csrf_failed');
        expect(issuedCookie(res)).toBeUndefined();
      }
      const row = await sessionRow(t, sid);
      expect(row.generation).toBe(1);
      expect(row.revoked_at).toBeNull();
      // ...and the cookie still works once the header is sent.
      expect((await cookieRefresh(t, token)).statusCode).toBe(200);
    });

    it('rotates: 200, a new cookie with a new token, no token in the body, generation + 1', async () => {
      const { token, body } = await registerCookie(t);
      const sid = sessionIdOfAccessToken(body.accessToken);
      const res = await cookieRefresh(t, token);
      expect(res.statusCode, res.body).toBe(200);
      const refreshed = res.json() as TokenBody;
      expect(refreshed.refreshToken).toBeUndefined();
      expect(refreshed.accessToken).toEqual(expect.any(String));
      const next = issuedCookie(res);
      expect(next).toBeDefined();
      expect(next!.value).not.toBe(token);
      expect(res.body).not.toContain(next!.value);
      const a = cookieAttributes(res);
      expect(a.has('httponly')).toBe(true);
      expect(a.get('path')).toBe('/auth');
      expect(a.get('samesite')).toBe('Strict');
      expect((await sessionRow(t, sid)).generation).toBe(2);

      // The new cookie rotates again.
      const again = await cookieRefresh(t, next!.value);
      expect(again.statusCode, again.body).toBe(200);
      expect((await sessionRow(t, sid)).generation).toBe(3);
    });

    it('accepts PUBLIC_URL’s origin (default http://localhost:3000) and CORS_ORIGINS origins', async () => {
      for (const origin of ['http://localhost:3000', APP_ORIGIN, 'http://localhost:5173']) {
        const { token } = await registerCookie(t);
        const res = await cookieRefresh(t, token, { ...CSRF, origin });
        expect(res.statusCode, `${origin}: ${res.body}`).toBe(200);
        expect(issuedCookie(res)).toBeDefined();
      }
    });

    it('refuses a hostile Origin and Origin: null with 403 csrf_failed, without touching the session', async () => {
      const { token, body } = await registerCookie(t);
      const sid = sessionIdOfAccessToken(body.accessToken);
      for (const origin of ['https://evil.example', 'null', 'http://localhost:3001', 'https://localhost:3000', `${APP_ORIGIN}.evil.example`, 'http://app.example.com', `${APP_ORIGIN}/`]) {
        const res = await cookieRefresh(t, token, { ...CSRF, origin });
        expectProblem(res, 403, 'csrf_failed');
        expect(issuedCookie(res)).toBeUndefined();
      }
      expect((await sessionRow(t, sid)).generation).toBe(1);
    });

    it('refuses Sec-Fetch-Site: cross-site when Origin is absent, accepts same-origin and same-site', async () => {
      const { token } = await registerCookie(t);
      expectProblem(await cookieRefresh(t, token, { ...CSRF, 'sec-fetch-site': 'cross-site' }), 403, 'csrf_failed');
      const sameOrigin = await cookieRefresh(t, token, { ...CSRF, 'sec-fetch-site': 'same-origin' });
      expect(sameOrigin.statusCode, sameOrigin.body).toBe(200);
      const sameSite = await cookieRefresh(t, issuedCookie(sameOrigin)!.value, { ...CSRF, 'sec-fetch-site': 'same-site' });
      expect(sameSite.statusCode, sameSite.body).toBe(200);
    });

    it('an allowed Origin wins over Sec-Fetch-Site: cross-site (an allowed cross-site app)', async () => {
      const { token } = await registerCookie(t);
      const res = await cookieRefresh(t, token, { ...CSRF, origin: APP_ORIGIN, 'sec-fetch-site': 'cross-site' });
      expect(res.statusCode, res.body).toBe(200);
    });

    it('without a cookie or a body token is 401 invalid_refresh_token', async () => {
      expectProblem(await t.app.inject({ method: 'POST', url: '/auth/refresh', headers: CSRF }), 401, 'invalid_refresh_token');
      expectProblem(await t.app.inject({ method: 'POST', url: '/auth/refresh', payload: {} }), 401, 'invalid_refresh_token');
    });

    it('a garbage cookie is 401 invalid_refresh_token and the cookie is cleared', async () => {
      const res = await cookieRefresh(t, 'tsr_garbage');
      expectProblem(res, 401, 'invalid_refresh_token');
      const cleared = refreshCookie(res);
      expect(cleared).toBeDefined();
      expect(cleared!.value).toBe('');
      expect(issuedCookie(res)).toBeUndefined();
    });

    it('Max-Age never exceeds the absolute lifetime left', async () => {
      const short = await startTestApp(backend, { REFRESH_TOKEN_TTL: '1h', SESSION_MAX_AGE: '90m' });
      try {
        const res = await short.app.inject({ method: 'POST', url: '/auth/register', payload: { email: newEmail(), password: PASSWORD } });
        expect(res.statusCode).toBe(201);
        expect(Number(cookieAttributes(res).get('max-age'))).toBeLessThanOrEqual(3600);
        short.clock.advance(50 * 60);
        const refreshed = await short.app.inject({ method: 'POST', url: '/auth/refresh', cookies: { tessera_refresh: issuedCookie(res)!.value }, headers: CSRF });
        expect(refreshed.statusCode, refreshed.body).toBe(200);
        const maxAge = Number(cookieAttributes(refreshed).get('max-age'));
        expect(maxAge).toBeGreaterThan(0);
        // 40 minutes of absolute life left, though the idle lifetime alone would allow an hour.
        expect(maxAge).toBeLessThanOrEqual(40 * 60);
      } finally {
        await short.close();
      }
    });
  });

  describe('a body token takes precedence over the cookie', () => {
    it('garbage cookie + valid body token → 200, refreshToken in the body, no token cookie set', async () => {
      const { body } = await registerBody(t);
      const sid = sessionIdOfAccessToken(body.accessToken);
      const res = await t.app.inject({
        method: 'POST', url: '/auth/refresh', payload: { refreshToken: body.refreshToken }, cookies: { tessera_refresh: 'tsr_garbage' },
      });
      expect(res.statusCode, res.body).toBe(200);
      const refreshed = res.json() as TokenBody;
      expect(refreshed.refreshToken).toMatch(/^tsr_/);
      expect(refreshed.refreshToken).not.toBe(body.refreshToken);
      expect(issuedCookie(res)).toBeUndefined();
      expect(setCookieLines(res).filter((l) => l.startsWith('tessera_refresh=tsr_'))).toEqual([]);
      expect((await sessionRow(t, sid)).generation).toBe(2);
    });

    it('a body token needs no CSRF header even when a cookie is present, and a hostile Origin does not matter', async () => {
      const cookieUser = await registerCookie(t);
      const { body } = await registerBody(t);
      const res = await t.app.inject({
        method: 'POST', url: '/auth/refresh', payload: { refreshToken: body.refreshToken },
        cookies: { tessera_refresh: cookieUser.token }, headers: { origin: 'https://evil.example' },
      });
      expect(res.statusCode, res.body).toBe(200);
      // the cookie's session was not touched
      expect((await sessionRow(t, sessionIdOfAccessToken(cookieUser.body.accessToken))).generation).toBe(1);
      expect((await sessionRow(t, sessionIdOfAccessToken(body.accessToken))).generation).toBe(2);
    });
  });

  describe('cookie-mode logout', () => {
    it('needs the CSRF header: 403 csrf_failed and the session stays active', async () => {
      const { token, body } = await registerCookie(t);
      const sid = sessionIdOfAccessToken(body.accessToken);
      const res = await t.app.inject({ method: 'POST', url: '/auth/logout', cookies: { tessera_refresh: token } });
      expectProblem(res, 403, 'csrf_failed');
      expect((await sessionRow(t, sid)).revoked_at).toBeNull();
      const hostile = await t.app.inject({ method: 'POST', url: '/auth/logout', cookies: { tessera_refresh: token }, headers: { ...CSRF, origin: 'https://evil.example' } });
      expectProblem(hostile, 403, 'csrf_failed');
      const crossSite = await t.app.inject({ method: 'POST', url: '/auth/logout', cookies: { tessera_refresh: token }, headers: { ...CSRF, 'sec-fetch-site': 'cross-site' } });
      expectProblem(crossSite, 403, 'csrf_failed');
      expect((await sessionRow(t, sid)).revoked_at).toBeNull();
    });

    it('with the header: 204, the cookie is cleared, the session revoked and the cookie no longer refreshes', async () => {
      const { token, body } = await registerCookie(t);
      const sid = sessionIdOfAccessToken(body.accessToken);
      const res = await t.app.inject({ method: 'POST', url: '/auth/logout', cookies: { tessera_refresh: token }, headers: { ...CSRF, origin: 'http://localhost:3000' } });
      expect(res.statusCode, res.body).toBe(204);
      const cleared = refreshCookie(res);
      expect(cleared).toBeDefined();
      expect(cleared!.value).toBe('');
      const a = cookieAttributes(res);
      expect(a.get('path')).toBe('/auth');
      const expired = a.get('max-age') === '0' || (a.has('expires') && new Date(a.get('expires')!).getTime() <= Date.now());
      expect(expired).toBe(true);
      const row = await sessionRow(t, sid);
      expect(row.revoked_at).not.toBeNull();
      expectProblem(await cookieRefresh(t, token), 401, 'invalid_refresh_token');
      // Access tokens of the session stop working at once.
      const me = await t.app.inject({ method: 'GET', url: '/auth/me', headers: { authorization: `Bearer ${body.accessToken}` } });
      expectProblem(me, 401, 'unauthorized');
    });
  });

  describe('CORS', () => {
    it('a preflight from an allowed origin echoes it with credentials and allows X-Tessera-CSRF', async () => {
      const res = await t.app.inject({
        method: 'OPTIONS', url: '/auth/refresh',
        headers: { origin: APP_ORIGIN, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type, x-tessera-csrf' },
      });
      expect(res.statusCode).toBeLessThan(300);
      expect(res.headers['access-control-allow-origin']).toBe(APP_ORIGIN);
      expect(res.headers['access-control-allow-credentials']).toBe('true');
      expect(String(res.headers['access-control-allow-headers']).toLowerCase()).toContain('x-tessera-csrf');
      expect(String(res.headers['access-control-allow-methods'])).toContain('POST');
      expect(String(res.headers.vary ?? '')).toMatch(/origin/i);
    });

    it('an actual request from an allowed origin is echoed with credentials', async () => {
      const res = await t.app.inject({ method: 'GET', url: '/healthz', headers: { origin: APP_ORIGIN } });
      expect(res.statusCode).toBe(200);
      expect(res.headers['access-control-allow-origin']).toBe(APP_ORIGIN);
      expect(res.headers['access-control-allow-credentials']).toBe('true');
    });

    it('PUBLIC_URL’s own origin is allowed', async () => {
      const res = await t.app.inject({ method: 'OPTIONS', url: '/auth/login', headers: { origin: 'http://localhost:3000', 'access-control-request-method': 'POST' } });
      expect(res.headers['access-control-allow-origin']).toBe('http://localhost:3000');
    });

    it('another origin, null, or no origin gets no Access-Control-Allow-Origin, and never *', async () => {
      for (const origin of ['https://evil.example', 'null', `${APP_ORIGIN}.evil.example`, 'http://app.example.com']) {
        const preflight = await t.app.inject({
          method: 'OPTIONS', url: '/auth/refresh',
          headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'x-tessera-csrf' },
        });
        expect(preflight.statusCode).toBeLessThan(500);
        expect(preflight.headers['access-control-allow-origin'], origin).toBeUndefined();
        const simple = await t.app.inject({ method: 'GET', url: '/healthz', headers: { origin } });
        expect(simple.headers['access-control-allow-origin'], origin).toBeUndefined();
      }
      const none = await t.app.inject({ method: 'GET', url: '/healthz' });
      expect(none.headers['access-control-allow-origin']).toBeUndefined();
      const anyOrigin = await t.app.inject({ method: 'GET', url: '/.well-known/jwks.json', headers: { origin: 'https://evil.example' } });
      expect(anyOrigin.headers['access-control-allow-origin']).not.toBe('*');
    });
  });

  describe('Cache-Control: no-store on every response', () => {
    it('success, error, not found, method not allowed, preflight, no content', async () => {
      const { token, body } = await registerCookie(t);
      const responses: [string, LightMyRequestResponse][] = [
        ['healthz', await t.app.inject('/healthz')],
        ['readyz', await t.app.inject('/readyz')],
        ['jwks', await t.app.inject('/.well-known/jwks.json')],
        ['openapi', await t.app.inject('/openapi.json')],
        ['me', await t.app.inject({ method: 'GET', url: '/auth/me', headers: { authorization: `Bearer ${body.accessToken}` } })],
        ['me 401', await t.app.inject('/auth/me')],
        ['404', await t.app.inject('/nope')],
        ['405', await t.app.inject('/auth/login')],
        ['400', await t.app.inject({ method: 'POST', url: '/auth/login', payload: {} })],
        ['415', await t.app.inject({ method: 'POST', url: '/auth/login', headers: { 'content-type': 'text/plain' }, payload: 'x' })],
        ['403', await cookieRefresh(t, token, {})],
        ['refresh', await cookieRefresh(t, token)],
        ['preflight', await t.app.inject({ method: 'OPTIONS', url: '/auth/refresh', headers: { origin: APP_ORIGIN, 'access-control-request-method': 'POST' } })],
        ['register', await t.app.inject({ method: 'POST', url: '/auth/register', payload: { email: newEmail(), password: PASSWORD, transport: 'body' } })],
        ['logout 204', await t.app.inject({ method: 'POST', url: '/auth/logout', headers: { authorization: `Bearer ${body.accessToken}` } })],
      ];
      for (const [name, res] of responses) {
        expect(res.headers['cache-control'], `${name} (${res.statusCode})`).toBe('no-store');
      }
    });
  });
});

describe.each(BACKENDS)('cookie attributes by configuration on %s', (backend: Backend) => {
  async function cookieFrom(env: Record<string, string>) {
    const t = await startTestApp(backend, env);
    try {
      const res = await t.app.inject({ method: 'POST', url: '/auth/register', payload: { email: newEmail(), password: PASSWORD } });
      expect(res.statusCode, res.body).toBe(201);
      const login = await t.app.inject({ method: 'POST', url: '/auth/login', payload: { email: res.json().user.email, password: PASSWORD } });
      expect(login.statusCode, login.body).toBe(200);
      const logout = await t.app.inject({
        method: 'POST', url: '/auth/logout', cookies: { tessera_refresh: issuedCookie(login)!.value }, headers: { ...CSRF, origin: new URL(t.config.publicUrl).origin },
      });
      expect(logout.statusCode, logout.body).toBe(204);
      return { register: cookieAttributes(res), login: cookieAttributes(login), logout: cookieAttributes(logout) };
    } finally {
      await t.close();
    }
  }

  it('Secure when PUBLIC_URL is https', async () => {
    const c = await cookieFrom({ PUBLIC_URL: 'https://auth.example.com' });
    for (const a of [c.register, c.login, c.logout]) {
      expect(a.has('secure')).toBe(true);
      expect(a.has('httponly')).toBe(true);
      expect(a.get('path')).toBe('/auth');
      expect(a.get('samesite')).toBe('Strict');
    }
  });

  it('Secure when NODE_ENV=production, even on an http PUBLIC_URL', async () => {
    const c = await cookieFrom({ NODE_ENV: 'production', PUBLIC_URL: 'http://localhost:3000' });
    for (const a of [c.register, c.login, c.logout]) expect(a.has('secure')).toBe(true);
  });

  it('not Secure on plain-http development', async () => {
    const c = await cookieFrom({ PUBLIC_URL: 'http://localhost:8080' });
    for (const a of [c.register, c.login, c.logout]) expect(a.has('secure')).toBe(false);
  });

  it('COOKIE_SAMESITE=lax is reflected in the cookie', async () => {
    const c = await cookieFrom({ COOKIE_SAMESITE: 'lax' });
    for (const a of [c.register, c.login, c.logout]) expect(a.get('samesite')).toBe('Lax');
  });

  it('COOKIE_SAMESITE=none (with https) is SameSite=None; Secure', async () => {
    const c = await cookieFrom({ COOKIE_SAMESITE: 'none', PUBLIC_URL: 'https://auth.example.com' });
    for (const a of [c.register, c.login]) {
      expect(a.get('samesite')).toBe('None');
      expect(a.has('secure')).toBe(true);
    }
  });

  it('COOKIE_DOMAIN sets the Domain attribute', async () => {
    const c = await cookieFrom({ COOKIE_DOMAIN: 'example.com' });
    for (const a of [c.register, c.login, c.logout]) expect(a.get('domain')).toBe('example.com');
  });

  it('a custom PUBLIC_URL origin is the one CSRF accepts; the default localhost:3000 then is not', async () => {
    const t = await startTestApp(backend, { PUBLIC_URL: 'https://auth.example.com/base/' });
    try {
      const reg = await t.app.inject({ method: 'POST', url: '/auth/register', payload: { email: newEmail(), password: PASSWORD } });
      const token = issuedCookie(reg)!.value;
      expectProblem(await cookieRefresh(t, token, { ...CSRF, origin: 'http://localhost:3000' }), 403, 'csrf_failed');
      const ok = await cookieRefresh(t, token, { ...CSRF, origin: 'https://auth.example.com' });
      expect(ok.statusCode, ok.body).toBe(200);
    } finally {
      await t.close();
    }
  });
});
