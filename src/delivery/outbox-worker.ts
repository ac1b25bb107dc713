import type { ClaimedMessage, OutboxStore } from '../store/outbox-store.js';
import type { Deliverer } from './deliver-message.js';
import { DeliveryFailure, describeFailure } from './delivery-failure.js';

/** The part of a logger (pino's, Fastify's) the delivery layer writes to. */
export interface DeliveryLogger {
  info(details: object, message: string): void;
  warn(details: object, message: string): void;
  error(details: object, message: string): void;
}

export interface OutboxWorkerOptions {
  outbox: Pick<OutboxStore, 'claim' | 'delivered' | 'retryLater' | 'failed'>;
  deliverer: Deliverer;
  logger: DeliveryLogger;
  /** The only clock the worker reads (due rows, backoff, give-up, webhook timestamps); tests move it by hand. */
  clock?: () => Date;
  /** How often it looks for due rows, besides kick(). */
  pollMs?: number;
  /** Deliveries at once, at most. */
  concurrency?: number;
  /** How long a leased row stays this worker's: longer than one attempt can take. */
  leaseSeconds?: number;
  /** One attempt is abandoned after this (then retried later). */
  attemptTimeoutMs?: number;
  /** Counted from the row's creation: failures after this mark it failed. */
  giveUpAfterSeconds?: number;
  /** stop() waits this long for deliveries in flight, then cancels them: within `tessera serve`'s 10 s of grace. */
  stopTimeoutMs?: number;
  /** [0, 1): the jitter of retries; tests pass a fixed one. */
  random?: () => number;
}

export const GIVE_UP_AFTER_SECONDS = 24 * 60 * 60;

/**
 * Seconds before the next try after the `attempt`-th failure: 10 s, then doubling up to an
 * hour, each drawn from the upper half of its step (jitter: rows that failed together, when
 * a receiver went down, do not all come back in the same second).
 */
export function retryDelaySeconds(attempt: number, random: () => number = Math.random): number {
  const step = Math.min(3600, 10 * 2 ** Math.max(0, attempt - 1));
  return step * (0.5 + random() / 2);
}

/**
 * Delivers the outbox: every `pollMs` and on kick(), leases due rows (as many as it has free
 * slots) and delivers them concurrently; a delivery that ends frees its slot and looks again.
 * A failed attempt is logged at `warn` and tried again after `retryDelaySeconds`; after
 * `giveUpAfterSeconds` from its creation the row is marked failed with one `error` line.
 * Nothing escapes it: a database outage is logged once and waited out.
 *
 * @example
 * const worker = new OutboxWorker({ outbox: new OutboxStore(db), deliverer, logger }).start();
 * // after a transaction that enqueued a mail: worker.kick();
 * await worker.stop();
 */
export class OutboxWorker {
  readonly #o: Required<Omit<OutboxWorkerOptions, 'outbox' | 'deliverer' | 'logger'>> & Pick<OutboxWorkerOptions, 'outbox' | 'deliverer' | 'logger'>;
  readonly #inFlight = new Map<string, { done: Promise<void>; abort: AbortController }>();
  #timer: NodeJS.Timeout | undefined;
  #tick: Promise<void> | undefined;
  #again = false;
  #running = false;
  #databaseDown = false;

