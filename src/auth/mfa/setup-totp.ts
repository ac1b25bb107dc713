import type { Config } from '../../core/config.js';
import { TesseraError } from '../../core/errors.js';
import type { Sealer } from '../../core/seal.js';
import { base32Encode, newTotpSecret, otpauthUri } from '../../core/totp.js';
import type { SecondFactorStore } from '../../store/second-factor-store.js';
import { mailOn } from '../account-links.js';
import { assertRecentAuthentication, type Caller } from './recent-authentication.js';

export interface SetupTotpDeps {
  factors: Pick<SecondFactorStore, 'secondFactors' | 'startTotpSetup'>;
  totpSecrets: Pick<Sealer, 'seal'>;
  config: Pick<Config, 'reauthWindow' | 'mail' | 'appName'>;
  clock: () => Date;
}

/** What the user adds to an authenticator app: the secret to type, or the URI a QR code carries. */
export interface TotpSetup {
  /** base32, no padding */
  secret: string;
  otpauthUri: string;
}

/**
 * `POST /auth/mfa/totp/setup`: a new secret, stored sealed and not yet a factor (a code confirms
 * it: `confirmTotp`). Needs recent authentication (with a factor, if the user has another one),
 * a verified address when email features are on (403 `email_not_verified`: recovery by mail
 * must reach the owner), and no confirmed app (409 `totp_already_enabled`: remove it first).
 * Calling it again before confirming replaces the secret.
 */
export async function setupTotp(deps: SetupTotpDeps, caller: Caller): Promise<TotpSetup> {
  const { user } = caller;
  const factors = await deps.factors.secondFactors(user.id);
  assertRecentAuthentication(caller, deps.config, deps.clock(), factors.totp || factors.passkeys);
  if (mailOn(deps.config) && !user.emailVerified) {
    throw new TesseraError('email_not_verified', { detail: 'Verify your email address before adding a second factor' });
  }
  if (factors.totp) throw new TesseraError('totp_already_enabled');
  const secret = newTotpSecret();
  const encoded = base32Encode(secret);
  if (!(await deps.factors.startTotpSetup(user.id, deps.totpSecrets.seal(encoded), deps.clock()))) {
    throw new TesseraError('totp_already_enabled');
  }
  return { secret: encoded, otpauthUri: otpauthUri({ issuer: deps.config.appName, account: user.email, secret }) };
}
