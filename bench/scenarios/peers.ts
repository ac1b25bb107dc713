import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Pool, type Dispatcher } from 'undici';
import { getJson, postJson, type Step } from '../lib/load.js';

/**
 * The peers Tessera is measured beside (`npm run bench -- --peers`): better-auth, and the
 * hand-rolled Express + jsonwebtoken + bcrypt server of the usual tutorial. Each is a
 * standalone server in bench/peers/ with its own node_modules (ensurePeersInstalled),
 * on the same PostgreSQL as Tessera, in a schema the harness creates and drops.
 * bench/peers/README.md says what each request does in the database.
 */

/** bench/peers/, where the servers and their package.json live. */
export const PEERS_DIR = fileURLToPath(new URL('../peers/', import.meta.url));

/** What bench/peers/package.json depends on: all present means installed. */
const PEER_DEPENDENCIES = ['better-auth', 'express', 'jsonwebtoken', 'bcrypt', 'pg', 'kysely'];

/**
 * Secrets, once per harness process: every server start of a peer within one run gets the
 * same ones, so the workers' tokens (and better-auth's stored, secret-encrypted JWKS key)
 * keep working when the harness starts a fresh server for each measured window.
 */
const BETTER_AUTH_SECRET = randomBytes(32).toString('base64url');
const HAND_ROLLED_JWT_SECRET = randomBytes(32).toString('base64url');

export type PeerName = 'better-auth' | 'hand-rolled';

export interface PeerServerSpec {
  command: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  readyPath: string;
}

/**
 * One worker per user: worker i signed in as emails[i]. Steps read and update their own
 * worker's slots only.
 */
export interface PeerChains {
  peer: PeerName;
  emails: string[];
  /**
   * The long-lived credential each worker presents to get a new access token.
   * hand-rolled: its opaque refresh token, replaced by every successful refresh.
   * better-auth: its session token as the bearer plugin hands it out (`set-auth-token`,
   * `<token>.<HMAC>`); it never changes, and the protected scenario presents it too.
   */
  credential: string[];
  /**
   * The newest access token each worker holds. hand-rolled: the HS256 JWT from login or
   * its last refresh (what the protected scenario presents). better-auth: the EdDSA JWT
   * from its last GET /api/auth/token (kept up to date; its protected scenario does not use it).
   */
  access: string[];
}

export interface Peer {
  name: PeerName;
  /** label used in result tables, e.g. 'peer:better-auth' */
  label: string;
  /** What "refresh" and "protected" mean for this peer, one line each, for the report. */
  describes: { refresh: string; protected: string };
  /** Creates the peer's tables in `schema` (the harness creates and drops the schema itself). */
  migrate(databaseUrl: string, schema: string): Promise<void>;
  /** How to start the server; `baseEnv` has PATH, HOME, NODE_ENV=production; this adds PORT, HOST, DATABASE_URL, DATABASE_SCHEMA, secrets. */
  server(opts: { port: number; databaseUrl: string; schema: string; baseEnv: NodeJS.ProcessEnv }): PeerServerSpec;
  /** Registers (if needed) and signs in one user per email through the running server's API; returns each worker's state. */
  signIn(origin: string, emails: string[], password: string): Promise<PeerChains>;
  /** Must update the worker's state with the returned tokens. */
  refreshStep(chains: PeerChains): Step;
  protectedStep(chains: PeerChains): Step;
}

/** Sign-ups and sign-ins at a time: each is a password hash (scrypt, bcrypt) on the server. */
const SIGN_IN_BATCH = 4;
const HOST = '127.0.0.1';

function checkSchema(schema: string): string {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) throw new Error(`peer schema must be a plain lower-case identifier, got ${JSON.stringify(schema)}`);
  return schema;
}

/** A thrown error that runLoad counts under `code`, like a transport error. */
function failure(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

/** Runs `node <script>` from bench/peers/ to completion; rejects with its output if it fails. */
function runNodeScript(script: string, env: NodeJS.ProcessEnv, timeoutMs = 60_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(PEERS_DIR, script)], { cwd: PEERS_DIR, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else reject(new Error(`${script} exited with ${signal ?? code}:\n${output.trim()}`));
    });
  });
}

/** `node bench/peers/<script>` on `port`, in `schema`, with the peer's own secrets in `extra`. */
function serverSpec(
  script: string, { port, databaseUrl, schema, baseEnv }: Parameters<Peer['server']>[0], extra: NodeJS.ProcessEnv,
): PeerServerSpec {
  return {
    command: process.execPath,
    args: [join(PEERS_DIR, script)],
    env: { ...baseEnv, PORT: String(port), HOST, DATABASE_URL: databaseUrl, DATABASE_SCHEMA: checkSchema(schema), ...extra },
    readyPath: '/readyz',
  };
}

