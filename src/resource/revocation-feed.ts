import { reasonOf } from './errors.js';

/** Where a verifier writes its warnings: `console`, pino, or anything with a `warn`. */
export interface VerifierLogger {
  warn(message: string): void;
}

export interface RevocationFeedOptions {
  /** `GET` this, with `?after=CURSOR` once a cursor is known. */
  url: string;
  intervalMs: number;
  /** `'fail-closed'`: while the feed is down, every token is refused. */
  failClosed: boolean;
  logger: VerifierLogger;
}

/** `off`: no feed; `starting`: first poll in flight; `up`/`down`: how the last poll went. */
export type FeedState = 'off' | 'starting' | 'up' | 'down' | 'closed';

/** Tessera's default ACCESS_TOKEN_TTL: how long an entry is kept until a token tells us better. */
const DEFAULT_TOKEN_LIFETIME_MS = 15 * 60_000;
/** The verifier's clock tolerance: a token lives this long past its `exp`. */
const LEEWAY_MS = 60_000;
/** A poll that hangs longer than this is an outage, not a wait. */
const FETCH_TIMEOUT_MS = 5_000;

interface Page {
  entries: { sid: string; revokedAtMs: number }[];
  cursor: string;
}

/**
 * Follows Tessera's `GET /auth/revocations`: the sessions ended in
 * the last access-token lifetime, as `sid → revokedAt`. One poll at a time, every `intervalMs`
 * after the previous one ends, on an `unref()`ed timer so it never keeps a process alive.
 * An unreachable feed, a non-200 answer or a malformed body is an outage: what is known stays
 * known, and one warning is logged per outage.
 */
export class RevocationFeed {
  /** Settles (never rejects) when the first poll has answered or failed. */
  readonly ready: Promise<void>;
  readonly #options: RevocationFeedOptions;
  readonly #revoked = new Map<string, number>();
  readonly #abort = new AbortController();
  #state: FeedState = 'starting';
  #cursor: string | undefined;
  /** The longest `exp - iat` seen, in ms; undefined until a token has been verified. */
  #lifetimeMs: number | undefined;
  #timer: NodeJS.Timeout | undefined;

  constructor(options: RevocationFeedOptions) {
    this.#options = options;
    this.ready = this.#poll();
    void this.ready.then(() => this.#schedule());
  }

  get state(): FeedState {
    return this.#state;
  }

  /** Sessions currently remembered as ended. */
  get size(): number {
    return this.#revoked.size;
  }

  /** With `'fail-closed'`, whether tokens must be refused because the feed is down. */
  get refusing(): boolean {
    return this.#options.failClosed && this.#state === 'down';
  }

  /**
   * Whether a token of session `sid` issued at `iat` (seconds) was issued before its session
   * ended. A token issued after `revokedAt` passes: a session enabled again works with new tokens.
   */
  isRevoked(sid: string, iat: number): boolean {
    const revokedAtMs = this.#revoked.get(sid);
    return revokedAtMs !== undefined && iat * 1000 <= revokedAtMs;
  }

  /** Records a verified token's lifetime, which bounds how long entries must be kept. */
  noteLifetime(seconds: number): void {
    if (Number.isFinite(seconds) && seconds > 0) this.#lifetimeMs = Math.max(this.#lifetimeMs ?? 0, seconds * 1000);
  }

  close(): void {
    this.#state = 'closed';
    clearTimeout(this.#timer);
    this.#abort.abort();
  }

  #schedule(): void {
    if (this.#state === 'closed') return;
    this.#timer = setTimeout(() => void this.#poll().then(() => this.#schedule()), this.#options.intervalMs);
    this.#timer.unref();
  }

  async #poll(): Promise<void> {
    try {
      const page = await this.#fetchPage();
      if (this.#state === 'closed') return;
      this.#apply(page, Date.now());
      this.#state = 'up';
    } catch (error) {
      if (this.#state === 'closed') return;
      if (this.#state !== 'down') this.#warn(error);
      this.#state = 'down';
    }
  }

  async #fetchPage(): Promise<Page> {
    const url = new URL(this.#options.url);
    if (this.#cursor !== undefined) url.searchParams.set('after', this.#cursor);
    const response = await fetch(url, {
      headers: { accept: 'application/json' },
      redirect: 'error',
      signal: AbortSignal.any([this.#abort.signal, AbortSignal.timeout(FETCH_TIMEOUT_MS)]),
    });
    if (response.status === 400 && this.#cursor !== undefined) {
      // The issuer refuses our cursor (it is too old, or from before a restart): read the whole list again.
      await response.body?.cancel();
      this.#cursor = undefined;
      return this.#fetchPage();
    }
    if (response.status !== 200) {
      await response.body?.cancel();
      throw new Error(`it answered HTTP ${response.status}`);
    }
    return parsePage(await response.json());
  }

  #apply(page: Page, now: number): void {
    for (const { sid, revokedAtMs } of page.entries) {
      const known = this.#revoked.get(sid);
      if (known === undefined || revokedAtMs > known) this.#revoked.set(sid, revokedAtMs);
    }
    // Every token issued before `cutoff` has expired, leeway included, so its entry can go: memory
    // stays bounded by the sign-outs of one token lifetime. A lifetime longer than any seen so far
    // is learnt from the first such token; until then the default (Tessera's 15 min) applies.
    const cutoff = now - (this.#lifetimeMs ?? DEFAULT_TOKEN_LIFETIME_MS) - LEEWAY_MS;
    for (const [sid, revokedAtMs] of this.#revoked) {
      if (revokedAtMs < cutoff) this.#revoked.delete(sid);
    }
    this.#cursor = page.cursor;
  }

  #warn(error: unknown): void {
    const reason = reasonOf(error);
    const consequence = this.#options.failClosed
      ? 'refusing every token until it answers (revocations: fail-closed)'
      : `still accepting tokens, with the ${this.#revoked.size} sign-outs known so far`;
    this.#options.logger.warn(`tessera: the revocation feed ${this.#options.url} is unreachable (${reason}); ${consequence}`);
  }
}

/** The feed's body, checked whole: a page with one bad entry is refused rather than half applied. */
function parsePage(body: unknown): Page {
  const { entries, cursor } = (body ?? {}) as { entries?: unknown; cursor?: unknown };
  if (!Array.isArray(entries) || typeof cursor !== 'string') throw new Error('its answer is not {entries, cursor}');
  return {
    cursor,
    entries: entries.map((entry: { sid?: unknown; revokedAt?: unknown } | null) => {
      const revokedAtMs = typeof entry?.revokedAt === 'string' ? Date.parse(entry.revokedAt) : NaN;
      if (typeof entry?.sid !== 'string' || !Number.isFinite(revokedAtMs)) throw new Error('its answer has an entry without sid or revokedAt');
      return { sid: entry.sid, revokedAtMs };
    }),
  };
}
