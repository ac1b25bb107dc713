/**
 * SIGTERM (SPEC §9: "stops accepting, finishes in-flight requests (at most 10 s), then exits
 * 0"; issue 10 item 5), on real `tessera serve` processes:
 *
 * - under load from 16 keep-alive connections doing refreshes and logins, every request
 *   written before the signal gets a complete HTTP response (no reset, no hang-up), and the
 *   process exits 0 soon after;
 * - requests held in PostgreSQL by a lock when the signal arrives are finished (and
 *   committed) once the lock goes, while new connections are already refused;
 * - a request that cannot finish (a client that stops sending its body) does not keep the
 *   process alive past the 10 s grace: it exits 0 anyway, with a warning.
 */
import { request, Agent } from 'node:http';
import { connect } from 'node:net';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { client } from './helpers/http.js';
import { describeFaults, freshSchema, TEST_DATABASE_URL, type FreshSchema } from './helpers/pg-schema.js';
import { SecretBag } from './helpers/secrets.js';
import { startServer, stopAll, type ServerProcess } from './helpers/server-process.js';

const secrets = new SecretBag();
const PASSWORD = secrets.password('shutdown test passphrase');
const SHUTDOWN_LINE = 'SIGTERM received: finishing in-flight requests, then exiting';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One request of the load, with when its bytes were handed to a connected socket and how it ended. */
interface Outcome {
  kind: 'refresh' | 'login';
  /** performance.now() when the whole request was written to a connected socket; undefined if it never was. */
  sentAt?: number;
  doneAt: number;
  status?: number;
  text?: string;
  /** A failure below HTTP: ECONNREFUSED, ECONNRESET, socket hang up, ETIMEDOUT. */
  error?: string;
}

function send(agent: Agent | false, port: number, kind: Outcome['kind'], body: unknown, timeoutMs = 15_000): Promise<Outcome> {
  const payload = JSON.stringify(body);
  return new Promise((resolve) => {
    let sentAt: number | undefined;
    let settled = false;
    const settle = (o: Omit<Outcome, 'kind' | 'sentAt' | 'doneAt'>) => {
      if (settled) return;
      settled = true;
      resolve({ kind, sentAt, doneAt: performance.now(), ...o });
    };
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path: `/auth/${kind}`,
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(payload)) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => settle({ status: res.statusCode, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', (e: NodeJS.ErrnoException) => settle({ error: e.code ?? e.message }));
        res.on('aborted', () => settle({ error: 'response aborted' }));
      },
    );
    // "sent": the last byte handed to a connected socket (for a socket still connecting, when it connects)
    req.on('finish', () => {
      const socket = req.socket!;
      if (!socket.connecting) sentAt = performance.now();
      else socket.once('connect', () => (sentAt = performance.now()));
    });
    req.setTimeout(timeoutMs, () => req.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })));
    req.on('error', (e: NodeJS.ErrnoException) => settle({ error: e.code ?? e.message }));
    req.end(payload);
  });
}

/** Whether a new TCP connection to `port` is accepted, or the error code it got. */
function tryConnect(port: number): Promise<'accepted' | string> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.setTimeout(5_000, () => socket.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })));
    socket.once('connect', () => {
      socket.destroy();
      resolve('accepted');
    });
    socket.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
  });
}

