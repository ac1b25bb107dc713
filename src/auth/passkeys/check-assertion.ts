import type { AuthenticationResponseJSON, VerifiedAuthenticationResponse } from '@simplewebauthn/server';
import { webauthn } from './webauthn-library.js';
import { isUuid } from '../../core/uuid.js';
import { uuidOf } from '../../core/webauthn-challenge.js';
import type { PasskeyStore, PasskeyUse } from '../../store/passkey-store.js';
import { challengeOf, refused, rpIdOf, type RelyingPartyDeps } from './relying-party.js';

export interface CheckAssertionDeps extends RelyingPartyDeps {
  passkeys: Pick<PasskeyStore, 'findPasskey'>;
}

/** An assertion that verified: whose passkey it is, and what using it writes. */
export interface CheckedAssertion {
  userId: string;
  use: PasskeyUse;
}

/**
 * Checks a sign-in assertion, without writing: our challenge for a sign-in, not expired; the
 * user handle a user id (discoverable credentials), and the passkey found by (user id,
 * credential id), one shard; signature, origin, RP ID, user verification; a sign counter that
 * moves forward (0 after 0: no counter). Every failure is 400 `invalid_code`; `onKnownUser`
 * hears of a failure once the passkey is known (its owner's `mfa_failed`). Whether the challenge
 * was used is decided when the use is written.
 */
export async function checkAssertion(
  deps: CheckAssertionDeps, response: AuthenticationResponseJSON, onKnownUser: (userId: string, reason: string) => Promise<void>,
): Promise<CheckedAssertion> {
  const expectedRPID = rpIdOf(deps.config);
  const challenge = challengeOf(deps, response, 'login');
  const handle = response.response.userHandle;
  const handleBytes = handle && /^[A-Za-z0-9_-]+$/.test(handle) ? Buffer.from(handle, 'base64url') : undefined;
  const userId = handleBytes?.length === 16 ? uuidOf(handleBytes) : undefined;
  if (!userId || !isUuid(userId)) throw refused('no user handle, or not a user id: not a discoverable credential of ours');
  const passkey = await deps.passkeys.findPasskey(userId, response.id);
  if (!passkey) throw refused('unknown or removed credential');
  let verified: VerifiedAuthenticationResponse;
  try {
    verified = await (await webauthn()).verifyAuthenticationResponse({
      response,
      expectedChallenge: challenge.encoded,
      expectedOrigin: [...deps.config.webauthnOrigins],
      expectedRPID,
      credential: { id: passkey.id, publicKey: new Uint8Array(passkey.publicKey), counter: passkey.counter },
      requireUserVerification: true,
    });
  } catch (error) {
    const reason = `assertion: ${(error as Error).message}`;
    await onKnownUser(userId, reason);
    throw refused(reason);
  }
  if (!verified.verified || !verified.authenticationInfo.userVerified) {
    await onKnownUser(userId, 'assertion not verified');
    throw refused('assertion not verified');
  }
  return {
    userId,
    use: { kind: 'passkey', credentialId: passkey.id, counter: verified.authenticationInfo.newCounter, challenge: { id: challenge.id, expiresAt: challenge.expiresAt } },
  };
}
