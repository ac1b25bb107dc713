import { deriveKeys } from '../../core/derive-key.js';
import { Sealer } from '../../core/seal.js';

/**
 * TOTP secrets at rest: AES-256-GCM under their own key derived from TESSERA_SECRET (opened
 * with TESSERA_SECRET_PREVIOUS's while the secret changes), as signing keys are sealed;
 * `tessera secrets rotate` re-seals them (src/cli/secrets.ts).
 */
export function totpSecretSealer(secret: string, previous: string | undefined): Sealer {
  return new Sealer(deriveKeys(secret, previous, 'totp-secret-encryption'));
}
