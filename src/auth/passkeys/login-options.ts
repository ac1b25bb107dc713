import type { PublicKeyCredentialRequestOptionsJSON } from '@simplewebauthn/server';
import { webauthn } from './webauthn-library.js';
import { CEREMONY_TIMEOUT_MS, rpIdOf, type RelyingPartyDeps } from './relying-party.js';

/**
 * `POST /auth/passkeys/login/options`: what `navigator.credentials.get()` needs to sign in with
 * any discoverable credential of this site (no email, no allowCredentials), user verification
 * required. The challenge is MAC'd (random ‖ expiry ‖ purpose), valid 5 minutes, and not
 * stored: an anonymous caller costs a MAC, never a write.
 */
export async function passkeyLoginOptions(deps: RelyingPartyDeps): Promise<PublicKeyCredentialRequestOptionsJSON> {
  return (await webauthn()).generateAuthenticationOptions({
    rpID: rpIdOf(deps.config),
    challenge: deps.challenges.make('login', undefined, deps.clock()),
    timeout: CEREMONY_TIMEOUT_MS,
    userVerification: 'required',
    allowCredentials: [],
  });
}
