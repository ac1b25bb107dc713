import type { Redis } from 'ioredis';

/**
 * Fixed-window counters for the budgets of rate-limits.ts that @fastify/rate-limit cannot
 * express: attempts counted before a check and cleared or refunded on success (sign-in,
 * password change), and genuine refresh tokens only (per session, so forged tokens cannot
 * spend a victim's budget). In memory per process, or in Redis when REDIS_URL is set so
 * that every node shares them.
 */
export interface WindowCounter {
  /** Adds one and returns the count in the current window and the seconds until it ends. */
  increment(key: string, windowSeconds: number): Promise<{ count: number; resetIn: number }>;
  /** Takes one back, if the window is still open (an attempt counted up front that succeeded). */
  decrement(key: string): Promise<void>;
  /** Forgets a key, e.g. after a successful login. */
  reset(key: string): Promise<void>;
  close(): Promise<void>;
}

export class MemoryWindowCounter implements WindowCounter {
  #windows = new Map<string, { count: number; resetAt: number }>();
  #sweeper: NodeJS.Timeout;

  constructor(private readonly now: () => number = Date.now) {
    // Expired windows are dropped every minute so memory follows current attacks only.
    this.#sweeper = setInterval(() => {
      const t = this.now();
      for (const [key, w] of this.#windows) if (w.resetAt <= t) this.#windows.delete(key);
    }, 60_000);
    this.#sweeper.unref();
  }

  async increment(key: string, windowSeconds: number) {
    const t = this.now();
    const existing = this.#windows.get(key);
    // A window keeps the end it started with, however often it is hit.
    const w = existing && existing.resetAt > t ? existing : { count: 0, resetAt: t + windowSeconds * 1000 };
    w.count++;
    this.#windows.set(key, w);
    return { count: w.count, resetIn: Math.max(1, Math.ceil((w.resetAt - t) / 1000)) };
  }

  async decrement(key: string) {
    const w = this.#windows.get(key);
    if (w && w.resetAt > this.now() && w.count > 0) w.count--;
  }

  async reset(key: string) {
    this.#windows.delete(key);
  }

  async close() {
    clearInterval(this.#sweeper);
  }
}

/** The same counters in Redis: INCR, and an expiry set only by the first hit of a window. */
export class RedisWindowCounter implements WindowCounter {
  constructor(
    private readonly redis: Redis,
    private readonly prefix = 'tessera:',
  ) {}

  async increment(key: string, windowSeconds: number) {
    const k = this.prefix + key;
    const results = await this.redis.multi().incr(k).pexpire(k, windowSeconds * 1000, 'NX').pttl(k).exec();
    if (!results) throw new Error('redis transaction aborted');
    const ttl = Number(results[2]?.[1] ?? -1);
    return { count: Number(results[0]?.[1] ?? 0), resetIn: ttl > 0 ? Math.max(1, Math.ceil(ttl / 1000)) : windowSeconds };
  }

  async decrement(key: string) {
    // Only inside an open window: DECR on a missing key would create one without an expiry.
    await this.redis.eval("if redis.call('exists', KEYS[1]) == 1 then return redis.call('decr', KEYS[1]) end return 0", 1, this.prefix + key);
  }

  async reset(key: string) {
    await this.redis.del(this.prefix + key);
  }

  async close() {}
}
