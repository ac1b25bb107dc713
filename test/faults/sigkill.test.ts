/**
 * A server process killed with SIGKILL in the middle of refresh and registration traffic
 * (no shutdown hook runs, in-flight requests and transactions are cut at an arbitrary
 * point). A new process on the same PostgreSQL schema must find every session at its old
 * or its new generation, never revoked, and every account whole or absent; and each
 * client's retry with the token it still holds must succeed (SPEC §3 rules 2 and 3 exist
 * for exactly this lost response).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { client, NetworkError, type Client } from './helpers/http.js';
import { describeFaults, freshSchema, type FreshSchema } from './helpers/pg-schema.js';
import { expectNoCredentialShapes, SecretBag } from './helpers/secrets.js';
import { startServer, stopAll, type ServerProcess } from './helpers/server-process.js';
import { RefreshTokenCodec } from '../../src/core/refresh-token.js';

const secrets = new SecretBag();
const PASSWORD = secrets.password('sigkill test passphrase');
const SESSIONS = 24;
const REGISTRATIONS = 12;

function generationOf(token: string): number {
  // the token's layout, read without its MAC (parse needs no secret)
  return new RefreshTokenCodec('any secret: parse does not check the MAC').parse(token)!.generation;
}

describeFaults('SIGKILL during refresh traffic', () => {
  let schema: FreshSchema;
  const servers: ServerProcess[] = [];

  beforeAll(async () => {
    schema = await freshSchema({ migrated: true });
  }, 60_000);

  afterAll(async () => {
    await stopAll();
    await schema?.drop();
  });

  it('every session is at its old or new generation, nothing is revoked or half-registered, and every client’s retry succeeds', async () => {
    const first = await startServer(schema.env);
    servers.push(first);
    const http = client(first.url);

    // the sessions whose refresh traffic the kill interrupts
    const clients = await Promise.all(
      Array.from({ length: SESSIONS }, async (_, i) => {
        const res = secrets.fromResponse(await http.post('/auth/register', { email: `kill-${i}-${schema.name}@example.com`, password: PASSWORD, transport: 'body' }));
        expect(res.status, res.text).toBe(201);
        const body = res.json<{ refreshToken: string; accessToken: string }>();
        const sid = JSON.parse(Buffer.from(body.accessToken.split('.')[1]!, 'base64url').toString()).sid as string;
        return { sid, token: body.refreshToken, refreshes: 0, cutOff: undefined as NetworkError | undefined };
      }),
    );

    // each client refreshes in a loop, always with the newest token it received, until the server dies
    const loops = clients.map(async (c) => {
      for (;;) {
        try {
          const res = secrets.fromResponse(await http.post('/auth/refresh', { refreshToken: c.token }, { timeoutMs: 10_000 }));
          expect(res.status, res.text).toBe(200);
          c.token = res.json<{ refreshToken: string }>().refreshToken;
          c.refreshes++;
        } catch (error) {
          if (!(error instanceof NetworkError)) throw error;
          c.cutOff = error;
          return;
        }
      }
    });
    // and some registrations are in flight too (a three-statement transaction each)
    const emails = Array.from({ length: REGISTRATIONS }, (_, i) => `late-${i}-${schema.name}@example.com`);
    await new Promise((r) => setTimeout(r, 200));
    const registrations = emails.map((email, i) =>
      new Promise((r) => setTimeout(r, i * 40)).then(() => http.post('/auth/register', { email, password: PASSWORD, transport: 'body' }).then(secrets.fromResponse.bind(secrets), (e: unknown) => e)),
    );
    await new Promise((r) => setTimeout(r, 400));
    first.child.kill('SIGKILL');
    await Promise.all(loops);
    const registered = await Promise.all(registrations);
    expect((await first.exited).signal).toBe('SIGKILL');
    expect(clients.every((c) => c.cutOff !== undefined)).toBe(true);

    // the state PostgreSQL kept
    const rows = new Map(
      (await schema.query<{ id: string; generation: number; parent_generation: number | null; revoked_at: Date | null }>(
        'select id, generation, parent_generation, revoked_at from sessions',
      )).map((r) => [r.id, r]),
    );
    let applied = 0;
    for (const c of clients) {
      const sent = generationOf(c.token);
      const r = rows.get(c.sid)!;
      expect(r.revoked_at).toBeNull();
      // the request in flight either never happened or happened whole: old or new generation, nothing else
      expect([sent, sent + 1]).toContain(r.generation);
      if (r.generation === sent + 1) {
        expect(r.parent_generation).toBe(sent);
        applied++;
      }
    }
    // registrations: each account whole (user, session, event) or absent
    const users = await schema.query<{ email: string; sessions: string; events: string }>(
      `select u.email, (select count(*) from sessions s where s.user_id = u.id) as sessions,
              (select count(*) from security_events e where e.user_id = u.id and e.type = 'registered') as events
         from users u where u.email like 'late-%'`,
    );
    for (const u of users) expect(u, u.email).toMatchObject({ sessions: '1', events: '1' });
    const totalRefreshes = clients.reduce((s, c) => s + c.refreshes, 0);
    console.info(
      `[sigkill] ${totalRefreshes} refreshes before the kill; ${applied}/${SESSIONS} in-flight refreshes had been applied (lost answers), ` +
        `${SESSIONS - applied} had not; ${users.length}/${REGISTRATIONS} registrations had committed ` +
        `(answers: ${registered.map((r) => (r instanceof NetworkError ? r.code : (r as { status: number }).status)).join(', ')})`,
    );

    // a new process on the same database: every client retries with the token it holds
    const second = await startServer(schema.env);
    servers.push(second);
    const again: Client = client(second.url);
    for (const c of clients) {
      const sent = generationOf(c.token);
      const res = secrets.fromResponse(await again.post('/auth/refresh', { refreshToken: c.token }));
      expect(res.status, res.text).toBe(200);
      const next = res.json<{ refreshToken: string }>().refreshToken;
      // rotated now (the lost request never happened), replayed or reissued (it had): never a fork, never theft
      expect([sent + 1, sent + 2]).toContain(generationOf(next));
      const follow = secrets.fromResponse(await again.post('/auth/refresh', { refreshToken: next }));
      expect(follow.status, follow.text).toBe(200);
    }
    for (const email of emails) {
      const present = users.some((u) => u.email === email);
      const res = secrets.fromResponse(await again.post('/auth/register', { email, password: PASSWORD, transport: 'body' }));
      expect(res.status, `${email}: ${res.text}`).toBe(present ? 409 : 201);
    }
    const [{ reuse, revoked }] = (await schema.query<{ reuse: string; revoked: string }>(
      `select (select count(*) from security_events where type = 'reuse_detected') as reuse,
              (select count(*) from sessions where revoked_at is not null) as revoked`,
    )) as [{ reuse: string; revoked: string }];
    expect({ reuse, revoked }).toEqual({ reuse: '0', revoked: '0' });
  }, 90_000);

  it('neither process logged a credential', () => {
    expect(servers).toHaveLength(2);
    for (const [i, server] of servers.entries()) {
      secrets.expectAbsentFrom(server.logs(), `server ${i + 1}'s log`);
      expectNoCredentialShapes(server.logs(), `server ${i + 1}'s log`);
    }
  });
});
