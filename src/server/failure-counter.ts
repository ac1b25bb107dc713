/**
 * Fixed-window counters for limits that count only failures (login failures per
 * account and IP, per account), which @fastify/rate-limit cannot express since it
 * counts every request. In memory, per process; a shared store can implement the
 * same interface.
 */
export interface FailureCounter {
  /** The count in the current window and the seconds until it resets. */
  get(key: string, windowSeconds: number): Promise<{ count: number; resetIn: number }>;
  /** Adds one failure and returns the new count. */
  increment(key: string, windowSeconds: number): Promise<{ count: number; resetIn: number }>;
  /** Forgets a key, e.g. after a successful login. */
  reset(key: string): Promise<void>;
}

export class MemoryFailureCounter implements FailureCounter {
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
    const next = { count: w.count + 1, resetAt: this.now() + w.resetIn * 1000 };
    this.#windows.set(key, next);
    return { count: next.count, resetIn: w.resetIn };
  }

  async reset(key: string) {
    this.#windows.delete(key);
  }

  close() {
    clearInterval(this.#sweeper);
  }

  #read(key: string, windowSeconds: number) {
    const t = this.now();
    const w = this.#windows.get(key);
    if (!w || w.resetAt <= t) return { count: 0, resetIn: windowSeconds };
    return { count: w.count, resetIn: Math.max(1, Math.ceil((w.resetAt - t) / 1000)) };
  }
}
