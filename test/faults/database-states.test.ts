/**
 * PostgreSQL up, but refusing service in the ways an operator or a managed database does
 * (SPEC §9 "Poolers and failures"; issue 10 item 2): a database closed to connections
 * (55000), a connection limit reached (53300), a backend terminated in the middle of a
 * query (57P01), the database renamed away and back (3D000 meanwhile).
 *
 * A real `tessera serve` process runs on a database of its own, created here with a role of
 * its own (superusers are exempt from a database's connection limit, so the server must not
 * be one), in that database's public schema, with a direct DATABASE_URL. Only that database
 * is altered and only that role's backends are terminated: the machine's PostgreSQL is never
 * stopped, other tests use it meanwhile.
 *
 * Each case asserts the answers to refresh and login (503 service_unavailable with
 * Retry-After, never a 500, never a 401 that would sign a client out), a log line naming
 * the real cause (its SQLSTATE and PostgreSQL's message), nothing written, and recovery
 * without a restart (same process) once the condition ends.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { client, type Client, type HttpResponse } from './helpers/http.js';
import { describeFaults, TEST_DATABASE_URL } from './helpers/pg-schema.js';
import { expectNoCredentialShapes, SecretBag } from './helpers/secrets.js';
import { startServer, stopAll, type ServerProcess } from './helpers/server-process.js';
import { expectServiceUnavailable, logEntries, unavailableLines } from './helpers/unavailable.js';

const secrets = new SecretBag();
const PASSWORD = secrets.password('database states passphrase');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describeFaults('PostgreSQL refusing service (a database of its own)', () => {
  const name = `tessera_fault_${randomBytes(5).toString('hex')}`;
  /** Where the database is while renamed away. */
  const away = `${name}_away`;
  /** The server's role: not a superuser, so a connection limit applies to it. */
  const role = name;
  let admin: pg.Pool;
  let server: ServerProcess;
  let http: Client;

  /** TEST_DATABASE_URL with another database and, optionally, another user. */
  function urlFor(database: string, user?: string): string {
    const u = new URL(TEST_DATABASE_URL!);
    u.pathname = `/${database}`;
    if (user) {
      u.username = user;
      u.password = '';
    }
    return u.toString();
  }

  beforeAll(async () => {
    // The admin connection is to the shared `test` database, so nothing done to ours touches it.
    admin = new pg.Pool({ connectionString: TEST_DATABASE_URL, max: 2 });
    await admin.query(`create role ${role} login`);
    await admin.query(`create database ${name} owner ${role}`);
    // the server migrates its empty database itself
    server = await startServer({ DATABASE_URL: urlFor(name, role) });
    http = client(server.url);
  }, 90_000);

  afterAll(async () => {
    await stopAll();
    if (!admin) return;
    for (const db of [name, away]) await admin.query(`drop database if exists ${db} with (force)`).catch((e: Error) => console.warn(`drop ${db}: ${e.message}`));
    await admin.query(`drop role if exists ${role}`).catch((e: Error) => console.warn(`drop role ${role}: ${e.message}`));
    await admin.end();
  }, 60_000);

  /** One query on a connection of its own to our database, as the superuser (closed at once: a rename needs none open). */
  async function inspect<R extends Record<string, unknown>>(text: string, params?: unknown[]): Promise<R[]> {
    const c = new pg.Client({ connectionString: urlFor(name) });
    await c.connect();
    try {
      return (await c.query<R>(text, params)).rows;
    } finally {
      await c.end();
    }
  }

  /** Terminates every backend of the server's role until none is left (a pool may be reconnecting meanwhile). */
  async function terminateServerBackends(): Promise<void> {
    const deadline = Date.now() + 15_000;
    for (;;) {
      const { rows } = await admin.query('select pg_terminate_backend(pid) from pg_stat_activity where usename = $1', [role]);
      if (rows.length === 0) return;
      if (Date.now() > deadline) throw new Error(`${rows.length} backend(s) of ${role} still there after 15 s`);
      await sleep(100);
    }
  }

  async function register() {
    const email = `states-${randomBytes(4).toString('hex')}@example.com`;
    const res = secrets.fromResponse(await http.post('/auth/register', { email, password: PASSWORD, transport: 'body' }));
    expect(res.status, res.text).toBe(201);
    const body = res.json<{ accessToken: string; refreshToken: string }>();
    const sid = JSON.parse(Buffer.from(body.accessToken.split('.')[1]!, 'base64url').toString()).sid as string;
    return { email, sid, refreshToken: body.refreshToken };
  }
  type Account = Awaited<ReturnType<typeof register>>;

  const refresh = (a: Account) => http.post('/auth/refresh', { refreshToken: a.refreshToken }, { timeoutMs: 20_000 });
  const login = (a: Account) => http.post('/auth/login', { email: a.email, password: PASSWORD, transport: 'body' }, { timeoutMs: 20_000 });

  const ROW = 'select generation, parent_generation, revoked_at, revoked_reason from sessions where id = $1';
  const COUNTS = `select (select count(*) from users) as users, (select count(*) from sessions) as sessions,
                         (select count(*) from security_events) as events`;

  async function waitReady(timeoutMs = 20_000): Promise<void> {
    const started = Date.now();
    for (;;) {
      const res = await http.get('/readyz').catch(() => undefined);
      if (res?.status === 200) return;
      if (Date.now() - started > timeoutMs) throw new Error(`not ready again after ${timeoutMs} ms: ${res?.status} ${res?.text}`);
      await sleep(200);
    }
  }

  /** The log since `mark` has a 503 warning with this SQLSTATE and message, and no 500. */
  function expectCauseLogged(mark: number, sqlstate: string, message: RegExp) {
    const since = server.logs().slice(mark);
    const lines = unavailableLines(since);
    expect(
      lines.some((l) => l.startsWith(`database unavailable: ${sqlstate} `) && message.test(l)),
      `no "database unavailable" line with ${sqlstate} ${message} among:\n${lines.join('\n')}`,
    ).toBe(true);
    expect(logEntries(since).filter((e) => e.msg === 'unhandled error')).toEqual([]);
  }

  /** After the condition ended: the same process, nothing written meanwhile, then refresh rotates and login works. */
  async function expectRecovery(pid: number, account: Account, before: { row: unknown; counts: unknown }) {
    await waitReady();
    expect(server.child.exitCode, 'the server exited').toBeNull();
    expect(server.pid).toBe(pid);
    expect(await inspect(COUNTS)).toEqual([before.counts]);
    expect(await inspect(ROW, [account.sid])).toEqual([before.row]);
    const rotated = secrets.fromResponse(await refresh(account));
    expect(rotated.status, rotated.text).toBe(200);
    expect(await inspect(ROW, [account.sid])).toEqual([expect.objectContaining({ generation: 2, parent_generation: 1, revoked_at: null })]);
    const again = secrets.fromResponse(await login(account));
    expect(again.status, again.text).toBe(200);
  }

  /**
   * `enter` makes the database refuse the server; while it does, refresh, login and /readyz
   * answer 503 (twice: the first attempt may meet a pooled connection that just died, the
   * second surely opens a new one); the log names `sqlstate`; `leave` ends it.
   */
  async function throughOutage(enter: () => Promise<void>, leave: () => Promise<void>, cause: { sqlstate: string; message: RegExp }) {
    const account = await register();
    const before = { row: (await inspect(ROW, [account.sid]))[0], counts: (await inspect(COUNTS))[0] };
    const pid = server.pid;
    const mark = server.logs().length;
    await enter();
    try {
      const answers: [string, HttpResponse][] = [];
      for (let round = 1; round <= 2; round++) {
        answers.push([`refresh #${round}`, await refresh(account)]);
        answers.push([`login #${round}`, await login(account)]);
      }
      answers.push(['readyz', await http.get('/readyz')]);
      console.info(`[states] ${cause.sqlstate}: ${answers.map(([what, r]) => `${what} ${r.status} in ${r.ms.toFixed(0)} ms`).join(', ')}`);
      for (const [what, res] of answers) {
        expectServiceUnavailable(res, what);
        expect(res.ms, what).toBeLessThan(10_000);
      }
      expectCauseLogged(mark, cause.sqlstate, cause.message);
      expect(server.pid).toBe(pid);
    } finally {
      await leave();
    }
    await expectRecovery(pid, account, before);
  }

  it('(a) the database stops accepting connections (ALLOW_CONNECTIONS false, backends terminated): 55000 → 503, then recovery', async () => {
    await throughOutage(
      async () => {
        await admin.query(`alter database ${name} allow_connections false`);
        await terminateServerBackends();
      },
      async () => {
        await admin.query(`alter database ${name} allow_connections true`);
      },
      { sqlstate: '55000', message: /is not currently accepting connections/ },
    );
  }, 90_000);

  it('(b) the connection limit is reached (CONNECTION LIMIT 0, backends terminated): 53300 → 503, then recovery', async () => {
    await throughOutage(
      async () => {
        await admin.query(`alter database ${name} connection limit 0`);
        await terminateServerBackends();
      },
      async () => {
        await admin.query(`alter database ${name} connection limit -1`);
      },
      { sqlstate: '53300', message: /too many connections for database/ },
    );
  }, 90_000);

  it('(c) the backends of a refresh and a login are terminated in the middle of their queries: 57P01 → 503, nothing half-written, then recovery', async () => {
    const account = await register();
    const before = { row: (await inspect(ROW, [account.sid]))[0], counts: (await inspect(COUNTS))[0] };
    const pid = server.pid;
    const mark = server.logs().length;

    // An open transaction holding the sessions table: the server's statements on it wait.
    const holder = new pg.Client({ connectionString: urlFor(name) });
    await holder.connect();
    try {
      await holder.query('begin');
      await holder.query('lock table public.sessions in access exclusive mode');
      const pending = { refresh: refresh(account), login: login(account) };
      // both requests reach PostgreSQL and wait for the lock (login after its password check)
      let blocked: number[] = [];
      for (const deadline = Date.now() + 8_000; blocked.length < 2; await sleep(50)) {
        if (Date.now() > deadline) throw new Error(`only ${blocked.length} of the server's backends waited for the lock`);
        const { rows } = await admin.query<{ pid: number }>("select pid from pg_stat_activity where usename = $1 and wait_event_type = 'Lock'", [role]);
        blocked = rows.map((r) => r.pid);
      }
      await admin.query('select pg_terminate_backend(pid) from unnest($1::int[]) as pid', [blocked]);
      const answers = { refresh: await pending.refresh, login: await pending.login };
      console.info(`[states] 57P01: refresh ${answers.refresh.status} in ${answers.refresh.ms.toFixed(0)} ms, login ${answers.login.status} in ${answers.login.ms.toFixed(0)} ms`);
      expectServiceUnavailable(answers.refresh, 'refresh');
      expectServiceUnavailable(answers.login, 'login');
      // seen from inside the lock: whatever the two transactions had done is rolled back
      expect((await holder.query(ROW, [account.sid])).rows).toEqual([before.row]);
      expect((await holder.query(COUNTS)).rows).toEqual([before.counts]);
      await holder.query('rollback');
    } finally {
      await holder.end();
    }
    expectCauseLogged(mark, '57P01', /terminating connection due to administrator command/);
    await expectRecovery(pid, account, before);
  }, 90_000);

  it('(d) the database is renamed away (3D000 on reconnect) and back: 503 meanwhile, then recovery', async () => {
    await throughOutage(
      async () => {
        // closed first, so that no reconnection slips in before the rename (which needs no one connected)
        await admin.query(`alter database ${name} allow_connections false`);
        await terminateServerBackends();
        await admin.query(`alter database ${name} rename to ${away}`);
        await admin.query(`alter database ${away} allow_connections true`);
      },
      async () => {
        await admin.query(`alter database ${away} rename to ${name}`);
      },
      { sqlstate: '3D000', message: /database "[^"]+" does not exist/ },
    );
  }, 90_000);

  it('the log of all of this holds no credential, no SQL and no stack trace', () => {
    const log = server.logs();
    secrets.expectAbsentFrom(log, 'the server log');
    expectNoCredentialShapes(log, 'the server log');
    expect(log).not.toMatch(/insert into|update "|select "/i);
    expect(log).not.toMatch(/\n\s+at\s+\S+\s+\(|\.ts:\d+:\d+/);
  });
});
