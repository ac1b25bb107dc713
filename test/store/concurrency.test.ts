/**
 * Concurrency of the refresh grant (SPEC §3): two requests for one session can never both
 * rotate it, concurrent replays converge on one token, and a reuse is never half-applied.
 * On PostgreSQL the calls run on separate pooled connections (and, in the last case, in
 * separate processes), so they really race in the database.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { newSessionSalt } from '../../src/core/refresh-token.js';
import { refreshGrant } from '../../src/auth/refresh-grant.js';
import type { RequestMeta } from '../../src/core/vocabulary.js';
import type { NewSession, Store } from '../../src/store/store.js';
import { BACKENDS, openTestStore, type Backend, type TestStore } from '../helpers/backends.js';
import { FrozenClock, TEST_SECRET } from '../helpers/app.js';
import { GRACE_SECONDS, refreshDeps, toCallResult, type CallResult, type RefreshDeps } from './fixtures/tessera.js';
import { sayWhySkipped } from '../helpers/skip-reason.js';

const DAY_MS = 24 * 3600 * 1000;
const META: RequestMeta = { ip: '203.0.113.50', userAgent: 'concurrency-test' };
const WORKER = fileURLToPath(new URL('./fixtures/refresh-worker.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Rejects if `promise` takes longer than `ms`: a deadlock must fail the test, not hang it. */
async function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** A user with one fresh session (generation 1) created at the clock's time. */
async function newSession(store: Store, clock: FrozenClock): Promise<NewSession> {
  const userId = randomUUID();
  const now = clock.now();
  const session: NewSession = {
    id: randomUUID(),
    userId,
    salt: newSessionSalt(),
    now,
    expiresAt: new Date(now.getTime() + 7 * DAY_MS),
    absoluteExpiresAt: new Date(now.getTime() + 30 * DAY_MS),
  };
  const user = await store.createUserWithSession(
    { id: userId, email: `race-${userId}@example.com`, name: '', passwordHash: 'x' },
    session,
    META,
  );
  if (!user) throw new Error('could not create the test user');
  return session;
}

/**
 * Watches Store.applyRefresh: every update that went through, and how many missed
 * because a racing request moved the session first.
 */
function watchUpdates(store: Store) {
  const applied: { seen: number; next: number }[] = [];
  let missed = 0;
  const original = store.applyRefresh.bind(store);
  const spy = vi.spyOn(store, 'applyRefresh').mockImplementation(async (userId, id, seen, next, meta) => {
    const ok = await original(userId, id, seen, next, meta);
    if (ok) applied.push({ seen: seen.generation, next: next.generation });
    else missed++;
    return ok;
  });
  return {
    /** updates that moved the generation: rotations and reissues */
    rotations: () => applied.filter((a) => a.next !== a.seen).length,
    replays: () => applied.filter((a) => a.next === a.seen).length,
    missed: () => missed,
    restore: () => spy.mockRestore(),
  };
}

/** Fires `tokens.length` refreshGrant calls at once, one per token, and settles them all. */
async function race(tessera: RefreshDeps, tokens: string[]): Promise<CallResult[]> {
  const settled = await within(
    20_000,
    `${tokens.length} concurrent refreshes`,
    Promise.allSettled(tokens.map((token) => refreshGrant(tessera, token, META))),
  );
  return settled.map((s) => toCallResult(tessera, s));
}

async function reuseEvents(store: Store, sessionId: string) {
  return store.db
    .selectFrom('security_events')
    .select(['type', 'session_id'])
    .where('session_id', '=', sessionId)
    .where('type', '=', 'reuse_detected')
    .execute();
}

function poolSizeFor(backend: Backend) {
  return backend === 'pglite' ? {} : { poolSize: 20 };
}

