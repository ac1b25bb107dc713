/**
 * Tessera through a real PgBouncer (Debian's 1.18, as in the issue), SPEC §9 "Poolers and
 * failures". In `pool_mode = transaction` every transaction may get another server
 * connection, so named prepared statements (prepared-pool.ts) are missing (26000) or already
 * there (42P05) on the next one; DATABASE_POOLER=transaction sends unnamed statements only.
 * Without it the pool detects the first lost statement, warns once and falls back.
 *
 * PgBouncer is started by the test on 127.0.0.1 with its own ini, as `postgres` (it refuses
 * root); the Debian package is installed when missing, else the suite is skipped saying why.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql, type Kysely } from 'kysely';
import { bearer, client, codeOf, type Client, type HttpResponse } from './helpers/http.js';
import { describeFaults, FAULTS_ENABLED, freshSchema, TEST_DATABASE_URL, type FreshSchema } from './helpers/pg-schema.js';
import { findOrInstallPgBouncer, startPgBouncer, type PgBouncer } from './helpers/pgbouncer.js';
import { expectNoCredentialShapes, SecretBag } from './helpers/secrets.js';
import { startServer, stopAll, type ServerProcess } from './helpers/server-process.js';
import { RefreshTokenCodec } from '../../src/core/refresh-token.js';
import { MIGRATIONS, openDatabase, type OpenDatabase } from '../../src/store/database.js';
import type { Database } from '../../src/store/schema.js';
import { sayWhySkipped } from '../helpers/skip-reason.js';

const MIGRATION_COUNT = Object.keys(MIGRATIONS).length;
const WARNING = 'set DATABASE_POOLER=transaction';
const LOST = /"code":"(42P05|26000)"|prepared statement "[^"]*" (already exists|does not exist)/;

const found = FAULTS_ENABLED ? await findOrInstallPgBouncer() : undefined;
const describeBouncer =
  found && 'skip' in found
    ? (title: string, fn: () => void) => {
        sayWhySkipped(`PgBouncer: ${found.skip}`);
        describe.skip(`${title} [skipped: ${found.skip}]`, fn);
      }
    : describeFaults;

const secrets = new SecretBag();
const PASSWORD = secrets.password('pgbouncer passphrase');

function generationOf(token: string): number {
  return new RefreshTokenCodec('any secret: parse does not check the MAC').parse(token)!.generation;
}

/** The env of a node that reaches `schema` through `bouncer`. */
function via(bouncer: PgBouncer, schema: FreshSchema, extra: Record<string, string> = {}): Record<string, string> {
  return { ...schema.envVia(bouncer.host, bouncer.port), ...extra };
}

/** Starts two nodes at once on an (empty) schema; both must start. */
async function twoNodes(env: Record<string, string>, into: ServerProcess[]): Promise<ServerProcess[]> {
  const started = await Promise.allSettled([0, 1].map(() => startServer(env)));
  for (const s of started) if (s.status === 'fulfilled') into.push(s.value);
  const failures = started.filter((s): s is PromiseRejectedResult => s.status === 'rejected').map((s) => String(s.reason).slice(0, 600));
  expect(failures, 'nodes that could not start').toEqual([]);
  return started.map((s) => (s as PromiseFulfilledResult<ServerProcess>).value);
}

function take(res: HttpResponse, status: number): HttpResponse {
  expect(res.status, res.text.slice(0, 300)).toBe(status);
  return secrets.fromResponse(res);
}

/** register on one node, then login, refresh, /auth/me and logout alternating between both. */
async function basics(nodes: Client[], tag: string): Promise<void> {
  const [a, b] = nodes as [Client, Client];
  const email = `basics-${tag}@example.com`;
  const reg = take(await a.post('/auth/register', { email, password: PASSWORD, transport: 'body' }), 201).json<{ accessToken: string; refreshToken: string }>();
  take(await b.post('/auth/register', { email, password: PASSWORD, transport: 'body' }), 409);
  take(await b.get('/auth/me', { headers: bearer(reg.accessToken) }), 200);
  take(await a.post('/auth/login', { email, password: secrets.password('not the passphrase'), transport: 'body' }), 401);
  const login = take(await b.post('/auth/login', { email, password: PASSWORD, transport: 'body' }), 200).json<{ refreshToken: string }>();
  const first = take(await a.post('/auth/refresh', { refreshToken: login.refreshToken }), 200).json<{ refreshToken: string; accessToken: string }>();
  expect(generationOf(first.refreshToken)).toBe(2);
  // the previous token within the grace window, on the other node: the same current token (a replay)
  const replay = take(await b.post('/auth/refresh', { refreshToken: login.refreshToken }), 200).json<{ refreshToken: string }>();
  expect(replay.refreshToken).toBe(first.refreshToken);
  const second = take(await b.post('/auth/refresh', { refreshToken: first.refreshToken }), 200).json<{ refreshToken: string; accessToken: string }>();
  expect(generationOf(second.refreshToken)).toBe(3);
  take(await a.get('/auth/me', { headers: bearer(second.accessToken) }), 200);
  take(await a.post('/auth/logout', { refreshToken: second.refreshToken }), 204);
  expect(codeOf(take(await b.post('/auth/refresh', { refreshToken: second.refreshToken }), 401))).toBeDefined();
  // the registration's own session is untouched by the other session's logout
  take(await b.post('/auth/refresh', { refreshToken: reg.refreshToken }), 200);
}

