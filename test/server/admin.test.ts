/**
 * The admin API (SPEC §9) through the real app: who may call it (keys compared in constant
 * time, an admin's token with `mfa`, nobody else), its rate limit, every route with good and
 * bad input, keyset paging, and what it records. On every backend.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { decodeJwt } from 'jose';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { AdminKeys } from '../../src/auth/admin/authorize-admin.js';
import { issueTokens } from '../../src/auth/issue-tokens.js';
import { newSession } from '../../src/auth/new-session.js';
import { UNUSABLE_PASSWORD_HASH } from '../../src/auth/password-hasher.js';
import { loadConfig } from '../../src/core/config.js';
import { LOG_REDACT_PATHS } from '../../src/core/vocabulary.js';
import { buildApp } from '../../src/server/app.js';
import { FEATURE_BACKENDS, openTestStore, type Backend } from '../helpers/backends.js';
import {
  FrozenClock, PASSWORD, TEST_SECRET, expectProblem, login, newEmail, refresh, register, startTestApp, type TestApp,
} from '../helpers/app.js';

// Every comparison AdminKeys makes goes through timingSafeEqual: counted here, passed through unchanged.
const crypto = vi.hoisted(() => ({ timingSafeEqual: undefined as unknown as ReturnType<typeof vi.fn> }));
vi.mock('node:crypto', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:crypto')>();
  crypto.timingSafeEqual = vi.fn(actual.timingSafeEqual);
  return { ...actual, default: { ...actual, timingSafeEqual: crypto.timingSafeEqual }, timingSafeEqual: crypto.timingSafeEqual };
});

const KEY = `admin-key-${randomBytes(24).toString('base64url')}`;
const KEY2 = `second-key-${randomBytes(24).toString('base64url')}`;
const META = { ip: null, userAgent: null };
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
const asAdmin = bearer(KEY);
const NIL = '00000000-0000-0000-0000-000000000000';
/** Tests that open a database and build an app of their own: PGlite takes long to start on a busy machine. */
const OWN_APP = 120_000;

async function start(backend: Backend, env: Record<string, string> = {}, limits = {}) {
  return startTestApp(backend, { ADMIN_API_KEY: `${KEY},${KEY2}`, ...env }, { registerPerIp: 100_000, loginAttemptsPerIp: 100_000, ...limits });
}

/** The actor name of a key: `key:` and the first 8 hex digits of its SHA-256. */
function keyActor(key: string) {
  return `key:${createHash('sha256').update(key).digest('hex').slice(0, 8)}`;
}

/**
 * An access token of a new user with `roles`, for a session signed in with `amr`: the roles set
 * through the store, the session created through it as a sign-in with a second factor would.
 */
async function tokenWith(t: TestApp, roles: string[], amr: string[]) {
  const { email, body } = await register(t.app);
  const userId = decodeJwt(body.accessToken).sub!;
  await t.db.store.setUserRoles(email, roles, t.clock.now(), META);
  const user = (await t.db.store.findUserById(userId))!;
  const now = t.clock.now();
  const session = { ...newSession(t.config, userId, now), amr };
  await t.db.store.createSession(session, META);
  const tokens = await issueTokens(t.app.tessera, { session: { ...session, user, authTime: now }, generation: 1, expiresAt: session.expiresAt, now });
  return { userId, email, accessToken: tokens.accessToken };
}

describe('ADMIN_API_KEY', () => {
  const errorsOf = (value: string) => {
    const result = loadConfig({ ADMIN_API_KEY: value });
    return result.ok ? [] : result.errors;
  };

  it('is one key or several, comma-separated, each of at least 32 bytes; unset leaves the admin API off', () => {
    const one = loadConfig({ ADMIN_API_KEY: KEY });
    expect(one.ok && one.config.adminApiKeys).toEqual([KEY]);
    const two = loadConfig({ ADMIN_API_KEY: ` ${KEY} , ${KEY2} ` });
    expect(two.ok && two.config.adminApiKeys).toEqual([KEY, KEY2]);
    const none = loadConfig({});
    expect(none.ok && none.config.adminApiKeys).toEqual([]);
  });

  it('refuses a short, empty or unsendable key, and never echoes it', () => {
    const short = 'x'.repeat(31);
    expect(errorsOf(short)).toEqual(['ADMIN_API_KEY is too short: each key must be at least 32 bytes (try: openssl rand -base64 48)']);
    expect(errorsOf(`${KEY},${short}`)).toEqual(['ADMIN_API_KEY: key 2 of 2 is too short: each key must be at least 32 bytes (try: openssl rand -base64 48)']);
    expect(errorsOf(`${KEY},,${KEY2}`)).toEqual(['ADMIN_API_KEY: key 2 of 3 is empty: separate keys with single commas']);
    expect(errorsOf(`${'y'.repeat(20)} ${'z'.repeat(20)}`)[0]).toMatch(/^ADMIN_API_KEY holds a space/);
    for (const value of [short, `${KEY},${short}`]) expect(errorsOf(value).join('\n')).not.toContain(short);
  });
});

