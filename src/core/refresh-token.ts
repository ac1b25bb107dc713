import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { deriveKey } from './derive-key.js';

const PREFIX = 'tsr_';
const ID_BYTES = 16;
const GENERATION_BYTES = 4;
const MAC_BYTES = 32;
const PAYLOAD_BYTES = ID_BYTES + GENERATION_BYTES;
const TOKEN_LENGTH = PREFIX.length + Math.ceil(((PAYLOAD_BYTES + MAC_BYTES) * 4) / 3);

export interface ParsedRefreshToken {
  sessionId: string;
  generation: number;
  /** payload (session id ‖ generation) followed by the MAC */
  bytes: Buffer;
}

/** A fresh random per-session salt for K_session. */
export function newSessionSalt(): Buffer {
  return randomBytes(16);
}

/**
 * Issues and recognises refresh tokens: `tsr_` + base64url(session id ‖ generation ‖ MAC),
 * MAC = HMAC-SHA256(K_session, session id ‖ generation), K_session = HMAC-SHA256(K_refresh, salt).
 * Nothing derived from a token is stored: the same inputs always give the same token,
 * which is what lets a replay within the grace window return the identical token.
 *
 * @example
 * const codec = new RefreshTokenCodec(secret);
 * const token = codec.issue(session.id, session.salt, session.generation);
 * const parsed = codec.parse(token);
 * if (parsed && codec.verify(parsed, session.salt)) { ... }
 */
export class RefreshTokenCodec {
  readonly #root: Buffer;

  constructor(secret: string) {
    this.#root = deriveKey(secret, 'refresh-token');
  }

  issue(sessionId: string, salt: Buffer, generation: number): string {
    const payload = Buffer.alloc(PAYLOAD_BYTES);
    Buffer.from(sessionId.replaceAll('-', ''), 'hex').copy(payload, 0);
    payload.writeUInt32BE(generation, ID_BYTES);
    return PREFIX + Buffer.concat([payload, this.#mac(salt, payload)]).toString('base64url');
  }

  /** Splits a token into its parts without judging it; undefined if it is not shaped like one. */
  parse(token: unknown): ParsedRefreshToken | undefined {
    if (typeof token !== 'string' || token.length !== TOKEN_LENGTH || !token.startsWith(PREFIX)) return undefined;
    const body = token.slice(PREFIX.length);
    const bytes = Buffer.from(body, 'base64url');
    // Re-encoding must give the same text: this refuses every character outside base64url,
    // and means no token has two spellings.
    if (bytes.length !== PAYLOAD_BYTES + MAC_BYTES || bytes.toString('base64url') !== body) return undefined;
    const hex = bytes.subarray(0, ID_BYTES).toString('hex');
    const sessionId = `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
    return { sessionId, generation: bytes.readUInt32BE(ID_BYTES), bytes };
  }

  /** True if the token's MAC is genuine for this session's salt. */
  verify(parsed: ParsedRefreshToken, salt: Buffer): boolean {
    const expected = this.#mac(salt, parsed.bytes.subarray(0, PAYLOAD_BYTES));
    // constant-time: a timing oracle would leak MAC bytes one at a time
    return timingSafeEqual(expected, parsed.bytes.subarray(PAYLOAD_BYTES));
  }

  #mac(salt: Buffer, payload: Buffer): Buffer {
    const sessionKey = createHmac('sha256', this.#root).update(salt).digest();
    return createHmac('sha256', sessionKey).update(payload).digest();
  }
}
