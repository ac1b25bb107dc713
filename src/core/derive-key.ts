import { hkdfSync } from 'node:crypto';

export type KeyPurpose =
  | 'refresh-token' | 'signing-key-encryption' | 'revocation-cursor' | 'link-token' | 'device' | 'admin-cursor'
  // second factors: the mfaToken's MAC, TOTP secrets at rest, the HMAC recovery codes are stored as
  | 'mfa-token' | 'totp-secret-encryption' | 'recovery-code'
  // passkeys: the MAC of WebAuthn challenges (never stored when handed out)
  | 'webauthn-challenge';

/** Derives an independent 32-byte key for one purpose from TESSERA_SECRET (HKDF-SHA256). */
export function deriveKey(secret: string, purpose: KeyPurpose): Buffer {
  return Buffer.from(hkdfSync('sha256', secret, 'tessera', `tessera/${purpose}/v1`, 32));
}

/**
 * One purpose's keys while TESSERA_SECRET changes: `current` (from TESSERA_SECRET) makes
 * everything new; `previous` (from TESSERA_SECRET_PREVIOUS, if set) is only ever tried to
 * verify or open something after `current` failed, so nothing costs more when it is unset.
 */
export interface PurposeKeys {
  current: Buffer;
  previous: Buffer | undefined;
}

/**
 * The keys of `purpose` under TESSERA_SECRET and, if given, TESSERA_SECRET_PREVIOUS.
 *
 * @example
 * const keys = deriveKeys(config.secret, config.secretPrevious, 'revocation-cursor');
 * const mac = hmac(keys.current, text); // new things: current only
 * const genuine = equal(mac, hmac(keys.current, text)) || (keys.previous !== undefined && equal(mac, hmac(keys.previous, text)));
 */
export function deriveKeys(secret: string, previous: string | undefined, purpose: KeyPurpose): PurposeKeys {
  return { current: deriveKey(secret, purpose), previous: previous === undefined ? undefined : deriveKey(previous, purpose) };
}