describe.each(BACKENDS)('refresh grant under concurrency on %s', (backend) => {
  let db: TestStore;
  let store: Store;
  let clock: FrozenClock;
  let tessera: RefreshDeps;

  beforeAll(async () => {
    db = await openTestStore(backend, poolSizeFor(backend));
    store = db.store;
    clock = new FrozenClock();
    tessera = await refreshDeps(store, clock.now, TEST_SECRET);
  });

  afterAll(async () => {
    await db?.close();
  });

  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('50 concurrent presentations of one token rotate exactly once and all converge on the same token', async () => {
    const session = await newSession(store, clock);
    const token = tessera.refreshTokens.issue(session.userId, session.id, session.salt, 1);

    const updates = watchUpdates(store);
    const results = await race(tessera, Array.from({ length: 50 }, () => token));
    updates.restore();

    const expected = tessera.refreshTokens.issue(session.userId, session.id, session.salt, 2);
    expect(results.filter((r) => !r.ok)).toEqual([]);
    expect(results).toHaveLength(50);
    for (const r of results) expect(r).toEqual({ ok: true, generation: 2, token: expected });

    const after = await store.findSessionForRefresh(session.userId, session.id);
    expect(after).toMatchObject({ generation: 2, parentGeneration: 1, rotatedAt: clock.now(), revokedAt: null, revokedReason: null });
    expect(await reuseEvents(store, session.id)).toEqual([]);
    // one update moved the generation; every other caller's update was a replay
    expect(updates.rotations()).toBe(1);
    expect(updates.replays()).toBe(49);
    // still usable: the converged token rotates normally
    const next = await race(tessera, [expected]);
    expect(next).toEqual([{ ok: true, generation: 3, token: tessera.refreshTokens.issue(session.userId, session.id, session.salt, 3) }]);
  }, 30_000);

  it('a chain of 20 rounds of 10 concurrent callers advances exactly one generation per round', async () => {
    const session = await newSession(store, clock);
    let generation = 1;
    let contention = 0;

    for (let round = 1; round <= 20; round++) {
      clock.advance(1);
      const token = tessera.refreshTokens.issue(session.userId, session.id, session.salt, generation);
      const updates = watchUpdates(store);
      const results = await race(tessera, Array.from({ length: 10 }, () => token));
      updates.restore();
      contention += updates.missed();
      expect(updates.rotations(), `round ${round}`).toBe(1);

      const expected = { ok: true, generation: generation + 1, token: tessera.refreshTokens.issue(session.userId, session.id, session.salt, generation + 1) };
      expect(results, `round ${round}`).toEqual(Array.from({ length: 10 }, () => expected));
      const after = await store.findSessionForRefresh(session.userId, session.id);
      expect(after, `round ${round}`).toMatchObject({ generation: generation + 1, parentGeneration: generation, revokedAt: null });
      generation += 1;
    }

    expect(generation).toBe(21);
    console.info(`[${backend}] chain: ${contention} conditional updates missed because a racing call moved the session first`);
    expect(await reuseEvents(store, session.id)).toEqual([]);
  }, 60_000);

  it('concurrent presentations of the parent after the grace window reissue exactly once and converge', async () => {
    const session = await newSession(store, clock);
    const codec = tessera.refreshTokens;
    expect(await race(tessera, [codec.issue(session.userId, session.id, session.salt, 1)])).toMatchObject([{ ok: true, generation: 2 }]);
    // the response carrying generation 2 was lost; every retry, past the grace window, brings 1 back
    clock.advance(GRACE_SECONDS + 1);

    const updates = watchUpdates(store);
    const results = await race(tessera, Array.from({ length: 30 }, () => codec.issue(session.userId, session.id, session.salt, 1)));
    updates.restore();

    const expected = { ok: true, generation: 3, token: codec.issue(session.userId, session.id, session.salt, 3) };
    expect(results).toEqual(Array.from({ length: 30 }, () => expected));
    expect(updates.rotations()).toBe(1);
    expect(await store.findSessionForRefresh(session.userId, session.id)).toMatchObject({
      generation: 3, parentGeneration: 1, rotatedAt: clock.now(), revokedAt: null,
    });
    expect(await reuseEvents(store, session.id)).toEqual([]);
  }, 30_000);

  it('an orphan presented concurrently with the current token never leaves the session half-revoked', async () => {
    const outcomes = new Set<string>();

    for (let i = 0; i < 12; i++) {
      const session = await newSession(store, clock);
      const codec = tessera.refreshTokens;
      // another session of the same user, which must not be affected
      const sibling: NewSession = { ...session, id: randomUUID(), salt: newSessionSalt() };
      await store.createSession(sibling, META);

      // 1 → 2 (rotate); then, past the grace window, 1 again → 3 (reissue): 2 is now an orphan.
      expect(await race(tessera, [codec.issue(session.userId, session.id, session.salt, 1)])).toMatchObject([{ ok: true, generation: 2 }]);
      clock.advance(GRACE_SECONDS + 1);
      expect(await race(tessera, [codec.issue(session.userId, session.id, session.salt, 1)])).toMatchObject([{ ok: true, generation: 3 }]);
      clock.advance(1);

      const orphan = codec.issue(session.userId, session.id, session.salt, 2);
      const current = codec.issue(session.userId, session.id, session.salt, 3);
      // interleave them, starting with a different one each time
      const tokens = Array.from({ length: 10 }, (_, k) => ((k + i) % 2 === 0 ? orphan : current));
      const results = await race(tessera, tokens);

      const after = await store.findSessionForRefresh(session.userId, session.id);
      const events = await reuseEvents(store, session.id);
      const label = `iteration ${i}: ${JSON.stringify(results.map((r) => (r.ok ? r.generation : r.code)))} → ${JSON.stringify(after)}`;

      // revoked_at and revoked_reason go together, and a revocation for reuse is recorded exactly once
      expect(after!.revokedAt === null, label).toBe(after!.revokedReason === null);
      expect(events, label).toHaveLength(after!.revokedAt === null ? 0 : 1);
      if (after!.revokedAt !== null) expect(after!.revokedReason, label).toBe('reuse');
      // …and here it must have happened: an orphan was presented, whatever the interleaving (rule 4)
      expect(after!.revokedReason, label).toBe('reuse');
      expect(await store.findActiveSession(session.userId, session.id, clock.now()), label).toBeUndefined();

      // every orphan presenter is told of the reuse
      tokens.forEach((t, k) => {
        if (t === orphan) expect(results[k], label).toEqual({ ok: false, code: 'refresh_token_reused' });
      });
      // the current token either rotated (once: everyone who got through has generation 4) or met the revocation
      const successes = results.filter((r): r is Extract<CallResult, { ok: true }> => r.ok);
      for (const r of results) {
        if (r.ok) expect(r, label).toEqual({ ok: true, generation: 4, token: codec.issue(session.userId, session.id, session.salt, 4) });
        else expect(r.code, label).toBe('refresh_token_reused');
      }
      expect(after!.generation, label).toBe(successes.length > 0 ? 4 : 3);
      outcomes.add(successes.length > 0 ? 'rotated-then-revoked' : 'revoked-first');

      // the user's other session is untouched
      expect(await store.findSessionForRefresh(sibling.userId, sibling.id), label).toMatchObject({ revokedAt: null, generation: 1 });
      // and every later presentation of any token the session ever issued learns why
      const issued = [1, 2, 3, after!.generation].map((g) => codec.issue(session.userId, session.id, session.salt, g));
      expect(await race(tessera, issued), label).toEqual([
        { ok: false, code: 'refresh_token_reused' },
        { ok: false, code: 'refresh_token_reused' },
        { ok: false, code: 'refresh_token_reused' },
        { ok: false, code: 'refresh_token_reused' },
      ]);
      expect(await reuseEvents(store, session.id), label).toHaveLength(1);
    }

    expect(outcomes.size).toBeGreaterThan(0);
    console.info(`[${backend}] orphan race outcomes seen: ${[...outcomes].join(', ')}`);
  }, 60_000);
});

