import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisWindowCounter } from '../../src/auth/window-counter.js';
import { missing } from '../helpers/skip-reason.js';

const url = process.env.TEST_REDIS_URL;

/** The Redis counters' scripts against a real Redis: the MemoryWindowCounter's rules, one key per script. */
describe.skipIf(missing(url, 'the Redis window counter needs a Redis: set TEST_REDIS_URL'))('RedisWindowCounter (TEST_REDIS_URL)', () => {
  let redis: Redis;
  let counter: RedisWindowCounter;
  const prefix = `tessera-test-${randomBytes(6).toString('hex')}:`;

  beforeAll(() => {
    redis = new Redis(url!, { maxRetriesPerRequest: 1 });
    counter = new RedisWindowCounter(redis, prefix);
  });

  afterAll(async () => {
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length) await redis.del(...keys);
    redis.disconnect();
  });

  it('counts in a window that keeps the end its first hit set', async () => {
    expect(await counter.increment('a', 60)).toEqual({ count: 1, resetIn: 60 });
    await redis.pexpire(`${prefix}a`, 10_500); // as if 49.5 s had passed
    expect(await counter.increment('a', 60)).toEqual({ count: 2, resetIn: 11 });
    expect(await redis.pttl(`${prefix}a`)).toBeLessThanOrEqual(10_500);
  });

  it('a key left without an expiry gets the window, so it cannot count forever', async () => {
    await redis.set(`${prefix}b`, '5');
    expect(await counter.increment('b', 30)).toEqual({ count: 6, resetIn: 30 });
    expect(await redis.pttl(`${prefix}b`)).toBeGreaterThan(29_000);
  });

  it('decrement takes one back inside an open window and creates nothing outside one', async () => {
    await counter.increment('c', 60);
    await counter.increment('c', 60);
    await counter.decrement('c');
    expect(await redis.get(`${prefix}c`)).toBe('1');
    await counter.decrement('missing');
    expect(await redis.exists(`${prefix}missing`)).toBe(0);
  });

  it('reset forgets the key, and the next hit opens a new window', async () => {
    await counter.increment('d', 60);
    await counter.reset('d');
    expect(await redis.exists(`${prefix}d`)).toBe(0);
    expect(await counter.increment('d', 60)).toEqual({ count: 1, resetIn: 60 });
  });
});
