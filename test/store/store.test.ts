/**
 * Store conformance suite: every Store method, on every backend (PGlite always,
 * PostgreSQL when TEST_DATABASE_URL is set). The same SQL must behave the same on both.
 */
import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import type { NextState } from '../../src/core/decide-refresh.js';
import { newSessionSalt } from '../../src/core/refresh-token.js';
import type { RequestMeta } from '../../src/core/vocabulary.js';
import type { NewSession, Store } from '../../src/store/store.js';
import { BACKENDS, openTestStore, type Backend, type TestStore } from '../helpers/backends.js';
import { missing } from '../helpers/skip-reason.js';

const SEC = 1_000;
const MIN = 60 * SEC;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;

const T0 = new Date('2026-11-22T12:00:00.000Z');
const at = (ms: number) => new Date(T0.getTime() + ms);

const META: RequestMeta = { ip: '203.0.113.7', userAgent: 'conformance/1.0' };
const OTHER_META: RequestMeta = { ip: '198.51.100.9', userAgent: 'other-agent/2.0' };
const NO_META: RequestMeta = { ip: null, userAgent: null };

/** Empties every table, for tests whose assertions are about the whole database (purging, keys). */
async function emptyDatabase(store: Store): Promise<void> {
  await store.db.deleteFrom('security_events').execute();
  await store.db.deleteFrom('sessions').execute();
  await store.db.deleteFrom('users').execute();
  await store.db.deleteFrom('user_emails').execute();
  await store.db.deleteFrom('signing_keys').execute();
  await store.db.deleteFrom('leases').execute();
}

function newEmail(): string {
  return `u-${randomUUID()}@example.com`;
}

/** A session row as a login at `now` would create it. */
function sessionFor(userId: string, now: Date, options: { idleMs?: number; absoluteMs?: number } = {}): NewSession {
  return {
    id: randomUUID(),
    userId,
    salt: newSessionSalt(),
    now,
    expiresAt: new Date(now.getTime() + (options.idleMs ?? 7 * DAY)),
    absoluteExpiresAt: new Date(now.getTime() + (options.absoluteMs ?? 30 * DAY)),
  };
}

/** Registers a fresh user with its first session. */
async function seedUser(store: Store, now = T0, options: { name?: string; meta?: RequestMeta; idleMs?: number; absoluteMs?: number } = {}) {
  const id = randomUUID();
  const email = newEmail();
  const session = sessionFor(id, now, options);
  const user = await store.createUserWithSession(
    { id, email, name: options.name ?? 'Ada', passwordHash: `$argon2id$hash-${id}` },
    session,
    options.meta ?? META,
  );
  if (!user) throw new Error('seedUser: createUserWithSession returned undefined');
  return { user, email, session };
}

/** Adds another (login) session to a user. */
async function addSession(store: Store, userId: string, now = T0, options: { idleMs?: number; absoluteMs?: number; meta?: RequestMeta } = {}) {
  const session = sessionFor(userId, now, options);
  await store.createSession(session, options.meta ?? META);
  return session;
}

/** The raw session row, bypassing the Store's own mapping. */
async function sessionRow(store: Store, id: string) {
  return store.db.selectFrom('sessions').selectAll().where('id', '=', id).executeTakeFirst();
}

async function eventRows(store: Store, userId: string) {
  return store.db.selectFrom('security_events').selectAll().where('user_id', '=', userId).orderBy('id').execute();
}

/** The next state of a plain rotation from generation `g` at `now`. */
function rotation(g: number, now: Date): NextState {
  return { generation: g + 1, parentGeneration: g, rotatedAt: now, expiresAt: new Date(now.getTime() + 7 * DAY), lastUsedAt: now };
}