// ---- many processes, one PostgreSQL --------------------------------------------------------

const MULTI_PROCESS_SKIP_REASON = 'the multi-process race needs a shared PostgreSQL: set TEST_DATABASE_URL';

describe('refresh grant across processes on postgres', () => {
  if (!process.env.TEST_DATABASE_URL) {
    sayWhySkipped(MULTI_PROCESS_SKIP_REASON);
    it.skip(`3 processes × 10 concurrent refreshes (skipped: ${MULTI_PROCESS_SKIP_REASON})`, () => {});
    return;
  }

  let db: TestStore;
  const children: ChildProcessWithoutNullStreams[] = [];

  beforeAll(async () => {
    db = await openTestStore('postgres', { poolSize: 5 });
  });

  afterAll(async () => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await db?.close();
  });

  it('3 processes × 10 concurrent calls with one token: one rotation, 30 identical tokens, no revocation', async () => {
    const clock = new FrozenClock();
    const session = await newSession(db.store, clock);
    const tessera = await refreshDeps(db.store, clock.now, TEST_SECRET);
    const token = tessera.refreshTokens.issue(session.userId, session.id, session.salt, 1);

    type Worker = { child: ChildProcessWithoutNullStreams; ready: Promise<void>; done: Promise<{ results: CallResult[]; lateMs: number }> };
    const workers: Worker[] = [0, 1, 2].map(() => {
      const child = spawn(process.execPath, ['--import', 'tsx', WORKER], {
        cwd: ROOT,
        env: {
          ...process.env,
          WORKER_DATABASE_URL: db.url!,
          WORKER_SCHEMA: db.schema!,
          WORKER_TOKEN: token,
          WORKER_SECRET: TEST_SECRET,
          WORKER_NOW: String(clock.time),
          WORKER_CALLS: '10',
        },
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      children.push(child);
      let stderr = '';
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      const messages: unknown[] = [];
      const waiters: ((m: unknown) => void)[] = [];
      createInterface({ input: child.stdout }).on('line', (line) => {
        let message: unknown;
        try {
          message = JSON.parse(line);
        } catch {
          return; // not one of ours
        }
        const waiter = waiters.shift();
        if (waiter) waiter(message);
        else messages.push(message);
      });
      const exited = new Promise<never>((_, reject) => {
        child.on('exit', (code, signal) => reject(new Error(`worker ${child.pid} exited (${code ?? signal}) early: ${stderr}`)));
        child.on('error', reject);
      });
      const next = () => Promise.race([new Promise<unknown>((resolve) => (messages.length ? resolve(messages.shift()) : waiters.push(resolve))), exited]);
      const ready = next().then((m) => {
        if (!(m as { ready?: boolean }).ready) throw new Error(`unexpected first message ${JSON.stringify(m)}`);
      });
      const done = ready.then(() => next()) as Promise<{ results: CallResult[]; lateMs: number }>;
      done.catch(() => {});
      return { child, ready, done };
    });

    await within(30_000, 'starting 3 worker processes', Promise.all(workers.map((w) => w.ready)));
    const startAt = Date.now() + 1_000;
    for (const w of workers) w.child.stdin.write(`${JSON.stringify({ startAt })}\n`);
    const reports = await within(30_000, 'the worker race', Promise.all(workers.map((w) => w.done)));

    const results = reports.flatMap((r) => r.results);
    const expected = tessera.refreshTokens.issue(session.userId, session.id, session.salt, 2);
    expect(results).toHaveLength(30);
    expect(results.filter((r) => !r.ok)).toEqual([]);
    for (const r of results) expect(r).toEqual({ ok: true, generation: 2, token: expected });
    // they really started together (each within a short time of the agreed instant)
    for (const r of reports) expect(r.lateMs).toBeLessThan(5_000);

    const after = await db.store.findSessionForRefresh(session.userId, session.id);
    expect(after).toMatchObject({ generation: 2, parentGeneration: 1, revokedAt: null, revokedReason: null });
    expect(await reuseEvents(db.store, session.id)).toEqual([]);
  }, 90_000);
});
