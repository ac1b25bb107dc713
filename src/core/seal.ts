import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type { PurposeKeys } from './derive-key.js';

/** AES-256-GCM: base64url(iv ‖ ciphertext ‖ tag). Used for signing keys at rest. */
export function seal(key: Buffer, plaintext: string): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return Buffer.concat([iv, body, cipher.getAuthTag()]).toString('base64url');
}

/** Opens what `seal` made; throws if the key is wrong or the text was altered. */
export function unseal(key: Buffer, sealed: string): string {
  const bytes = Buffer.from(sealed, 'base64url');
  const decipher = createDecipheriv('aes-256-gcm', key, bytes.subarray(0, 12));
  decipher.setAuthTag(bytes.subarray(bytes.length - 16));
  return Buffer.concat([decipher.update(bytes.subarray(12, bytes.length - 16)), decipher.final()]).toString('utf8');
}

/** A sealed value that neither TESSERA_SECRET nor TESSERA_SECRET_PREVIOUS opens (or that was altered). */
export class UnsealError extends Error {
  constructor(readonly triedPrevious: boolean) {
    super(triedPrevious ? 'sealed under neither TESSERA_SECRET nor TESSERA_SECRET_PREVIOUS' : 'not sealed under TESSERA_SECRET');
    this.name = 'UnsealError';
  }
}

/**
 * Seals under TESSERA_SECRET's key and opens under it or, while the secret changes,
 * under TESSERA_SECRET_PREVIOUS's; `reseal` moves a value to the current key (what
 * `tessera secrets rotate` does to every sealed column).
 *
 * @example
 * const sealer = new Sealer(deriveKeys(secret, previous, 'signing-key-encryption'));
 * const stored = sealer.seal(JSON.stringify(jwk));
 * const jwk = JSON.parse(sealer.unseal(stored));
 * const moved = sealer.reseal(stored); // undefined: already under TESSERA_SECRET
 */
export class Sealer {
  constructor(readonly keys: PurposeKeys) {}

  seal(plaintext: string): string {
    return seal(this.keys.current, plaintext);
  }

  /** The plaintext, opened with the current key, else the previous one; throws `UnsealError` if neither opens it. */
  unseal(sealed: string): string {
    return this.#open(sealed).plaintext;
  }

  /**
   * `sealed` sealed anew under the current key, or undefined if it already is (so running
   * it twice changes nothing); throws `UnsealError` if neither key opens it.
   */
  reseal(sealed: string): string | undefined {
    const { plaintext, underPrevious } = this.#open(sealed);
    return underPrevious ? this.seal(plaintext) : undefined;
  }

  #open(sealed: string): { plaintext: string; underPrevious: boolean } {
    try {
      return { plaintext: unseal(this.keys.current, sealed), underPrevious: false };
    } catch {
      // GCM's tag check failed (or the text is not even shaped like a sealed value): try the previous key.
    }
    if (this.keys.previous === undefined) throw new UnsealError(false);
    try {
      return { plaintext: unseal(this.keys.previous, sealed), underPrevious: true };
    } catch {
      throw new UnsealError(true);
    }
  }
}
