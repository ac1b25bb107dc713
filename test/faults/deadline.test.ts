/**
 * One deadline per request across all its queries (SPEC §9): a database that answers slowly
 * costs a request at most the deadline (8 s), not a timeout per query. Before, with 3 s of
 * delay each way, a refresh (a read, then an update) waited for each query in turn and got
 * its answer after more than 12 s; a client with a 10 s timeout saw a timeout, not a 503.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { codeOf, client, type Client } from './helpers/http.js';
import { describeFaults, freshSchema, TEST_DATABASE_URL, type FreshSchema } from './helpers/pg-schema.js';
import { SecretBag } from './helpers/secrets.js';
import { startServer, stopAll, type ServerProcess } from './helpers/server-process.js';
import { TcpProxy } from './helpers/tcp-proxy.js';

const secrets = new SecretBag();
const PASSWORD = secrets.password('deadline test passphrase');

describeFaults('one deadline per request (through a slow TCP proxy)', () => {
  let schema: FreshSchema;
  let proxy: TcpProxy;
  let server: ServerProcess;
  let http: Client;

  beforeAll(async () => {
    schema = await freshSchema({ migrated: true });
    const pg = new URL(TEST_DATABASE_URL!);
    proxy = await TcpProxy.start({ host: pg.hostname, port: Number(pg.port || 5432) });
    server = await startServer({ ...schema.envVia('127.0.0.1', proxy.port), REFRESH_REUSE_GRACE: '60s' });
    http = client(server.url);
  }, 60_000);

  afterAll(async () => {
    await stopAll();
    await proxy?.close();
    await schema?.drop();
  });

  it('a refresh against a database 3 s away each way gets its 503 at the deadline, then works once the database is quick again', async () => {
    const reg = secrets.fromResponse(await http.post('/auth/register', { email: `deadline-${Date.now()}@example.com`, password: PASSWORD, transport: 'body' }));
    expect(reg.status, reg.text).toBe(201);
    const { refreshToken } = reg.json<{ refreshToken: string }>();

    proxy.delay(3_000);
    const started = Date.now();
    const slow = await http.post('/auth/refresh', { refreshToken }, { timeoutMs: 30_000 });
    const took = Date.now() - started;
    expect(slow.status, slow.text).toBe(503);
    expect(codeOf(slow)).toBe('service_unavailable');
    expect(Number(slow.headers['retry-after'])).toBeGreaterThan(0);
    // a bound, not a benchmark: the deadline (8 s) and some slack, well under two 6 s round trips per query
    expect(took).toBeLessThan(11_000);
    // the log names the real cause, not a bare {"type":"Error"}
    expect(server.logs()).toMatch(/"msg":"database unavailable"/);
    expect(server.logs()).toMatch(/Query read timeout|request deadline/);

    proxy.restore();
    // a timed-out query's connection is not reused; fresh ones serve at once (a replay or a rotation)
    let res = await http.post('/auth/refresh', { refreshToken });
    for (let i = 0; i < 20 && res.status === 503; i++) {
      await new Promise((r) => setTimeout(r, 500));
      res = await http.post('/auth/refresh', { refreshToken });
    }
    expect(res.status, res.text).toBe(200);
  }, 60_000);
});