describeFaults('Graceful shutdown on SIGTERM', () => {
  let schema: FreshSchema;

  beforeAll(async () => {
    schema = await freshSchema({ migrated: true });
  }, 60_000);

  afterAll(async () => {
    await stopAll();
    await schema?.drop();
  }, 30_000);

  async function exitOf(server: ServerProcess, withinMs: number) {
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), withinMs)));
    const result = await Promise.race([server.exited, timedOut]);
    clearTimeout(timer);
    return { result, at: performance.now() };
  }

  async function register(server: ServerProcess) {
    const email = `shutdown-${randomBytes(4).toString('hex')}@example.com`;
    const res = secrets.fromResponse(await client(server.url).post('/auth/register', { email, password: PASSWORD, transport: 'body' }));
    expect(res.status, res.text).toBe(201);
    const body = res.json<{ refreshToken: string; accessToken: string }>();
    const sid = JSON.parse(Buffer.from(body.accessToken.split('.')[1]!, 'base64url').toString()).sid as string;
    return { email, sid, refreshToken: body.refreshToken };
  }

  it('under load from 16 keep-alive connections: every request sent before the signal gets a complete answer, then exit 0', async () => {
    const server = await startServer(schema.env);
    const REFRESHERS = 12;
    const LOGINS = 4;
    const accounts = await Promise.all(Array.from({ length: REFRESHERS }, () => register(server)));

    const agent = new Agent({ keepAlive: true, maxSockets: REFRESHERS + LOGINS });
    const outcomes: Outcome[] = [];
    let signalAt = Infinity;
    let stopAt = Infinity;
    const worker = async (kind: Outcome['kind'], account: (typeof accounts)[number]) => {
      while (performance.now() < stopAt) {
        const body = kind === 'refresh' ? { refreshToken: account.refreshToken } : { email: account.email, password: PASSWORD, transport: 'body' };
        const o = await send(agent, server.port, kind, body);
        outcomes.push(o);
        if (o.status === 200 && kind === 'refresh') account.refreshToken = JSON.parse(o.text!).refreshToken;
        if (o.status === 200) secrets.fromResponse({ status: 200, headers: {}, text: o.text!, ms: 0, json: () => JSON.parse(o.text!) });
        // a failure below HTTP ends this connection's loop (after the signal: the listener is gone)
        if (o.error) return;
      }
    };
    const workers = [
      ...accounts.map((a) => worker('refresh', a)),
      ...Array.from({ length: LOGINS }, (_, i) => worker('login', accounts[i]!)),
    ];

    await sleep(2_500);
    const answeredBefore = outcomes.length;
    signalAt = performance.now();
    server.child.kill('SIGTERM');
    stopAt = signalAt + 13_000; // a bound: the workers stop by then whatever happens
    const exit = await exitOf(server, 13_000);
    await Promise.all(workers);
    agent.destroy();

    const before = outcomes.filter((o) => o.sentAt !== undefined && o.sentAt < signalAt);
    const inFlight = before.filter((o) => o.doneAt > signalAt);
    const after = outcomes.filter((o) => !before.includes(o));
    const tally = (list: Outcome[]) =>
      Object.entries(list.reduce<Record<string, number>>((t, o) => ({ ...t, [`${o.kind} ${o.error ?? o.status}`]: (t[`${o.kind} ${o.error ?? o.status}`] ?? 0) + 1 }), {}))
        .map(([k, n]) => `${k}×${n}`)
        .join(', ');
    console.info(
      `[shutdown] ${answeredBefore} answered before the signal; ${inFlight.length} in flight at it (${tally(inFlight)}); ` +
        `after it: ${tally(after) || 'none'} (failures sent at ${after.filter((o) => o.error).map((o) => (o.sentAt === undefined ? 'never' : `+${(o.sentAt - signalAt).toFixed(1)} ms`)).join(', ') || '-'}); exit ${exit.result === 'timeout' ? 'timed out' : `${exit.result.code ?? exit.result.signal} after ${(exit.at - signalAt).toFixed(0)} ms`}`,
    );

    expect(exit.result, `no exit within 13 s of SIGTERM:\n${server.logs().split('\n').slice(-15).join('\n')}`).not.toBe('timeout');
    expect(exit.result).toEqual({ code: 0, signal: null });
    expect(exit.at - signalAt).toBeLessThan(11_000);

    expect(answeredBefore).toBeGreaterThan(16);
    expect(inFlight.length, 'no request was in flight at the signal: the load did not overlap it').toBeGreaterThan(0);
    // everything sent before the signal: a complete answer, and a successful one (the pools close only after)
    expect(before.filter((o) => o.error).map((o) => `${o.kind}: ${o.error}`)).toEqual([]);
    expect(before.filter((o) => o.status !== 200).map((o) => `${o.kind}: ${o.status} ${o.text}`)).toEqual([]);
    // after it: answered (with Connection: close), or refused at connect; never a hang, never a reset
    for (const o of after) {
      if (o.error) expect(o.error).toBe('ECONNREFUSED');
    }
    expect(await tryConnect(server.port)).toBe('ECONNREFUSED');

    // (booleans: a failure should not print the whole load's log)
    const log = server.logs();
    expect(log.includes(SHUTDOWN_LINE), `no "${SHUTDOWN_LINE}" line`).toBe(true);
    expect(/"msg":"stopped"/.test(log), 'no "stopped" line').toBe(true);
    expect(log.includes('exiting anyway'), 'the grace ran out').toBe(false);
    expect(log.includes('unhandled error'), 'an unhandled error').toBe(false);
  }, 120_000);

  it('requests waiting in PostgreSQL at the signal are finished and committed, while new connections are refused', async () => {
    const server = await startServer(schema.env);
    const accounts = await Promise.all(Array.from({ length: 3 }, () => register(server)));

    // an open transaction holds the sessions table: the server's refreshes and login wait for it
    const holder = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await holder.connect();
    let released = false;
    try {
      await holder.query('begin');
      await holder.query(`lock table ${schema.table('sessions')} in access exclusive mode`);
      const pending = [
        ...accounts.map((a) => send(false, server.port, 'refresh', { refreshToken: a.refreshToken }, 30_000)),
        send(false, server.port, 'login', { email: accounts[0]!.email, password: PASSWORD, transport: 'body' }, 30_000),
      ];
      // watched from another connection: inside a transaction, pg_stat_activity is a snapshot taken at its first read
      for (const deadline = Date.now() + 15_000; ; await sleep(50)) {
        const rows = await schema.query<{ n: number }>(
          "select count(*)::int as n from pg_stat_activity where wait_event_type = 'Lock' and query like $1",
          [`%${schema.name}%`],
        );
        if (rows[0]!.n >= pending.length) break;
        if (Date.now() > deadline) {
          const activity = await schema.query(
            'select pid, state, wait_event_type, wait_event, left(query, 120) as query from pg_stat_activity where query like $1',
            [`%${schema.name}%`],
          );
          throw new Error(`only ${rows[0]!.n} of ${pending.length} requests reached the lock:\n${JSON.stringify(activity, null, 1)}\n${server.logs().split('\n').slice(-10).join('\n')}`);
        }
      }

      const signalAt = performance.now();
      server.child.kill('SIGTERM');
      // the process is draining: it logged the signal, it is alive, and it accepts no new connection
      for (const deadline = Date.now() + 5_000; !server.logs().includes(SHUTDOWN_LINE); await sleep(50)) {
        if (Date.now() > deadline) throw new Error(`no shutdown line 5 s after SIGTERM:\n${server.logs().split('\n').slice(-10).join('\n')}`);
      }
      await sleep(300);
      expect(await tryConnect(server.port)).toBe('ECONNREFUSED');
      await sleep(1_200);
      expect(server.child.exitCode, 'exited with requests still in flight').toBeNull();

      await holder.query('rollback');
      released = true;
      const answers = await Promise.all(pending);
      const exit = await exitOf(server, 11_000);
      console.info(`[shutdown] held requests: ${answers.map((o) => `${o.kind} ${o.error ?? o.status}`).join(', ')}; exit after ${(exit.at - signalAt).toFixed(0)} ms`);
      expect(answers.map((o) => o.error ?? o.status)).toEqual([200, 200, 200, 200]);
      expect(exit.result).toEqual({ code: 0, signal: null });
      expect(exit.at - signalAt).toBeLessThan(11_000);
    } finally {
      if (!released) await holder.query('rollback').catch(() => {});
      await holder.end();
    }
    // what they wrote after the signal is committed: the pool closed only once they were done
    const rows = await schema.query<{ generation: number }>('select generation from sessions where id = any($1) order by id', [accounts.map((a) => a.sid)]);
    expect(rows.map((r) => r.generation)).toEqual([2, 2, 2]);
    expect(server.logs()).toMatch(/"msg":"stopped"/);
  }, 120_000);

  it('a request that never completes (its client stops sending) does not hold the process past the 10 s grace: exit 0 anyway', async () => {
    const server = await startServer(schema.env);
    // headers and half a body, then nothing: the request is in flight until the client's 30 s request timeout
    const stalled = connect({ host: '127.0.0.1', port: server.port });
    await new Promise<void>((resolve, reject) => stalled.once('connect', resolve).once('error', reject));
    stalled.on('error', () => {});
    stalled.write('POST /auth/refresh HTTP/1.1\r\nHost: tessera.test\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{"refreshToken":"tsr_');
    await sleep(500);

    const signalAt = performance.now();
    server.child.kill('SIGTERM');
    const exit = await exitOf(server, 15_000);
    stalled.destroy();
    const seconds = (exit.at - signalAt) / 1000;
    console.info(`[shutdown] with a stalled request: exit ${exit.result === 'timeout' ? 'timed out' : exit.result.code} after ${seconds.toFixed(1)} s`);
    expect(exit.result, 'still running 15 s after SIGTERM').not.toBe('timeout');
    expect(exit.result).toEqual({ code: 0, signal: null });
    expect(seconds).toBeGreaterThan(9);
    expect(seconds).toBeLessThan(11.5);
    expect(server.logs()).toContain(SHUTDOWN_LINE);
    expect(server.logs()).toContain('in-flight requests still running after 10 s; exiting anyway');
  }, 60_000);
});
