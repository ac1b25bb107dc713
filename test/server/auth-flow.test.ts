import { randomUUID } from 'node:crypto';
import type { LightMyRequestResponse } from 'fastify';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { RefreshTokenCodec } from '../../src/core/refresh-token.js';
import { BACKENDS } from '../helpers/backends.js';
import {
  login, newEmail, PASSWORD, refresh, refreshCookie, register, startTestApp, type TestApp, type TokenBody, expectProblem } from '../helpers/app.js';

function tokens(res: LightMyRequestResponse): TokenBody & { refreshToken: string } {
  expect(res.statusCode, res.body).toBe(200);
  const body = res.json() as TokenBody;
  expect(body.refreshToken).toMatch(/^tsr_[A-Za-z0-9_-]+$/);
  return body as TokenBody & { refreshToken: string };
}

/** The same token with one base64url character of its MAC changed; it still parses. */
function tamperMac(token: string): string {
  const i = token.length - 20; // well inside the MAC, away from the last (padding-carrying) character
  const flipped = token[i] === 'A' ? 'B' : 'A';
  return token.slice(0, i) + flipped + token.slice(i + 1);
}

/** This file registers far more users than one IP may per hour; rate limits have their own tests. */
const ROOMY = { registerPerIp: 10_000 };

describe.each(BACKENDS)('auth flow on %s', (backend) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(backend, {}, ROOMY);
  });
  afterAll(() => t.close());

  const sessionIdOf = (refreshToken: string) => t.app.tessera.refreshTokens.parse(refreshToken)!.sessionId;
  const sessionRow = (id: string) => t.db.store.db.selectFrom('sessions').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
  const sessionsOfUser = (userId: string) =>
    t.db.store.db.selectFrom('sessions').selectAll().where('user_id', '=', userId).orderBy('created_at').execute();
  const eventsOf = (userId: string, type?: string) => {
    let q = t.db.store.db.selectFrom('security_events').selectAll().where('user_id', '=', userId);
    if (type) q = q.where('type', '=', type as never);
    return q.orderBy('id').execute();
  };
  const logout = (payload: Record<string, unknown>, headers?: Record<string, string>) =>
    t.app.inject({ method: 'POST', url: '/auth/logout', payload, headers });

  // ---- register ------------------------------------------------------------

  describe('register', () => {
    it('creates the user and a first session: 201, user shape, email in lower case', async () => {
      const mixed = `Ada.${randomUUID().slice(0, 8)}@Example.COM`;
      const res = await t.app.inject({
        method: 'POST', url: '/auth/register',
        payload: { email: mixed, password: PASSWORD, name: ' Ada Lovelace ', transport: 'body' },
      });
      expect(res.statusCode, res.body).toBe(201);
      const body = res.json() as TokenBody;
      expect(body).toEqual({
        accessToken: expect.any(String),
        tokenType: 'Bearer',
        expiresIn: 900,
        refreshToken: expect.stringMatching(/^tsr_/),
        user: { id: expect.any(String), email: mixed.toLowerCase(), name: 'Ada Lovelace', createdAt: t.clock.now().toISOString(), roles: [], orgId: null, emailVerified: false },
      });
      // The body transport sets no cookie.
      expect(refreshCookie(res)).toBeUndefined();

      const claims = decodeJwt(body.accessToken);
      expect(claims.sub).toBe(body.user!.id);
      expect(claims.sid).toBe(sessionIdOf(body.refreshToken!));

      const user = await t.db.store.db.selectFrom('users').selectAll().where('id', '=', body.user!.id).executeTakeFirstOrThrow();
      expect(user.email).toBe(mixed.toLowerCase());
      expect(user.password_hash).toMatch(/^\$argon2id\$/);
      expect(user.password_hash).not.toContain(PASSWORD);
      expect(user.disabled_at).toBeNull();

      const sessions = await sessionsOfUser(user.id);
      expect(sessions).toHaveLength(1);
      expect(sessions[0]).toMatchObject({ id: claims.sid, generation: 1, parent_generation: null, rotated_at: null, revoked_at: null });
      expect((await eventsOf(user.id)).map((e) => e.type)).toEqual(['registered']);
    });

    it('answers 409 email_taken for an email already registered, in any case', async () => {
      const { email, body } = await register(t.app);
      const res = await t.app.inject({
        method: 'POST', url: '/auth/register', payload: { email: email.toUpperCase(), password: 'another password entirely', transport: 'body' },
      });
      expectProblem(res, 409, 'email_taken');
      const users = await t.db.store.db.selectFrom('users').select('id').where('email', '=', email).execute();
      expect(users).toEqual([{ id: body.user!.id }]);
      expect(await sessionsOfUser(body.user!.id)).toHaveLength(1);
    });

    it('refuses passwords of 7 and of 1025 characters with weak_password, creating nothing', async () => {
      for (const password of ['x'.repeat(7), 'x'.repeat(1025)]) {
        const email = newEmail();
        const res = await t.app.inject({ method: 'POST', url: '/auth/register', payload: { email, password, transport: 'body' } });
        expectProblem(res, 400, 'weak_password');
        expect(await t.db.store.db.selectFrom('users').select('id').where('email', '=', email).execute()).toEqual([]);
      }
    });

    it('accepts the boundaries: 8 and 1024 characters', async () => {
      await register(t.app, { password: 'x'.repeat(8) });
      const { email } = await register(t.app, { password: 'y'.repeat(1024) });
      // never truncated: a 1023-character prefix is not the password
      expectProblem(await login(t.app, email, { password: 'y'.repeat(1023) }), 401, 'invalid_credentials');
      expect((await login(t.app, email, { password: 'y'.repeat(1024) })).statusCode).toBe(200);
    });
  });

  // ---- login ---------------------------------------------------------------

  describe('login', () => {
    it('creates a new session for the same user, whatever the case of the email', async () => {
      const { email, body: registered } = await register(t.app);
      const res = await login(t.app, email.toUpperCase());
      const body = tokens(res);
      expect(body.user).toEqual(registered.user);
      expect(body.refreshToken).not.toBe(registered.refreshToken);
      expect(decodeJwt(body.accessToken).sub).toBe(registered.user!.id);

      const sessions = await sessionsOfUser(registered.user!.id);
      expect(sessions.map((s) => s.id).sort()).toEqual([sessionIdOf(registered.refreshToken!), sessionIdOf(body.refreshToken)].sort());
      const events = await eventsOf(registered.user!.id, 'login_succeeded');
      expect(events).toHaveLength(1);
      expect(events[0]!.session_id).toBe(sessionIdOf(body.refreshToken));
    });

    it('answers an unknown email and a wrong password identically, and creates no session', async () => {
      const { email, body: registered } = await register(t.app);
      const unknown = await login(t.app, newEmail());
      const wrong = await login(t.app, email, { password: 'not the right password' });
      expectProblem(unknown, 401, 'invalid_credentials');
      expect(wrong.statusCode).toBe(unknown.statusCode);
      expect(wrong.body).toBe(unknown.body);
      expect(wrong.headers['content-type']).toBe(unknown.headers['content-type']);

      expect(await sessionsOfUser(registered.user!.id)).toHaveLength(1);
      // login_failed is written without holding up the response
      await vi.waitFor(async () => expect(await eventsOf(registered.user!.id, 'login_failed')).toHaveLength(1));
    });

    it('says account_disabled (403) only after the correct password', async () => {
      const { email, body: registered } = await register(t.app);
      await t.db.store.setUserDisabled(email, true, t.clock.now());

      expectProblem(await login(t.app, email, { password: 'not the right password' }), 401, 'invalid_credentials');
      expectProblem(await login(t.app, email), 403, 'account_disabled');
      expect(await sessionsOfUser(registered.user!.id)).toHaveLength(1);
    });
  });

  // ---- refresh: SPEC §3 end to end ----------------------------------------

  describe('refresh with the body transport', () => {
    it('rule 1: rotates the current token', async () => {
      const { body: reg } = await register(t.app);
      const id = sessionIdOf(reg.refreshToken!);
      t.clock.advance(30);

      const res = await refresh(t.app, reg.refreshToken!);
      const body = tokens(res);
      expect(body).toMatchObject({ tokenType: 'Bearer', expiresIn: 900, user: reg.user });
      expect(body.refreshToken).not.toBe(reg.refreshToken);
      expect(sessionIdOf(body.refreshToken)).toBe(id);
      expect(t.app.tessera.refreshTokens.parse(body.refreshToken)!.generation).toBe(2);
      expect(refreshCookie(res)).toBeUndefined();
      const claims = decodeJwt(body.accessToken);
      expect(claims).toMatchObject({ sub: reg.user!.id, sid: id, iat: t.clock.time / 1000 });

      const row = await sessionRow(id);
      expect(row).toMatchObject({ generation: 2, parent_generation: 1, revoked_at: null });
      expect(row.rotated_at!.getTime()).toBe(t.clock.time);
      expect(row.last_used_at.getTime()).toBe(t.clock.time);
      expect(row.expires_at.getTime()).toBe(t.clock.time + 7 * 86_400_000);

      // the new token rotates in turn
      t.clock.advance(1);
      const next = tokens(await refresh(t.app, body.refreshToken));
      expect(t.app.tessera.refreshTokens.parse(next.refreshToken)!.generation).toBe(3);
      expect(await sessionRow(id)).toMatchObject({ generation: 3, parent_generation: 2 });
    });

    it('rule 2: a replay of the previous token within the grace window returns the identical current token', async () => {
      const { body: reg } = await register(t.app);
      const id = sessionIdOf(reg.refreshToken!);
      const rotated = tokens(await refresh(t.app, reg.refreshToken!));
      const rotatedAt = t.clock.time;

      const accessTokens = new Set([rotated.accessToken]);
      for (const step of [1, 4, 4]) {
        t.clock.advance(step); // 1 s, 5 s, 9 s after the rotation: all within REFRESH_REUSE_GRACE (10 s)
        const replay = tokens(await refresh(t.app, reg.refreshToken!));
        expect(replay.refreshToken).toBe(rotated.refreshToken);
        accessTokens.add(replay.accessToken);
      }
      // a fresh access token every time, one generation throughout, no fork
      expect(accessTokens.size).toBe(4);
      const row = await sessionRow(id);
      expect(row).toMatchObject({ generation: 2, parent_generation: 1, revoked_at: null });
      expect(row.rotated_at!.getTime()).toBe(rotatedAt);
      expect(await eventsOf(reg.user!.id, 'reuse_detected')).toEqual([]);

      // the current token still rotates normally
      const next = tokens(await refresh(t.app, rotated.refreshToken));
      expect(t.app.tessera.refreshTokens.parse(next.refreshToken)!.generation).toBe(3);
    });

    it('rule 3: the previous token after the grace window is reissued a new generation', async () => {
      const { body: reg } = await register(t.app);
      const id = sessionIdOf(reg.refreshToken!);
      const lost = tokens(await refresh(t.app, reg.refreshToken!)); // the response the client never received
      t.clock.advance(11);

      const reissued = tokens(await refresh(t.app, reg.refreshToken!));
      expect(reissued.refreshToken).not.toBe(lost.refreshToken);
      expect(t.app.tessera.refreshTokens.parse(reissued.refreshToken)!.generation).toBe(3);
      const row = await sessionRow(id);
      expect(row).toMatchObject({ generation: 3, parent_generation: 1, revoked_at: null });
      expect(row.rotated_at!.getTime()).toBe(t.clock.time);

      // the reissued token is a normal current token
      t.clock.advance(1);
      tokens(await refresh(t.app, reissued.refreshToken));
      expect(await sessionRow(id)).toMatchObject({ generation: 4, parent_generation: 3, revoked_at: null });
    });

    it('rule 4: an orphan revokes the session for reuse, and every token of it is then refresh_token_reused', async () => {
      const { email, body: reg } = await register(t.app);
      const other = tokens(await login(t.app, email));
      const id = sessionIdOf(reg.refreshToken!);
      const orphan = tokens(await refresh(t.app, reg.refreshToken!)).refreshToken; // generation 2
      t.clock.advance(11);
      const current = tokens(await refresh(t.app, reg.refreshToken!)).refreshToken; // reissued: generation 3, parent 1
      t.clock.advance(1);

      expectProblem(await refresh(t.app, orphan), 401, 'refresh_token_reused');
      const row = await sessionRow(id);
      expect(row.revoked_at!.getTime()).toBe(t.clock.time);
      expect(row.revoked_reason).toBe('reuse');
      expect(row.generation).toBe(3);
      const events = await eventsOf(reg.user!.id, 'reuse_detected');
      expect(events).toHaveLength(1);
      expect(events[0]!.session_id).toBe(id);

      // the victim's current token and the parent learn why too
      t.clock.advance(1);
      for (const token of [current, reg.refreshToken!, orphan]) {
        expectProblem(await refresh(t.app, token), 401, 'refresh_token_reused');
      }
      expect(await eventsOf(reg.user!.id, 'reuse_detected')).toHaveLength(1);
      expect((await sessionRow(id)).revoked_at!.getTime()).toBe(row.revoked_at!.getTime());

      // the user's other session is untouched
      tokens(await refresh(t.app, other.refreshToken));
      expect(await sessionRow(sessionIdOf(other.refreshToken))).toMatchObject({ generation: 2, revoked_at: null });
    });

    it('rule 4: a token older than the parent revokes the session; later tokens are refresh_token_reused; other sessions refresh', async () => {
      const { email, body: reg } = await register(t.app);
      const other = tokens(await login(t.app, email));
      const id = sessionIdOf(reg.refreshToken!);
      const g2 = tokens(await refresh(t.app, reg.refreshToken!)).refreshToken;
      t.clock.advance(1);
      const g3 = tokens(await refresh(t.app, g2)).refreshToken;
      t.clock.advance(1);
      const g4 = tokens(await refresh(t.app, g3)).refreshToken;
      t.clock.advance(1);

      // generation 1 < parent 3: stolen
      expectProblem(await refresh(t.app, reg.refreshToken!), 401, 'refresh_token_reused');
      expect(await sessionRow(id)).toMatchObject({ revoked_reason: 'reuse', generation: 4 });
      expect(await eventsOf(reg.user!.id, 'reuse_detected')).toHaveLength(1);
      for (const token of [g2, g3, g4]) {
        expectProblem(await refresh(t.app, token), 401, 'refresh_token_reused');
      }
      // its access token stops working at once
      expectProblem(await t.app.inject({ url: '/auth/me', headers: { authorization: `Bearer ${reg.accessToken}` } }), 401, 'unauthorized');

      const otherRefreshed = tokens(await refresh(t.app, other.refreshToken));
      expect((await t.app.inject({ url: '/auth/me', headers: { authorization: `Bearer ${otherRefreshed.accessToken}` } })).statusCode).toBe(200);
      expect(await sessionRow(sessionIdOf(other.refreshToken))).toMatchObject({ revoked_at: null, generation: 2 });
    });

    it('rule 5: a token with a tampered MAC is invalid_refresh_token and leaves the session exactly as it was', async () => {
      const { body: reg } = await register(t.app);
      const id = sessionIdOf(reg.refreshToken!);
      const current = tokens(await refresh(t.app, reg.refreshToken!)).refreshToken; // generation 2, parent 1
      t.clock.advance(60);
      const before = await sessionRow(id);

      for (const genuine of [current, reg.refreshToken!]) {
        const forged = tamperMac(genuine);
        expect(forged).not.toBe(genuine);
        // it still parses to the same session and generation: only the MAC is wrong
        expect(t.app.tessera.refreshTokens.parse(forged)).toMatchObject({ sessionId: id });
        expectProblem(await refresh(t.app, forged), 401, 'invalid_refresh_token');
      }
      expect(await sessionRow(id)).toEqual(before);
      expect(await eventsOf(reg.user!.id, 'reuse_detected')).toEqual([]);

      // the genuine current token still rotates
      tokens(await refresh(t.app, current));
      expect(await sessionRow(id)).toMatchObject({ generation: 3, parent_generation: 2, revoked_at: null });
    });

    it('rule 5: a genuine token of a generation never issued is invalid_refresh_token, nothing changes', async () => {
      const { body: reg } = await register(t.app);
      const id = sessionIdOf(reg.refreshToken!);
      const before = await sessionRow(id);
      const future = t.app.tessera.refreshTokens.issue(before.user_id, id, Buffer.from(before.salt), 2);
      expectProblem(await refresh(t.app, future), 401, 'invalid_refresh_token');
      expect(await sessionRow(id)).toEqual(before);
      tokens(await refresh(t.app, reg.refreshToken!));
    });

    it('rule 5: missing, malformed and unknown-session tokens are invalid_refresh_token', async () => {
      expectProblem(await t.app.inject({ method: 'POST', url: '/auth/refresh', payload: {} }), 401, 'invalid_refresh_token');
      expectProblem(await refresh(t.app, 'garbage'), 401, 'invalid_refresh_token');
      expectProblem(await refresh(t.app, 'tsr_'), 401, 'invalid_refresh_token');
      // well formed, but for a session that does not exist
      const unknown = t.app.tessera.refreshTokens.issue(randomUUID(), randomUUID(), Buffer.alloc(16), 1);
      expectProblem(await refresh(t.app, unknown), 401, 'invalid_refresh_token');
    });

    it('rule 6: a disabled user cannot refresh (invalid_refresh_token) and can again once re-enabled', async () => {
      const { email, body: reg } = await register(t.app);
      const id = sessionIdOf(reg.refreshToken!);
      await t.db.store.setUserDisabled(email, true, t.clock.now());
      const before = await sessionRow(id);

      expectProblem(await refresh(t.app, reg.refreshToken!), 401, 'invalid_refresh_token');
      expect(await sessionRow(id)).toEqual(before);

      await t.db.store.setUserDisabled(email, false, t.clock.now());
      tokens(await refresh(t.app, reg.refreshToken!));
      expect(await sessionRow(id)).toMatchObject({ generation: 2, revoked_at: null });
    });

    it('20 concurrent refreshes of one token converge on one new token; no fork, no revocation', async () => {
      const { body: reg } = await register(t.app);
      const id = sessionIdOf(reg.refreshToken!);
      const responses = await Promise.all(Array.from({ length: 20 }, () => refresh(t.app, reg.refreshToken!)));
      for (const res of responses) expect(res.statusCode, res.body).toBe(200);
      const refreshTokens = new Set(responses.map((res) => tokens(res).refreshToken));
      expect(refreshTokens.size).toBe(1);
      const [issued] = refreshTokens;
      expect(issued).not.toBe(reg.refreshToken);
      expect(t.app.tessera.refreshTokens.parse(issued)!.generation).toBe(2);
      expect(await sessionRow(id)).toMatchObject({ generation: 2, parent_generation: 1, revoked_at: null, revoked_reason: null });
      expect(await eventsOf(reg.user!.id, 'reuse_detected')).toEqual([]);
    });
  });

  describe('refresh tokens of version 1 (before the user id was in the token)', () => {
    it('a version 1 chain keeps working across the upgrade: it rotates once more, and its next token is version 2', async () => {
      const { body: reg } = await register(t.app);
      const codec = t.app.tessera.refreshTokens;
      const id = sessionIdOf(reg.refreshToken!);
      const { salt } = await sessionRow(id);
      const v1 = codec.issueVersion1(id, Buffer.from(salt), 1);
      expect(codec.parse(v1)).toMatchObject({ version: 1, userId: undefined, sessionId: id, generation: 1 });

      const next = tokens(await refresh(t.app, v1)).refreshToken;
      expect(codec.parse(next)).toMatchObject({ version: 2, userId: reg.user!.id, sessionId: id, generation: 2 });
      // a retry of the version 1 token within the grace window converges on the same version 2 token
      expect(tokens(await refresh(t.app, v1)).refreshToken).toBe(next);
      t.clock.advance(60);
      expect(codec.parse(tokens(await refresh(t.app, next)).refreshToken)).toMatchObject({ version: 2, generation: 3 });
      // and the version 1 token is now old: theft evidence like any other
      expectProblem(await refresh(t.app, v1), 401, 'refresh_token_reused');
      expect(await sessionRow(id)).toMatchObject({ revoked_reason: 'reuse' });
    });

    it('a version 1 token with a bad MAC is invalid_refresh_token and changes nothing', async () => {
      const { body: reg } = await register(t.app);
      const id = sessionIdOf(reg.refreshToken!);
      const before = await sessionRow(id);
      const forged = new RefreshTokenCodec('another-secret-that-is-at-least-32-bytes!!').issueVersion1(id, Buffer.from(before.salt), 1);
      expectProblem(await refresh(t.app, forged), 401, 'invalid_refresh_token');
      expect(await sessionRow(id)).toEqual(before);
    });
  });

  describe('refresh lifetimes', () => {
    let short: TestApp;
    beforeAll(async () => {
      short = await startTestApp(backend, { REFRESH_TOKEN_TTL: '60s', SESSION_MAX_AGE: '120s' }, ROOMY);
    });
    afterAll(() => short.close());

    const row = (id: string) => short.db.store.db.selectFrom('sessions').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
    const idOf = (token: string) => short.app.tessera.refreshTokens.parse(token)!.sessionId;

    it('idle expiry: a session unused for REFRESH_TOKEN_TTL is session_expired, and nothing changes', async () => {
      const { body: reg } = await register(short.app);
      const id = idOf(reg.refreshToken!);
      const before = await row(id);
      expect(before.expires_at.getTime()).toBe(short.clock.time + 60_000);
      short.clock.advance(61);
      expectProblem(await refresh(short.app, reg.refreshToken!), 401, 'session_expired');
      expect(await row(id)).toEqual(before);
    });

    it('every refresh extends the idle lifetime, never past the absolute one, which then ends the session', async () => {
      const { body: reg } = await register(short.app);
      const id = idOf(reg.refreshToken!);
      const start = short.clock.time;
      const first = await row(id);
      expect(first.expires_at.getTime()).toBe(start + 60_000);
      expect(first.absolute_expires_at.getTime()).toBe(start + 120_000);

      short.clock.advance(50);
      const t1 = tokens(await refresh(short.app, reg.refreshToken!)).refreshToken;
      expect((await row(id)).expires_at.getTime()).toBe(start + 110_000);

      short.clock.advance(50); // 100 s: past the first idle expiry (60 s), alive because it was extended
      const t2 = tokens(await refresh(short.app, t1)).refreshToken;
      const capped = await row(id);
      expect(capped.expires_at.getTime()).toBe(start + 120_000); // not 160 s: capped at the absolute lifetime
      expect(capped.absolute_expires_at.getTime()).toBe(start + 120_000);

      short.clock.advance(50); // 150 s: past the absolute lifetime
      expectProblem(await refresh(short.app, t2), 401, 'session_expired');
      expect(await row(id)).toEqual(capped);
    });

    it('the absolute lifetime ends a session even when it is refreshed well within the idle lifetime', async () => {
      const { body: reg } = await register(short.app);
      const id = idOf(reg.refreshToken!);
      let token = reg.refreshToken!;
      for (let elapsed = 30; elapsed < 120; elapsed += 30) {
        short.clock.advance(30);
        token = tokens(await refresh(short.app, token)).refreshToken;
      }
      short.clock.advance(30); // 120 s
      expectProblem(await refresh(short.app, token), 401, 'session_expired');
      expect(await row(id)).toMatchObject({ generation: 4, revoked_at: null });
    });
  });

  // ---- logout --------------------------------------------------------------

  describe('logout', () => {
    it('local: 204, revokes the session, then refresh is invalid_refresh_token; a second logout is 204 too', async () => {
      const { body: reg } = await register(t.app);
      const id = sessionIdOf(reg.refreshToken!);
      const current = tokens(await refresh(t.app, reg.refreshToken!)).refreshToken;
      t.clock.advance(1);

      const res = await logout({ refreshToken: current });
      expect(res.statusCode, res.body).toBe(204);
      expect(res.body).toBe('');
      const revoked = await sessionRow(id);
      expect(revoked.revoked_reason).toBe('logout');
      expect(revoked.revoked_at!.getTime()).toBe(t.clock.time);
      expect(await eventsOf(reg.user!.id, 'logout')).toHaveLength(1);

      expectProblem(await refresh(t.app, current), 401, 'invalid_refresh_token');
      expectProblem(await refresh(t.app, reg.refreshToken!), 401, 'invalid_refresh_token');

      t.clock.advance(1);
      expect((await logout({ refreshToken: current, scope: 'local' })).statusCode).toBe(204);
      expect(await sessionRow(id)).toEqual(revoked);
      expect(await eventsOf(reg.user!.id, 'logout')).toHaveLength(1);
    });

    it('with a garbage or forged token: 204 and nothing changes', async () => {
      const { body: reg } = await register(t.app);
      const id = sessionIdOf(reg.refreshToken!);
      const before = await sessionRow(id);
      const eventsBefore = await eventsOf(reg.user!.id);

      expect((await logout({ refreshToken: 'garbage' })).statusCode).toBe(204);
      expect((await logout({ refreshToken: tamperMac(reg.refreshToken!) })).statusCode).toBe(204);
      expect((await logout({})).statusCode).toBe(204);

      expect(await sessionRow(id)).toEqual(before);
      expect(await eventsOf(reg.user!.id)).toEqual(eventsBefore);
      tokens(await refresh(t.app, reg.refreshToken!));
    });

    it('scope=others keeps the current session and revokes the rest', async () => {
      const { email, body: a } = await register(t.app);
      const b = tokens(await login(t.app, email));
      const c = tokens(await login(t.app, email));
      const stranger = await register(t.app);

      const res = await logout({ refreshToken: a.refreshToken, scope: 'others' });
      expect(res.statusCode, res.body).toBe(204);
      const rows = await sessionsOfUser(a.user!.id);
      const byId = new Map(rows.map((r) => [r.id, r]));
      expect(byId.get(sessionIdOf(a.refreshToken!))).toMatchObject({ revoked_at: null });
      expect(byId.get(sessionIdOf(b.refreshToken))).toMatchObject({ revoked_reason: 'logout_others' });
      expect(byId.get(sessionIdOf(c.refreshToken))).toMatchObject({ revoked_reason: 'logout_others' });
      const events = await eventsOf(a.user!.id, 'sessions_revoked');
      expect(events).toHaveLength(1);
      expect(events[0]!.session_id).toBe(sessionIdOf(a.refreshToken!));

      expectProblem(await refresh(t.app, b.refreshToken), 401, 'invalid_refresh_token');
      expectProblem(await refresh(t.app, c.refreshToken), 401, 'invalid_refresh_token');
      tokens(await refresh(t.app, a.refreshToken!));
      // another user is not affected
      expect(await sessionRow(sessionIdOf(stranger.body.refreshToken!))).toMatchObject({ revoked_at: null });
    });

    it('scope=global revokes every session of the user', async () => {
      const { email, body: a } = await register(t.app);
      const b = tokens(await login(t.app, email));

      expect((await logout({ refreshToken: b.refreshToken, scope: 'global' })).statusCode).toBe(204);
      const rows = await sessionsOfUser(a.user!.id);
      expect(rows).toHaveLength(2);
      for (const row of rows) {
        expect(row.revoked_reason).toBe('logout_global');
        expect(row.revoked_at!.getTime()).toBe(t.clock.time);
      }
      expectProblem(await refresh(t.app, a.refreshToken!), 401, 'invalid_refresh_token');
      expectProblem(await refresh(t.app, b.refreshToken), 401, 'invalid_refresh_token');
    });

    it('scope=others or global with a revoked session\'s token is 401 and signs nobody out', async () => {
      const { email, body: a } = await register(t.app);
      const b = tokens(await login(t.app, email));
      expect((await logout({ refreshToken: a.refreshToken })).statusCode).toBe(204);
      const before = await sessionRow(sessionIdOf(b.refreshToken));

      expectProblem(await logout({ refreshToken: a.refreshToken, scope: 'others' }), 401, 'invalid_refresh_token');
      expectProblem(await logout({ refreshToken: a.refreshToken, scope: 'global' }), 401, 'invalid_refresh_token');
      expect(await sessionRow(sessionIdOf(b.refreshToken))).toEqual(before);
      expect(await eventsOf(a.user!.id, 'sessions_revoked')).toEqual([]);
      tokens(await refresh(t.app, b.refreshToken));
    });

    it('with only a Bearer access token revokes that token\'s session', async () => {
      const { email, body: a } = await register(t.app);
      const b = tokens(await login(t.app, email));
      const bearer = { authorization: `Bearer ${a.accessToken}` };

      const res = await logout({}, bearer);
      expect(res.statusCode, res.body).toBe(204);
      expect(await sessionRow(sessionIdOf(a.refreshToken!))).toMatchObject({ revoked_reason: 'logout' });
      expect(await sessionRow(sessionIdOf(b.refreshToken))).toMatchObject({ revoked_at: null });

      expectProblem(await t.app.inject({ url: '/auth/me', headers: bearer }), 401, 'unauthorized');
      expectProblem(await refresh(t.app, a.refreshToken!), 401, 'invalid_refresh_token');
      tokens(await refresh(t.app, b.refreshToken));
    });

    it('by Bearer is idempotent too: logging out again with the same access token is 204 and changes nothing', async () => {
      const { body: a } = await register(t.app);
      const bearer = { authorization: `Bearer ${a.accessToken}` };
      expect((await logout({}, bearer)).statusCode).toBe(204);
      const revoked = await sessionRow(sessionIdOf(a.refreshToken!));
      t.clock.advance(1);

      const again = await logout({}, bearer);
      expect(again.statusCode, again.body).toBe(204);
      expect(await sessionRow(sessionIdOf(a.refreshToken!))).toEqual(revoked);
      expect(await eventsOf(a.user!.id, 'logout')).toHaveLength(1);
    });
  });
});