/**
 * `sessions` sessions refresh for `seconds` across the nodes (every fourth with two tabs
 * presenting one token to both nodes at once); returns the errors and checks every
 * session's row against what its client saw. Bounded in time and in rounds.
 */
async function refreshLoad(nodes: Client[], schema: FreshSchema, tag: string, sessions: number, seconds: number) {
  const accounts = await Promise.all(
    Array.from({ length: sessions }, async (_, i) => {
      const res = take(await nodes[i % nodes.length]!.post('/auth/register', { email: `load-${i}-${tag}@example.com`, password: PASSWORD, transport: 'body' }), 201);
      const body = res.json<{ accessToken: string; refreshToken: string }>();
      return { sid: JSON.parse(Buffer.from(body.accessToken.split('.')[1]!, 'base64url').toString()).sid as string, token: body.refreshToken, generation: 1, tabs: i % 4 === 0 ? 2 : 1, refreshes: 0 };
    }),
  );
  const errors: string[] = [];
  const deadline = Date.now() + seconds * 1_000;
  await Promise.all(
    accounts.map(async (c, i) => {
      for (let k = 0; k < 2_000 && Date.now() < deadline; k++) {
        const answers = await Promise.all(
          Array.from({ length: c.tabs }, (_, tab) => nodes[(i + k + tab) % nodes.length]!.post('/auth/refresh', { refreshToken: c.token }).then(secrets.fromResponse.bind(secrets))),
        );
        const bad = answers.filter((a) => a.status !== 200);
        if (bad.length) {
          errors.push(...bad.map((a) => `session ${i} refresh ${k}: ${a.status} ${codeOf(a) ?? a.text.slice(0, 100)}`));
          return;
        }
        const tokens = new Set(answers.map((a) => a.json<{ refreshToken: string }>().refreshToken));
        if (tokens.size !== 1) errors.push(`session ${i}: two tabs got different tokens (a fork)`);
        const [token] = [...tokens] as [string];
        if (generationOf(token) !== c.generation + 1) errors.push(`session ${i}: generation ${generationOf(token)} after ${c.generation}`);
        c.token = token;
        c.generation += 1;
        c.refreshes += c.tabs;
      }
    }),
  );
  const rows = new Map((await schema.query<{ id: string; generation: number; revoked_at: Date | null }>('select id, generation, revoked_at from sessions')).map((r) => [r.id, r]));
  for (const c of accounts) expect(rows.get(c.sid), `session ${c.sid}`).toEqual({ id: c.sid, generation: c.generation, revoked_at: null });
  const [reuse] = await schema.query<{ n: string }>(`select count(*) as n from security_events where type = 'reuse_detected'`);
  expect(Number(reuse!.n), 'reuse detected (a fork)').toBe(0);
  return { errors, refreshes: accounts.reduce((s, c) => s + c.refreshes, 0) };
}

