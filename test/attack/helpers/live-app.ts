/**
 * The real app, listening on 127.0.0.1 (port 0), driven by real HTTP requests. It runs on
 * PostgreSQL when TEST_DATABASE_URL is set (CI), else on the embedded PGlite, with the
 * test helpers' frozen clock so that lifetimes can be crossed without sleeping.
 */
import type { AddressInfo } from 'node:net';
import type { Config } from '../../../src/core/config.js';
import type { Backend } from '../../helpers/backends.js';
import { newEmail, PASSWORD, startTestApp, type TestApp, type TokenBody } from '../../helpers/app.js';
import { client, type Client } from '../../faults/helpers/http.js';

export const ATTACK_BACKEND: Backend = process.env.TEST_DATABASE_URL ? 'postgres' : 'pglite';

export interface LiveApp extends TestApp {
  url: string;
  http: Client;
}

export async function startLiveApp(env: Record<string, string> = {}, rateLimits?: Partial<Config['rateLimits']>): Promise<LiveApp> {
  const t = await startTestApp(ATTACK_BACKEND, env, rateLimits);
  await t.app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = t.app.server.address() as AddressInfo;
  const url = `http://127.0.0.1:${port}`;
  return { ...t, url, http: client(url) };
}

export interface Account {
  email: string;
  password: string;
  tokens: TokenBody;
  /** user id (the access token's sub) */
  sub: string;
  /** session id of the registration session */
  sid: string;
}

export function claimsOf(accessToken: string): Record<string, unknown> & { sub: string; sid: string; iat: number; exp: number } {
  return JSON.parse(Buffer.from(accessToken.split('.')[1]!, 'base64url').toString('utf8'));
}

/** Registers over HTTP with the body transport. */
export async function registerAccount(http: Client, options: { email?: string; password?: string; headers?: Record<string, string> } = {}): Promise<Account> {
  const email = options.email ?? newEmail();
  const password = options.password ?? PASSWORD;
  const res = await http.post('/auth/register', { email, password, transport: 'body' }, { headers: options.headers });
  if (res.status !== 201) throw new Error(`register failed: ${res.status} ${res.text}`);
  const tokens = res.json<TokenBody>();
  const claims = claimsOf(tokens.accessToken);
  return { email, password, tokens, sub: claims.sub, sid: claims.sid };
}

/** Logs in over HTTP with the body transport; a new session of the same account. */
export async function loginAccount(http: Client, account: { email: string; password: string }, headers?: Record<string, string>): Promise<Account> {
  const res = await http.post('/auth/login', { email: account.email, password: account.password, transport: 'body' }, { headers });
  if (res.status !== 200) throw new Error(`login failed: ${res.status} ${res.text}`);
  const tokens = res.json<TokenBody>();
  const claims = claimsOf(tokens.accessToken);
  return { email: account.email, password: account.password, tokens, sub: claims.sub, sid: claims.sid };
}

export interface SessionRow {
  id: string;
  user_id: string;
  generation: number;
  parent_generation: number | null;
  rotated_at: Date | null;
  expires_at: Date;
  revoked_at: Date | null;
  revoked_reason: string | null;
}

export async function sessionRow(t: TestApp, id: string): Promise<SessionRow | undefined> {
  return t.db.store.db
    .selectFrom('sessions')
    .select(['id', 'user_id', 'generation', 'parent_generation', 'rotated_at', 'expires_at', 'revoked_at', 'revoked_reason'])
    .where('id', '=', id)
    .executeTakeFirst();
}

export async function eventsOf(t: TestApp, userId: string): Promise<{ type: string; session_id: string | null }[]> {
  return t.db.store.db
    .selectFrom('security_events')
    .select(['type', 'session_id'])
    .where('user_id', '=', userId)
    .orderBy('id')
    .execute();
}

/** Every session row and every event, to show an attack changed nothing. */
export async function snapshot(t: TestApp) {
  const sessions = await t.db.store.db.selectFrom('sessions').selectAll().orderBy('id').execute();
  const users = await t.db.store.db.selectFrom('users').selectAll().orderBy('id').execute();
  const events = await t.db.store.db.selectFrom('security_events').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow();
  return { sessions, users, events: Number(events.n) };
}
