import type { AddressInfo } from 'node:net';
import { loadConfig, type Config } from '../../src/core/config.js';
import { buildApp } from '../../src/server/app.js';
import type { App } from '../../src/server/context.js';
import { freePort } from '../faults/helpers/free-port.js';
import { openTestStore, type Backend, type TestStore } from './backends.js';
import { PASSWORD, TEST_SECRET, newEmail } from './app.js';

export interface LiveIssuer {
  /** PUBLIC_URL: the issuer of its tokens, e.g. http://127.0.0.1:41234 */
  url: string;
  app: App;
  config: Config;
  db: TestStore;
  /** Registers a user (body transport) and returns the tokens. */
  signUp(email?: string): Promise<{ email: string; userId: string; sessionId: string; accessToken: string; refreshToken: string }>;
  /** Refreshes with the body transport; the new pair. */
  refresh(refreshToken: string): Promise<{ accessToken: string; refreshToken: string }>;
  /** Sets a user's roles straight in the database (what `tessera users roles` does). */
  setRoles(email: string, roles: string[]): Promise<void>;
  close(): Promise<void>;
}

/**
 * A real Tessera on a real clock, listening on loopback, for tests whose other side is
 * software of its own (resource servers, third-party JWT libraries) that checks `iat`/`exp`
 * against the wall clock and fetches the JWKS over HTTP.
 */
export async function startLiveIssuer(backend: Backend = 'pglite', env: Record<string, string> = {}): Promise<LiveIssuer> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const result = loadConfig({ TESSERA_SECRET: TEST_SECRET, LOG_LEVEL: 'silent', PASSWORD_HASH_QUEUE: '1000', PUBLIC_URL: url, RATE_LIMITS: 'off', ...env });
  if (!result.ok) throw new Error(result.errors.join('\n'));
  const config = result.config;
  const db = await openTestStore(backend);
  const app = await buildApp({ config, store: db.store, secret: TEST_SECRET });
  await app.listen({ host: '127.0.0.1', port });
  if ((app.server.address() as AddressInfo).port !== port) throw new Error('listening on an unexpected port');

  const post = async (path: string, body: unknown) => {
    const res = await fetch(url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const json = (await res.json()) as Record<string, any>;
    if (!res.ok) throw new Error(`${path}: ${res.status} ${JSON.stringify(json)}`);
    return json;
  };
  return {
    url, app, config, db,
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
      await db.store.db.updateTable('users').set({ roles }).where('email', '=', email.toLowerCase()).execute();
    },
    async close() {
      await app.close();
      await db.close();
    },
  };
}
