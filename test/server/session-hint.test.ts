import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REFRESH_COOKIE, SESSION_HINT_COOKIE } from '../../src/core/vocabulary.js';
import { BACKENDS, type Backend } from '../helpers/backends.js';
import { newEmail, PASSWORD, startTestApp, type TestApp, type TokenBody } from '../helpers/app.js';

/**
 * SPEC §10: the session hint cookie is set with the refresh cookie and cleared with it, has
 * the refresh cookie's lifetime and site rules but is readable by scripts on every path, holds
 * no secret, and is never trusted by the server.
 */

const CSRF = { 'x-tessera-csrf': '1' };

type Cookie = LightMyRequestResponse['cookies'][number];

function cookie(res: LightMyRequestResponse, name: string): Cookie | undefined {
  return res.cookies.find((c) => c.name === name);
}

/** Both cookies, set (not cleared), with the rules every hint must follow relative to its refresh cookie. */
function expectBothSet(res: LightMyRequestResponse): { refresh: Cookie; hint: Cookie } {
  const refresh = cookie(res, REFRESH_COOKIE);
  const hint = cookie(res, SESSION_HINT_COOKIE);
  expect(refresh, `a ${REFRESH_COOKIE} cookie`).toBeDefined();
  expect(hint, `a ${SESSION_HINT_COOKIE} cookie`).toBeDefined();
  expect(refresh!.value).toMatch(/^tsr_/);
  expect(refresh!.maxAge).toBeGreaterThan(0);
  expect(refresh).toMatchObject({ httpOnly: true, path: '/auth' });
  // The hint: readable by scripts on every page, and holds nothing of the token.
  expect(hint!.value).toBe('1');
  expect(hint!.httpOnly).toBeFalsy();
  expect(hint!.path).toBe('/');
  // The same lifetime and the same site rules as the refresh cookie.
  expect(hint!.maxAge).toBe(refresh!.maxAge);
  expect(hint!.sameSite).toBe(refresh!.sameSite);
  expect(hint!.secure).toBe(refresh!.secure);
  expect(hint!.domain).toBe(refresh!.domain);
  return { refresh: refresh!, hint: hint! };
}

/** Both cookies cleared, each on its own path and domain, so the browser drops exactly the ones it holds. */
function expectBothCleared(res: LightMyRequestResponse) {
  const refresh = cookie(res, REFRESH_COOKIE);
  const hint = cookie(res, SESSION_HINT_COOKIE);
  expect(refresh, `${REFRESH_COOKIE} cleared`).toMatchObject({ value: '', path: '/auth' });
  expect(hint, `${SESSION_HINT_COOKIE} cleared`).toMatchObject({ value: '', path: '/' });
  for (const c of [refresh!, hint!]) {
    expect(c.maxAge === 0 || (c.expires !== undefined && c.expires.getTime() <= 0), `${c.name} expires now`).toBe(true);
  }
  expect(hint!.domain).toBe(refresh!.domain);
  expect(hint!.sameSite).toBe(refresh!.sameSite);
  expect(hint!.secure).toBe(refresh!.secure);
}

function expectNoCookies(res: LightMyRequestResponse) {
  expect(res.cookies.map((c) => c.name)).toEqual([]);
}

