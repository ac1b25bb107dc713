import type { RegistrationResponseJSON, VerifiedRegistrationResponse } from '@simplewebauthn/server';
import { webauthn } from './webauthn-library.js';
import { TesseraError } from '../../core/errors.js';
import type { RequestMeta } from '../../core/vocabulary.js';
import type { PasskeyStore, PasskeySummary } from '../../store/passkey-store.js';
import type { Caller } from '../mfa/recent-authentication.js';
import { assertMayAddPasskey, type RegistrationOptionsDeps } from './registration-options.js';
import { challengeOf, refused, rpIdOf } from './relying-party.js';

export interface AddPasskeyDeps extends Omit<RegistrationOptionsDeps, 'passkeys'> {
  passkeys: Pick<PasskeyStore, 'addPasskey'>;
}

/** A passkey's name when none is given. */
export const DEFAULT_PASSKEY_NAME = 'Passkey';

/**
 * `POST /auth/passkeys/register/verify {response, name?}`: checks the new credential (our
 * challenge for this user, not expired; an allowed origin; the RP ID; user verification) and
 * stores it with `passkey_added` (the `factor_added` notice). The challenge is used once: a
 * response replayed is refused. Any failure is 400 `invalid_code` (the reason in the log); the
 * same credential again is 400 `invalid_request`, nothing written.
 */
export async function addPasskey(
  deps: AddPasskeyDeps, caller: Caller, input: { response: RegistrationResponseJSON; name?: string | undefined }, meta: RequestMeta,
): Promise<PasskeySummary> {
  const expectedRPID = rpIdOf(deps.config);
  await assertMayAddPasskey(deps, caller);
  const userId = caller.user.id;
  const challenge = challengeOf(deps, input.response, 'register');
  if (challenge.userId !== userId) throw refused('registration challenge made for another user');
  let verified: VerifiedRegistrationResponse;
  try {
    verified = await (await webauthn()).verifyRegistrationResponse({
      response: input.response,
      expectedChallenge: challenge.encoded,
      expectedOrigin: [...deps.config.webauthnOrigins],
      expectedRPID,
      requireUserVerification: true,
    });
  } catch (error) {
    throw refused(`registration: ${(error as Error).message}`);
  }
  if (!verified.verified) throw refused('registration not verified');
  const { credential } = verified.registrationInfo;
  const now = deps.clock();
  const name = input.name?.trim() || DEFAULT_PASSKEY_NAME;
  const passkey = { id: credential.id, publicKey: credential.publicKey, counter: credential.counter, transports: credential.transports ?? [], name };
  const outcome = await deps.passkeys.addPasskey(userId, passkey, { id: challenge.id, expiresAt: challenge.expiresAt }, caller.sessionId, now, meta);
  if (outcome === 'replayed') throw refused('registration challenge used already');
  if (outcome === 'exists') throw new TesseraError('invalid_request', { detail: 'This passkey is registered already' });
  return { id: passkey.id, name, createdAt: now, lastUsedAt: null };
}