describeBouncer('Tessera through PgBouncer 1.18', () => {
  const bouncers: PgBouncer[] = [];
  const schemas: FreshSchema[] = [];
  const servers: ServerProcess[] = [];

  afterAll(async () => {
    await stopAll();
    await Promise.all(bouncers.map((b) => b.stop()));
    await Promise.all(schemas.map((s) => s.drop()));
    for (const [i, server] of servers.entries()) {
      secrets.expectAbsentFrom(server.logs(), `node ${i + 1}'s log`);
      expectNoCredentialShapes(server.logs(), `node ${i + 1}'s log`);
    }
  }, 60_000);

  async function bouncer(mode: 'transaction' | 'session', poolSize?: number): Promise<PgBouncer> {
    const started = await startPgBouncer(TEST_DATABASE_URL!, mode, poolSize ? { poolSize } : {});
    bouncers.push(started);
    return started;
  }
  async function schema(): Promise<FreshSchema> {
    const created = await freshSchema({ prefix: 'tessera_pgbouncer' });
    schemas.push(created);
    return created;
  }

  describe('pool_mode = transaction, DATABASE_POOLER=transaction', () => {
    let pool: PgBouncer;
    let data: FreshSchema;
    let nodes: ServerProcess[];

    beforeAll(async () => {
      pool = await bouncer('transaction');
      data = await schema();
    });

    it('two nodes started together on an empty schema migrate it once through the pooler and both serve', async () => {
      nodes = await twoNodes(via(pool, data, { DATABASE_POOLER: 'transaction' }), servers);
      expect(await data.query('select name from kysely_migration')).toHaveLength(MIGRATION_COUNT);
      expect(await data.query('select kid from signing_keys')).toHaveLength(1);
      for (const node of nodes) expect((await client(node.url).get('/readyz')).status).toBe(200);
    }, 90_000);

    it('register, login, refresh and logout across the two nodes', async () => {
      await basics(nodes.map((n) => client(n.url)), `tx-${data.name}`);
    }, 30_000);

    it('20 sessions refresh across both nodes for 4 s: no error, no fork', async () => {
      const { errors, refreshes } = await refreshLoad(nodes.map((n) => client(n.url)), data, `tx-${data.name}`, 20, 4);
      console.info(`[pgbouncer] transaction mode: ${refreshes} refreshes in 4 s across 2 nodes, ${errors.length} errors`);
      expect(errors).toEqual([]);
      expect(refreshes).toBeGreaterThan(50);
    }, 60_000);

    it('no node lost a statement or warned about the pooler', () => {
      for (const node of nodes) {
        expect(node.logs()).not.toMatch(LOST);
        expect(node.logs()).not.toContain(WARNING);
      }
    });
  });

  it('without DATABASE_POOLER=transaction, a statement named on one server connection collides on the next (42P05); the pool detects it once, falls back to unnamed statements, and the query succeeds', async () => {
    // one server connection shared by two processes' pools: the second to prepare a text collides
    const single = await bouncer('transaction', 1);
    const data = await schema();
    const url = data.envVia(single.host, single.port).DATABASE_URL;
    const detected: string[][] = [[], []];
    const [a, b] = (await Promise.all(
      [0, 1].map((i) => openDatabase({ url, dataDir: '', schema: data.name, poolSize: 3, onPoolerDetected: (e) => detected[i]!.push((e as { code?: string }).code ?? '?') })),
    )) as [OpenDatabase, OpenDatabase];
    try {
      const probe = (db: Kysely<Database>, n: number) => sql<{ n: number }>`select ${n}::int as n`.execute(db).then((r) => r.rows[0]!.n);
      expect(await probe(a.db, 1)).toBe(1);
      expect(await probe(b.db, 2)).toBe(2);
      expect(detected[1]).toEqual(['42P05']);
      // once switched, many concurrent queries on both pools: all answer, no second warning
      const answers = await Promise.all(Array.from({ length: 30 }, (_, i) => probe((i % 2 ? b : a).db, i)));
      expect(answers).toEqual(Array.from({ length: 30 }, (_, i) => i));
      expect(detected[1]).toHaveLength(1);
      expect(detected[0]!.length).toBeLessThanOrEqual(1);
      for (const codes of detected) for (const code of codes) expect(['42P05', '26000']).toContain(code);
    } finally {
      await Promise.all([a.db.destroy(), b.db.destroy()]);
    }
  }, 30_000);

  it('without DATABASE_POOLER=transaction, two nodes through transaction mode start on an empty schema, warn naming DATABASE_POOLER=transaction, and serve', async () => {
    const small = await bouncer('transaction', 2);
    const data = await schema();
    const nodes = await twoNodes(via(small, data), servers);
    const http = nodes.map((n) => client(n.url));
    expect(await data.query('select name from kysely_migration')).toHaveLength(MIGRATION_COUNT);
    // warm both pools: concurrent readiness checks run outside transactions
    for (let round = 0; round < 3; round++) {
      const ready = await Promise.all(http.flatMap((h) => Array.from({ length: 8 }, () => h.get('/readyz'))));
      expect(ready.map((r) => r.status)).toEqual(ready.map(() => 200));
    }
    const warned = nodes.filter((n) => n.logs().includes(WARNING));
    expect(warned.length, 'nodes that logged the pooler warning').toBeGreaterThan(0);
    for (const node of nodes) expect(node.logs().split(WARNING).length - 1, 'warnings per node').toBeLessThanOrEqual(1);
    await basics(http, `detect-${data.name}`);
    const { errors, refreshes } = await refreshLoad(http, data, `detect-${data.name}`, 10, 2);
    console.info(`[pgbouncer] undeclared transaction pooler: ${warned.length} of 2 nodes warned; ${refreshes} refreshes after, ${errors.length} errors`);
    expect(errors).toEqual([]);
  }, 120_000);

  describe('pool_mode = session, default setting', () => {
    it('two nodes on an empty schema migrate through it, serve the basics and a refresh load, with named statements and no warning', async () => {
      const pool = await bouncer('session');
      const data = await schema();
      const nodes = await twoNodes(via(pool, data), servers);
      expect(await data.query('select name from kysely_migration')).toHaveLength(MIGRATION_COUNT);
      const http = nodes.map((n) => client(n.url));
      await basics(http, `session-${data.name}`);
      const { errors, refreshes } = await refreshLoad(http, data, `session-${data.name}`, 20, 2);
      console.info(`[pgbouncer] session mode: ${refreshes} refreshes in 2 s across 2 nodes, ${errors.length} errors`);
      expect(errors).toEqual([]);
      for (const node of nodes) {
        expect(node.logs()).not.toMatch(LOST);
        expect(node.logs()).not.toContain(WARNING);
      }
    }, 120_000);
  });
});
