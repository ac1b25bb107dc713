/**
 * @simplewebauthn/server, loaded on the first passkey request rather than at start: it is the
 * largest module Tessera uses (≈ 170 ms of a start-up of about a second), and many
 * deployments never see a passkey.
 */
export function webauthn(): Promise<typeof import('@simplewebauthn/server')> {
  return (library ??= import('@simplewebauthn/server'));
}

let library: Promise<typeof import('@simplewebauthn/server')> | undefined;
