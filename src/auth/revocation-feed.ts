import { createHmac, timingSafeEqual } from 'node:crypto';
import { deriveKeys, type PurposeKeys } from '../core/derive-key.js';
import { TesseraError } from '../core/errors.js';
import type { Store } from '../store/store.js';

/** A revoked-session entry as resource servers see it: no user id. */
export interface RevocationEntry {
  sid: string;
  revokedAt: Date;
}

export interface RevocationPage {
  entries: RevocationEntry[];
  /** Opaque: give it back as `after` on the next poll. */
  cursor: string;
}

/**
 * How far back a cursor reads: a revocation is dated by the clock of the node that wrote
 * it, when its transaction began, and may commit up to the request deadline (8 s) later;
 * the rest covers clock skew between nodes. An entry may come twice; none is ever skipped.
 */
export const FEED_OVERLAP_MS = 10_000;
/** Every request within this shares one read of the database, whatever the number of verifiers. */
const CACHE_MS = 250;
/** More sign-outs than this within one token lifetime are cut (and the cut said in the log by the route). */
export const FEED_MAX_ENTRIES = 50_000;
/** Entries live this long after the token lifetime (clock skew of verifiers). */
const RETAIN_EXTRA_SECONDS = 60;

export interface RevocationFeedDeps {
  store: Pick<Store, 'listRevokedSince'>;
  clock: () => Date;
  /** ACCESS_TOKEN_TTL in seconds: no entry is older than a token can live (+ 60 s). */
  accessTokenTtl: number;
  /** TESSERA_SECRET: cursors carry a MAC, so a forged one is refused. */
  secret: string;
  /** TESSERA_SECRET_PREVIOUS: cursors given out under it are still accepted. */
  secretPrevious?: string | undefined;
}

/**
 * The revocation feed (GET /auth/revocations): sessions ended or suspended within the last
 * token lifetime, so resource servers can refuse their tokens at once without asking
 * Tessera per request. One database read per node every CACHE_MS serves every caller.
 */
export class RevocationFeed {
  readonly #cursorKeys: PurposeKeys;
  #cache: { at: number; read: Promise<RevocationEntry[]> } | undefined;

  constructor(private readonly deps: RevocationFeedDeps) {
    this.#cursorKeys = deriveKeys(deps.secret, deps.secretPrevious, 'revocation-cursor');
  }

  /** Entries revoked after `after` (less the overlap), or in the whole window without it. */
  async page(after: string | undefined): Promise<RevocationPage> {
    const now = this.deps.clock();
    const windowStart = now.getTime() - (this.deps.accessTokenTtl + RETAIN_EXTRA_SECONDS) * 1000;
    const since = after === undefined ? windowStart : Math.max(windowStart, this.#cursorTime(after) - FEED_OVERLAP_MS);
    const entries = (await this.#entries(now, windowStart)).filter((e) => e.revokedAt.getTime() > since);
    return { entries, cursor: this.#cursor(now.getTime()) };
  }

  #entries(now: Date, windowStart: number): Promise<RevocationEntry[]> {
    if (this.#cache && now.getTime() - this.#cache.at < CACHE_MS && now.getTime() >= this.#cache.at) return this.#cache.read;
    const read = this.deps.store
      .listRevokedSince(new Date(windowStart), now, FEED_MAX_ENTRIES)
      .then((rows) => rows.map((r) => ({ sid: r.sessionId, revokedAt: r.revokedAt })));
    this.#cache = { at: now.getTime(), read };
    // A failed read is not kept: the next request tries again.
    read.catch(() => {
      if (this.#cache?.read === read) this.#cache = undefined;
    });
    return read;
  }

  #cursor(ms: number): string {
    const time = ms.toString(36);
    return `${time}.${this.#mac(time, this.#cursorKeys.current)}`;
  }

  #cursorTime(cursor: string): number {
    const [time = '', mac = '', extra] = cursor.split('.');
    const { current, previous } = this.#cursorKeys;
    // constant-time: a timing oracle would let a forger find the MAC byte by byte
    const macIs = (key: Buffer) => {
      const expected = Buffer.from(this.#mac(time, key));
      return mac.length === expected.length && timingSafeEqual(Buffer.from(mac), expected);
    };
    // A cursor given out before TESSERA_SECRET changed is tried under the previous secret only after the current one failed.
    const genuine = extra === undefined && /^[0-9a-z]{1,12}$/.test(time) && (macIs(current) || (previous !== undefined && macIs(previous)));
    if (!genuine) throw new TesseraError('invalid_request', { detail: 'The cursor is not one this feed gave out; start again without `after`' });
    return Number.parseInt(time, 36);
  }

  #mac(text: string, key: Buffer): string {
    return createHmac('sha256', key).update(text).digest('base64url').slice(0, 22);
  }
}
