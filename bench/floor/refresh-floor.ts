import { createPrivateKey, createPublicKey, timingSafeEqual, type KeyObject } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { join } from 'node:path';
import {
  issueRefreshToken, mac, parseRefreshToken, refreshRoot, sessionKey, signAccessToken, verifyAccessToken, type JwtOptions,
} from './bare-jwt.js';

/**
 * The floor: the least any server could do for one refresh on this machine. Bare
 * node:http, one connection pool (or the embedded PGlite), named prepared statements,
 * HMAC and Ed25519 from node:crypto, hand-written JSON. It serves the same tokens as
 * Tessera (same secret, same signing key, same formats), so a worker's refresh chain
 * carries over between the two and both answer the same requests on the same rows.
 *
 * FLOOR_MODE=one-statement (the issue's floor): one UPDATE … RETURNING performs the
 *   rotation; the MAC is checked on the salt it returns. A real server may not do this
 *   (a forged token would move the session before its MAC is checked): it is a lower
 *   bound, not a design.
 * FLOOR_MODE=read-update: the least a server that follows SPEC §2 can do: a primary-key
 *   read for the salt, the MAC check, then one conditional UPDATE — Tessera's shape.
 *
 * Also GET /auth/me: verify the access token, one primary-key read (the floor of the
 * protected-route scenario). Env: PORT, DATABASE_URL (PostgreSQL) and DATABASE_SCHEMA, or DATA_DIR (PGlite),
 * TESSERA_SECRET, SIGNING_KEYS, PUBLIC_URL, ACCESS_TOKEN_TTL (s), FLOOR_MODE, FLOOR_POOL,
 * FLOOR_PREPARED=0 (unnamed statements, as Kysely sends them).
 */

const env = process.env;
const mode = env.FLOOR_MODE === 'read-update' ? 'read-update' : 'one-statement';
const prepared = env.FLOOR_PREPARED !== '0';
const issuer = env.PUBLIC_URL ?? 'http://localhost:3000';
const jwt: JwtOptions = { issuer, audience: issuer, ttl: Number(env.ACCESS_TOKEN_TTL ?? 900) };
const IDLE_TTL_MS = 7 * 86_400_000;
const root = refreshRoot(required('TESSERA_SECRET'));
const jwk = (JSON.parse(required('SIGNING_KEYS')) as { keys: { kty: string; crv: string; x: string; d: string; kid: string }[] }).keys[0]!;
const signingKey = { kid: jwk.kid, privateKey: createPrivateKey({ key: jwk, format: 'jwk' }) };
const publicKeys = new Map<string, KeyObject>([[jwk.kid, createPublicKey({ key: { kty: jwk.kty, crv: jwk.crv, x: jwk.x }, format: 'jwk' })]]);

function required(name: string): string {
  const value = env[name];
  if (!value) throw new Error(`${name} is required`);
  return value;
}

/** The tables, named in the run's schema as Tessera names them (DATABASE_SCHEMA). */
const sessions = env.DATABASE_SCHEMA ? `${env.DATABASE_SCHEMA}.sessions` : 'sessions';
const users = env.DATABASE_SCHEMA ? `${env.DATABASE_SCHEMA}.users` : 'users';

type Row = Record<string, unknown>;
type Query = (name: string, text: string, values: unknown[]) => Promise<{ rows: Row[]; rowCount: number }>;

async function openQuery(): Promise<Query> {
  if (env.DATABASE_URL) {
    const { default: pg } = await import('pg');
    const pool = new pg.Pool({ connectionString: env.DATABASE_URL, max: Number(env.FLOOR_POOL ?? 10) });
    return async (name, text, values) => {
      const result = await pool.query(prepared ? { name, text, values } : { text, values });
      return { rows: result.rows as Row[], rowCount: result.rowCount ?? 0 };
    };
  }
  const { PGlite } = await import('@electric-sql/pglite');
  const db = await PGlite.create(join(required('DATA_DIR'), 'pgdata'));
  return async (_name, text, values) => {
    const result = await db.query<Row>(text, values);
    return { rows: result.rows, rowCount: result.affectedRows ?? result.rows.length };
  };
}

const ROTATE = `
  update ${sessions} s
     set parent_generation = s.generation, generation = s.generation + 1, rotated_at = $3, last_used_at = $3,
         expires_at = least($4::timestamptz, s.absolute_expires_at), ip = $5, user_agent = $6
    from ${users} u
   where s.user_id = $7 and s.id = $1 and s.generation = $2 and s.revoked_at is null and s.expires_at > $3 and s.absolute_expires_at > $3
     and u.id = $7 and u.disabled_at is null
  returning s.salt, s.generation, u.id as user_id, u.email, u.name, u.created_at`;

const READ = `
  select s.salt, s.generation, s.revoked_at, s.expires_at, s.absolute_expires_at, u.disabled_at,
         u.id as user_id, u.email, u.name, u.created_at
    from ${sessions} s join ${users} u on u.id = s.user_id
   where s.user_id = $2 and u.id = $2 and s.id = $1`;