describe.each(BACKENDS)('Store on %s', (backend) => {
  let db: TestStore;
  let store: Store;
  /** a second database for the tests about the whole database (signing keys, purging), emptied before each */
  let other: TestStore;

  beforeAll(async () => {
    db = await openTestStore(backend);
    store = db.store;
    other = await openTestStore(backend, { poolSize: 8 });
  });

  afterAll(async () => {
    await db?.close();
    await other?.close();
  });

  // ---- users -------------------------------------------------------------------------

  describe('createUserWithSession', () => {
    it('creates the user, its first session (generation 1, no parent) and a registered event', async () => {
      const id = randomUUID();
      const email = newEmail();
      const session = sessionFor(id, T0);
      const user = await store.createUserWithSession({ id, email, name: 'Grace', passwordHash: 'h1' }, session, META);

      expect(user).toEqual({ id, email, name: 'Grace', createdAt: T0, roles: [], orgId: null, metadata: {}, emailVerified: false });
      expect(user!.createdAt).toBeInstanceOf(Date);

      const row = await sessionRow(store, session.id);
      expect(row).toMatchObject({
        id: session.id,
        user_id: id,
        generation: 1,
        parent_generation: null,
        rotated_at: null,
        created_at: T0,
        last_used_at: T0,
        expires_at: session.expiresAt,
        absolute_expires_at: session.absoluteExpiresAt,
        revoked_at: null,
        revoked_reason: null,
        ip: META.ip,
        user_agent: META.userAgent,
      });
      expect(Buffer.from(row!.salt).equals(session.salt)).toBe(true);

      const events = await eventRows(store, id);
      expect(events).toHaveLength(1);
      expect(events[0]).toMatchObject({ type: 'registered', session_id: session.id, ip: META.ip, user_agent: META.userAgent, created_at: T0 });
    });

    it('returns undefined for a duplicate email and writes nothing: no user, no orphan session, no event', async () => {
      const { user: first, email } = await seedUser(store);
      const secondId = randomUUID();
      const secondSession = sessionFor(secondId, at(MIN));

      const result = await store.createUserWithSession(
        { id: secondId, email, name: 'Mallory', passwordHash: 'h2' },
        secondSession,
        OTHER_META,
      );

      expect(result).toBeUndefined();
      expect(await store.findUserById(secondId)).toBeUndefined();
      expect(await sessionRow(store, secondSession.id)).toBeUndefined();
      const strayEvents = await store.db
        .selectFrom('security_events')
        .select('id')
        .where((eb) => eb.or([eb('session_id', '=', secondSession.id), eb('user_id', '=', secondId)]))
        .execute();
      expect(strayEvents).toHaveLength(0);

      // the first user is untouched
      const existing = await store.findUserByEmail(email);
      expect(existing).toMatchObject({ id: first.id, name: 'Ada', disabled: false });
      expect((await eventRows(store, first.id)).map((e) => e.type)).toEqual(['registered']);
    });

    it('of concurrent registrations with one email exactly one wins, and the losers leave nothing behind', async () => {
      const email = newEmail();
      const attempts = Array.from({ length: 8 }, () => {
        const id = randomUUID();
        return { id, session: sessionFor(id, T0) };
      });
      const results = await Promise.all(
        attempts.map((a) => store.createUserWithSession({ id: a.id, email, name: '', passwordHash: 'x' }, a.session, META)),
      );
      const winners = results.filter((r) => r !== undefined);
      expect(winners).toHaveLength(1);
      const winner = attempts.find((a) => a.id === winners[0]!.id)!;
      expect(await store.findUserByEmail(email)).toMatchObject({ id: winner.id });
      const sessions = await store.db
        .selectFrom('sessions')
        .select('id')
        .where('id', 'in', attempts.map((a) => a.session.id))
        .execute();
      expect(sessions.map((r) => r.id)).toEqual([winner.session.id]);
      const events = await store.db
        .selectFrom('security_events')
        .select('session_id')
        .where('session_id', 'in', attempts.map((a) => a.session.id))
        .execute();
      expect(events.map((r) => r.session_id)).toEqual([winner.session.id]);
    });

    it('the store is still usable after a refused duplicate (the transaction was rolled back cleanly)', async () => {
      const { email } = await seedUser(store);
      const dupId = randomUUID();
      expect(await store.createUserWithSession({ id: dupId, email, name: '', passwordHash: 'x' }, sessionFor(dupId, T0), META)).toBeUndefined();
      const { user } = await seedUser(store);
      expect(await store.findUserById(user.id)).toBeDefined();
    });

    it('propagates errors other than a unique violation', async () => {
      const id = randomUUID();
      // a session id that is not a UUID cannot be inserted: that must throw, not look like "email taken"
      const bad = { ...sessionFor(id, T0), id: 'not-a-uuid' };
      await expect(store.createUserWithSession({ id, email: newEmail(), name: '', passwordHash: 'x' }, bad, META)).rejects.toThrow();
      expect(await store.findUserById(id)).toBeUndefined();
    });
  });

  describe('findUserByEmail / findUserById', () => {
    it('finds a user with credentials by email and by id', async () => {
      const { user, email } = await seedUser(store, T0, { name: 'Linus' });
      const expected = { id: user.id, email, name: 'Linus', createdAt: T0, roles: [], orgId: null, metadata: {}, emailVerified: false, passwordHash: `$argon2id$hash-${user.id}`, disabled: false };

      const byEmail = await store.findUserByEmail(email);
      const byId = await store.findUserById(user.id);
      expect(byEmail).toEqual(expected);
      expect(byId).toEqual(expected);
      expect(byEmail!.createdAt).toBeInstanceOf(Date);
    });

    it('returns undefined for unknown users', async () => {
      expect(await store.findUserByEmail(newEmail())).toBeUndefined();
      expect(await store.findUserById(randomUUID())).toBeUndefined();
    });
  });

  describe('updatePasswordHash', () => {
    it('replaces the hash and nothing else', async () => {
      const { user, session } = await seedUser(store);
      await store.updatePasswordHash(user.id, 'rehashed');
      expect(await store.findUserById(user.id)).toMatchObject({ passwordHash: 'rehashed', disabled: false });
      expect(await store.findActiveSession(session.userId, session.id, T0)).toBeDefined();
    });
  });

  describe('setUserDisabled', () => {
    it('disables and re-enables a user by email', async () => {
      const { user, email } = await seedUser(store);
      expect(await store.setUserDisabled(email, true, at(MIN))).toBe(true);
      expect(await store.findUserById(user.id)).toMatchObject({ disabled: true });
      const raw = await store.db.selectFrom('users').select('disabled_at').where('id', '=', user.id).executeTakeFirstOrThrow();
      expect(raw.disabled_at).toEqual(at(MIN));

      expect(await store.setUserDisabled(email, false, at(2 * MIN))).toBe(true);
      expect(await store.findUserByEmail(email)).toMatchObject({ disabled: false });
    });

    it('returns false for an unknown email', async () => {
      expect(await store.setUserDisabled(newEmail(), true, T0)).toBe(false);
    });
  });

  // ---- sessions ------------------------------------------------------------------------

  describe('createSession', () => {
    it('inserts a fresh session and records login_succeeded', async () => {
      const { user } = await seedUser(store);
      const session = await addSession(store, user.id, at(HOUR), { meta: OTHER_META });

      const row = await sessionRow(store, session.id);
      expect(row).toMatchObject({
        user_id: user.id, generation: 1, parent_generation: null, rotated_at: null,
        created_at: at(HOUR), last_used_at: at(HOUR), revoked_at: null, ip: OTHER_META.ip, user_agent: OTHER_META.userAgent,
      });
      const events = await eventRows(store, user.id);
      expect(events.map((e) => e.type)).toEqual(['registered', 'login_succeeded']);
      expect(events[1]).toMatchObject({ session_id: session.id, ip: OTHER_META.ip, user_agent: OTHER_META.userAgent, created_at: at(HOUR) });
    });

    it('stores null meta as null', async () => {
      const { user } = await seedUser(store);
      const session = await addSession(store, user.id, T0, { meta: NO_META });
      expect(await sessionRow(store, session.id)).toMatchObject({ ip: null, user_agent: null });
    });
  });

  describe('findSessionForRefresh', () => {
    it('returns everything a refresh needs, salt as a Buffer equal to the stored one and times as Dates', async () => {
      const { user, email, session } = await seedUser(store, T0, { name: 'Barbara' });
      const found = await store.findSessionForRefresh(session.userId, session.id);

      expect(found).toBeDefined();
      expect(Buffer.isBuffer(found!.salt)).toBe(true);
      expect(found!.salt.equals(session.salt)).toBe(true);
      expect(found!.salt).toHaveLength(session.salt.length);
      expect(found!.expiresAt).toBeInstanceOf(Date);
      expect(found!.absoluteExpiresAt).toBeInstanceOf(Date);
      expect(found!.user.createdAt).toBeInstanceOf(Date);
      expect(found).toEqual({
        id: session.id,
        user: { id: user.id, email, name: 'Barbara', createdAt: T0, roles: [], orgId: null, metadata: {}, emailVerified: false },
        amr: ['pwd'],
        authTime: T0,
        salt: session.salt,
        generation: 1,
        parentGeneration: null,
        rotatedAt: null,
        expiresAt: session.expiresAt,
        absoluteExpiresAt: session.absoluteExpiresAt,
        revokedAt: null,
        revokedReason: null,
        userDisabled: false,
      });
    });

    it('reflects a rotation, a revocation and a disabled user', async () => {
      const { email, session } = await seedUser(store);
      expect(await store.applyRefresh(session.userId, session.id, { generation: 1, parentGeneration: null }, rotation(1, at(MIN)), META)).toBe(true);
      let found = await store.findSessionForRefresh(session.userId, session.id);
      expect(found).toMatchObject({ generation: 2, parentGeneration: 1, rotatedAt: at(MIN) });
      expect(found!.rotatedAt).toBeInstanceOf(Date);

      await store.revokeForReuse(session.userId, session.id, at(2 * MIN), META);
      await store.setUserDisabled(email, true, at(3 * MIN));
      found = await store.findSessionForRefresh(session.userId, session.id);
      expect(found).toMatchObject({ revokedAt: at(2 * MIN), revokedReason: 'reuse', userDisabled: true });
      expect(found!.revokedAt).toBeInstanceOf(Date);
    });

    it('returns undefined for an unknown session', async () => {
      expect(await store.findSessionForRefresh(randomUUID(), randomUUID())).toBeUndefined();
    });
  });

  describe('applyRefresh', () => {
    it('applies the next state when generation and parent match what was seen', async () => {
      const { session } = await seedUser(store);
      const next = rotation(1, at(5 * MIN));
      expect(await store.applyRefresh(session.userId, session.id, { generation: 1, parentGeneration: null }, next, OTHER_META)).toBe(true);

      expect(await sessionRow(store, session.id)).toMatchObject({
        generation: 2,
        parent_generation: 1,
        rotated_at: at(5 * MIN),
        expires_at: next.expiresAt,
        last_used_at: at(5 * MIN),
        ip: OTHER_META.ip,
        user_agent: OTHER_META.userAgent,
        revoked_at: null,
        // never touched by a refresh
        created_at: T0,
        absolute_expires_at: session.absoluteExpiresAt,
      });

      // and again from the new state
      expect(await store.applyRefresh(session.userId, session.id, { generation: 2, parentGeneration: 1 }, rotation(2, at(6 * MIN)), META)).toBe(true);
      expect(await sessionRow(store, session.id)).toMatchObject({ generation: 3, parent_generation: 2 });
    });

    it('applies a replay (same generation, later lastUsedAt) when the state is unchanged', async () => {
      const { session } = await seedUser(store);
      await store.applyRefresh(session.userId, session.id, { generation: 1, parentGeneration: null }, rotation(1, at(MIN)), META);
      const replay: NextState = { generation: 2, parentGeneration: 1, rotatedAt: at(MIN), expiresAt: at(MIN + 8 * DAY), lastUsedAt: at(MIN + 3 * SEC) };
      expect(await store.applyRefresh(session.userId, session.id, { generation: 2, parentGeneration: 1 }, replay, META)).toBe(true);
      expect(await sessionRow(store, session.id)).toMatchObject({
        generation: 2, parent_generation: 1, rotated_at: at(MIN), last_used_at: at(MIN + 3 * SEC), expires_at: at(MIN + 8 * DAY),
      });
    });

    it('returns false and changes nothing when the generation seen is stale', async () => {
      const { session } = await seedUser(store);
      await store.applyRefresh(session.userId, session.id, { generation: 1, parentGeneration: null }, rotation(1, at(MIN)), META);
      const before = await sessionRow(store, session.id);

      expect(await store.applyRefresh(session.userId, session.id, { generation: 1, parentGeneration: null }, rotation(1, at(2 * MIN)), OTHER_META)).toBe(false);
      expect(await store.applyRefresh(session.userId, session.id, { generation: 3, parentGeneration: 1 }, rotation(3, at(2 * MIN)), OTHER_META)).toBe(false);
      expect(await sessionRow(store, session.id)).toEqual(before);
    });

    it('returns false and changes nothing when the parent seen differs (including null versus a number)', async () => {
      const { session } = await seedUser(store);
      const fresh = await sessionRow(store, session.id);
      // parent is null: a non-null parent must not match
      expect(await store.applyRefresh(session.userId, session.id, { generation: 1, parentGeneration: 0 }, rotation(1, at(MIN)), OTHER_META)).toBe(false);
      expect(await sessionRow(store, session.id)).toEqual(fresh);

      await store.applyRefresh(session.userId, session.id, { generation: 1, parentGeneration: null }, rotation(1, at(MIN)), META);
      const rotated = await sessionRow(store, session.id);
      // parent is 1: null, or another number, must not match
      expect(await store.applyRefresh(session.userId, session.id, { generation: 2, parentGeneration: null }, rotation(2, at(2 * MIN)), OTHER_META)).toBe(false);
      expect(await store.applyRefresh(session.userId, session.id, { generation: 2, parentGeneration: 0 }, rotation(2, at(2 * MIN)), OTHER_META)).toBe(false);
      expect(await sessionRow(store, session.id)).toEqual(rotated);
    });

    it('returns false and changes nothing on a revoked session', async () => {
      const { user, session } = await seedUser(store);
      await store.revokeSession(user.id, session.id, 'logout', 'logout', at(MIN), META);
      const before = await sessionRow(store, session.id);
      expect(await store.applyRefresh(session.userId, session.id, { generation: 1, parentGeneration: null }, rotation(1, at(2 * MIN)), OTHER_META)).toBe(false);
      expect(await sessionRow(store, session.id)).toEqual(before);
    });

    it('returns false and changes nothing when the user is disabled', async () => {
      const { email, session } = await seedUser(store);
      await store.setUserDisabled(email, true, at(MIN));
      const before = await sessionRow(store, session.id);
      expect(await store.applyRefresh(session.userId, session.id, { generation: 1, parentGeneration: null }, rotation(1, at(2 * MIN)), OTHER_META)).toBe(false);
      expect(await sessionRow(store, session.id)).toEqual(before);

      // enabled again: the same update goes through
      await store.setUserDisabled(email, false, at(3 * MIN));
      expect(await store.applyRefresh(session.userId, session.id, { generation: 1, parentGeneration: null }, rotation(1, at(4 * MIN)), OTHER_META)).toBe(true);
    });

    it('returns false for an unknown session', async () => {
      expect(await store.applyRefresh(randomUUID(), randomUUID(), { generation: 1, parentGeneration: null }, rotation(1, T0), META)).toBe(false);
    });

    it('touches only the one session', async () => {
      const { user, session } = await seedUser(store);
      const other = await addSession(store, user.id);
      const before = await sessionRow(store, other.id);
      await store.applyRefresh(session.userId, session.id, { generation: 1, parentGeneration: null }, rotation(1, at(MIN)), OTHER_META);
      expect(await sessionRow(store, other.id)).toEqual(before);
    });
  });

  describe('revokeForReuse', () => {
    it('revokes with reason reuse and records reuse_detected once; a second call is false and records nothing', async () => {
      const { user, session } = await seedUser(store);
      const sibling = await addSession(store, user.id);

      expect(await store.revokeForReuse(session.userId, session.id, at(MIN), OTHER_META)).toBe(true);
      expect(await sessionRow(store, session.id)).toMatchObject({ revoked_at: at(MIN), revoked_reason: 'reuse' });

      expect(await store.revokeForReuse(session.userId, session.id, at(2 * MIN), META)).toBe(false);
      // the first revocation stands
      expect(await sessionRow(store, session.id)).toMatchObject({ revoked_at: at(MIN), revoked_reason: 'reuse' });

      const reuse = (await eventRows(store, user.id)).filter((e) => e.type === 'reuse_detected');
      expect(reuse).toHaveLength(1);
      expect(reuse[0]).toMatchObject({ session_id: session.id, ip: OTHER_META.ip, user_agent: OTHER_META.userAgent, created_at: at(MIN) });

      // the user's other sessions are untouched
      expect(await sessionRow(store, sibling.id)).toMatchObject({ revoked_at: null });
    });

    it('is false, with no event, for a session already revoked for another reason', async () => {
      const { user, session } = await seedUser(store);
      await store.revokeSession(user.id, session.id, 'logout', 'logout', at(MIN), META);
      expect(await store.revokeForReuse(session.userId, session.id, at(2 * MIN), META)).toBe(false);
      expect(await sessionRow(store, session.id)).toMatchObject({ revoked_at: at(MIN), revoked_reason: 'logout' });
      expect((await eventRows(store, user.id)).some((e) => e.type === 'reuse_detected')).toBe(false);
    });

    it('is false for an unknown session', async () => {
      expect(await store.revokeForReuse(randomUUID(), randomUUID(), T0, META)).toBe(false);
    });
  });

  describe('findActiveSession', () => {
    it('returns the session id and its user while the session is active', async () => {
      const { user, email, session } = await seedUser(store, T0, { name: 'Edsger' });
      expect(await store.findActiveSession(session.userId, session.id, at(HOUR))).toEqual({
        sessionId: session.id,
        user: { id: user.id, email, name: 'Edsger', createdAt: T0, roles: [], orgId: null, metadata: {}, emailVerified: false },
      });
    });

    it('is undefined for a revoked session', async () => {
      const { user, session } = await seedUser(store);
      await store.revokeSession(user.id, session.id, 'logout', 'logout', at(MIN), META);
      expect(await store.findActiveSession(session.userId, session.id, at(2 * MIN))).toBeUndefined();
    });

    it('is undefined once the idle lifetime has passed (and at the instant it ends)', async () => {
      const { session } = await seedUser(store, T0, { idleMs: HOUR, absoluteMs: DAY });
      expect(await store.findActiveSession(session.userId, session.id, at(HOUR - 1))).toBeDefined();
      expect(await store.findActiveSession(session.userId, session.id, at(HOUR))).toBeUndefined();
      expect(await store.findActiveSession(session.userId, session.id, at(2 * HOUR))).toBeUndefined();
    });

    it('is undefined once the absolute lifetime has passed, even if the idle expiry is later', async () => {
      const { session } = await seedUser(store, T0, { idleMs: 2 * DAY, absoluteMs: DAY });
      expect(await store.findActiveSession(session.userId, session.id, at(DAY - 1))).toBeDefined();
      expect(await store.findActiveSession(session.userId, session.id, at(DAY))).toBeUndefined();
    });

    it('is undefined while the user is disabled', async () => {
      const { email, session } = await seedUser(store);
      await store.setUserDisabled(email, true, at(MIN));
      expect(await store.findActiveSession(session.userId, session.id, at(2 * MIN))).toBeUndefined();
      await store.setUserDisabled(email, false, at(3 * MIN));
      expect(await store.findActiveSession(session.userId, session.id, at(4 * MIN))).toBeDefined();
    });

    it('is undefined for an unknown session', async () => {
      expect(await store.findActiveSession(randomUUID(), randomUUID(), T0)).toBeUndefined();
    });
  });

  describe('listActiveSessions', () => {
    it('lists only the user’s active sessions, most recently used first', async () => {
      const { user, session: first } = await seedUser(store, T0, { meta: META });
      const second = await addSession(store, user.id, at(MIN), { meta: OTHER_META });
      const third = await addSession(store, user.id, at(2 * MIN));
      // used most recently
      await store.applyRefresh(first.userId, first.id, { generation: 1, parentGeneration: null }, rotation(1, at(10 * MIN)), META);
      const revoked = await addSession(store, user.id, at(3 * MIN));
      await store.revokeSession(user.id, revoked.id, 'logout', 'logout', at(4 * MIN), META);
      const idleExpired = await addSession(store, user.id, at(4 * MIN), { idleMs: MIN });
      const absoluteExpired = await addSession(store, user.id, at(4 * MIN), { idleMs: HOUR, absoluteMs: 2 * MIN });
      // someone else's
      await seedUser(store, at(20 * MIN));

      const list = await store.listActiveSessions(user.id, at(15 * MIN));
      expect(list.map((s) => s.id)).toEqual([first.id, third.id, second.id]);
      expect(list.map((s) => s.id)).not.toContain(idleExpired.id);
      expect(list.map((s) => s.id)).not.toContain(absoluteExpired.id);
      expect(list[2]).toEqual({
        id: second.id, createdAt: at(MIN), lastUsedAt: at(MIN), expiresAt: second.expiresAt, ip: OTHER_META.ip, userAgent: OTHER_META.userAgent,
        amr: ['pwd'], authTime: at(MIN),
      });
      expect(list[0]!.lastUsedAt).toEqual(at(10 * MIN));
      expect(list[0]!.createdAt).toBeInstanceOf(Date);
    });

    it('is empty for a user without active sessions', async () => {
      const { user } = await seedUser(store);
      await store.revokeUserSessions(user.id, null, 'logout_global', null, at(MIN), META);
      expect(await store.listActiveSessions(user.id, at(2 * MIN))).toEqual([]);
      expect(await store.listActiveSessions(randomUUID(), T0)).toEqual([]);
    });
  });

  describe('revokeSession', () => {
    it('revokes the owner’s active session with the given reason and records the given event', async () => {
      const { user, session } = await seedUser(store);
      const sibling = await addSession(store, user.id);
      expect(await store.revokeSession(user.id, session.id, 'revoked', 'session_revoked', at(MIN), OTHER_META)).toBe(true);
      expect(await sessionRow(store, session.id)).toMatchObject({ revoked_at: at(MIN), revoked_reason: 'revoked' });
      expect(await sessionRow(store, sibling.id)).toMatchObject({ revoked_at: null });
      const events = await eventRows(store, user.id);
      expect(events.at(-1)).toMatchObject({ type: 'session_revoked', session_id: session.id, ip: OTHER_META.ip, created_at: at(MIN) });
    });

    it('refuses another user’s session, leaving it and the events unchanged', async () => {
      const { session: victim, user: victimUser } = await seedUser(store);
      const { user: attacker } = await seedUser(store);
      const before = await sessionRow(store, victim.id);
      const eventsBefore = (await eventRows(store, attacker.id)).length;

      expect(await store.revokeSession(attacker.id, victim.id, 'revoked', 'session_revoked', at(MIN), META)).toBe(false);
      expect(await sessionRow(store, victim.id)).toEqual(before);
      expect(await eventRows(store, attacker.id)).toHaveLength(eventsBefore);
      expect((await eventRows(store, victimUser.id)).map((e) => e.type)).toEqual(['registered']);
    });

    it('refuses a session that is already revoked (keeping the first revocation) or expired, without an event', async () => {
      const { user, session } = await seedUser(store);
      await store.revokeSession(user.id, session.id, 'logout', 'logout', at(MIN), META);
      expect(await store.revokeSession(user.id, session.id, 'revoked', 'session_revoked', at(2 * MIN), META)).toBe(false);
      expect(await sessionRow(store, session.id)).toMatchObject({ revoked_at: at(MIN), revoked_reason: 'logout' });

      const expired = await addSession(store, user.id, T0, { idleMs: MIN });
      expect(await store.revokeSession(user.id, expired.id, 'revoked', 'session_revoked', at(HOUR), META)).toBe(false);
      expect(await sessionRow(store, expired.id)).toMatchObject({ revoked_at: null });

      expect(await store.revokeSession(user.id, randomUUID(), 'revoked', 'session_revoked', at(HOUR), META)).toBe(false);
      expect((await eventRows(store, user.id)).map((e) => e.type)).toEqual(['registered', 'logout', 'login_succeeded']);
    });
  });

  describe('revokeUserSessions', () => {
    it('without an exception revokes every active session of the user, counts them and records sessions_revoked', async () => {
      const { user, session: a } = await seedUser(store);
      const b = await addSession(store, user.id);
      const c = await addSession(store, user.id);
      const alreadyRevoked = await addSession(store, user.id);
      await store.revokeSession(user.id, alreadyRevoked.id, 'logout', 'logout', at(MIN), META);
      const { session: bystander } = await seedUser(store);

      expect(await store.revokeUserSessions(user.id, null, 'logout_global', a.id, at(5 * MIN), OTHER_META)).toBe(3);
      for (const s of [a, b, c]) {
        expect(await sessionRow(store, s.id)).toMatchObject({ revoked_at: at(5 * MIN), revoked_reason: 'logout_global' });
      }
      // an earlier revocation is not overwritten
      expect(await sessionRow(store, alreadyRevoked.id)).toMatchObject({ revoked_at: at(MIN), revoked_reason: 'logout' });
      expect(await sessionRow(store, bystander.id)).toMatchObject({ revoked_at: null });
      expect((await eventRows(store, user.id)).at(-1)).toMatchObject({
        type: 'sessions_revoked', session_id: a.id, ip: OTHER_META.ip, created_at: at(5 * MIN),
      });
      expect(await store.listActiveSessions(user.id, at(6 * MIN))).toEqual([]);
    });

    it('with an exception keeps that one session', async () => {
      const { user, session: keep } = await seedUser(store);
      const b = await addSession(store, user.id);
      const c = await addSession(store, user.id);

      expect(await store.revokeUserSessions(user.id, keep.id, 'logout_others', keep.id, at(MIN), META)).toBe(2);
      expect(await sessionRow(store, keep.id)).toMatchObject({ revoked_at: null, revoked_reason: null });
      expect(await sessionRow(store, b.id)).toMatchObject({ revoked_at: at(MIN), revoked_reason: 'logout_others' });
      expect(await sessionRow(store, c.id)).toMatchObject({ revoked_at: at(MIN), revoked_reason: 'logout_others' });
      expect((await store.listActiveSessions(user.id, at(2 * MIN))).map((s) => s.id)).toEqual([keep.id]);
    });

    it('returns 0 when there is nothing to revoke, and accepts a null acting session', async () => {
      const { user, session } = await seedUser(store);
      expect(await store.revokeUserSessions(user.id, session.id, 'logout_others', null, at(MIN), META)).toBe(0);
      expect((await eventRows(store, user.id)).at(-1)).toMatchObject({ type: 'sessions_revoked', session_id: null });
    });
  });

  describe('changePassword', () => {
    it('updates the hash, revokes every other session, keeps the current one and records password_changed', async () => {
      const { user, session: current } = await seedUser(store);
      const other1 = await addSession(store, user.id);
      const other2 = await addSession(store, user.id);
      const { session: bystander } = await seedUser(store);

      await store.changePassword(user.id, 'new-hash', current.id, at(MIN), OTHER_META);

      expect(await store.findUserById(user.id)).toMatchObject({ passwordHash: 'new-hash' });
      expect(await sessionRow(store, current.id)).toMatchObject({ revoked_at: null });
      for (const s of [other1, other2]) {
        expect(await sessionRow(store, s.id)).toMatchObject({ revoked_at: at(MIN), revoked_reason: 'password_changed' });
      }
      expect(await sessionRow(store, bystander.id)).toMatchObject({ revoked_at: null });
      expect((await eventRows(store, user.id)).at(-1)).toMatchObject({
        type: 'password_changed', session_id: current.id, ip: OTHER_META.ip, user_agent: OTHER_META.userAgent, created_at: at(MIN),
      });
    });
  });

  // ---- security events ---------------------------------------------------------------

  describe('recordEvent / listEvents', () => {
    it('lists the user’s events newest first, ties broken by insertion order, with a limit', async () => {
      const { user, session } = await seedUser(store, T0);
      await store.recordEvent(user.id, null, 'login_failed', OTHER_META, at(2 * MIN));
      await store.recordEvent(user.id, session.id, 'logout', META, at(MIN));
      // the same instant as the previous one: the later insert comes first
      await store.recordEvent(user.id, session.id, 'session_revoked', META, at(MIN));
      const { user: other } = await seedUser(store, at(HOUR));
      await store.recordEvent(other.id, null, 'login_failed', META, at(3 * HOUR));

      const events = await store.listEvents(user.id);
      expect(events.map((e) => e.type)).toEqual(['login_failed', 'session_revoked', 'logout', 'registered']);
      expect(events[0]).toEqual({ type: 'login_failed', createdAt: at(2 * MIN), ip: OTHER_META.ip, userAgent: OTHER_META.userAgent, sessionId: null });
      expect(events[3]).toEqual({ type: 'registered', createdAt: T0, ip: META.ip, userAgent: META.userAgent, sessionId: session.id });
      expect(events[0]!.createdAt).toBeInstanceOf(Date);

      expect((await store.listEvents(user.id, 2)).map((e) => e.type)).toEqual(['login_failed', 'session_revoked']);
      expect(await store.listEvents(randomUUID())).toEqual([]);
    });

    it('defaults to at most 50 events', async () => {
      const { user } = await seedUser(store);
      for (let i = 1; i <= 55; i++) await store.recordEvent(user.id, null, 'login_failed', META, at(i * SEC));
      const events = await store.listEvents(user.id);
      expect(events).toHaveLength(50);
      expect(events[0]!.createdAt).toEqual(at(55 * SEC));
    });
  });

  describe('hasSignedInFrom', () => {
    it('is true for IPs the account registered or logged in from, false otherwise', async () => {
      const { user } = await seedUser(store, T0, { meta: { ip: '192.0.2.1', userAgent: null } });
      await addSession(store, user.id, at(MIN), { meta: { ip: '192.0.2.2', userAgent: null } });
      await store.recordEvent(user.id, null, 'login_failed', { ip: '192.0.2.3', userAgent: null }, at(2 * MIN));
      await store.recordEvent(user.id, null, 'logout', { ip: '192.0.2.4', userAgent: null }, at(2 * MIN));
      const { user: other } = await seedUser(store, T0, { meta: { ip: '192.0.2.5', userAgent: null } });

      expect(await store.hasSignedInFrom(user.id, '192.0.2.1')).toBe(true);
      expect(await store.hasSignedInFrom(user.id, '192.0.2.2')).toBe(true);
      expect(await store.hasSignedInFrom(user.id, '192.0.2.3')).toBe(false);
      expect(await store.hasSignedInFrom(user.id, '192.0.2.4')).toBe(false);
      expect(await store.hasSignedInFrom(user.id, '192.0.2.5')).toBe(false);
      expect(await store.hasSignedInFrom(other.id, '192.0.2.5')).toBe(true);
      expect(await store.hasSignedInFrom(other.id, '192.0.2.1')).toBe(false);
    });
  });

  describe('ping', () => {
    it('answers', async () => {
      await expect(store.ping()).resolves.toBeUndefined();
    });
  });

  // ---- signing keys and housekeeping: each on a database of its own --------------------

  describe('ensureSigningKey / listSigningKeys', () => {
    let own: TestStore;
    beforeAll(async () => {
      own = other;
      await emptyDatabase(own.store);
    });

    it('creates one key, and a second call keeps it', async () => {
      expect(await own.store.listSigningKeys()).toEqual([]);
      let calls = 0;
      const create = async () => {
        calls++;
        return { kid: `kid-${calls}`, publicJwk: { kty: 'OKP', crv: 'Ed25519', x: `x-${calls}` }, privateJwkSealed: `sealed-${calls}` };
      };
      await own.store.ensureSigningKey(create, T0);
      await own.store.ensureSigningKey(create, at(MIN));

      expect(calls).toBe(1);
      expect(await own.store.listSigningKeys()).toEqual([
        { kid: 'kid-1', alg: 'EdDSA', signsFrom: T0, publicJwk: { kty: 'OKP', crv: 'Ed25519', x: 'x-1' }, privateJwkSealed: 'sealed-1' },
      ]);
    });

    it('concurrent callers still agree on the one key', async () => {
      let calls = 0;
      const create = async () => {
        calls++;
        return { kid: randomUUID(), publicJwk: { kty: 'OKP' }, privateJwkSealed: 's' };
      };
      await Promise.all(Array.from({ length: 8 }, () => own.store.ensureSigningKey(create, T0)));
      expect(calls).toBe(0);
      expect(await own.store.listSigningKeys()).toHaveLength(1);
    });
  });

  describe('ensureSigningKey on an empty database, concurrently', () => {
    let own: TestStore;
    beforeAll(async () => {
      own = other;
      await emptyDatabase(own.store);
    });

    it('creates exactly one key', async () => {
      let calls = 0;
      const create = async () => {
        calls++;
        return { kid: randomUUID(), publicJwk: { kty: 'OKP' }, privateJwkSealed: 's' };
      };
      const results = await Promise.allSettled(Array.from({ length: 8 }, () => own.store.ensureSigningKey(create, T0)));
      expect(results.filter((r) => r.status === 'rejected')).toEqual([]);
      expect(calls).toBe(1);
      expect(await own.store.listSigningKeys()).toHaveLength(1);
    });
  });

  describe('purgeSessions', () => {
    // purging is global, so counts are only exact on an otherwise empty database
    let ownStore: Store;
    beforeEach(async () => {
      ownStore = other.store;
      await emptyDatabase(ownStore);
    });
    afterEach(() => {
      vi.restoreAllMocks();
    });

    /** How many batch transactions a call runs. */
    function countTransactions() {
      return vi.spyOn(ownStore.db, 'transaction');
    }

    const RETENTION_S = 7 * 24 * 3600;
    const RETENTION = RETENTION_S * SEC;

    async function sessionCount(userId: string) {
      const rows = await ownStore.db.selectFrom('sessions').select('id').where('user_id', '=', userId).execute();
      return rows.length;
    }

    it('deletes revoked and absolutely-expired sessions older than the retention, keeps recent and live ones', async () => {
      const now = at(100 * DAY);
      const { user, session: live } = await seedUser(ownStore, at(99 * DAY));

      const oldRevoked = await addSession(ownStore, user.id, at(80 * DAY));
      await ownStore.revokeSession(user.id, oldRevoked.id, 'logout', 'logout', at(80 * DAY), META);
      const recentRevoked = await addSession(ownStore, user.id, at(95 * DAY));
      await ownStore.revokeSession(user.id, recentRevoked.id, 'logout', 'logout', at(95 * DAY), META);
      // absolute expiry more than the retention ago
      const oldExpired = await addSession(ownStore, user.id, at(50 * DAY), { idleMs: DAY, absoluteMs: 30 * DAY });
      // absolute expiry less than the retention ago
      const recentExpired = await addSession(ownStore, user.id, at(65 * DAY), { idleMs: DAY, absoluteMs: 30 * DAY });
      // live, created long ago, with an absolute expiry in the future
      const oldButLive = await addSession(ownStore, user.id, at(75 * DAY), { idleMs: 30 * DAY, absoluteMs: 30 * DAY });

      expect(await ownStore.purgeSessions(now, RETENTION_S)).toBe(2);

      expect(await sessionRow(ownStore, oldRevoked.id)).toBeUndefined();
      expect(await sessionRow(ownStore, oldExpired.id)).toBeUndefined();
      expect(await sessionRow(ownStore, recentRevoked.id)).toBeDefined();
      expect(await sessionRow(ownStore, recentExpired.id)).toBeDefined();
      expect(await sessionRow(ownStore, live.id)).toBeDefined();
      expect(await sessionRow(ownStore, oldButLive.id)).toBeDefined();
      // the user and their history stay
      expect(await ownStore.findUserById(user.id)).toBeDefined();
      expect((await ownStore.listEvents(user.id)).length).toBeGreaterThan(0);

      // nothing more to do
      expect(await ownStore.purgeSessions(now, RETENTION_S)).toBe(0);
      // later, the recent ones age out too
      expect(await ownStore.purgeSessions(at(100 * DAY + RETENTION), RETENTION_S)).toBe(2);
      expect(await sessionRow(ownStore, recentRevoked.id)).toBeUndefined();
      expect(await sessionRow(ownStore, recentExpired.id)).toBeUndefined();
      expect(await sessionRow(ownStore, live.id)).toBeDefined();
    });

    it('works in several batches with a small batchSize and returns the total', async () => {
      const { user, session: live } = await seedUser(ownStore, at(200 * DAY));
      const doomed: string[] = [];
      for (let i = 0; i < 11; i++) {
        const s = await addSession(ownStore, user.id, at(150 * DAY));
        await ownStore.revokeSession(user.id, s.id, 'logout', 'logout', at(150 * DAY + i * SEC), META);
        doomed.push(s.id);
      }
      const kept = await addSession(ownStore, user.id, at(199 * DAY));
      await ownStore.revokeSession(user.id, kept.id, 'logout', 'logout', at(199 * DAY), META);

      // 11 rows in batches of 3: 3 + 3 + 3 + 2
      const transactions = countTransactions();
      expect(await ownStore.purgeSessions(at(200 * DAY), RETENTION_S, 3)).toBe(11);
      expect(transactions).toHaveBeenCalledTimes(4);
      transactions.mockRestore();
      for (const id of doomed) expect(await sessionRow(ownStore, id)).toBeUndefined();
      expect(await sessionRow(ownStore, kept.id)).toBeDefined();
      expect(await sessionRow(ownStore, live.id)).toBeDefined();
      expect(await sessionCount(user.id)).toBe(2);
    });

    it('handles a count that is an exact multiple of the batch size', async () => {
      const { user } = await seedUser(ownStore, at(300 * DAY));
      for (let i = 0; i < 6; i++) {
        const s = await addSession(ownStore, user.id, at(250 * DAY));
        await ownStore.revokeSession(user.id, s.id, 'logout', 'logout', at(250 * DAY), META);
      }
      const transactions = countTransactions();
      expect(await ownStore.purgeSessions(at(300 * DAY), RETENTION_S, 2)).toBe(6);
      // 2 + 2 + 2, then an empty batch that ends it
      expect(transactions).toHaveBeenCalledTimes(4);
      transactions.mockRestore();
      expect(await sessionCount(user.id)).toBe(1);
    });

    it('concurrent purges delete every row exactly once between them', async () => {
      const { user } = await seedUser(ownStore, at(400 * DAY));
      for (let i = 0; i < 20; i++) {
        const s = await addSession(ownStore, user.id, at(350 * DAY));
        await ownStore.revokeSession(user.id, s.id, 'logout', 'logout', at(350 * DAY), META);
      }
      const counts = await Promise.all([0, 1, 2].map(() => ownStore.purgeSessions(at(400 * DAY), RETENTION_S, 4)));
      // a purge that finds the lock taken stops; what was not done now is done next time
      const rest = await ownStore.purgeSessions(at(400 * DAY), RETENTION_S, 4);
      expect(counts.reduce((a, b) => a + b, 0) + rest).toBe(20);
      expect(await sessionCount(user.id)).toBe(1);
    });
  });
});


