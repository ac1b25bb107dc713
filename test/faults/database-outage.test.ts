/**
 * PostgreSQL unreachable during login, registration, refresh and password change (SPEC §4
 * `service_unavailable`; ASVS 5.0 V7 and V16 for failing securely): a real `tessera serve`
 * process talks to PostgreSQL through a TCP proxy that this test cuts and restores. The
 * machine's PostgreSQL is never stopped (other tests use it meanwhile).
 *
 * Each case asserts the answer (503 service_unavailable with Retry-After, never a 401 that
 * would sign a client out, never a 500), the database state read directly (nothing
 * half-written), and recovery without a restart (same process id).
 *
 * Precise faults are injected by SQL text: the proxy resets every connection when the
 * server sends a given statement, either before PostgreSQL receives it, or after (so
 * PostgreSQL commits and only the answer is lost).
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { RefreshTokenCodec } from '../../src/core/refresh-token.js';
import { bearer, client, codeOf, NetworkError, type Client, type HttpResponse } from './helpers/http.js';
import { describeFaults, freshSchema, TEST_DATABASE_URL, type FreshSchema } from './helpers/pg-schema.js';
import { expectNoCredentialShapes, SecretBag } from './helpers/secrets.js';
import { CHILD_SECRET, startServer, stopAll, type ServerProcess } from './helpers/server-process.js';
import { TcpProxy } from './helpers/tcp-proxy.js';

const secrets = new SecretBag();
const PASSWORD = secrets.password('outage test passphrase');

describeFaults('PostgreSQL unreachable (through a TCP proxy)', () => {
  let schema: FreshSchema;
  let proxy: TcpProxy;
  let server: ServerProcess;
  let http: Client;
  const codec = new RefreshTokenCodec(CHILD_SECRET);

  const logs: string[] = [];
  async function start() {
    server = await startServer({ ...schema.envVia('127.0.0.1', proxy.port), REFRESH_REUSE_GRACE: '60s' });
    http = client(server.url);
  }

  beforeAll(async () => {
    schema = await freshSchema({ migrated: true });
    const pg = new URL(TEST_DATABASE_URL!);
    proxy = await TcpProxy.start({ host: pg.hostname, port: Number(pg.port || 5432) });
    await start();
  }, 60_000);

  beforeEach(async () => {
    // A case that crashed the server must not fail the next ones for the wrong reason.
    if (server.child.exitCode !== null || server.child.signalCode !== null) {
      logs.push(server.logs());
      await start();
    }
  }, 60_000);

  afterEach(async () => {
    proxy.restore();
    if (server.child.exitCode === null) await waitReady();
  }, 30_000);

  /** The fault must not have killed the process: it answers, and it is the same one. */
  async function expectSameProcess(pid: number) {
    await new Promise((r) => setTimeout(r, 300));
    expect(server.child.exitCode, `the server crashed:\n${server.logs().split('\n').slice(-25).join('\n')}`).toBeNull();
    expect(server.pid).toBe(pid);
  }

  afterAll(async () => {
    await stopAll();
    await proxy?.close();
    await schema?.drop();
  });

  async function waitReady(timeoutMs = 15_000): Promise<number> {
    const started = Date.now();
    for (;;) {
      const res = await http.get('/readyz').catch(() => undefined);
      if (res?.status === 200) return Date.now() - started;
      if (Date.now() - started > timeoutMs) throw new Error(`not ready again after ${timeoutMs} ms: ${res?.status} ${res?.text}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  async function register(email = `outage-${Math.random().toString(36).slice(2)}@example.com`) {
    const res = secrets.fromResponse(await http.post('/auth/register', { email, password: PASSWORD, transport: 'body' }));
    expect(res.status, res.text).toBe(201);
    const body = res.json<{ accessToken: string; refreshToken: string; user: { id: string } }>();
    const sid = JSON.parse(Buffer.from(body.accessToken.split('.')[1]!, 'base64url').toString()).sid as string;
    return { email, userId: body.user.id, sid, ...body };
  }

  function expectUnavailable(res: HttpResponse) {
    expect(res.status, res.text).toBe(503);
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(codeOf(res)).toBe('service_unavailable');
    expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
    expect(res.text).not.toMatch(/insert into|update "|select |ECONN|\bat\s+\S+\s+\(/i);
  }

  async function row(sid: string) {
    const [r] = await schema.query<{ generation: number; parent_generation: number | null; revoked_at: Date | null; revoked_reason: string | null; salt: Buffer }>(
      'select generation, parent_generation, revoked_at, revoked_reason, salt from sessions where id = $1',
      [sid],
    );
    return r!;
  }
  async function counts() {
    const [r] = await schema.query<{ users: string; sessions: string; events: string; reuse: string }>(
      `select (select count(*) from users) as users, (select count(*) from sessions) as sessions,
              (select count(*) from security_events) as events,
              (select count(*) from security_events where type = 'reuse_detected') as reuse`,
    );
    return r!;
  }

  it('connections reset: every endpoint that needs the database answers 503 at once, the rest keep working, nothing is written, service resumes by itself', async () => {
    const account = await register();
    const before = await counts();
    const beforeRow = await row(account.sid);

    const pid = server.pid;
    proxy.reset();
    const answers = {
      login: await http.post('/auth/login', { email: account.email, password: PASSWORD, transport: 'body' }),
      register: await http.post('/auth/register', { email: `new-${account.email}`, password: PASSWORD, transport: 'body' }),
      refresh: await http.post('/auth/refresh', { refreshToken: account.refreshToken }),
      me: await http.get('/auth/me', { headers: bearer(account.accessToken) }),
      logout: await http.post('/auth/logout', { refreshToken: account.refreshToken }),
      readyz: await http.get('/readyz'),
    };
    for (const [name, res] of Object.entries(answers)) {
      expectUnavailable(res);
      expect(res.ms, `${name} took ${res.ms} ms`).toBeLessThan(6_000);
    }
    // what needs no database keeps working: liveness and the keys verifiers use
    expect((await http.get('/healthz')).status).toBe(200);
    expect((await http.get('/.well-known/jwks.json')).status).toBe(200);

    await expectSameProcess(pid);
    expect(await counts()).toEqual(before);
    expect(await row(account.sid)).toEqual(beforeRow);

    proxy.restore();
    const recovered = await waitReady();
    console.info(`[outage] ready again ${recovered} ms after the database came back, same process ${server.pid}`);
    expect(server.child.exitCode).toBeNull();
    const refreshed = secrets.fromResponse(await http.post('/auth/refresh', { refreshToken: account.refreshToken }));
    expect(refreshed.status, refreshed.text).toBe(200);
    expect(await row(account.sid)).toMatchObject({ generation: 2, parent_generation: 1, revoked_at: null });
    const login = secrets.fromResponse(await http.post('/auth/login', { email: account.email, password: PASSWORD, transport: 'body' }));
    expect(login.status, login.text).toBe(200);
  });

  it('a network partition (packets dropped, connections left open): answers are 503 within a bounded time, not a hang', async () => {
    const account = await register();
    // warm the pool, so the refresh below meets an established connection that goes silent
    for (let i = 0; i < 3; i++) expect((await http.get('/readyz')).status).toBe(200);
    const beforeRow = await row(account.sid);

    const pid = server.pid;
    proxy.blackhole();
    const started = Date.now();
    const outcomes = await Promise.all(
      [
        () => http.post('/auth/refresh', { refreshToken: account.refreshToken }, { timeoutMs: 20_000 }),
        () => http.get('/readyz', { timeoutMs: 20_000 }),
        () => http.post('/auth/login', { email: account.email, password: PASSWORD, transport: 'body' }, { timeoutMs: 20_000 }),
      ].map((f) => f().catch((error: unknown) => error as NetworkError)),
    );
    const elapsed = Date.now() - started;
    console.info(`[outage] partition: ${outcomes.map((o) => (o instanceof NetworkError ? `no answer (${o.code})` : `${o.status} after ${o.ms.toFixed(0)} ms`)).join(', ')}`);
    for (const outcome of outcomes) {
      expect(outcome, 'the request hung for 20 s without an answer').not.toBeInstanceOf(NetworkError);
      expectUnavailable(outcome as HttpResponse);
    }
    expect(elapsed).toBeLessThan(20_000);
    await expectSameProcess(pid);

    proxy.restore();
    await waitReady();
    // whatever the held statements did once they flowed again, the session is whole and refreshes
    const after = await row(account.sid);
    expect(after.revoked_at).toBeNull();
    expect([beforeRow.generation, beforeRow.generation + 1]).toContain(after.generation);
    const res = secrets.fromResponse(await http.post('/auth/refresh', { refreshToken: account.refreshToken }));
    expect(res.status, res.text).toBe(200);
  }, 60_000);

  it('a refresh whose UPDATE never reaches PostgreSQL: 503, the session is exactly as before, and the retry rotates it', async () => {
    const account = await register();
    const beforeRow = await row(account.sid);
    const trigger = proxy.cutOn(`update ${schema.table('sessions')} set "generation"`, { deliver: false });

    const pid = server.pid;
    expectUnavailable(await http.post('/auth/refresh', { refreshToken: account.refreshToken }));
    await trigger.fired;
    await expectSameProcess(pid);
    expect(await row(account.sid)).toEqual(beforeRow);

    proxy.restore();
    await waitReady();
    const retry = secrets.fromResponse(await http.post('/auth/refresh', { refreshToken: account.refreshToken }));
    expect(retry.status, retry.text).toBe(200);
    expect(retry.json<{ refreshToken: string }>().refreshToken).toBe(codec.issue(account.userId, account.sid, beforeRow.salt, 2));
    expect(await row(account.sid)).toMatchObject({ generation: 2, parent_generation: 1, revoked_at: null });
  });

  it('a refresh committed by PostgreSQL whose answer is lost: 503, then the client’s retry with the same token gets the new token (no theft alarm)', async () => {
    const account = await register();
    const { salt } = await row(account.sid);
    const trigger = proxy.cutOn(`update ${schema.table('sessions')} set "generation"`, { deliver: true });

    const pid = server.pid;
    expectUnavailable(await http.post('/auth/refresh', { refreshToken: account.refreshToken }));
    await trigger.fired;
    await new Promise((r) => setTimeout(r, 700)); // PostgreSQL finishes the statement it received
    await expectSameProcess(pid);
    const mid = await row(account.sid);
    console.info(`[outage] lost answer: the session is at generation ${mid.generation} (${mid.generation === 2 ? 'committed' : 'not committed'})`);
    expect(mid.revoked_at).toBeNull();
    expect([1, 2]).toContain(mid.generation);

    proxy.restore();
    await waitReady();
    const retry = secrets.fromResponse(await http.post('/auth/refresh', { refreshToken: account.refreshToken }));
    expect(retry.status, retry.text).toBe(200);
    // a replay (committed) or a rotation (not committed): either way the client now holds generation 2
    expect(retry.json<{ refreshToken: string }>().refreshToken).toBe(codec.issue(account.userId, account.sid, salt, 2));
    expect(await row(account.sid)).toMatchObject({ generation: 2, parent_generation: 1, revoked_at: null });
    expect((await counts()).reuse).toBe('0');
  });

  it('a theft revocation cut between its two writes leaves neither; once back, the reuse is detected and recorded once', async () => {
    const account = await register();
    let current = account.refreshToken;
    for (let i = 0; i < 2; i++) {
      const res = secrets.fromResponse(await http.post('/auth/refresh', { refreshToken: current }));
      current = res.json<{ refreshToken: string }>().refreshToken;
    }
    // generation 3 now; generation 1 (older than the parent) is theft evidence
    const before = await row(account.sid);
    const trigger = proxy.cutOn(`insert into ${schema.table('security_events')}`, { deliver: false });
    const pid = server.pid;
    expectUnavailable(await http.post('/auth/refresh', { refreshToken: account.refreshToken }));
    await trigger.fired;
    await expectSameProcess(pid);
    expect(await row(account.sid)).toEqual(before);
    expect((await counts()).reuse).toBe('0');

    proxy.restore();
    await waitReady();
    const again = await http.post('/auth/refresh', { refreshToken: account.refreshToken });
    expect(again.status).toBe(401);
    expect(codeOf(again)).toBe('refresh_token_reused');
    expect(await row(account.sid)).toMatchObject({ revoked_reason: 'reuse', generation: 3 });
    expect((await counts()).reuse).toBe('1');
  });

  it('a registration cut mid-transaction leaves no user behind, so registering again succeeds (not email_taken)', async () => {
    const email = `half-${Math.random().toString(36).slice(2)}@example.com`;
    const before = await counts();
    const trigger = proxy.cutOn(`insert into ${schema.table('sessions')}`, { deliver: false });
    const pid = server.pid;
    expectUnavailable(await http.post('/auth/register', { email, password: PASSWORD, transport: 'body' }));
    await trigger.fired;
    await expectSameProcess(pid);
    expect(await counts()).toEqual(before);
    expect(await schema.query('select id from users where email = $1', [email])).toEqual([]);

    proxy.restore();
    await waitReady();
    await register(email);
  });

  it('a login cut mid-transaction creates no session; the retry creates exactly one', async () => {
    const account = await register();
    const sessionsOf = async () => (await schema.query('select id from sessions where user_id = $1', [account.userId])).length;
    expect(await sessionsOf()).toBe(1);
    const trigger = proxy.cutOn(`insert into ${schema.table('security_events')}`, { deliver: false });
    const pid = server.pid;
    expectUnavailable(await http.post('/auth/login', { email: account.email, password: PASSWORD, transport: 'body' }));
    await trigger.fired;
    await expectSameProcess(pid);
    expect(await sessionsOf()).toBe(1);

    proxy.restore();
    await waitReady();
    const login = secrets.fromResponse(await http.post('/auth/login', { email: account.email, password: PASSWORD, transport: 'body' }));
    expect(login.status, login.text).toBe(200);
    expect(await sessionsOf()).toBe(2);
  });

  it('a password change cut mid-transaction keeps the old password and the other sessions', async () => {
    const account = await register();
    const other = secrets.fromResponse(await http.post('/auth/login', { email: account.email, password: PASSWORD, transport: 'body' }));
    const otherSid = JSON.parse(Buffer.from(other.json<{ accessToken: string }>().accessToken.split('.')[1]!, 'base64url').toString()).sid as string;
    const [{ password_hash: hashBefore }] = (await schema.query<{ password_hash: string }>('select password_hash from users where id = $1', [account.userId])) as [{ password_hash: string }];
    const newPassword = secrets.password('the new outage passphrase');

    const trigger = proxy.cutOn(`insert into ${schema.table('security_events')}`, { deliver: false });
    const pid = server.pid;
    expectUnavailable(await http.post('/auth/password', { currentPassword: PASSWORD, newPassword }, { headers: bearer(account.accessToken) }));
    await trigger.fired;
    await expectSameProcess(pid);
    expect(await schema.query('select password_hash from users where id = $1', [account.userId])).toEqual([{ password_hash: hashBefore }]);
    expect(await row(otherSid)).toMatchObject({ revoked_at: null });

    proxy.restore();
    await waitReady();
    const login = secrets.fromResponse(await http.post('/auth/login', { email: account.email, password: PASSWORD, transport: 'body' }));
    expect(login.status, login.text).toBe(200);
  });

  it('the server’s log of all of this holds no credential, no SQL and no stack trace', () => {
    const log = [...logs, server.logs()].join('\n');
    expect(log).toContain('database unavailable');
    secrets.expectAbsentFrom(log, 'the outage server log');
    expectNoCredentialShapes(log, 'the outage server log');
    expect(log).not.toMatch(/insert into|update "|select "/i);
    expect(log).not.toMatch(/\n\s+at\s+\S+\s+\(|\.ts:\d+:\d+/);
  });
});