function migrationEnv(databaseUrl: string, schema: string, extra: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    NODE_ENV: 'production',
    DATABASE_URL: databaseUrl,
    DATABASE_SCHEMA: checkSchema(schema),
    ...extra,
  };
}

/** Signs in `emails` a few at a time; `one` returns worker i's credential and access token. */
async function inBatches(
  origin: string,
  emails: string[],
  one: (pool: Dispatcher, email: string) => Promise<{ credential: string; access: string }>,
  peer: PeerName,
): Promise<PeerChains> {
  const chains: PeerChains = { peer, emails: [...emails], credential: [], access: [] };
  const pool = new Pool(origin, { connections: SIGN_IN_BATCH });
  try {
    for (let i = 0; i < emails.length; i += SIGN_IN_BATCH) {
      await Promise.all(
        emails.slice(i, i + SIGN_IN_BATCH).map(async (email, j) => {
          const { credential, access } = await one(pool, email);
          chains.credential[i + j] = credential;
          chains.access[i + j] = access;
        }),
      );
    }
  } finally {
    await pool.close();
  }
  return chains;
}

// ---------------------------------------------------------------------------------------
// better-auth

const betterAuth: Peer = {
  name: 'better-auth',
  label: 'peer:better-auth',
  describes: {
    refresh:
      'GET /api/auth/token (jwt plugin) with the bearer session token: session + user reads, a JWKS read, private-key decrypt, a new EdDSA JWT; the session token itself never rotates',
    protected:
      'GET /api/auth/get-session (bearer plugin) with the session token: session + user reads; at defaults the jwt plugin also signs a fresh JWT into set-auth-jwt on every call (JWKS read + EdDSA sign)',
  },

  async migrate(databaseUrl, schema) {
    await runNodeScript('better-auth/migrate.mjs', migrationEnv(databaseUrl, schema, { BETTER_AUTH_SECRET }));
  },

  server(opts) {
    return serverSpec('better-auth/server.mjs', opts, { BETTER_AUTH_SECRET, BETTER_AUTH_URL: `http://${HOST}:${opts.port}` });
  },

  async signIn(origin, emails, password) {
    const signInOne = async (pool: Dispatcher, email: string) => {
      const up = await postJson(pool, '/api/auth/sign-up/email', { email, password, name: email.split('@')[0] });
      // 422 USER_ALREADY_EXISTS…: registered by an earlier run of the same schema.
      if (up.status !== 200 && up.status !== 422) throw new Error(`better-auth sign-up of ${email} answered ${up.status}`);
      const res = await pool.request({
        method: 'POST',
        path: '/api/auth/sign-in/email',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ email, password }),
      });
      await res.body.text();
      const token = res.headers['set-auth-token'];
      if (res.statusCode !== 200 || typeof token !== 'string' || !token) throw new Error(`better-auth sign-in of ${email} answered ${res.statusCode} without set-auth-token`);
      return { credential: token, access: '' };
    };
    const chains = await inBatches(origin, emails, signInOne, 'better-auth');
    // The jwt plugin creates its signing key on first use: do that once, alone, before
    // any concurrent load (concurrent first uses would each create one). Then give every
    // worker its first JWT.
    const pool = new Pool(origin, { connections: SIGN_IN_BATCH });
    try {
      const token = async (i: number) => {
        const { status, json } = await getJson(pool, '/api/auth/token', { authorization: `Bearer ${chains.credential[i]}` });
        const body = json as { token?: string } | undefined;
        if (status !== 200 || !body?.token) throw new Error(`better-auth /api/auth/token for ${emails[i]} answered ${status}`);
        chains.access[i] = body.token;
      };
      if (emails.length > 0) await token(0);
      for (let i = 1; i < emails.length; i += SIGN_IN_BATCH) {
        await Promise.all(Array.from({ length: Math.min(SIGN_IN_BATCH, emails.length - i) }, (_, j) => token(i + j)));
      }
    } finally {
      await pool.close();
    }
    return chains;
  },

  refreshStep(chains) {
    return async (worker, pool) => {
      const credential = chains.credential[worker];
      if (credential === undefined) throw failure('NO_SESSION', 'no session for this worker');
      const { status, json } = await getJson(pool, '/api/auth/token', { authorization: `Bearer ${credential}` });
      if (status !== 200) return status;
      const body = json as { token?: string } | undefined;
      if (!body?.token) throw failure('NO_TOKEN', '/api/auth/token answered 200 without a token');
      chains.access[worker] = body.token;
      return status;
    };
  },

  protectedStep(chains) {
    return async (worker, pool) => {
      const credential = chains.credential[worker];
      if (credential === undefined) throw failure('NO_SESSION', 'no session for this worker');
      const { status, json } = await getJson(pool, '/api/auth/get-session', { authorization: `Bearer ${credential}` });
      // get-session answers an unknown, expired or badly signed token with 200 and `null`.
      if (status === 200 && !(json as { session?: unknown } | null | undefined)?.session) throw failure('NULL_SESSION', 'get-session answered 200 null');
      return status;
    };
  },
};

