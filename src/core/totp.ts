import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * TOTP (RFC 6238) as authenticator apps implement it: HMAC-SHA-1, 6 digits, 30-second
 * steps counted from the Unix epoch, and a code accepted for the step before and after the
 * current one (±1 step: clocks drift and people type slowly). Which steps were already used
 * is the store's business: a step is accepted at most once per user (src/store/second-factor-store.ts).
 *
 * @example
 * const secret = newTotpSecret();                       // 20 random bytes
 * const shown = base32Encode(secret);                   // what the user types or scans
 * const steps = matchingSteps(secret, '287082', now);   // [] if wrong; else the step(s) it is the code of
 */

export const TOTP_DIGITS = 6;
export const TOTP_PERIOD_SECONDS = 30;
/** Steps accepted either side of the current one. */
export const TOTP_WINDOW = 1;
/** RFC 4226 §4 asks for at least 128 bits and recommends 160: the size of an HMAC-SHA-1 key block's natural fit. */
export const TOTP_SECRET_BYTES = 20;

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
const CODE_PATTERN = /^\d{6}$/;

/** A new random secret. */
export function newTotpSecret(): Buffer {
  return randomBytes(TOTP_SECRET_BYTES);
}

/** RFC 4648 base32 without padding, upper case: the `secret=` of an otpauth URI. */
export function base32Encode(bytes: Uint8Array): string {
  let out = '';
  let buffer = 0;
  let bits = 0;
  for (const byte of bytes) {
    buffer = (buffer << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += BASE32[(buffer >>> (bits - 5)) & 31];
      bits -= 5;
    }
    buffer &= (1 << bits) - 1;
  }
  if (bits > 0) out += BASE32[(buffer << (5 - bits)) & 31];
  return out;
}

/**
 * Decodes base32 as people and apps write it: any case, spaces and `=` padding ignored.
 * Undefined if anything else is in it, or if its unused trailing bits are not zero (one text per secret).
 */
export function base32Decode(text: string): Buffer | undefined {
  const clean = text.replace(/[\s=]/g, '').toUpperCase();
  const out: number[] = [];
  let buffer = 0;
  let bits = 0;
  for (const char of clean) {
    const value = BASE32.indexOf(char);
    if (value < 0) return undefined;
    buffer = (buffer << 5) | value;
    bits += 5;
    if (bits >= 8) {
      out.push((buffer >>> (bits - 8)) & 255);
      bits -= 8;
    }
    buffer &= (1 << bits) - 1;
  }
  if (buffer !== 0 || bits >= 5) return undefined;
  return Buffer.from(out);
}

/** RFC 4226 HOTP: the `digits`-digit code of `counter` under `key` (HMAC-SHA-1, dynamic truncation). */
export function hotp(key: Uint8Array, counter: number, digits = TOTP_DIGITS): string {
  const message = Buffer.alloc(8);
  message.writeBigUInt64BE(BigInt(counter));
  const mac = createHmac('sha1', key).update(message).digest();
  const offset = mac[mac.length - 1]! & 0x0f;
  const binary = (mac.readUInt32BE(offset) & 0x7fffffff) % 10 ** digits;
  return binary.toString().padStart(digits, '0');
}

/** The 30-second step `at` falls in (T in RFC 6238). */
export function totpStep(at: Date): number {
  return Math.floor(at.getTime() / 1000 / TOTP_PERIOD_SECONDS);
}

/** The code of one step. */
export function totpCode(key: Uint8Array, step: number, digits = TOTP_DIGITS): string {
  return hotp(key, step, digits);
}

/** A code as typed, spaces removed (`123 456`), if it has the shape of one; else undefined. */
export function normalizeTotpCode(code: string): string | undefined {
  const digits = code.replace(/\s/g, '');
  return CODE_PATTERN.test(digits) ? digits : undefined;
}

/**
 * The steps within ±TOTP_WINDOW of `now` whose code `code` is, oldest first: empty when it is
 * wrong or malformed. All three codes are always computed and compared in constant time,
 * so the time taken says nothing about which step matched or how many digits were right.
 */
export function matchingSteps(key: Uint8Array, code: string, now: Date): number[] {
  const typed = normalizeTotpCode(code);
  // A malformed code is compared too, against a placeholder: its answer takes the same time.
  const presented = Buffer.from(typed ?? '------', 'ascii');
  const current = totpStep(now);
  const matches: number[] = [];
  for (let step = current - TOTP_WINDOW; step <= current + TOTP_WINDOW; step++) {
    // constant-time: a timing oracle would leak how many leading digits are right
    const equal = timingSafeEqual(Buffer.from(totpCode(key, step), 'ascii'), presented);
    if (equal && typed !== undefined) matches.push(step);
  }
  return matches;
}

/**
 * The otpauth:// URI authenticator apps read from a QR code (Google's Key URI Format):
 * `otpauth://totp/ISSUER:ACCOUNT?secret=…&issuer=ISSUER&algorithm=SHA1&digits=6&period=30`.
 * Issuer and account are percent-encoded (a `:` or `&` in either cannot change the URI's structure).
 */
export function otpauthUri(input: { issuer: string; account: string; secret: Uint8Array }): string {
  const issuer = encodeURIComponent(input.issuer);
  const label = `${issuer}:${encodeURIComponent(input.account)}`;
  const query = `secret=${base32Encode(input.secret)}&issuer=${issuer}&algorithm=SHA1&digits=${TOTP_DIGITS}&period=${TOTP_PERIOD_SECONDS}`;
  return `otpauth://totp/${label}?${query}`;
}
