import type { LightMyRequestResponse } from 'fastify';
import { expect } from 'vitest';
import { loadConfig, type Config } from '../../src/core/config.js';
import { buildApp, type BuildOptions } from '../../src/server/app.js';
import type { App } from '../../src/server/context.js';
import { openTestStore, type Backend, type TestStore } from './backends.js';

export const TEST_SECRET = 'test-secret-that-is-at-least-32-bytes-long!';

/** A clock tests move by hand: no sleeping. */
export class FrozenClock {
  constructor(public time = new Date('2026-11-22T12:00:00Z').getTime()) {}
  now = () => new Date(this.time);
  advance(seconds: number) {
    this.time += seconds * 1000;
  }
}

export interface TestApp {
  app: App;
  config: Config;
  clock: FrozenClock;
  db: TestStore;
  close(): Promise<void>;
}

export interface TestAppOptions {
  /** A logger (pino options or instance) instead of one at LOG_LEVEL: tests that read the log. */
  logger?: BuildOptions['logger'];
  /** `false`: no outbox worker (see BuildOptions.outbox). */
  outbox?: boolean;
  /** Where the frozen clock starts (ms since the epoch), e.g. `Date.now()` for webhook signatures a receiver checks against real time. */
  clockStart?: number;
}

/**
 * The real app on a real database (PGlite in memory or a fresh PostgreSQL schema),
 * with a frozen clock. `env` overrides configuration the way operators would.
 */
export async function startTestApp(
  backend: Backend, env: Record<string, string> = {}, rateLimits?: Partial<Config['rateLimits']>, options: TestAppOptions = {},
): Promise<TestApp> {
  const result = loadConfig({ TESSERA_SECRET: TEST_SECRET, LOG_LEVEL: 'silent', PASSWORD_HASH_QUEUE: '1000', ...env });
  if (!result.ok) throw new Error(result.errors.join('\n'));
  const config: Config = { ...result.config, rateLimits: { ...result.config.rateLimits, ...rateLimits } };
  const db = await openTestStore(backend);
  const clock = new FrozenClock(options.clockStart);
  const app = await buildApp({ config, store: db.store, secret: TEST_SECRET, clock: clock.now, logger: options.logger, outbox: options.outbox });
  return {
    app, config, clock, db,
    close: async () => {
      await app.close();
      await db.close();
    },
  };
}

let counter = 0;
/** A new unique email each call. */
export function newEmail(): string {
  return `user${Date.now().toString(36)}${(counter++).toString(36)}@example.com`;
}

export const PASSWORD = 'correct horse battery staple';

/** Registers a user with the body transport and returns the token response. */
export async function register(app: App, options: { email?: string; password?: string; transport?: 'body' | 'cookie'; headers?: Record<string, string> } = {}) {
  const email = options.email ?? newEmail();
  const res = await app.inject({
    method: 'POST', url: '/auth/register', headers: options.headers,
    payload: { email, password: options.password ?? PASSWORD, transport: options.transport ?? 'body' },
  });
  if (res.statusCode !== 201) throw new Error(`register failed: ${res.statusCode} ${res.body}`);
  return { email, response: res, body: res.json() as TokenBody };
}

export async function login(app: App, email: string, options: { password?: string; transport?: 'body' | 'cookie'; headers?: Record<string, string> } = {}) {
  return app.inject({
    method: 'POST', url: '/auth/login', headers: options.headers,
    payload: { email, password: options.password ?? PASSWORD, transport: options.transport ?? 'body' },
  });
}

export async function refresh(app: App, refreshToken: string, headers?: Record<string, string>) {
  return app.inject({ method: 'POST', url: '/auth/refresh', payload: { refreshToken }, headers });
}

export interface TokenBody {
  accessToken: string;
  tokenType: 'Bearer';
  expiresIn: number;
  refreshToken?: string;
  user?: { id: string; email: string; name: string; createdAt: string };
}

/** The refresh cookie a response set, with its attributes. */
export function refreshCookie(res: LightMyRequestResponse) {
  return res.cookies.find((c) => c.name === 'tessera_refresh');
}

/** Status, media type and stable `code` of a problem+json answer. */
export function expectProblem(res: LightMyRequestResponse, status: number, code: string) {
  expect(res.statusCode, res.body).toBe(status);
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(res.json()).toMatchObject({ type: expect.any(String), title: expect.any(String), status, code });
}
