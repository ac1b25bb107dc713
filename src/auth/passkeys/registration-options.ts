import type { PublicKeyCredentialCreationOptionsJSON } from '@simplewebauthn/server';
import { webauthn } from './webauthn-library.js';
import type { Config } from '../../core/config.js';
import { TesseraError } from '../../core/errors.js';
import { uuidBytes } from '../../core/webauthn-challenge.js';
import type { PasskeyStore } from '../../store/passkey-store.js';
import type { SecondFactorStore } from '../../store/second-factor-store.js';
import { mailOn } from '../account-links.js';
import { assertRecentAuthentication, type Caller } from '../mfa/recent-authentication.js';
import { CEREMONY_TIMEOUT_MS, rpIdOf, type RelyingPartyDeps } from './relying-party.js';

export interface RegistrationOptionsDeps extends RelyingPartyDeps {
  config: RelyingPartyDeps['config'] & Pick<Config, 'reauthWindow' | 'mail'>;
  factors: Pick<SecondFactorStore, 'secondFactors'>;
  passkeys: Pick<PasskeyStore, 'credentialsOf'>;
}

/** May this caller add a passkey now? Recent authentication (with a factor once there is one), and a verified address when email features are on. */
export async function assertMayAddPasskey(deps: Pick<RegistrationOptionsDeps, 'config' | 'factors' | 'clock'>, caller: Caller): Promise<void> {
  const factors = await deps.factors.secondFactors(caller.user.id);
  assertRecentAuthentication(caller, deps.config, deps.clock(), factors.totp || factors.passkeys);
  if (mailOn(deps.config) && !caller.user.emailVerified) {
    throw new TesseraError('email_not_verified', { detail: 'Verify your email address before adding a second factor' });
  }
}

/**
 * `POST /auth/passkeys/register/options`: what `navigator.credentials.create()` needs to make a
 * discoverable credential (resident key and user verification required) whose user handle is
 * the user id, excluding the credentials the user has. The challenge is MAC'd and bound to the
 * user, valid 5 minutes; nothing is stored. Needs recent authentication, as enrolling a factor does.
 */
export async function passkeyRegistrationOptions(deps: RegistrationOptionsDeps, caller: Caller): Promise<PublicKeyCredentialCreationOptionsJSON> {
  const rpID = rpIdOf(deps.config);
  await assertMayAddPasskey(deps, caller);
  const { user } = caller;
  const existing = await deps.passkeys.credentialsOf(user.id);
  return (await webauthn()).generateRegistrationOptions({
    rpName: deps.config.appName,
    rpID,
    userName: user.email,
    userDisplayName: user.name || user.email,
    userID: new Uint8Array(uuidBytes(user.id)),
    challenge: deps.challenges.make('register', user.id, deps.clock()),
    timeout: CEREMONY_TIMEOUT_MS,
    attestationType: 'none',
    excludeCredentials: existing.map((c) => ({ id: c.id, transports: c.transports })),
    authenticatorSelection: { residentKey: 'required', requireResidentKey: true, userVerification: 'required' },
  });
}
