import { randomUUID } from 'node:crypto';
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { BACKENDS } from '../helpers/backends.js';
import { login, PASSWORD, refresh, register, startTestApp, type TestApp, type TokenBody, expectProblem } from '../helpers/app.js';

const FIREFOX_WINDOWS = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0';
const SAFARI_IOS =
  'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1';
const NEW_PASSWORD = 'a completely different passphrase';

function tokens(res: LightMyRequestResponse): TokenBody & { refreshToken: string } {
  expect(res.statusCode, res.body).toBe(200);
  return res.json() as TokenBody & { refreshToken: string };
}

const bearer = (accessToken: string) => ({ authorization: `Bearer ${accessToken}` });

describe.each(BACKENDS)('account endpoints on %s', (backend) => {
  let t: TestApp;
  beforeAll(async () => {
    // Short access tokens so expiry can be shown with the frozen clock; room for many registrations from one IP.
    t = await startTestApp(backend, { ACCESS_TOKEN_TTL: '60s' }, { registerPerIp: 10_000 });
  });
  afterAll(() => t.close());

  const sessionIdOf = (refreshToken: string) => t.app.tessera.refreshTokens.parse(refreshToken)!.sessionId;
  const sessionRow = (id: string) => t.db.store.db.selectFrom('sessions').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
  const userRow = (id: string) => t.db.store.db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
  const me = (headers: Record<string, string> = {}) => t.app.inject({ url: '/auth/me', headers });
  const listSessions = (accessToken: string) => t.app.inject({ url: '/auth/sessions', headers: bearer(accessToken) });
  const deleteSession = (accessToken: string, id: string, headers: Record<string, string> = {}) =>
    t.app.inject({ method: 'DELETE', url: `/auth/sessions/${encodeURIComponent(id)}`, headers: { ...bearer(accessToken), ...headers } });
  const changePassword = (accessToken: string, payload: Record<string, unknown>) =>
    t.app.inject({ method: 'POST', url: '/auth/password', headers: bearer(accessToken), payload });

  // ---- /auth/me ----------------------------------------------------------------

  describe('GET /auth/me', () => {
    it('returns the user of a valid Bearer token', async () => {
      const { body: reg } = await register(t.app);
      const res = await me(bearer(reg.accessToken));
      expect(res.statusCode, res.body).toBe(200);
      expect(res.json()).toEqual({ user: reg.user });
      expect(res.headers['cache-control']).toBe('no-store');
    });

    it('is 401 unauthorized without a token or with anything but a genuine access token', async () => {
      const { body: reg } = await register(t.app);
      const sig = reg.accessToken.slice(-10);
      const tampered = reg.accessToken.slice(0, -10) + (sig[0] === 'A' ? 'B' : 'A') + sig.slice(1);
      const attempts: Record<string, string>[] = [
        {},
        { authorization: 'Bearer garbage' },
        { authorization: 'Bearer ' },
        { authorization: `Basic ${Buffer.from('a:b').toString('base64')}` },
        bearer(reg.refreshToken!),
        bearer(tampered),
      ];
      for (const headers of attempts) expectProblem(await me(headers), 401, 'unauthorized');
    });

    it('signs out instantly: after logout the unexpired access token is refused', async () => {
      const { body: reg } = await register(t.app);
      expect((await me(bearer(reg.accessToken))).statusCode).toBe(200);
      const logout = await t.app.inject({ method: 'POST', url: '/auth/logout', payload: { refreshToken: reg.refreshToken } });
      expect(logout.statusCode).toBe(204);
      expectProblem(await me(bearer(reg.accessToken)), 401, 'unauthorized');
    });

    it('refuses the access token of a disabled user until the user is enabled again', async () => {
      const { email, body: reg } = await register(t.app);
      await t.db.store.setUserDisabled(email, true, t.clock.now());
      expectProblem(await me(bearer(reg.accessToken)), 401, 'unauthorized');
      await t.db.store.setUserDisabled(email, false, t.clock.now());
      expect((await me(bearer(reg.accessToken))).statusCode).toBe(200);
    });

    it('refuses an access token past ACCESS_TOKEN_TTL; a refresh gives a working one', async () => {
      const { body: reg } = await register(t.app);
      expect(reg.expiresIn).toBe(60);
      t.clock.advance(30);
      expect((await me(bearer(reg.accessToken))).statusCode).toBe(200);
      t.clock.advance(90); // 120 s after issue
      expectProblem(await me(bearer(reg.accessToken)), 401, 'unauthorized');

      const fresh = tokens(await refresh(t.app, reg.refreshToken!));
      expect((await me(bearer(fresh.accessToken))).json()).toEqual({ user: reg.user });
    });
  });

  // ---- /auth/sessions ----------------------------------------------------------

  describe('GET /auth/sessions', () => {
    it('lists the caller\'s active sessions with ip, user agent, a readable device and which one is current', async () => {
      const { email, body: a } = await register(t.app, { headers: { 'user-agent': FIREFOX_WINDOWS } });
      const aCreated = t.clock.now().toISOString();
      t.clock.advance(5);
      const b = tokens(await login(t.app, email, { headers: { 'user-agent': SAFARI_IOS } }));
      const bCreated = t.clock.now().toISOString();
      await register(t.app); // someone else's session is never listed

      const res = await listSessions(a.accessToken);
      expect(res.statusCode, res.body).toBe(200);
      const { sessions } = res.json() as { sessions: Record<string, unknown>[] };
      // most recently used first
      expect(sessions).toEqual([
        {
          id: sessionIdOf(b.refreshToken), createdAt: bCreated, lastUsedAt: bCreated, expiresAt: expect.any(String),
          ip: '127.0.0.1', userAgent: SAFARI_IOS, device: 'Safari on iOS', current: false, amr: ['pwd'], authTime: bCreated,
        },
        {
          id: sessionIdOf(a.refreshToken!), createdAt: aCreated, lastUsedAt: aCreated, expiresAt: expect.any(String),
          ip: '127.0.0.1', userAgent: FIREFOX_WINDOWS, device: 'Firefox on Windows', current: true, amr: ['pwd'], authTime: aCreated,
        },
      ]);
      const row = await sessionRow(sessionIdOf(a.refreshToken!));
      expect(sessions[1]!.expiresAt).toBe(row.expires_at.toISOString());

      // from the other device, the other one is current
      const fromB = (await listSessions(b.accessToken)).json() as { sessions: { id: string; current: boolean }[] };
      expect(fromB.sessions.filter((s) => s.current).map((s) => s.id)).toEqual([sessionIdOf(b.refreshToken)]);
    });

    it('leaves out revoked sessions and needs a Bearer token', async () => {
      const { email, body: a } = await register(t.app);
      const b = tokens(await login(t.app, email));
      await t.app.inject({ method: 'POST', url: '/auth/logout', payload: { refreshToken: b.refreshToken } });
      const { sessions } = (await listSessions(a.accessToken)).json() as { sessions: { id: string }[] };
      expect(sessions.map((s) => s.id)).toEqual([sessionIdOf(a.refreshToken!)]);
      expectProblem(await t.app.inject({ url: '/auth/sessions' }), 401, 'unauthorized');
    });
  });

  describe('DELETE /auth/sessions/:id', () => {
    it('revokes one of the caller\'s sessions: 204, and it can no longer refresh or call the API', async () => {
      const { email, body: a } = await register(t.app);
      const b = tokens(await login(t.app, email));
      const bId = sessionIdOf(b.refreshToken);
      t.clock.advance(1);

      const res = await deleteSession(a.accessToken, bId);
      expect(res.statusCode, res.body).toBe(204);
      const row = await sessionRow(bId);
      expect(row.revoked_reason).toBe('revoked');
      expect(row.revoked_at!.getTime()).toBe(t.clock.time);
      const events = await t.db.store.db.selectFrom('security_events').selectAll()
        .where('user_id', '=', a.user!.id).where('type', '=', 'session_revoked').execute();
      expect(events.map((e) => e.session_id)).toEqual([bId]);

      expectProblem(await refresh(t.app, b.refreshToken), 401, 'invalid_refresh_token');
      expectProblem(await me(bearer(b.accessToken)), 401, 'unauthorized');
      // the caller's own session is untouched
      expect(await sessionRow(sessionIdOf(a.refreshToken!))).toMatchObject({ revoked_at: null });
      tokens(await refresh(t.app, a.refreshToken!));

      // already revoked: 404
      expectProblem(await deleteSession(a.accessToken, bId), 404, 'not_found');
      expect(await sessionRow(bId)).toEqual(row);
    });

    it('is 404 not_found for someone else\'s session, an unknown id or a malformed id, and changes nothing', async () => {
      const { body: a } = await register(t.app);
      const { body: stranger } = await register(t.app);
      const strangerId = sessionIdOf(stranger.refreshToken!);

      expectProblem(await deleteSession(a.accessToken, strangerId), 404, 'not_found');
      expectProblem(await deleteSession(a.accessToken, strangerId.toUpperCase()), 404, 'not_found');
      expect(await sessionRow(strangerId)).toMatchObject({ revoked_at: null });
      tokens(await refresh(t.app, stranger.refreshToken!));

      expectProblem(await deleteSession(a.accessToken, randomUUID()), 404, 'not_found');
      for (const malformed of ['not-a-uuid', '123', `${randomUUID()}x`, "1' or '1'='1"]) {
        expectProblem(await deleteSession(a.accessToken, malformed), 404, 'not_found');
      }
      expect(await sessionRow(sessionIdOf(a.refreshToken!))).toMatchObject({ revoked_at: null });
    });
  });

  // ---- /auth/password ----------------------------------------------------------

  describe('POST /auth/password', () => {
    it('refuses a wrong currentPassword with 403 invalid_credentials and a weak newPassword with weak_password', async () => {
      const { email, body: a } = await register(t.app);
      const b = tokens(await login(t.app, email));
      const hash = (await userRow(a.user!.id)).password_hash;

      expectProblem(await changePassword(a.accessToken, { currentPassword: 'not my password', newPassword: NEW_PASSWORD }), 403, 'invalid_credentials');
      expectProblem(await changePassword(a.accessToken, { currentPassword: PASSWORD, newPassword: 'short' }), 400, 'weak_password');
      expectProblem(await changePassword(a.accessToken, { currentPassword: PASSWORD, newPassword: 'x'.repeat(1025) }), 400, 'weak_password');
      expectProblem(await t.app.inject({ method: 'POST', url: '/auth/password', payload: { currentPassword: PASSWORD, newPassword: NEW_PASSWORD } }), 401, 'unauthorized');

      expect((await userRow(a.user!.id)).password_hash).toBe(hash);
      expect(await sessionRow(sessionIdOf(b.refreshToken))).toMatchObject({ revoked_at: null });
    });

    it('changes the password: 204, every other session revoked, the current one keeps working', async () => {
      const { email, body: a } = await register(t.app);
      const b = tokens(await login(t.app, email));
      const c = tokens(await login(t.app, email));
      const oldHash = (await userRow(a.user!.id)).password_hash;
      t.clock.advance(1);

      const res = await changePassword(a.accessToken, { currentPassword: PASSWORD, newPassword: NEW_PASSWORD });
      expect(res.statusCode, res.body).toBe(204);

      const hash = (await userRow(a.user!.id)).password_hash;
      expect(hash).not.toBe(oldHash);
      expect(hash).toMatch(/^\$argon2id\$/);
      for (const other of [b, c]) {
        const row = await sessionRow(sessionIdOf(other.refreshToken));
        expect(row.revoked_reason).toBe('password_changed');
        expect(row.revoked_at!.getTime()).toBe(t.clock.time);
        expectProblem(await refresh(t.app, other.refreshToken), 401, 'invalid_refresh_token');
        expectProblem(await me(bearer(other.accessToken)), 401, 'unauthorized');
      }
      expect(await sessionRow(sessionIdOf(a.refreshToken!))).toMatchObject({ revoked_at: null });
      expect((await me(bearer(a.accessToken))).statusCode).toBe(200);
      tokens(await refresh(t.app, a.refreshToken!));

      tokens(await login(t.app, email, { password: NEW_PASSWORD }));
      expectProblem(await login(t.app, email), 401, 'invalid_credentials');
    });
  });

  // ---- /auth/events ------------------------------------------------------------

  describe('GET /auth/events', () => {
    it('lists the user\'s security events, newest first', async () => {
      const ua = { 'user-agent': FIREFOX_WINDOWS };
      const stamps: string[] = [];
      const step = () => {
        t.clock.advance(1);
        stamps.push(t.clock.now().toISOString());
      };

      stamps.push(t.clock.now().toISOString());
      const { email, body: a } = await register(t.app, { headers: ua }); // registered
      const aId = sessionIdOf(a.refreshToken!);
      await register(t.app); // another user's events never show
      step();
      const failed = await login(t.app, email, { password: 'not my password', headers: ua }); // login_failed
      expect(failed.statusCode).toBe(401);
      // login_failed is written without holding up the response
      await vi.waitFor(async () => {
        const rows = await t.db.store.db.selectFrom('security_events').select('id')
          .where('user_id', '=', a.user!.id).where('type', '=', 'login_failed').execute();
        expect(rows).toHaveLength(1);
      });
      step();
      const b = tokens(await login(t.app, email, { headers: ua })); // login_succeeded
      step();
      const c = tokens(await login(t.app, email, { headers: ua })); // login_succeeded
      step();
      await t.app.inject({ method: 'POST', url: '/auth/logout', payload: { refreshToken: c.refreshToken }, headers: ua }); // logout
      step();
      expect((await deleteSession(a.accessToken, sessionIdOf(b.refreshToken), ua)).statusCode).toBe(204); // session_revoked
      step();
      const d = tokens(await login(t.app, email, { headers: ua })); // login_succeeded
      const d2 = tokens(await refresh(t.app, d.refreshToken));
      tokens(await refresh(t.app, d2.refreshToken));
      step();
      expectProblem(await refresh(t.app, d.refreshToken, ua), 401, 'refresh_token_reused'); // reuse_detected
      step();
      const e = tokens(await login(t.app, email, { headers: ua })); // login_succeeded
      step();
      expect((await t.app.inject({
        method: 'POST', url: '/auth/logout', payload: { refreshToken: a.refreshToken, scope: 'others' }, headers: ua,
      })).statusCode).toBe(204); // sessions_revoked
      step();
      expect((await t.app.inject({
        method: 'POST', url: '/auth/password', headers: { ...bearer(a.accessToken), ...ua }, payload: { currentPassword: PASSWORD, newPassword: NEW_PASSWORD },
      })).statusCode).toBe(204); // password_changed

      const res = await t.app.inject({ url: '/auth/events', headers: bearer(a.accessToken) });
      expect(res.statusCode, res.body).toBe(200);
      const { events } = res.json() as { events: { type: string; createdAt: string; ip: string | null; userAgent: string | null; sessionId: string | null }[] };
      const expected: [string, string | null][] = [
        ['registered', aId],
        ['login_failed', null],
        ['login_succeeded', sessionIdOf(b.refreshToken)],
        ['login_succeeded', sessionIdOf(c.refreshToken)],
        ['logout', sessionIdOf(c.refreshToken)],
        ['session_revoked', sessionIdOf(b.refreshToken)],
        ['login_succeeded', sessionIdOf(d.refreshToken)],
        ['reuse_detected', sessionIdOf(d.refreshToken)],
        ['login_succeeded', sessionIdOf(e.refreshToken)],
        ['sessions_revoked', aId],
        ['password_changed', aId],
      ];
      expect(events).toEqual(
        expected
          .map(([type, sessionId], i) => ({ type, sessionId, createdAt: stamps[i], ip: '127.0.0.1', userAgent: FIREFOX_WINDOWS }))
          .reverse(),
      );
    });

    it('needs a Bearer token', async () => {
      expectProblem(await t.app.inject({ url: '/auth/events' }), 401, 'unauthorized');
    });
  });
});