describe.skipIf(missing(process.env.TEST_DATABASE_URL, 'prepared statements on PostgreSQL need a shared PostgreSQL: set TEST_DATABASE_URL'))('PostgreSQL statements (TEST_DATABASE_URL)', () => {
  it('each distinct statement is prepared once per connection, and the hot reads run with new arguments', async () => {
    const opened = await openTestStore('postgres', { poolSize: 1 });
    try {
      const { store } = opened;
      expect(await store.findSessionForRefresh(randomUUID(), randomUUID())).toBeUndefined();
      expect(await store.findActiveSession(randomUUID(), randomUUID(), new Date())).toBeUndefined();
      expect(await store.findUserByEmail('nobody@example.com')).toBeUndefined();
      expect(await store.findUserByEmail('nobody-else@example.com')).toBeUndefined();
      const { rows } = await sql<{ statement: string }>`select statement from pg_prepared_statements`.execute(store.db);
      // an email is looked up in its own table (the one place it is unique), then the user by id
      const byUserEmail = rows.filter((r) => /from ("\w+"\.)?"user_emails" where "email" = \$1/.test(r.statement));
      expect(byUserEmail).toHaveLength(1);
      expect(rows.some((r) => r.statement.includes('"sessions"."salt"'))).toBe(true);
    } finally {
      await opened.close();
    }
  });
});