// ---------------------------------------------------------------------------------------
// hand-rolled

interface HandRolledTokens {
  accessToken?: string;
  refreshToken?: string;
}

const handRolled: Peer = {
  name: 'hand-rolled',
  label: 'peer:hand-rolled',
  describes: {
    refresh:
      'POST /api/auth/refresh: SHA-256 of the opaque token, then one transaction (UPDATE … SET revoked = true … RETURNING user_id, INSERT the new hash), then an HS256 sign',
    protected: 'GET /api/auth/me: jsonwebtoken.verify (HS256), then SELECT id, email, name FROM users by primary key',
  },

  async migrate(databaseUrl, schema) {
    await runNodeScript('hand-rolled/migrate.mjs', migrationEnv(databaseUrl, schema, {}));
  },

  server(opts) {
    return serverSpec('hand-rolled/server.mjs', opts, { JWT_SECRET: HAND_ROLLED_JWT_SECRET });
  },

  async signIn(origin, emails, password) {
    return inBatches(
      origin,
      emails,
      async (pool, email) => {
        const reg = await postJson(pool, '/api/auth/register', { email, password, name: email.split('@')[0] });
        // 409: registered by an earlier run of the same schema.
        if (reg.status !== 201 && reg.status !== 409) throw new Error(`hand-rolled register of ${email} answered ${reg.status}`);
        const { status, json } = await postJson(pool, '/api/auth/login', { email, password });
        const body = json as HandRolledTokens | undefined;
        if (status !== 200 || !body?.accessToken || !body.refreshToken) throw new Error(`hand-rolled login of ${email} answered ${status}`);
        return { credential: body.refreshToken, access: body.accessToken };
      },
      'hand-rolled',
    );
  },

  refreshStep(chains) {
    // Like Tessera's: each worker presents the token its own previous call returned, and
    // keeps its token after a failure (here a retry of a lost answer would be a 401).
    return async (worker, pool) => {
      const token = chains.credential[worker];
      if (token === undefined) throw failure('NO_SESSION', 'no session for this worker');
      const { status, json } = await postJson(pool, '/api/auth/refresh', { refreshToken: token });
      const body = json as HandRolledTokens | undefined;
      if (status === 200) {
        if (!body?.refreshToken || !body.accessToken) throw failure('NO_TOKEN', '/api/auth/refresh answered 200 without tokens');
        chains.credential[worker] = body.refreshToken;
        chains.access[worker] = body.accessToken;
      }
      return status;
    };
  },

  protectedStep(chains) {
    return async (worker, pool) => {
      const token = chains.access[worker];
      if (token === undefined) throw failure('NO_SESSION', 'no access token for this worker');
      const { status } = await getJson(pool, '/api/auth/me', { authorization: `Bearer ${token}` });
      return status;
    };
  },
};

export const PEERS: readonly Peer[] = [betterAuth, handRolled];

/**
 * Installs bench/peers/'s own dependencies (`npm ci` from its committed lockfile) unless
 * they are already there. Nothing goes into the root node_modules. Takes about 4 s with a
 * warm npm cache, about 12 s when the packages must be downloaded.
 */
export async function ensurePeersInstalled(log: (line: string) => void): Promise<void> {
  const missing = PEER_DEPENDENCIES.filter((name) => !existsSync(join(PEERS_DIR, 'node_modules', name, 'package.json')));
  if (missing.length === 0) return;
  log(`installing the peers' dependencies in bench/peers (npm ci; missing: ${missing.join(', ')})`);
  const started = Date.now();
  await new Promise<void>((resolve, reject) => {
    const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
    // Both cwd and --prefix: under `npm run bench`, npm's env names the root as the local
    // prefix (npm_config_local_prefix); the install must still land in bench/peers only.
    const child = spawn(npm, ['ci', '--prefix', PEERS_DIR, '--no-audit', '--no-fund'], {
      cwd: PEERS_DIR,
      // The harness may run with NODE_ENV=production: the peers have no dev dependencies anyway.
      env: process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGTERM'), 300_000);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(new Error(`could not run npm ci in ${PEERS_DIR}: ${error.message}`));
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else reject(new Error(`npm ci in ${PEERS_DIR} exited with ${signal ?? code}:\n${output.trim()}`));
    });
  });
  log(`peers installed in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}
