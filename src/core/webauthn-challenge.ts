import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { PurposeKeys } from './derive-key.js';
import { isUuid } from './uuid.js';

/** What a WebAuthn challenge is for: signing in (anyone), or adding a passkey (one user). */
export type ChallengePurpose = 'login' | 'register';

/** How long a passkey ceremony may take, from its options to its verification (SPEC §8). */
export const WEBAUTHN_CHALLENGE_TTL_SECONDS = 5 * 60;

/** A challenge whose MAC checked out: its random id, what it is for, until when, and for whom (registration). */
export interface WebAuthnChallenge {
  /** base64url of its random part: what `used_challenges` records when it is used */
  id: string;
  purpose: ChallengePurpose;
  expiresAt: Date;
  /** the user a registration challenge was made for; undefined for a sign-in */
  userId: string | undefined;
}

const VERSION = 1;
const PURPOSES: readonly ChallengePurpose[] = ['login', 'register'];
const RANDOM_BYTES = 16;
const USER_BYTES = 16;
const MAC_BYTES = 32;
const HEAD_BYTES = 1 + 1 + 8 + RANDOM_BYTES + USER_BYTES;
const CHALLENGE_BYTES = HEAD_BYTES + MAC_BYTES;

/**
 * WebAuthn challenges that need no row when they are handed out: the bytes are version ‖
 * purpose ‖ expiry (ms, big-endian) ‖ 16 random bytes ‖ user id (zeros for a sign-in) ‖
 * HMAC-SHA256 of all that under the `webauthn-challenge` key. Anonymous sign-in options
 * cost a MAC, never a write; a challenge is written (`used_challenges`) only when it is used,
 * which is what makes it single-use. The browser signs these bytes; the clientDataJSON's
 * `challenge` is their base64url.
 *
 * @example
 * const codec = new WebAuthnChallengeCodec(deriveKeys(secret, previous, 'webauthn-challenge'));
 * const bytes = codec.make('login', undefined, now);             // options.challenge
 * const challenge = codec.read(clientData.challenge, 'login', now); // undefined: forged, expired, other purpose
 */
export class WebAuthnChallengeCodec {
  constructor(private readonly keys: PurposeKeys) {}

  /** New challenge bytes for `purpose`, bound to `userId` for a registration, valid 5 minutes from `now`. */
  make(purpose: ChallengePurpose, userId: string | undefined, now: Date): Uint8Array<ArrayBuffer> {
    const head = Buffer.alloc(HEAD_BYTES);
    head[0] = VERSION;
    head[1] = PURPOSES.indexOf(purpose);
    head.writeBigUInt64BE(BigInt(now.getTime() + WEBAUTHN_CHALLENGE_TTL_SECONDS * 1000), 2);
    randomBytes(RANDOM_BYTES).copy(head, 10);
    if (userId !== undefined) uuidBytes(userId).copy(head, 10 + RANDOM_BYTES);
    const out = new Uint8Array(CHALLENGE_BYTES);
    out.set(head);
    out.set(mac(this.keys.current, head), HEAD_BYTES);
    return out;
  }

  /**
   * The challenge a clientDataJSON names (base64url), if it is one of ours (MAC under the current
   * or the previous secret, compared in constant time), for `purpose`, and not expired at `now`;
   * undefined otherwise. Whether it was used already is for the database to say.
   */
  read(encoded: string, purpose: ChallengePurpose, now: Date): WebAuthnChallenge | undefined {
    if (!/^[A-Za-z0-9_-]+$/.test(encoded)) return undefined;
    const bytes = Buffer.from(encoded, 'base64url');
    // Canonical only: one challenge, one spelling.
    if (bytes.length !== CHALLENGE_BYTES || bytes.toString('base64url') !== encoded || bytes[0] !== VERSION) return undefined;
    const head = bytes.subarray(0, HEAD_BYTES);
    const sent = bytes.subarray(HEAD_BYTES);
    // constant-time: a timing oracle would leak MAC bytes
    let ok = timingSafeEqual(mac(this.keys.current, head), sent);
    if (!ok && this.keys.previous) ok = timingSafeEqual(mac(this.keys.previous, head), sent);
    if (!ok || PURPOSES[head[1]!] !== purpose) return undefined;
    const expiresAt = new Date(Number(head.readBigUInt64BE(2)));
    if (expiresAt.getTime() <= now.getTime()) return undefined;
    const user = head.subarray(10 + RANDOM_BYTES);
    return {
      id: head.subarray(10, 10 + RANDOM_BYTES).toString('base64url'),
      purpose,
      expiresAt,
      userId: user.every((b) => b === 0) ? undefined : uuidOf(user),
    };
  }
}

function mac(key: Buffer, head: Buffer): Buffer {
  return createHmac('sha256', key).update('webauthn-challenge').update(head).digest();
}

/** A user id (UUID) as the 16 bytes WebAuthn carries as `user.id` and returns as the userHandle. */
export function uuidBytes(uuid: string): Buffer {
  if (!isUuid(uuid)) throw new Error('webauthn: user ids must be UUIDs');
  return Buffer.from(uuid.replaceAll('-', ''), 'hex');
}

/** The UUID of 16 bytes (a userHandle). */
export function uuidOf(bytes: Uint8Array): string {
  const hex = Buffer.from(bytes).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
