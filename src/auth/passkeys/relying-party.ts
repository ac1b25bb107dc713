import type { AuthenticationResponseJSON, RegistrationResponseJSON } from '@simplewebauthn/server';
import type { Config } from '../../core/config.js';
import { TesseraError } from '../../core/errors.js';
import type { ChallengePurpose, WebAuthnChallenge, WebAuthnChallengeCodec } from '../../core/webauthn-challenge.js';

/** What every passkey ceremony needs: the relying party, the challenge MAC, the clock. */
export interface RelyingPartyDeps {
  config: Pick<Config, 'webauthnRpId' | 'webauthnOrigins' | 'appName'>;
  challenges: Pick<WebAuthnChallengeCodec, 'make' | 'read'>;
  clock: () => Date;
}

/** The relying party ID, or 404 `not_found` when passkeys are off (an IP-address PUBLIC_URL): the routes then do not exist. */
export function rpIdOf(config: Pick<Config, 'webauthnRpId'>): string {
  if (config.webauthnRpId === undefined) throw new TesseraError('not_found', { detail: 'Passkeys are off on this server' });
  return config.webauthnRpId;
}

/** How long the browser may take, from options to a response: as long as the challenge lives (5 minutes). */
export const CEREMONY_TIMEOUT_MS = 5 * 60 * 1000;

/**
 * The challenge a response's clientDataJSON names, if it is one of ours, for `purpose`, not
 * expired; else the `refused` error. Whether it was used already is decided when it is used.
 */
export function challengeOf(
  deps: RelyingPartyDeps, response: RegistrationResponseJSON | AuthenticationResponseJSON, purpose: ChallengePurpose,
): WebAuthnChallenge & { encoded: string } {
  let encoded: unknown;
  try {
    encoded = (JSON.parse(Buffer.from(response.response.clientDataJSON, 'base64url').toString('utf8')) as { challenge?: unknown }).challenge;
  } catch {
    throw refused('clientDataJSON is not base64url JSON');
  }
  if (typeof encoded !== 'string') throw refused('clientDataJSON has no challenge');
  const challenge = deps.challenges.read(encoded, purpose, deps.clock());
  if (!challenge) throw refused(`challenge forged, expired, or not for ${purpose}`);
  return { ...challenge, encoded };
}

/**
 * A passkey response that is refused: 400 `invalid_code`, the same for every reason (unknown or
 * removed credential, bad signature, wrong origin or RP ID, no user verification, a challenge
 * forged, expired or replayed, a sign counter that did not move forward); the log learns which.
 */
export function refused(reason: string): TesseraError {
  return new TesseraError('invalid_code', {
    detail: 'The passkey could not be verified: start again with new options',
    cause: new Error(`passkey: ${reason}`),
  });
}
