import { createHmac, timingSafeEqual } from 'node:crypto';
import { deriveKeys, type PurposeKeys } from '../../core/derive-key.js';
import { TesseraError } from '../../core/errors.js';

/** What a cursor pages through: a users cursor is no events cursor. */
export type CursorKind = 'users' | 'events';

/** A page holds 1 to 100 items; 50 when the caller does not say. */
export const PAGE_LIMIT_MAX = 100;
export const PAGE_LIMIT_DEFAULT = 50;
/** Longer cursors are refused unread: the longest we give out (an email of 254 characters) is far below. */
export const CURSOR_MAX_LENGTH = 1024;

const INVALID = 'The cursor is not one this server gave out; start again without it';

/**
 * The opaque cursors of the admin API's pages: a position (an email and id, a time and id),
 * as base64url JSON, with a MAC under a key derived from TESSERA_SECRET, so a caller can only
 * give back what it was given. Cursors made under TESSERA_SECRET_PREVIOUS still open.
 *
 * @example
 * const cursors = new AdminCursors(secret);
 * const next = cursors.seal('users', [user.email, user.id]);
 * const [email, id] = cursors.open('users', next, 2);
 */
export class AdminCursors {
  readonly #keys: PurposeKeys;

  constructor(secret: string, secretPrevious?: string) {
    this.#keys = deriveKeys(secret, secretPrevious, 'admin-cursor');
  }

  seal(kind: CursorKind, position: readonly string[]): string {
    const body = Buffer.from(JSON.stringify(position)).toString('base64url');
    return `${body}.${mac(this.#keys.current, kind, body)}`;
  }

  /** The position in `cursor`, of `fields` strings; 400 `invalid_request` for anything forged, malformed or of another kind. */
  open(kind: CursorKind, cursor: string, fields: number): string[] {
    const [body = '', tag = '', extra] = cursor.length <= CURSOR_MAX_LENGTH ? cursor.split('.') : [];
    const { current, previous } = this.#keys;
    // constant-time: a timing oracle would let a forger find the MAC byte by byte
    const tagIs = (key: Buffer) => {
      const expected = Buffer.from(mac(key, kind, body));
      return tag.length === expected.length && timingSafeEqual(Buffer.from(tag), expected);
    };
    if (extra !== undefined || body === '' || !(tagIs(current) || (previous !== undefined && tagIs(previous)))) {
      throw new TesseraError('invalid_request', { detail: INVALID });
    }
    let position: unknown;
    try {
      position = JSON.parse(Buffer.from(body, 'base64url').toString('utf8'));
    } catch {
      position = undefined;
    }
    // Only a bug of ours could make a genuine cursor malformed; still a 400, never a 500.
    if (!Array.isArray(position) || position.length !== fields || !position.every((p) => typeof p === 'string')) {
      throw new TesseraError('invalid_request', { detail: INVALID });
    }
    return position as string[];
  }
}

/**
 * The page size a caller asked for (a query string's digits, or a number), or the default;
 * 400 `invalid_request` outside 1–100.
 */
export function pageLimit(raw: string | number | undefined): number {
  if (raw === undefined) return PAGE_LIMIT_DEFAULT;
  const n = typeof raw === 'number' ? raw : /^\d{1,4}$/.test(raw) ? Number(raw) : NaN;
  if (!(Number.isInteger(n) && n >= 1 && n <= PAGE_LIMIT_MAX)) {
    throw new TesseraError('invalid_request', { detail: `limit must be a whole number from 1 to ${PAGE_LIMIT_MAX}` });
  }
  return n;
}

function mac(key: Buffer, kind: CursorKind, body: string): string {
  return createHmac('sha256', key).update(`${kind}.${body}`).digest('base64url').slice(0, 22);
}