describe('AdminKeys', () => {
  it('compares a presented key with every key, each as a 32-byte digest, in constant time', () => {
    const keys = new AdminKeys([KEY, KEY2]);
    const digestComparisons = () => crypto.timingSafeEqual.mock.calls.filter(([a, b]) => (a as Buffer).length === 32 && (b as Buffer).length === 32).length;
    for (const [presented, expected] of [
      [KEY, 'first'], [KEY2, 'second'], [`${KEY}x`, undefined], [KEY.slice(0, -1), undefined], ['', undefined], ['x'.repeat(5000), undefined],
    ] as const) {
      crypto.timingSafeEqual.mockClear();
      const actor = keys.match(presented);
      // the first key matching does not stop the loop: a second key is compared all the same
      expect(digestComparisons()).toBe(2);
      if (expected === undefined) expect(actor).toBeUndefined();
      else expect(actor).toMatch(/^key:[0-9a-f]{8}$/);
    }
    expect(keys.match(KEY)).not.toBe(keys.match(KEY2));
    expect(new AdminKeys([]).enabled).toBe(false);
  });
});

describe.each(FEATURE_BACKENDS)('the admin API on %s', (backend) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await start(backend);
  });
  afterAll(() => t.close());

  const api = (method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, payload?: object, headers: Record<string, string> = asAdmin) =>
    t.app.inject({ method, url, headers, ...(payload ? { payload } : {}) });

  /** A new user through the admin API. */
  async function created(fields: Record<string, unknown> = {}) {
    const res = await api('POST', '/admin/users', { email: newEmail(), ...fields });
    expect(res.statusCode, res.body).toBe(201);
    return res.json() as { id: string; email: string };
  }

  /** Events of one user, newest first. */
  async function eventsOf(userId: string) {
    const res = await api('GET', `/admin/events?userId=${userId}&limit=100`);
    expect(res.statusCode, res.body).toBe(200);
    return res.json().events as { type: string; ip: string | null; userAgent: string | null; detail: Record<string, unknown> | null; userId: string | null }[];
  }

  describe('who may call it', () => {
    it('takes either admin key', async () => {
      for (const key of [KEY, KEY2]) expect((await api('GET', '/admin/keys', undefined, bearer(key))).statusCode).toBe(200);
    });

    it('is 401 without a Bearer, with a wrong key, a near miss, or a token that is not valid', async () => {
      expectProblem(await api('GET', '/admin/users', undefined, {}), 401, 'unauthorized');
      for (const wrong of [`${KEY}x`, KEY.slice(0, -1), `${KEY.slice(0, -1)}${KEY.endsWith('a') ? 'b' : 'a'}`, KEY.toUpperCase(), 'eyJ.eyJ.sig']) {
        expectProblem(await api('GET', '/admin/users', undefined, bearer(wrong)), 401, 'unauthorized');
      }
      expectProblem(await api('GET', '/admin/users', undefined, { authorization: `Basic ${Buffer.from(`admin:${KEY}`).toString('base64')}` }), 401, 'unauthorized');
    });

    it('checks the credentials before the body or the query: an unauthenticated caller learns nothing of the schemas', async () => {
      expectProblem(await api('PATCH', `/admin/users/${NIL}`, { nope: 1 }, bearer('wrong')), 401, 'unauthorized');
      expectProblem(await api('GET', '/admin/users?limit=zzz', undefined, {}), 401, 'unauthorized');
    });

    it('is 403 for a user token without tessera:admin, with it but without mfa, or with an app role named admin', async () => {
      const plain = await tokenWith(t, [], ['pwd', 'otp', 'mfa']);
      const noMfa = await tokenWith(t, ['tessera:admin'], ['pwd']);
      const appAdmin = await tokenWith(t, ['admin'], ['pwd', 'otp', 'mfa']);
      for (const { accessToken } of [plain, noMfa, appAdmin]) {
        expectProblem(await api('GET', '/admin/users', undefined, bearer(accessToken)), 403, 'forbidden');
      }
    });

    it('takes the token of a tessera:admin who signed in with a second factor, and names them as the actor', async () => {
      const admin = await tokenWith(t, ['tessera:admin'], ['pwd', 'otp', 'mfa']);
      expect((await api('GET', '/admin/keys', undefined, bearer(admin.accessToken))).statusCode).toBe(200);
      const target = await created();
      const res = await api('PATCH', `/admin/users/${target.id}`, { name: 'Renamed' }, bearer(admin.accessToken));
      expect(res.statusCode, res.body).toBe(200);
      expect((await eventsOf(target.id)).find((e) => e.type === 'admin_action' && e.detail?.action === 'users.update')?.detail)
        .toMatchObject({ actor: `user:${admin.userId}`, action: 'users.update', target: target.id, fields: ['name'] });
    });

    it('refuses such a token once the role is taken away or the session ended, without waiting for the token to expire', async () => {
      const admin = await tokenWith(t, ['tessera:admin'], ['pwd', 'otp', 'mfa']);
      await t.db.store.setUserRoles(admin.email, [], t.clock.now(), META);
      expectProblem(await api('GET', '/admin/users', undefined, bearer(admin.accessToken)), 403, 'forbidden');

      const other = await tokenWith(t, ['tessera:admin'], ['pwd', 'otp', 'mfa']);
      expect((await api('DELETE', `/admin/users/${other.userId}/sessions`)).statusCode).toBe(204);
      expectProblem(await api('GET', '/admin/users', undefined, bearer(other.accessToken)), 401, 'unauthorized');
    });
  });

  describe('POST /admin/users', () => {
    it('creates a user without a session, normalising the email; without a password nobody can sign in as them', async () => {
      const email = newEmail();
      const res = await api('POST', '/admin/users', {
        email: `  ${email.toUpperCase()} `, name: ' Ada ', roles: ['editor', 'tessera:admin', 'editor'], orgId: 'acme', metadata: { plan: 'pro' },
      });
      expect(res.statusCode, res.body).toBe(201);
      const user = res.json();
      expect(user).toEqual({
        id: expect.any(String), email, name: 'Ada', createdAt: t.clock.now().toISOString(), roles: ['editor', 'tessera:admin'],
        orgId: 'acme', metadata: { plan: 'pro' }, emailVerified: false, disabled: false,
      });
      expect((await t.db.store.findUserById(user.id))?.passwordHash).toBe(UNUSABLE_PASSWORD_HASH);
      expectProblem(await login(t.app, email), 401, 'invalid_credentials');
      expect((await api('GET', `/admin/users/${user.id}/sessions`)).json()).toEqual({ sessions: [] });
      const event = (await eventsOf(user.id)).find((e) => e.type === 'admin_action');
      expect(event).toMatchObject({ type: 'admin_action', ip: null, userAgent: null, detail: { actor: keyActor(KEY), action: 'users.create', target: user.id, ip: '127.0.0.1' } });
    });

    it('with a password, the user signs in with it', async () => {
      const { email } = await created({ password: PASSWORD });
      expect((await login(t.app, email)).statusCode).toBe(200);
    });

    it('refuses a taken email (409), a weak password, bad roles, a bad organisation, oversized metadata and unknown fields (400)', async () => {
      const { email } = await created();
      expectProblem(await api('POST', '/admin/users', { email: email.toUpperCase() }), 409, 'email_taken');
      expectProblem(await api('POST', '/admin/users', { email: newEmail(), password: 'short' }), 400, 'weak_password');
      for (const body of [
        { roles: ['Editor'] }, { roles: ['tessera:root'] }, { roles: Array.from({ length: 21 }, (_, i) => `r${i}`) }, { roles: 'editor' },
        { orgId: '' }, { metadata: { blob: 'x'.repeat(4100) } }, { metadata: [1] }, { isAdmin: true }, { email: 'not-an-email' },
      ]) {
        expectProblem(await api('POST', '/admin/users', { email: newEmail(), ...body }), 400, 'invalid_request');
      }
      const res = await api('POST', '/admin/users', { email: newEmail(), roles: ['tessera:root'] });
      expect(res.json().detail).toContain('reserved');
    });
  });

  describe('GET /admin/users/:id', () => {
    it('is the bare user document, with disabled, roles, orgId, metadata, emailVerified, active sessions and factors', async () => {
      const { email, body } = await register(t.app);
      const id = decodeJwt(body.accessToken).sub!;
      const res = await api('GET', `/admin/users/${id.toUpperCase()}`);
      expect(res.statusCode, res.body).toBe(200);
      expect(res.json()).toEqual({
        id, email, name: '', createdAt: expect.any(String), roles: [], orgId: null, metadata: {}, emailVerified: false, disabled: false,
        activeSessions: 1, factors: [],
      });
    });

    it('is 404 for an unknown id and for anything that is not a UUID, on every route (never a 500)', async () => {
      expectProblem(await api('GET', `/admin/users/${NIL}`), 404, 'not_found');
      for (const id of ['not-a-uuid', '1', "x'%20or%201=1", `${NIL}0`, '%00']) {
        expectProblem(await api('GET', `/admin/users/${id}`), 404, 'not_found');
        expectProblem(await api('PATCH', `/admin/users/${id}`, { name: 'x' }), 404, 'not_found');
        expectProblem(await api('DELETE', `/admin/users/${id}`), 404, 'not_found');
        expectProblem(await api('GET', `/admin/users/${id}/sessions`), 404, 'not_found');
        expectProblem(await api('DELETE', `/admin/users/${id}/sessions`), 404, 'not_found');
        expectProblem(await api('DELETE', `/admin/users/${id}/sessions/${NIL}`), 404, 'not_found');
        expectProblem(await api('DELETE', `/admin/users/${id}/factors`), 404, 'not_found');
      }
    });
  });

  describe('PATCH /admin/users/:id', () => {
    it('changes the fields given and records which, not their values', async () => {
      const { id } = await created({ name: 'Before', roles: ['viewer'], metadata: { a: 1 } });
      const res = await api('PATCH', `/admin/users/${id}`, { roles: ['editor', 'tessera:admin'], orgId: 'acme', metadata: { b: 2 } });
      expect(res.statusCode, res.body).toBe(200);
      expect(res.json()).toMatchObject({ id, name: 'Before', roles: ['editor', 'tessera:admin'], orgId: 'acme', metadata: { b: 2 }, disabled: false });
      expect((await api('PATCH', `/admin/users/${id}`, { orgId: null, name: 'After' })).json()).toMatchObject({ name: 'After', orgId: null });
      const updates = (await eventsOf(id)).filter((e) => e.detail?.action === 'users.update');
      expect(updates.map((e) => e.detail?.fields)).toEqual([['name', 'orgId'], ['roles', 'orgId', 'metadata']]);
      expect(JSON.stringify(updates)).not.toContain('acme');
    });

    it('disabling stops the sessions at once and sign-in; enabling lets the user back', async () => {
      const { email, body } = await register(t.app);
      const id = decodeJwt(body.accessToken).sub!;
      expect((await api('PATCH', `/admin/users/${id}`, { disabled: true })).json()).toMatchObject({ disabled: true });
      expectProblem(await t.app.inject({ method: 'GET', url: '/auth/me', headers: bearer(body.accessToken) }), 401, 'unauthorized');
      expectProblem(await refresh(t.app, body.refreshToken!), 401, 'invalid_refresh_token');
      expectProblem(await login(t.app, email), 403, 'account_disabled');
      expect((await api('GET', `/admin/users/${id}`)).json()).toMatchObject({ disabled: true });
      expect((await api('PATCH', `/admin/users/${id}`, { disabled: false })).json()).toMatchObject({ disabled: false });
      expect((await login(t.app, email)).statusCode).toBe(200);
    });

    it('an empty change changes nothing and records nothing', async () => {
      const { id } = await created();
      expect((await api('PATCH', `/admin/users/${id}`, {})).statusCode).toBe(200);
      expect((await eventsOf(id)).map((e) => e.detail?.action)).toEqual(['users.create']);
    });

    it('refuses unknown fields, bad roles, oversized metadata and wrong types with 400; an unknown user with 404', async () => {
      const { id } = await created();
      for (const body of [
        { email: 'x@example.com' }, { password: PASSWORD }, { roles: ['UPPER'] }, { roles: ['tessera:other'] }, { metadata: { x: 'y'.repeat(5000) } },
        { disabled: 'yes' }, { name: 'a\u0000b' }, { orgId: 'o'.repeat(65) },
      ]) {
        expectProblem(await api('PATCH', `/admin/users/${id}`, body), 400, 'invalid_request');
      }
      expectProblem(await api('PATCH', `/admin/users/${NIL}`, { name: 'x' }), 404, 'not_found');
    });
  });

  describe('DELETE /admin/users/:id', () => {
    // Needs security_events and sessions without their foreign key to users (AccountStore.deleteUser keeps both after the user row goes).
    it('deletes the account as DELETE /auth/me does: sessions end, events stay without IP, the actor is recorded', async () => {
      const { email, body } = await register(t.app, { headers: { 'user-agent': 'Mozilla/5.0 (Windows NT 10.0) Firefox/120.0' } });
      const id = decodeJwt(body.accessToken).sub!;
      expect((await eventsOf(id))[0]).toMatchObject({ type: 'registered', ip: '127.0.0.1' });

      expect((await api('DELETE', `/admin/users/${id}`)).statusCode).toBe(204);
      expectProblem(await refresh(t.app, body.refreshToken!), 401, 'invalid_refresh_token');
      expectProblem(await t.app.inject({ method: 'GET', url: '/auth/me', headers: bearer(body.accessToken) }), 401, 'unauthorized');
      expectProblem(await api('GET', `/admin/users/${id}`), 404, 'not_found');
      expectProblem(await login(t.app, email), 401, 'invalid_credentials');
      expectProblem(await api('DELETE', `/admin/users/${id}`), 404, 'not_found');

      const events = await eventsOf(id);
      expect(events.map((e) => e.type)).toEqual(['admin_action', 'account_deleted', 'registered']);
      for (const e of events) expect(e).toMatchObject({ ip: null, userAgent: null, userId: id });
      const detail = { actor: keyActor(KEY), action: 'users.delete', target: id };
      expect(events[0]!.detail).toMatchObject(detail);
      expect(events[1]!.detail).toMatchObject(detail);
      // the address is free again
      expect((await api('POST', '/admin/users', { email })).statusCode).toBe(201);
    });
  });

  describe('sessions', () => {
    it('lists a user’s active sessions, ends one, then all; each recorded', async () => {
      const { email, body } = await register(t.app, { headers: { 'user-agent': 'Mozilla/5.0 (Windows NT 10.0) Firefox/120.0' } });
      const id = decodeJwt(body.accessToken).sub!;
      const second = (await login(t.app, email)).json();
      const list = await api('GET', `/admin/users/${id}/sessions`);
      expect(list.statusCode).toBe(200);
      const sessions = list.json().sessions as { id: string; device: string }[];
      expect(sessions.map((s) => s.id).sort()).toEqual([decodeJwt(body.accessToken).sid, decodeJwt(second.accessToken).sid].sort());
      expect(sessions.find((s) => s.id === decodeJwt(body.accessToken).sid)).toMatchObject({
        device: 'Firefox on Windows', ip: '127.0.0.1', amr: ['pwd'], authTime: expect.any(String), lastUsedAt: expect.any(String),
      });

      const sid = decodeJwt(body.accessToken).sid as string;
      expect((await api('DELETE', `/admin/users/${id}/sessions/${sid.toUpperCase()}`)).statusCode).toBe(204);
      expectProblem(await refresh(t.app, body.refreshToken!), 401, 'invalid_refresh_token');
      expectProblem(await api('DELETE', `/admin/users/${id}/sessions/${sid}`), 404, 'not_found');
      expectProblem(await api('DELETE', `/admin/users/${id}/sessions/not-a-session`), 404, 'not_found');
      // someone else's session is not this user's
      const stranger = await register(t.app);
      expectProblem(await api('DELETE', `/admin/users/${id}/sessions/${decodeJwt(stranger.body.accessToken).sid}`), 404, 'not_found');
      expect((await refresh(t.app, stranger.body.refreshToken!)).statusCode).toBe(200);

      expect((await api('DELETE', `/admin/users/${id}/sessions`)).statusCode).toBe(204);
      expectProblem(await refresh(t.app, second.refreshToken), 401, 'invalid_refresh_token');
      expect((await api('GET', `/admin/users/${id}/sessions`)).json()).toEqual({ sessions: [] });
      expect((await api('GET', `/admin/users/${id}`)).json()).toMatchObject({ activeSessions: 0 });
      expect((await api('DELETE', `/admin/users/${id}/sessions`)).statusCode).toBe(204);

      const actions = (await eventsOf(id)).filter((e) => e.type === 'admin_action').map((e) => e.detail);
      expect(actions).toEqual([
        expect.objectContaining({ action: 'sessions.revoke_all', target: id, sessions: 0 }),
        expect.objectContaining({ action: 'sessions.revoke_all', target: id, sessions: 1 }),
        expect.objectContaining({ action: 'sessions.revoke', target: id, sessionId: sid }),
      ]);
      const revoked = await t.app.inject({ method: 'GET', url: '/auth/revocations' });
      expect(revoked.json().entries.map((e: { sid: string }) => e.sid)).toEqual(expect.arrayContaining([sid, decodeJwt(second.accessToken).sid]));
    });
  });

  describe('second factors', () => {
    it('shows a user’s authenticator app and recovery codes, and removes them for a locked-out user; 404 for no such user', async () => {
      const { id } = await created();
      const now = t.clock.now();
      await t.db.store.db.insertInto('totp_factors').values({ user_id: id, secret_sealed: 'sealed', created_at: now, confirmed_at: now }).execute();
      await t.db.store.db.insertInto('recovery_codes').values(['a', 'b', 'c'].map((code) => ({ user_id: id, code_hash: code, created_at: now }))).execute();
      expect((await api('GET', `/admin/users/${id}`)).json().factors).toEqual([
        { kind: 'totp', id: 'totp', name: null, createdAt: now.toISOString() },
        { kind: 'recovery_codes', id: 'recovery_codes', name: '3 of 3 unused', createdAt: now.toISOString() },
      ]);

      expect((await api('DELETE', `/admin/users/${id}/factors`)).statusCode).toBe(204);
      expect((await api('GET', `/admin/users/${id}`)).json().factors).toEqual([]);
      expect((await eventsOf(id))[0]?.detail).toMatchObject({ action: 'factors.reset', target: id, removed: 2 });
      // nothing left to remove: still answered, still recorded
      expect((await api('DELETE', `/admin/users/${id}/factors`)).statusCode).toBe(204);
      expect((await eventsOf(id))[0]?.detail).toMatchObject({ action: 'factors.reset', removed: 0 });
      expectProblem(await api('DELETE', `/admin/users/${NIL}/factors`), 404, 'not_found');
    });
  });

  describe('GET /admin/users: search and paging', () => {
    const tag = `pg${randomBytes(3).toString('hex')}`;
    const emails = Array.from({ length: 120 }, (_, i) => `${tag}-${String(i).padStart(3, '0')}@example.com`);

    beforeAll(async () => {
      await t.db.store.importUsers(
        emails.map((email, i) => ({
          id: randomUUID(), email, name: i % 2 ? `Zed ${tag}` : `Ann ${tag}`, passwordHash: UNUSABLE_PASSWORD_HASH,
          roles: [], orgId: null, metadata: '{}', emailVerified: false,
        })),
        t.clock.now(), META,
      );
    });

    it('pages through 120 matches in email order with opaque cursors: 50, 50, 20, then no cursor', async () => {
      const seen: string[] = [];
      const sizes: number[] = [];
      let cursor: string | null = null;
      do {
        const url: string = `/admin/users?query=${tag.toUpperCase()}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
        const res = await api('GET', url);
        expect(res.statusCode, res.body).toBe(200);
        const page = res.json() as { users: { email: string }[]; nextCursor: string | null };
        sizes.push(page.users.length);
        seen.push(...page.users.map((u) => u.email));
        cursor = page.nextCursor;
      } while (cursor);
      expect(sizes).toEqual([50, 50, 20]);
      expect(seen).toEqual(emails);
    });

    it('takes a limit of 1 to 100 and searches names by prefix in any case', async () => {
      const first = (await api('GET', `/admin/users?query=${tag}&limit=100`)).json();
      expect(first.users).toHaveLength(100);
      const second = (await api('GET', `/admin/users?query=${tag}&limit=100&cursor=${encodeURIComponent(first.nextCursor)}`)).json();
      expect(second).toMatchObject({ nextCursor: null });
      expect(second.users).toHaveLength(20);

      const zeds = (await api('GET', `/admin/users?query=${encodeURIComponent(`zED ${tag}`)}&limit=100`)).json();
      expect(zeds.users).toHaveLength(60);
      expect(zeds.users.every((u: { name: string }) => u.name === `Zed ${tag}`)).toBe(true);
      expect((await api('GET', `/admin/users?query=${encodeURIComponent('%')}${tag}`)).json().users).toEqual([]);
      expect((await api('GET', '/admin/users?query=nobody-has-this-prefix')).json()).toEqual({ users: [], nextCursor: null });
    });

    it('refuses a forged, altered, truncated or foreign cursor, and a limit out of range, with 400', async () => {
      const page = (await api('GET', `/admin/users?query=${tag}&limit=10`)).json();
      const cursor: string = page.nextCursor;
      const [body, mac] = cursor.split('.') as [string, string];
      const forgedBody = Buffer.from(JSON.stringify(['a@example.com', NIL])).toString('base64url');
      const events = (await api('GET', '/admin/events?limit=1')).json().nextCursor as string;
      for (const bad of [
        `${forgedBody}.${mac}`, `${body}.${mac.slice(0, -1)}${mac.endsWith('A') ? 'B' : 'A'}`, body, `${cursor}.x`, 'garbage', '.', events,
      ]) {
        expectProblem(await api('GET', `/admin/users?cursor=${encodeURIComponent(bad)}`), 400, 'invalid_request');
      }
      for (const limit of ['0', '101', 'abc', '-1', '1.5']) {
        expectProblem(await api('GET', `/admin/users?limit=${limit}`), 400, 'invalid_request');
      }
      expectProblem(await api('GET', '/admin/users?unknown=1'), 400, 'invalid_request');
    });
  });

  describe('GET /admin/events', () => {
    it('lists every user’s events newest first, by user and by type, a page at a time; bad filters are 400', async () => {
      const a = await created();
      t.clock.advance(1);
      const b = await created();
      t.clock.advance(1);
      await api('PATCH', `/admin/users/${a.id}`, { name: 'A' });

      const all = (await api('GET', '/admin/events?type=admin_action&limit=3')).json();
      expect(all.events.map((e: { userId: string; detail: { action: string } }) => [e.userId, e.detail.action])).toEqual([
        [a.id, 'users.update'], [b.id, 'users.create'], [a.id, 'users.create'],
      ]);
      const next = (await api('GET', `/admin/events?type=admin_action&limit=3&before=${encodeURIComponent(all.nextCursor)}`)).json();
      expect(next.events.length).toBeGreaterThan(0);
      expect(Date.parse(next.events[0].createdAt)).toBeLessThanOrEqual(Date.parse(all.events[2].createdAt));

      const ofA = (await api('GET', `/admin/events?userId=${a.id}`)).json();
      expect(ofA).toMatchObject({ nextCursor: null });
      expect(ofA.events.map((e: { type: string }) => e.type)).toEqual(['admin_action', 'admin_action']);

      const before = (await api('GET', `/admin/events?userId=${a.id}&before=${encodeURIComponent(t.clock.now().toISOString())}`)).json();
      expect(before.events.map((e: { detail: { action: string } }) => e.detail.action)).toEqual(['users.create']);

      expectProblem(await api('GET', '/admin/events?userId=not-a-uuid'), 400, 'invalid_request');
      expectProblem(await api('GET', '/admin/events?type=nonsense'), 400, 'invalid_request');
      expectProblem(await api('GET', '/admin/events?before=2026-13-45T99:00:00Z'), 400, 'invalid_request');
      expectProblem(await api('GET', '/admin/events?before=forged.cursor'), 400, 'invalid_request');
      expectProblem(await api('GET', '/admin/events?limit=500'), 400, 'invalid_request');
    });
  });

  describe('signing keys', () => {
    // Needs security_events without its foreign key to users: key events are recorded against NO_USER_ID.
    it('lists, rotates (201 {kid, alg, signsFrom}) and retires, refusing the signing key and, without force, a key whose tokens may live', async () => {
      const before = (await api('GET', '/admin/keys')).json().keys as { kid: string; status: string }[];
      const signing = before.find((k) => k.status === 'signing')!;
      const rotated = await api('POST', '/admin/keys/rotate', { alg: 'ES256' });
      expect(rotated.statusCode, rotated.body).toBe(201);
      expect(rotated.json()).toEqual({ kid: expect.any(String), alg: 'ES256', signsFrom: new Date(t.clock.time + 60_000).toISOString() });
      const kid = rotated.json().kid as string;
      expect((await api('GET', '/admin/keys')).json().keys[0]).toMatchObject({ kid, alg: 'ES256', status: 'next' });

      expectProblem(await api('DELETE', `/admin/keys/${signing.kid}`), 400, 'invalid_request');
      expectProblem(await api('DELETE', `/admin/keys/${kid}`), 400, 'invalid_request');
      expectProblem(await api('DELETE', '/admin/keys/no-such-kid'), 404, 'not_found');
      t.clock.advance(61);
      expect((await api('GET', '/admin/keys')).json().keys.find((k: { kid: string }) => k.kid === signing.kid)).toMatchObject({ status: 'published' });
      const refused = await api('DELETE', `/admin/keys/${signing.kid}`);
      expectProblem(refused, 400, 'invalid_request');
      expect(refused.json().detail).toContain('may still be alive');
      expect((await api('DELETE', `/admin/keys/${signing.kid}?force=true`)).statusCode).toBe(204);
      expect((await api('GET', '/admin/keys')).json().keys.map((k: { kid: string }) => k.kid)).not.toContain(signing.kid);

      const actions = (await api('GET', '/admin/events?type=admin_action&limit=2')).json().events;
      expect(actions).toMatchObject([
        { userId: null, detail: { actor: keyActor(KEY), action: 'keys.retire', target: signing.kid, force: true } },
        { userId: null, detail: { actor: keyActor(KEY), action: 'keys.rotate', target: kid, alg: 'ES256' } },
      ]);
      expectProblem(await api('POST', '/admin/keys/rotate', { alg: 'HS256' }), 400, 'invalid_request');
    });
  });

  it('documents every route in /openapi.json', async () => {
    const paths = Object.keys((await t.app.inject({ method: 'GET', url: '/openapi.json' })).json().paths);
    expect(paths).toEqual(expect.arrayContaining([
      '/admin/users', '/admin/users/{id}', '/admin/users/{id}/sessions', '/admin/users/{id}/sessions/{sid}', '/admin/users/{id}/factors',
      '/admin/events', '/admin/keys', '/admin/keys/rotate', '/admin/keys/{kid}',
    ]));
  });
});

describe.each(FEATURE_BACKENDS)('the admin API, switched off and rate limited, on %s', (backend) => {
  it('is not there without ADMIN_API_KEY: 404 as any unknown path', async () => {
    const t = await startTestApp(backend);
    try {
      expectProblem(await t.app.inject({ method: 'GET', url: '/admin/users', headers: asAdmin }), 404, 'not_found');
      expectProblem(await t.app.inject({ method: 'POST', url: '/admin/keys/rotate', headers: asAdmin }), 404, 'not_found');
      const paths = Object.keys((await t.app.inject({ method: 'GET', url: '/openapi.json' })).json().paths);
      expect(paths.filter((p) => p.startsWith('/admin'))).toEqual([]);
    } finally {
      await t.close();
    }
  }, OWN_APP);

  it('counts failures per IP: past the budget even the right key waits (429 with Retry-After); successes cost nothing; other IPs go on', async () => {
    const t = await start(backend, {}, { adminFailuresPerIp: 3, adminFailuresPerIpWindow: 600 });
    const from = (ip: string, key: string) => t.app.inject({ method: 'GET', url: '/admin/keys', remoteAddress: ip, headers: bearer(key) });
    try {
      for (let i = 0; i < 10; i++) expect((await from('203.0.113.1', KEY)).statusCode).toBe(200);
      for (let i = 0; i < 3; i++) expectProblem(await from('203.0.113.2', 'wrong-key'), 401, 'unauthorized');
      const limited = await from('203.0.113.2', 'wrong-key');
      expectProblem(limited, 429, 'rate_limited');
      expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
      expectProblem(await from('203.0.113.2', KEY), 429, 'rate_limited');
      expect((await from('203.0.113.3', KEY)).statusCode).toBe(200);
      t.clock.advance(601);
      expect((await from('203.0.113.2', KEY)).statusCode).toBe(200);
    } finally {
      await t.close();
    }
  }, OWN_APP);

  it('lives under the embedding prefix when embedded', async () => {
    const result = loadConfig({ TESSERA_SECRET: TEST_SECRET, LOG_LEVEL: 'silent', ADMIN_API_KEY: KEY });
    if (!result.ok) throw new Error(result.errors.join('\n'));
    const db = await openTestStore(backend);
    const app = await buildApp({ config: result.config, store: db.store, secret: TEST_SECRET, clock: new FrozenClock().now, prefix: '/api/auth', outbox: false });
    try {
      expect((await app.inject({ method: 'GET', url: '/api/auth/admin/users', headers: asAdmin })).statusCode).toBe(200);
      expectProblem(await app.inject({ method: 'GET', url: '/admin/users', headers: asAdmin }), 404, 'not_found');
    } finally {
      await app.close();
      await db.close();
    }
  }, OWN_APP);
});

describe('the log', () => {
  it('never holds an admin key, right or wrong, even at trace level', async () => {
    const lines: string[] = [];
    const stream = new Writable({
      write(chunk, _encoding, callback) {
        lines.push(String(chunk));
        callback();
      },
    });
    const result = loadConfig({ TESSERA_SECRET: TEST_SECRET, ADMIN_API_KEY: `${KEY},${KEY2}` });
    if (!result.ok) throw new Error(result.errors.join('\n'));
    const db = await openTestStore('pglite');
    const logger = pino({ level: 'trace', redact: [...LOG_REDACT_PATHS] }, stream);
    const app = await buildApp({ config: result.config, store: db.store, secret: TEST_SECRET, clock: new FrozenClock().now, logger, outbox: false });
    const wrong = `${KEY.slice(0, -3)}zzz`;
    try {
      expect((await app.inject({ method: 'GET', url: '/admin/users', headers: asAdmin })).statusCode).toBe(200);
      expect((await app.inject({ method: 'POST', url: '/admin/users', headers: bearer(KEY2), payload: { email: newEmail() } })).statusCode).toBe(201);
      expect((await app.inject({ method: 'GET', url: '/admin/users', headers: bearer(wrong) })).statusCode).toBe(401);
    } finally {
      await app.close();
      await db.close();
    }
    const log = lines.join('');
    expect(log).toContain('/admin/users');
    for (const secret of [KEY, KEY2, wrong, KEY.slice(10, 30)]) expect(log).not.toContain(secret);
  }, OWN_APP);
});
