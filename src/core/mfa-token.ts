import { createHmac, timingSafeEqual } from 'node:crypto';
import type { PurposeKeys } from './derive-key.js';
import { isUuid } from './uuid.js';
import type { Transport } from './vocabulary.js';

/** The pending login an `mfaToken` stands for: its user, its row, and the transport it began on. */
export interface MfaLoginRef {
  userId: string;
  /** random, one per sign-in that was answered `mfa_required` (mfa_logins.id) */
  loginId: string;
  transport: Transport;
}

export interface ParsedMfaToken {
  userId: string;
  loginId: string;
  mac: Buffer;
}

const VERSION = 1;
const ID_BYTES = 16;
const MAC_BYTES = 32;
const TOKEN_BYTES = 1 + ID_BYTES + ID_BYTES + MAC_BYTES;
const TOKEN_LENGTH = Math.ceil((TOKEN_BYTES * 4) / 3);

/**
 * The `mfaToken` of a sign-in waiting for its second factor: base64url(version ‖ user id ‖
 * login id ‖ MAC), MAC = HMAC-SHA256(K_mfa, "mfa-login" ‖ version ‖ user id ‖ login id ‖
 * transport). Like the links in mails (link-token.ts), nothing usable is stored: the
 * database holds the login's row (id, transport, expiry, failures), never the token, and a
 * token made for one transport fails its MAC on the other.
 *
 * @example
 * const tokens = new MfaTokenCodec(deriveKeys(secret, previous, 'mfa-token'));
 * const token = tokens.make({ userId, loginId, transport: 'cookie' });
 * const parsed = tokens.parse(token);               // shape only
 * if (parsed && tokens.verify(parsed, 'cookie')) …  // then find the row by (user id, login id)
 */
export class MfaTokenCodec {
  constructor(private readonly keys: PurposeKeys) {}

  make(ref: MfaLoginRef): string {
    const head = header(ref.userId, ref.loginId);
    return Buffer.concat([head, mac(this.keys.current, head, ref.transport)]).toString('base64url');
  }

  /** A token's parts, or undefined if it cannot be one; says nothing about its MAC. */
  parse(token: string): ParsedMfaToken | undefined {
    if (token.length !== TOKEN_LENGTH || !/^[A-Za-z0-9_-]+$/.test(token)) return undefined;
    const bytes = Buffer.from(token, 'base64url');
    // Canonical only: one token, one spelling.
    if (bytes.length !== TOKEN_BYTES || bytes.toString('base64url') !== token || bytes[0] !== VERSION) return undefined;
    return {
      userId: uuidOf(bytes.subarray(1, 1 + ID_BYTES)),
      loginId: uuidOf(bytes.subarray(1 + ID_BYTES, 1 + 2 * ID_BYTES)),
      mac: bytes.subarray(1 + 2 * ID_BYTES),
    };
  }

  /** Is the MAC right for this transport (under the current secret, or the previous one)? In constant time. */
  verify(parsed: ParsedMfaToken, transport: Transport): boolean {
    const head = header(parsed.userId, parsed.loginId);
    // constant-time: a timing oracle would leak MAC bytes
    let ok = timingSafeEqual(mac(this.keys.current, head, transport), parsed.mac);
    if (!ok && this.keys.previous) ok = timingSafeEqual(mac(this.keys.previous, head, transport), parsed.mac);
    return ok;
  }
}

function header(userId: string, loginId: string): Buffer {
  if (!isUuid(userId) || !isUuid(loginId)) throw new Error('mfa token: ids must be UUIDs');
  return Buffer.concat([Buffer.of(VERSION), uuidBytes(userId), uuidBytes(loginId)]);
}

function mac(key: Buffer, head: Buffer, transport: Transport): Buffer {
  return createHmac('sha256', key).update('mfa-login').update(head).update(transport, 'utf8').digest();
}

const uuidBytes = (uuid: string) => Buffer.from(uuid.replaceAll('-', ''), 'hex');

function uuidOf(bytes: Buffer): string {
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
