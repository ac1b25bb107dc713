import type { Redis } from 'ioredis';

/**
 * Fixed-window counters for the limits @fastify/rate-limit cannot express: those
 * that count only failures (login failures per account and IP, per account) and
 * those that count only genuine refresh tokens (per session, so forged tokens
 * cannot spend a victim's budget). In memory per process, or in Redis when
 * REDIS_URL is set so that every node shares them.
 */
export interface WindowCounter {
  /** The count in the current window and the seconds until it resets. */
  get(key: string, windowSeconds: number): Promise<{ count: number; resetIn: number }>;
  /** Adds one and returns the new count. */
  increment(key: string, windowSeconds: number): Promise<{ count: number; resetIn: number }>;
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

  async get(key: string, windowSeconds: number) {
    return this.#read(key, windowSeconds);
  }

  async increment(key: string, windowSeconds: number) {
    const w = this.#read(key, windowSeconds);
    this.#windows.set(key, { count: w.count + 1, resetAt: this.now() + w.resetIn * 1000 });
    return { count: w.count + 1, resetIn: w.resetIn };
  }

  async reset(key: string) {
    this.#windows.delete(key);
  }

  async close() {
    clearInterval(this.#sweeper);
  }

  #read(key: string, windowSeconds: number) {
    const t = this.now();
    const w = this.#windows.get(key);
    if (!w || w.resetAt <= t) return { count: 0, resetIn: windowSeconds };
    return { count: w.count, resetIn: Math.max(1, Math.ceil((w.resetAt - t) / 1000)) };
  }
}

/** The same counters in Redis: INCR, and an expiry set only by the first hit of a window. */
export class RedisWindowCounter implements WindowCounter {
  constructor(
    private readonly redis: Redis,
    private readonly prefix = 'tessera:',
  ) {}

  async get(key: string, windowSeconds: number) {
    const [count, ttl] = await Promise.all([this.redis.get(this.prefix + key), this.redis.pttl(this.prefix + key)]);
    return toWindow(Number(count ?? 0), ttl, windowSeconds);
  }

  async increment(key: string, windowSeconds: number) {
    const k = this.prefix + key;
    const results = await this.redis.multi().incr(k).pexpire(k, windowSeconds * 1000, 'NX').pttl(k).exec();
    if (!results) throw new Error('redis transaction aborted');
    return toWindow(Number(results[0]?.[1] ?? 0), Number(results[2]?.[1] ?? -1), windowSeconds);
  }

  async reset(key: string) {
    await this.redis.del(this.prefix + key);
  }

  async close() {}
}

function toWindow(count: number, ttlMs: number, windowSeconds: number) {
  return ttlMs > 0 ? { count, resetIn: Math.max(1, Math.ceil(ttlMs / 1000)) } : { count: 0, resetIn: windowSeconds };
}
