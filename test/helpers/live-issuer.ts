import type { Config } from '../../src/core/config.js';
import { loadConfig } from '../../src/core/config.js';
import { buildApp } from '../../src/server/app.js';
import type { App } from '../../src/server/context.js';
import { freePort } from '../faults/helpers/free-port.js';
import { PASSWORD, TEST_SECRET, newEmail } from './app.js';
import { openTestStore, type Backend, type TestStore } from './backends.js';

export interface LiveServer {
  /** `http://127.0.0.1:<port>`, equal to PUBLIC_URL: the issuer of its tokens, and the Origin CSRF accepts. */
  url: string;
  app: App;
  config: Config;
  db: TestStore;
  close(): Promise<void>;
}

/**
 * The real app on a real clock, listening on 127.0.0.1, for tests whose other side checks
 * `iat`/`exp` against the wall clock or speaks real HTTP (browsers, resource servers,
 * third-party JWT libraries). `env` configures it like an operator would; as a function of the
 * port, it can name the port (a PUBLIC_URL on `localhost`, which passkeys need).
 */
export async function startLiveServer(
  backend: Backend, env: Record<string, string> | ((port: number) => Record<string, string>) = {}, rateLimits: Partial<Config['rateLimits']> = {},
): Promise<LiveServer> {
  const db = await openTestStore(backend);
  for (let attempt = 1; ; attempt++) {
    // PUBLIC_URL must be known before buildApp: pick the port first.
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const result = loadConfig({
      TESSERA_SECRET: TEST_SECRET, LOG_LEVEL: 'silent', PASSWORD_HASH_QUEUE: '1000', PORT: String(port), PUBLIC_URL: url,
      ...(typeof env === 'function' ? env(port) : env),
    });
    if (!result.ok) throw new Error(result.errors.join('\n'));
    const config: Config = { ...result.config, rateLimits: { ...result.config.rateLimits, ...rateLimits } };
    const app = await buildApp({ config, store: db.store, secret: TEST_SECRET });
    try {
      await app.listen({ port, host: '127.0.0.1' });
    } catch (error) {
      await app.close();
      // Someone took the port between picking and listening: pick again.
      if ((error as NodeJS.ErrnoException).code === 'EADDRINUSE' && attempt < 5) continue;
      await db.close();
      throw error;
    }
    return {
      url, app, config, db,
      close: async () => {
        await app.close();
        await db.close();
      },
    };
  }
}

export interface LiveIssuer extends LiveServer {
  /** Registers a user (body transport) and returns the tokens. */
  signUp(email?: string): Promise<{ email: string; userId: string; sessionId: string; accessToken: string; refreshToken: string }>;
  /** Refreshes with the body transport; the new pair. */
  refresh(refreshToken: string): Promise<{ accessToken: string; refreshToken: string }>;
  /** Sets a user's roles straight in the database (what `tessera users roles` does). */
  setRoles(email: string, roles: string[]): Promise<void>;
}

/** A live server without rate limits, with the few calls resource-server tests make of it. */
export async function startLiveIssuer(backend: Backend = 'pglite', env: Record<string, string> = {}): Promise<LiveIssuer> {
  const server = await startLiveServer(backend, { RATE_LIMITS: 'off', ...env });
  const post = async (path: string, body: unknown) => {
    const res = await fetch(server.url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const json = (await res.json()) as Record<string, any>;
    if (!res.ok) throw new Error(`${path}: ${res.status} ${JSON.stringify(json)}`);
    return json;
  };
  return {
    ...server,
    async signUp(email = newEmail()) {
      const body = await post('/auth/register', { email, password: PASSWORD, transport: 'body' });
      const claims = JSON.parse(Buffer.from(body.accessToken.split('.')[1], 'base64url').toString());
      return { email, userId: claims.sub, sessionId: claims.sid, accessToken: body.accessToken, refreshToken: body.refreshToken };
    },
    async refresh(refreshToken) {
      const body = await post('/auth/refresh', { refreshToken });
      return { accessToken: body.accessToken, refreshToken: body.refreshToken };
    },
    async setRoles(email, roles) {
      await server.db.store.db.updateTable('users').set({ roles }).where('email', '=', email.toLowerCase()).execute();
    },
  };
}