  constructor(options: OutboxWorkerOptions) {
    const o = options;
    this.#o = {
      outbox: o.outbox, deliverer: o.deliverer, logger: o.logger, clock: o.clock ?? (() => new Date()), pollMs: o.pollMs ?? 1000,
      concurrency: o.concurrency ?? 8, leaseSeconds: o.leaseSeconds ?? 120, attemptTimeoutMs: o.attemptTimeoutMs ?? 60_000,
      giveUpAfterSeconds: o.giveUpAfterSeconds ?? GIVE_UP_AFTER_SECONDS, stopTimeoutMs: o.stopTimeoutMs ?? 5_000, random: o.random ?? Math.random,
    };
  }

  start(): this {
    if (this.#running) return this;
    this.#running = true;
    this.#timer = setInterval(() => this.kick(), this.#o.pollMs).unref();
    this.kick();
    return this;
  }

  /** Looks for due rows now (after a transaction that enqueued some, or in tests after moving the clock). */
  kick(): void {
    if (!this.#running) return;
    if (this.#tick) {
      this.#again = true;
      return;
    }
    this.#tick = (async () => {
      do {
        this.#again = false;
        await this.#claimAndDeliver();
      } while (this.#again && this.#running);
    })().finally(() => (this.#tick = undefined));
  }

  /** Stops looking; waits for deliveries in flight up to `stopTimeoutMs`, then cancels them (their rows come back after the lease). */
  async stop(): Promise<void> {
    if (!this.#running) return;
    this.#running = false;
    clearInterval(this.#timer);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), this.#o.stopTimeoutMs)));
    // A lease being taken now still starts its deliveries: wait for it, then for them, all within the bound.
    const all = Promise.race([this.#tick, late]).then(() => Promise.allSettled([...this.#inFlight.values()].map((d) => d.done)));
    if ((await Promise.race([all, late])) === 'late') {
      for (const delivery of this.#inFlight.values()) delivery.abort.abort();
      // A cancelled attempt records its outcome in a moment; do not wait for one that hangs anyway.
      await Promise.race([all, new Promise((resolve) => setTimeout(resolve, 1000).unref())]);
    }
    clearTimeout(timer);
    this.#o.deliverer.close();
  }

  async #claimAndDeliver(): Promise<void> {
    const free = this.#o.concurrency - this.#inFlight.size;
    if (free <= 0) return;
    let rows: ClaimedMessage[];
    try {
      rows = await this.#o.outbox.claim(this.#o.clock(), free, this.#o.leaseSeconds, this.#o.deliverer.kinds);
    } catch (error) {
      if (!this.#databaseDown) this.#o.logger.warn({ err: { message: describeFailure(error) } }, 'outbox: cannot read the outbox; trying again every second');
      this.#databaseDown = true;
      return;
    }
    if (this.#databaseDown) this.#o.logger.info({}, 'outbox: reading the outbox again');
    this.#databaseDown = false;
    for (const row of rows) {
      const abort = new AbortController();
      const key = `${row.userId}/${row.id}`;
      const done = this.#deliver(row, abort.signal).finally(() => {
        this.#inFlight.delete(key);
        this.kick();
      });
      this.#inFlight.set(key, { done, abort });
    }
  }

  async #deliver(row: ClaimedMessage, stopping: AbortSignal): Promise<void> {
    const signal = AbortSignal.any([stopping, AbortSignal.timeout(this.#o.attemptTimeoutMs)]);
    let failure: unknown;
    try {
      await untilAborted(this.#o.deliverer.deliver(row, this.#o.clock(), signal), signal);
    } catch (error) {
      failure = error ?? new Error('failed');
    }
    try {
      if (failure === undefined) await this.#o.outbox.delivered(row.userId, row.id, this.#o.clock());
      else await this.#failed(row, failure);
    } catch (error) {
      // The lease runs out and the row is delivered again: at least once, never lost.
      this.#o.logger.warn(
        { outbox: describe(row), err: { message: describeFailure(error) } },
        `outbox: could not record the outcome of ${what(row)}; it will be tried again after its lease`,
      );
    }
  }

  async #failed(row: ClaimedMessage, error: unknown): Promise<void> {
    const reason = describeFailure(error);
    const now = this.#o.clock();
    const giveUpAt = row.createdAt.getTime() + this.#o.giveUpAfterSeconds * 1000;
    const permanent = error instanceof DeliveryFailure && error.permanent;
    if (permanent || now.getTime() >= giveUpAt) {
      await this.#o.outbox.failed(row.userId, row.id, now, reason);
      const why = permanent ? 'it cannot be delivered' : `gave up after ${Math.round(this.#o.giveUpAfterSeconds / 3600)} h`;
      this.#o.logger.error({ outbox: describe(row), reason }, `outbox: ${what(row)} failed (${why}, attempt ${row.attempts}): ${reason}`);
      return;
    }
    // The last try comes at the give-up time, not an hour past it.
    const next = new Date(Math.min(now.getTime() + retryDelaySeconds(row.attempts, this.#o.random) * 1000, giveUpAt));
    await this.#o.outbox.retryLater(row.userId, row.id, next, reason);
    const seconds = Math.max(0, Math.round((next.getTime() - now.getTime()) / 1000));
    this.#o.logger.warn({ outbox: describe(row), reason }, `outbox: could not deliver ${what(row)} (attempt ${row.attempts}): ${reason}; next try in ${seconds} s`);
  }
}

/** The log's view of a row: ids and kinds, never its recipient's data or its body. */
function describe(row: ClaimedMessage) {
  const m = row.message;
  return { id: row.id, kind: m.kind, ...(m.kind === 'mail' ? { template: m.template } : { type: m.event?.type }), attempt: row.attempts };
}

const what = (row: ClaimedMessage) =>
  row.message.kind === 'mail' ? `mail ${row.message.template}` : `webhook ${row.message.event?.type ?? ''}`.trim();

/** `work`, or a rejection as soon as `signal` aborts, whichever comes first: a delivery that ignores its signal cannot hold a slot. */
function untilAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}
