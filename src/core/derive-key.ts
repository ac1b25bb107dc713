import { hkdfSync } from 'node:crypto';

export type KeyPurpose = 'refresh-token' | 'signing-key-encryption' | 'revocation-cursor';

/** Derives an independent 32-byte key for one purpose from TESSERA_SECRET (HKDF-SHA256). */
export function deriveKey(secret: string, purpose: KeyPurpose): Buffer {
  return Buffer.from(hkdfSync('sha256', secret, 'tessera', `tessera/${purpose}/v1`, 32));
}
