import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig, type Config } from '../../src/core/config.js';
import { buildApp } from '../../src/server/app.js';
import type { App } from '../../src/server/context.js';
import { openTestStore, type TestStore } from '../helpers/backends.js';
import { FrozenClock, newEmail, PASSWORD, TEST_SECRET } from '../helpers/app.js';
import { missing } from '../helpers/skip-reason.js';

const url = process.env.TEST_REDIS_URL;

/** Two nodes, one database, one Redis: a limit reached through one node holds on the other. */
describe.skipIf(missing(url, 'rate limits shared between nodes need a Redis: set TEST_REDIS_URL'))('rate limits shared through Redis (TEST_REDIS_URL)', () => {
  let redis: Redis;
  let db: TestStore;
  let nodes: App[];
  const prefix = `tessera-test-${randomBytes(6).toString('hex')}:`;

  beforeAll(async () => {
    redis = new Redis(url!, { maxRetriesPerRequest: 1 });
    db = await openTestStore('pglite');
    const base = loadConfig({ TESSERA_SECRET: TEST_SECRET, LOG_LEVEL: 'silent' });
    if (!base.ok) throw new Error(base.errors.join('\n'));
    const config: Config = { ...base.config, rateLimits: { ...base.config.rateLimits, loginFailuresPerAccountIp: 2, registerPerIp: 3 } };
    const clock = new FrozenClock();
    nodes = await Promise.all([1, 2].map(() => buildApp({ config, store: db.store, secret: TEST_SECRET, clock: clock.now, redis, redisPrefix: prefix })));
  });

  afterAll(async () => {
    await Promise.all(nodes.map((n) => n.close()));
    await db.close();
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length) await redis.del(...keys);
    redis.disconnect();
  });

  it('counts login failures across nodes', async () => {
    const email = newEmail();
    const [a, b] = nodes as [App, App];
    await a.inject({ method: 'POST', url: '/auth/register', payload: { email, password: PASSWORD } });
    const wrong = { email, password: 'not the password' };
    expect((await a.inject({ method: 'POST', url: '/auth/login', payload: wrong })).statusCode).toBe(401);
    expect((await b.inject({ method: 'POST', url: '/auth/login', payload: wrong })).statusCode).toBe(401);
    const third = await a.inject({ method: 'POST', url: '/auth/login', payload: { email, password: PASSWORD } });
    expect(third.statusCode).toBe(429);
    expect(third.json().code).toBe('rate_limited');
    expect(Number(third.headers['retry-after'])).toBeGreaterThan(0);
    expect(await redis.keys(`${prefix}*`)).not.toHaveLength(0);
  });

  it('counts per-IP requests across nodes', async () => {
    const [a, b] = nodes as [App, App];
    const statuses: number[] = [];
    for (const node of [a, b, a, b]) {
      const res = await node.inject({ method: 'POST', url: '/auth/register', payload: { email: newEmail(), password: PASSWORD }, remoteAddress: '10.9.8.7' });
      statuses.push(res.statusCode);
    }
    // the register test above spent one of 127.0.0.1's, not 10.9.8.7's
    expect(statuses).toEqual([201, 201, 201, 429]);
  });
});