describe.each(BACKENDS)('the session hint cookie on %s', (backend: Backend) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(backend, { RATE_LIMITS: 'off' });
  });
  afterAll(() => t.close());

  const post = (url: string, payload: unknown, options: { cookies?: Record<string, string>; headers?: Record<string, string> } = {}) =>
    t.app.inject({ method: 'POST', url, payload: payload as object, cookies: options.cookies, headers: options.headers });

  async function cookieSession() {
    const email = newEmail();
    const res = await post('/auth/register', { email, password: PASSWORD });
    expect(res.statusCode, res.body).toBe(201);
    return { email, res, token: cookie(res, REFRESH_COOKIE)!.value, body: res.json() as TokenBody };
  }

  it('register, login and refresh set both cookies, with the same lifetime and site rules', async () => {
    const { email, res, token } = await cookieSession();
    const { refresh } = expectBothSet(res);
    expect(refresh.sameSite).toBe('Strict');
    expect(refresh.secure).toBeFalsy();
    expect(refresh.domain).toBeUndefined();
    expect(res.body).not.toContain(token);

    const login = await post('/auth/login', { email, password: PASSWORD });
    expect(login.statusCode, login.body).toBe(200);
    expectBothSet(login);

    t.clock.advance(60);
    const refreshed = await post('/auth/refresh', {}, { cookies: { [REFRESH_COOKIE]: cookie(login, REFRESH_COOKIE)!.value }, headers: CSRF });
    expect(refreshed.statusCode, refreshed.body).toBe(200);
    expectBothSet(refreshed);
  });

  it('the body transport sets neither cookie', async () => {
    const res = await post('/auth/register', { email: newEmail(), password: PASSWORD, transport: 'body' });
    expect(res.statusCode).toBe(201);
    expectNoCookies(res);
    const refreshed = await post('/auth/refresh', { refreshToken: (res.json() as TokenBody).refreshToken });
    expect(refreshed.statusCode).toBe(200);
    expectNoCookies(refreshed);
    // A body refresh that fails leaves the browser's cookies alone.
    const bad = await post('/auth/refresh', { refreshToken: 'tsr_nope' });
    expect(bad.statusCode).toBe(401);
    expectNoCookies(bad);
  });

  it('logout clears both (local and global); logout of the others keeps both', async () => {
    const local = await cookieSession();
    const others = await post('/auth/logout', { scope: 'others' }, { cookies: { [REFRESH_COOKIE]: local.token }, headers: CSRF });
    expect(others.statusCode).toBe(204);
    expectNoCookies(others);
    const res = await post('/auth/logout', {}, { cookies: { [REFRESH_COOKIE]: local.token, [SESSION_HINT_COOKIE]: '1' }, headers: CSRF });
    expect(res.statusCode).toBe(204);
    expectBothCleared(res);

    const global = await cookieSession();
    const all = await post('/auth/logout', { scope: 'global' }, { cookies: { [REFRESH_COOKIE]: global.token }, headers: CSRF });
    expect(all.statusCode).toBe(204);
    expectBothCleared(all);
  });

  it('a cookie refresh answered 401 clears both: an unknown token, an ended session, and a hint with no refresh cookie at all', async () => {
    const bad = await post('/auth/refresh', {}, { cookies: { [REFRESH_COOKIE]: 'tsr_garbage', [SESSION_HINT_COOKIE]: '1' }, headers: CSRF });
    expect(bad.statusCode).toBe(401);
    expect((bad.json() as { code: string }).code).toBe('invalid_refresh_token');
    expectBothCleared(bad);

    const ended = await cookieSession();
    expect((await post('/auth/logout', {}, { cookies: { [REFRESH_COOKIE]: ended.token }, headers: CSRF })).statusCode).toBe(204);
    const afterLogout = await post('/auth/refresh', {}, { cookies: { [REFRESH_COOKIE]: ended.token }, headers: CSRF });
    expect(afterLogout.statusCode).toBe(401);
    expectBothCleared(afterLogout);

    // The refresh cookie is gone (expired, or deleted by hand) but the hint is still there.
    const hintOnly = await post('/auth/refresh', {}, { cookies: { [SESSION_HINT_COOKIE]: '1' }, headers: CSRF });
    expect(hintOnly.statusCode).toBe(401);
    expect((hintOnly.json() as { code: string }).code).toBe('invalid_refresh_token');
    expectBothCleared(hintOnly);
  });

  it('the server never trusts the hint: it grants nothing, names nothing, and its value is never read', async () => {
    const { token } = await cookieSession();
    // A hint holding a real refresh token is still only a hint: the refresh cookie is what counts.
    for (const value of ['1', 'yes', token]) {
      const res = await post('/auth/refresh', {}, { cookies: { [SESSION_HINT_COOKIE]: value }, headers: CSRF });
      expect(res.statusCode, value).toBe(401);
      expect((await t.app.inject({ method: 'GET', url: '/auth/me', cookies: { [SESSION_HINT_COOKIE]: value } })).statusCode).toBe(401);
    }
    // Without the hint, a refresh cookie works as before, and a Bearer token too.
    const refreshed = await post('/auth/refresh', {}, { cookies: { [REFRESH_COOKIE]: token }, headers: CSRF });
    expect(refreshed.statusCode, refreshed.body).toBe(200);
    expectBothSet(refreshed);
    const me = await t.app.inject({ method: 'GET', url: '/auth/me', headers: { authorization: `Bearer ${(refreshed.json() as TokenBody).accessToken}` } });
    expect(me.statusCode).toBe(200);
  });
});

describe.each(BACKENDS)('the session hint follows COOKIE_SAMESITE, COOKIE_DOMAIN and Secure on %s', (backend: Backend) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(backend, {
      RATE_LIMITS: 'off', PUBLIC_URL: 'https://auth.example.com', COOKIE_SAMESITE: 'none', COOKIE_DOMAIN: 'example.com',
    });
  });
  afterAll(() => t.close());

  it('set and cleared with Secure, SameSite=None and Domain=example.com, like the refresh cookie', async () => {
    const res = await t.app.inject({ method: 'POST', url: '/auth/register', payload: { email: newEmail(), password: PASSWORD } });
    expect(res.statusCode, res.body).toBe(201);
    const { refresh } = expectBothSet(res);
    expect(refresh).toMatchObject({ secure: true, sameSite: 'None', domain: 'example.com' });
    const out = await t.app.inject({
      method: 'POST', url: '/auth/logout', payload: {}, cookies: { [REFRESH_COOKIE]: refresh.value },
      headers: { ...CSRF, origin: 'https://auth.example.com' },
    });
    expect(out.statusCode).toBe(204);
    expectBothCleared(out);
    expect(cookie(out, SESSION_HINT_COOKIE)).toMatchObject({ secure: true, sameSite: 'None', domain: 'example.com' });
  });
});
