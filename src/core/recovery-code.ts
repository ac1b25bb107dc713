import { createHmac, randomBytes } from 'node:crypto';
import type { PurposeKeys } from './derive-key.js';

/** How many recovery codes a user gets at a time (SPEC §8). */
export const RECOVERY_CODE_COUNT = 10;
/** Characters of a code: 10 of Crockford's base32 alphabet, 50 bits. */
const CODE_LENGTH = 10;
/** Crockford's base32: no i, l, o or u, so what is read aloud or copied by hand survives. */
const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz';

/**
 * Recovery codes: ten single-use codes shown once when TOTP is turned on (or the set is
 * replaced), such as `7gq4m-2xk9d`. The database keeps only an HMAC of each, keyed by a key
 * derived from TESSERA_SECRET and bound to the user: a reader of the database can neither
 * use them nor test guesses offline.
 *
 * @example
 * const codes = newRecoveryCodes();                          // ['7gq4m-2xk9d', …]
 * const stored = codes.map((c) => recoveryCodeHashes(keys, userId, c)![0]);
 * const candidates = recoveryCodeHashes(keys, userId, typed); // undefined: not shaped like one
 */
export function newRecoveryCodes(): string[] {
  const codes = new Set<string>();
  while (codes.size < RECOVERY_CODE_COUNT) {
    // 256 is a multiple of 32: each byte's low five bits are uniform.
    const chars = [...randomBytes(CODE_LENGTH)].map((byte) => ALPHABET[byte & 31]).join('');
    codes.add(`${chars.slice(0, 5)}-${chars.slice(5)}`);
  }
  return [...codes];
}

/**
 * A code as typed, in its one stored spelling: case, spaces and hyphens ignored, and the
 * letters Crockford's alphabet leaves out read as the digits they look like (o → 0, i and l → 1).
 * Undefined when it cannot be a recovery code.
 */
export function normalizeRecoveryCode(typed: string): string | undefined {
  const text = typed.toLowerCase().replace(/[\s-]/g, '').replace(/o/g, '0').replace(/[il]/g, '1');
  if (text.length !== CODE_LENGTH) return undefined;
  for (const char of text) if (!ALPHABET.includes(char)) return undefined;
  return text;
}

/**
 * What a code is stored as: HMAC-SHA256 under the recovery-code key of (user id, normalised
 * code), base64url. Under the current secret first, then the previous one while TESSERA_SECRET
 * changes (codes stored before the change still work); undefined when `typed` cannot be a code.
 */
export function recoveryCodeHashes(keys: PurposeKeys, userId: string, typed: string): string[] | undefined {
  const code = normalizeRecoveryCode(typed);
  if (code === undefined) return undefined;
  const hash = (key: Buffer) => createHmac('sha256', key).update(`${userId}:${code}`, 'utf8').digest('base64url');
  return keys.previous ? [hash(keys.current), hash(keys.previous)] : [hash(keys.current)];
}
