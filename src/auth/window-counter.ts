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

/**
 * The part of an ioredis client the Redis counters use: a single `Redis` and a `Cluster` both
 * have it. Every script names exactly one key, so a cluster runs it on the master of that key's
 * slot; a script that ever needs two keys must keep them in one slot with a `{…}` hash tag.
 */
export interface RedisScripting {
  eval(script: string, numberOfKeys: number, ...keysAndArgs: (string | number)[]): Promise<unknown>;
  del(key: string): Promise<number>;
}

// One script rather than MULTI: one command, so one slot, one round trip and one 250 ms timeout
// on a cluster as on a single Redis. The expiry is set only when the key has none (the first
// hit of a window), so a window keeps the end it started with.
const INCREMENT = `
local count = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  ttl = tonumber(ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return {count, ttl}`;

// Only inside an open window: DECR on a missing key would create one without an expiry.
const DECREMENT = "if redis.call('exists', KEYS[1]) == 1 then return redis.call('decr', KEYS[1]) end return 0";

/** The same counters in Redis (a single one or a Cluster), shared by every node. */
export class RedisWindowCounter implements WindowCounter {
  constructor(
    private readonly redis: RedisScripting,
    private readonly prefix = 'tessera:',
  ) {}

  async increment(key: string, windowSeconds: number) {
    const [count, ttl] = (await this.redis.eval(INCREMENT, 1, this.prefix + key, windowSeconds * 1000)) as [number, number];
    return { count: Number(count), resetIn: Math.max(1, Math.ceil(Number(ttl) / 1000)) };
  }

  async decrement(key: string) {
    await this.redis.eval(DECREMENT, 1, this.prefix + key);
  }

  async reset(key: string) {
    await this.redis.del(this.prefix + key);
  }

  async close() {}
}