const UPDATE = `
  update ${sessions}
     set parent_generation = generation, generation = generation + 1, rotated_at = $3, last_used_at = $3,
         expires_at = $4, ip = $5, user_agent = $6
   where user_id = $7 and id = $1 and generation = $2 and revoked_at is null`;

const ME = `
  select u.id, u.email, u.name, u.created_at
    from ${sessions} s join ${users} u on u.id = s.user_id
   where s.user_id = $3 and u.id = $3 and s.id = $1 and s.revoked_at is null and s.expires_at > $2 and s.absolute_expires_at > $2 and u.disabled_at is null`;

function send(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, {
    'content-type': status < 300 ? 'application/json; charset=utf-8' : 'application/problem+json',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
  });
  res.end(body);
}

const UNAUTHORIZED = '{"type":"about:blank","title":"Unauthorized","status":401,"code":"invalid_refresh_token"}';

function userJson(row: Row): string {
  return JSON.stringify({ id: row.user_id ?? row.id, email: row.email, name: row.name, createdAt: (row.created_at as Date).toISOString() });
}

async function refresh(query: Query, req: IncomingMessage, res: ServerResponse, body: string): Promise<void> {
  let token: unknown;
  try {
    token = (JSON.parse(body) as { refreshToken?: unknown }).refreshToken;
  } catch {
    return send(res, 400, '{"status":400,"code":"invalid_request"}');
  }
  const parsed = parseRefreshToken(token);
  if (!parsed) return send(res, 401, UNAUTHORIZED);
  const now = Date.now();
  const nowDate = new Date(now);
  const ip = req.socket.remoteAddress ?? null;
  const ua = req.headers['user-agent'] ?? null;
  let row: Row;
  if (mode === 'one-statement') {
    const result = await query('floor_rotate', ROTATE, [parsed.sessionId, parsed.generation, nowDate, new Date(now + IDLE_TTL_MS), ip, ua, parsed.userId]);
    if (result.rowCount !== 1) return send(res, 401, UNAUTHORIZED);
    row = result.rows[0]!;
  } else {
    const read = await query('floor_read', READ, [parsed.sessionId, parsed.userId]);
    const found = read.rows[0];
    if (!found) return send(res, 401, UNAUTHORIZED);
    row = found;
  }
  const key = sessionKey(root, Buffer.from(row.salt as Uint8Array));
  if (!timingSafeEqual(mac(key, parsed.payload), parsed.mac)) return send(res, 401, UNAUTHORIZED);
  if (mode === 'read-update') {
    const absolute = (row.absolute_expires_at as Date).getTime();
    const live = row.generation === parsed.generation && row.revoked_at === null && row.disabled_at === null &&
      (row.expires_at as Date).getTime() > now && absolute > now;
    if (!live) return send(res, 401, UNAUTHORIZED);
    const expires = new Date(Math.min(now + IDLE_TTL_MS, absolute));
    const updated = await query('floor_update', UPDATE, [parsed.sessionId, parsed.generation, nowDate, expires, ip, ua, parsed.userId]);
    if (updated.rowCount !== 1) return send(res, 401, UNAUTHORIZED);
  }
  const generation = parsed.generation + 1;
  const refreshToken = issueRefreshToken(key, parsed, generation);
  const accessToken = signAccessToken(signingKey, row.user_id as string, parsed.sessionId, jwt, now);
  send(res, 200, `{"accessToken":"${accessToken}","tokenType":"Bearer","expiresIn":${jwt.ttl},"refreshToken":"${refreshToken}","user":${userJson(row)}}`);
}

async function me(query: Query, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const header = req.headers.authorization;
  const token = header?.startsWith('Bearer ') ? header.slice(7) : undefined;
  const now = Date.now();
  const claims = token ? verifyAccessToken(token, publicKeys, jwt, now) : undefined;
  if (!claims) return send(res, 401, '{"status":401,"code":"unauthorized"}');
  const result = await query('floor_me', ME, [claims.sid, new Date(now), claims.sub]);
  const row = result.rows[0];
  if (!row || row.id !== claims.sub) return send(res, 401, '{"status":401,"code":"unauthorized"}');
  send(res, 200, `{"user":${userJson(row)}}`);
}

async function main(): Promise<void> {
  const query = await openQuery();
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const work =
        req.method === 'POST' && req.url === '/auth/refresh' ? refresh(query, req, res, Buffer.concat(chunks).toString())
        : req.method === 'GET' && req.url === '/auth/me' ? me(query, req, res)
        : req.url === '/readyz' ? query('floor_ping', 'select 1', []).then(() => send(res, 200, '{"status":"ready"}'))
        : Promise.resolve(send(res, 404, '{"status":404}'));
      work.catch((error: Error) => {
        process.stderr.write(`floor: ${error.message}\n`);
        if (!res.headersSent) send(res, 500, '{"status":500}');
      });
    });
  });
  server.keepAliveTimeout = 65_000;
  server.listen(Number(env.PORT ?? 3000), env.HOST ?? '127.0.0.1');
  const stop = () => {
    server.close(() => process.exit(0));
    server.closeIdleConnections();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((error) => {
  process.stderr.write(`floor: ${(error as Error).stack}\n`);
  process.exit(1);
});
