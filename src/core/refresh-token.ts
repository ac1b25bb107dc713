import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { deriveKeys } from './derive-key.js';

const PREFIX = 'tsr_';
const VERSION_2 = 2;
const ID_BYTES = 16;
const GENERATION_BYTES = 4;
const MAC_BYTES = 32;
/** Version 1: session id ‖ generation ‖ MAC. No version byte; told apart by its length. */
const V1_PAYLOAD_BYTES = ID_BYTES + GENERATION_BYTES;
/** Version 2: version ‖ user id ‖ session id ‖ generation ‖ MAC. */
const V2_PAYLOAD_BYTES = 1 + ID_BYTES + ID_BYTES + GENERATION_BYTES;
const lengthOf = (payloadBytes: number) => PREFIX.length + Math.ceil(((payloadBytes + MAC_BYTES) * 4) / 3);
const V1_LENGTH = lengthOf(V1_PAYLOAD_BYTES);
const V2_LENGTH = lengthOf(V2_PAYLOAD_BYTES);

export interface ParsedRefreshToken {
  version: 1 | 2;
  /** The session's user: the shard key, so the session is found on one shard. Version 1 tokens do not carry it. */
  userId: string | undefined;
  sessionId: string;
  generation: number;
  /** The whole token: payload followed by the MAC. */
  bytes: Buffer;
}

/** A fresh random per-session salt for K_session. */
export function newSessionSalt(): Buffer {
  return randomBytes(16);
}

/**
 * Issues and recognises refresh tokens:
 * `tsr_` + base64url(version ‖ user id ‖ session id ‖ generation ‖ MAC),
 * MAC = HMAC-SHA256(K_session, everything before it), K_session = HMAC-SHA256(K_refresh, salt).
 * Nothing derived from a token is stored: the same inputs always give the same token,
 * which is what lets a replay within the grace window return the identical token.
 * Version 1 tokens (no version byte, no user id) are still recognised, so sessions
 * started before the upgrade keep working; their next token is version 2.
 *
 * While TESSERA_SECRET changes, tokens made under TESSERA_SECRET_PREVIOUS are recognised
 * too, but every token is issued under TESSERA_SECRET: a token is a function of the
 * current secret and the session, so a replay returns the very token the rotation
 * returned, whichever secret the presented one was made with.
 *
 * @example
 * const codec = new RefreshTokenCodec(secret, previousSecret);
 * const token = codec.issue(user.id, session.id, session.salt, session.generation);
 * const parsed = codec.parse(token);
 * if (parsed && codec.verify(parsed, session.salt)) { ... }
 */
export class RefreshTokenCodec {
  readonly #root: Buffer;
  /** K_refresh under TESSERA_SECRET_PREVIOUS: only tried after the current one failed. */
  readonly #previousRoot: Buffer | undefined;
  /** K_session by salt object: a refresh verifies one token and issues the next with the same salt, deriving the key once. */
  readonly #sessionKeys = new WeakMap<Buffer, Buffer>();
  readonly #previousSessionKeys = new WeakMap<Buffer, Buffer>();

  /** `secret`: TESSERA_SECRET, which issues; `previous`: TESSERA_SECRET_PREVIOUS, which only verifies. */
  constructor(secret: string, previous?: string) {
    const keys = deriveKeys(secret, previous, 'refresh-token');
    this.#root = keys.current;
    this.#previousRoot = keys.previous;
  }

  issue(userId: string, sessionId: string, salt: Buffer, generation: number): string {
    const payload = Buffer.alloc(V2_PAYLOAD_BYTES);
    payload[0] = VERSION_2;
    writeUuid(userId, payload, 1);
    writeUuid(sessionId, payload, 1 + ID_BYTES);
    payload.writeUInt32BE(generation, 1 + 2 * ID_BYTES);
    return PREFIX + Buffer.concat([payload, this.#mac(salt, payload)]).toString('base64url');
  }

  /** A version 1 token, as sessions started before version 2 hold: only for tests of the upgrade. */
  issueVersion1(sessionId: string, salt: Buffer, generation: number): string {
    const payload = Buffer.alloc(V1_PAYLOAD_BYTES);
    writeUuid(sessionId, payload, 0);
    payload.writeUInt32BE(generation, ID_BYTES);
    return PREFIX + Buffer.concat([payload, this.#mac(salt, payload)]).toString('base64url');
  }

  /** Splits a token into its parts without judging it; undefined if it is not shaped like one. */
  parse(token: unknown): ParsedRefreshToken | undefined {
    if (typeof token !== 'string' || !token.startsWith(PREFIX)) return undefined;
    if (token.length !== V2_LENGTH && token.length !== V1_LENGTH) return undefined;
    const body = token.slice(PREFIX.length);
    const bytes = Buffer.from(body, 'base64url');
    // Re-encoding must give the same text: this refuses every character outside base64url,
    // and means no token has two spellings.
    if (bytes.toString('base64url') !== body) return undefined;
    if (bytes.length === V1_PAYLOAD_BYTES + MAC_BYTES) {
      return { version: 1, userId: undefined, sessionId: readUuid(bytes, 0), generation: bytes.readUInt32BE(ID_BYTES), bytes };
    }
    if (bytes.length !== V2_PAYLOAD_BYTES + MAC_BYTES || bytes[0] !== VERSION_2) return undefined;
    return {
      version: 2,
      userId: readUuid(bytes, 1),
      sessionId: readUuid(bytes, 1 + ID_BYTES),
      generation: bytes.readUInt32BE(1 + 2 * ID_BYTES),
      bytes,
    };
  }

  /**
   * True if the token's MAC is genuine for this session's salt, under TESSERA_SECRET or
   * else TESSERA_SECRET_PREVIOUS. A genuine token of either is the same token to the
   * rotation rules: its generation alone decides.
   */
  verify(parsed: ParsedRefreshToken, salt: Buffer): boolean {
    const payloadBytes = parsed.version === 1 ? V1_PAYLOAD_BYTES : V2_PAYLOAD_BYTES;
    const payload = parsed.bytes.subarray(0, payloadBytes);
    const presented = parsed.bytes.subarray(payloadBytes);
    // constant-time: a timing oracle would leak MAC bytes one at a time
    if (timingSafeEqual(this.#mac(salt, payload), presented)) return true;
    // Only after the current secret failed, so a token under it costs one MAC, as without a previous secret.
    return this.#previousRoot !== undefined && timingSafeEqual(this.#mac(salt, payload, true), presented);
  }

  #mac(salt: Buffer, payload: Buffer, previous = false): Buffer {
    const cache = previous ? this.#previousSessionKeys : this.#sessionKeys;
    let sessionKey = cache.get(salt);
    if (!sessionKey) {
      sessionKey = createHmac('sha256', previous ? this.#previousRoot! : this.#root).update(salt).digest();
      cache.set(salt, sessionKey);
    }
    return createHmac('sha256', sessionKey).update(payload).digest();
  }
}

function writeUuid(uuid: string, into: Buffer, offset: number): void {
  into.write(uuid.replaceAll('-', ''), offset, ID_BYTES, 'hex');
}

function readUuid(bytes: Buffer, offset: number): string {
  const hex = bytes.toString('hex', offset, offset + ID_BYTES);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
