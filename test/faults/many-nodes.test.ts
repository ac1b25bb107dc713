/**
 * Many nodes, one PostgreSQL (SPEC §1: "every node is stateless; all state that must be
 * shared lives in PostgreSQL"). Three real `tessera serve` processes on different ports
 * share one schema; requests are spread across them. RATE_LIMITS=off, since per-node
 * memory counters are not what is under test here.
 *
 * The same race inside one process is in test/server/auth-flow.test.ts, and across three
 * processes calling the store directly in test/store/concurrency.test.ts; here it goes
 * through HTTP, the whole server, and separate pools.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bearer, client, codeOf, type Client, type HttpResponse } from './helpers/http.js';
import { describeFaults, freshSchema, type FreshSchema } from './helpers/pg-schema.js';
import { expectNoCredentialShapes, SecretBag } from './helpers/secrets.js';
import { startServer, stopAll, type ServerProcess } from './helpers/server-process.js';
import { RefreshTokenCodec } from '../../src/core/refresh-token.js';
import { MIGRATIONS } from '../../src/store/database.js';

const MIGRATION_COUNT = Object.keys(MIGRATIONS).length;

const secrets = new SecretBag();
const PASSWORD = secrets.password('many nodes passphrase');

function generationOf(token: string): number {
  // the token's layout, read without its MAC (parse needs no secret)
  return new RefreshTokenCodec('any secret: parse does not check the MAC').parse(token)!.generation;
}
function sidOf(accessToken: string): string {
  return JSON.parse(Buffer.from(accessToken.split('.')[1]!, 'base64url').toString()).sid as string;
}

describeFaults('three nodes, one PostgreSQL', () => {
  const allServers: ServerProcess[] = [];

  afterAll(async () => {
    await stopAll();
  });

  it('three nodes started together on an empty schema migrate it once, agree on one signing key, and all serve', async () => {
    const empty = await freshSchema();
    try {
      const started = await Promise.allSettled([0, 1, 2].map(() => startServer(empty.env)));
      for (const s of started) if (s.status === 'fulfilled') allServers.push(s.value);
      const failures = started.filter((s): s is PromiseRejectedResult => s.status === 'rejected').map((s) => String(s.reason).slice(0, 400));
      expect(failures, 'nodes that could not start').toEqual([]);
      const nodes = started.map((s) => client((s as PromiseFulfilledResult<ServerProcess>).value.url));

      // every migration applied exactly once, although the nodes started together
      expect(await empty.query('select name from kysely_migration')).toHaveLength(MIGRATION_COUNT);
      expect(await empty.query('select kid from signing_keys')).toHaveLength(1);
      const res = secrets.fromResponse(await nodes[0]!.post('/auth/register', { email: `fresh-${empty.name}@example.com`, password: PASSWORD, transport: 'body' }));
      expect(res.status, res.text).toBe(201);
      for (const node of nodes) expect((await node.get('/auth/me', { headers: bearer(res.json<{ accessToken: string }>().accessToken) })).status).toBe(200);
    } finally {
      await Promise.all(allServers.map((s) => s.stop()));
      await empty.drop();
    }
  }, 90_000);

  describe('on a shared schema', () => {
    let schema: FreshSchema;
    let servers: ServerProcess[];
    let nodes: Client[];

    beforeAll(async () => {
      schema = await freshSchema({ migrated: true });
      servers = await Promise.all([0, 1, 2].map(() => startServer(schema.env)));
      allServers.push(...servers);
      nodes = servers.map((s) => client(s.url));
      // open a few pooled connections on every node, so races below are not about connection set-up
      await Promise.all(nodes.flatMap((n) => Array.from({ length: 5 }, () => n.get('/readyz'))));
    }, 90_000);

    afterAll(async () => {
      await Promise.all((servers ?? []).map((s) => s.stop()));
      await schema?.drop();
    });

    async function register(node: Client, email: string) {
      const res = secrets.fromResponse(await node.post('/auth/register', { email, password: PASSWORD, transport: 'body' }));
      expect(res.status, res.text).toBe(201);
      const body = res.json<{ accessToken: string; refreshToken: string; user: { id: string } }>();
      return { ...body, sid: sidOf(body.accessToken) };
    }

    async function reuseEvents(): Promise<number> {
      const [r] = await schema.query<{ n: string }>(`select count(*) as n from security_events where type = 'reuse_detected'`);
      return Number(r!.n);
    }

    it('50 concurrent refreshes of one token spread over three nodes: exactly one rotation, 50 identical tokens, nothing revoked', async () => {
      const account = await register(nodes[0]!, `race-${schema.name}@example.com`);
      const results = await Promise.all(
        Array.from({ length: 50 }, (_, i) => nodes[i % 3]!.post('/auth/refresh', { refreshToken: account.refreshToken }).then(secrets.fromResponse.bind(secrets))),
      );
      expect(results.map((r) => r.status)).toEqual(Array.from({ length: 50 }, () => 200));
      const tokens = new Set(results.map((r) => r.json<{ refreshToken: string }>().refreshToken));
      expect(tokens.size).toBe(1);
      const [token] = [...tokens] as [string];
      expect(generationOf(token)).toBe(2);

      const [row] = await schema.query('select generation, parent_generation, revoked_at from sessions where id = $1', [account.sid]);
      expect(row).toEqual({ generation: 2, parent_generation: 1, revoked_at: null });
      expect(await reuseEvents()).toBe(0);
      // every access token handed out verifies on every node, and the converged token keeps rotating
      for (const [i, r] of results.slice(0, 6).entries()) {
        expect((await nodes[(i + 1) % 3]!.get('/auth/me', { headers: bearer(r.json<{ accessToken: string }>().accessToken) })).status).toBe(200);
      }
      const next = secrets.fromResponse(await nodes[2]!.post('/auth/refresh', { refreshToken: token }));
      expect(next.status).toBe(200);
      expect(generationOf(next.json<{ refreshToken: string }>().refreshToken)).toBe(3);
    }, 30_000);

    it('30 sessions (five of them with two tabs racing) refresh across the nodes for 5 s without a single error', async () => {
      const sessions = await Promise.all(
        Array.from({ length: 30 }, (_, i) => register(nodes[i % 3]!, `load-${i}-${schema.name}@example.com`)),
      );
      const clients = sessions.map((s, i) => ({ ...s, generation: 1, token: s.refreshToken, tabs: i < 5 ? 2 : 1, refreshes: 0 }));
      const errors: string[] = [];
      const deadline = Date.now() + 5_000;
      const ok = (res: HttpResponse, what: string) => {
        if (res.status !== 200) errors.push(`${what}: ${res.status} ${codeOf(res) ?? res.text.slice(0, 100)}`);
        return res.status === 200;
      };

      await Promise.all(
        clients.map(async (c, i) => {
          for (let k = 0; Date.now() < deadline; k++) {
            // one tab, or two tabs presenting the same token to two nodes at the same instant
            const answers = await Promise.all(
              Array.from({ length: c.tabs }, (_, tab) =>
                nodes[(i + k + tab) % 3]!.post('/auth/refresh', { refreshToken: c.token }).then(secrets.fromResponse.bind(secrets)),
              ),
            );
            if (!answers.every((a) => ok(a, `session ${i} refresh ${k}`))) return;
            const bodies = answers.map((a) => a.json<{ refreshToken: string; accessToken: string }>());
            if (new Set(bodies.map((b) => b.refreshToken)).size !== 1) errors.push(`session ${i}: tabs got different tokens (a fork)`);
            if (generationOf(bodies[0]!.refreshToken) !== c.generation + 1) errors.push(`session ${i}: generation ${generationOf(bodies[0]!.refreshToken)} after ${c.generation}`);
            c.token = bodies[0]!.refreshToken;
            c.generation += 1;
            c.refreshes += c.tabs;
            if (k % 5 === 4) ok(await nodes[(i + k + 2) % 3]!.get('/auth/me', { headers: bearer(bodies[0]!.accessToken) }), `session ${i} /auth/me`);
          }
        }),
      );
      const total = clients.reduce((s, c) => s + c.refreshes, 0);
      console.info(`[many-nodes] ${total} refreshes in 5 s across 3 nodes (${(total / 5).toFixed(0)}/s), ${errors.length} errors`);
      expect(errors).toEqual([]);
      expect(total).toBeGreaterThan(100);

      const rows = new Map(
        (await schema.query<{ id: string; generation: number; revoked_at: Date | null }>('select id, generation, revoked_at from sessions')).map((r) => [r.id, r]),
      );
      for (const c of clients) expect(rows.get(c.sid)).toEqual({ id: c.sid, generation: c.generation, revoked_at: null });
      expect(await reuseEvents()).toBe(0);
    }, 60_000);

    it('30 concurrent registrations of one email (in several spellings) across the nodes make exactly one account', async () => {
      const local = `zoë.race.${schema.name}`;
      const spellings = [
        `${local}@example.com`,
        `${local.toUpperCase()}@EXAMPLE.COM`,
        `  ${local}@example.com `,
        `${local.normalize('NFD')}@example.com`,
        `${local.replace('z', 'Z')}@Example.com`,
      ];
      const results = await Promise.all(
        Array.from({ length: 30 }, (_, i) =>
          nodes[i % 3]!.post('/auth/register', { email: spellings[i % spellings.length], password: PASSWORD, transport: 'body' }).then(secrets.fromResponse.bind(secrets)),
        ),
      );
      const created = results.filter((r) => r.status === 201);
      const taken = results.filter((r) => r.status === 409);
      expect(created).toHaveLength(1);
      expect(taken).toHaveLength(29);
      for (const r of taken) expect(codeOf(r)).toBe('email_taken');

      const email = `${local}@example.com`.normalize('NFC').toLowerCase();
      const users = await schema.query<{ id: string }>('select id from users where email = $1', [email]);
      expect(users).toHaveLength(1);
      const [counts] = await schema.query('select (select count(*) from sessions where user_id = $1) as sessions, (select count(*) from security_events where user_id = $1) as events', [users[0]!.id]);
      expect(counts).toEqual({ sessions: '1', events: '1' });
      expect(await schema.query("select id from users where email like 'zo%race%'")).toHaveLength(1);
    }, 30_000);

    it('no node logged a credential', () => {
      expect(secrets.size).toBeGreaterThan(100);
      for (const [i, server] of servers.entries()) {
        secrets.expectAbsentFrom(server.logs(), `node ${i + 1}'s log`);
        expectNoCredentialShapes(server.logs(), `node ${i + 1}'s log`);
      }
    });
  });
});
