import type { Config } from '../../core/config.js';
import type { PurposeKeys } from '../../core/derive-key.js';
import { TesseraError } from '../../core/errors.js';
import { newRecoveryCodes, recoveryCodeHashes } from '../../core/recovery-code.js';
import type { SecondFactorStore } from '../../store/second-factor-store.js';
import { assertRecentAuthentication, type Caller } from './recent-authentication.js';

export interface RegenerateRecoveryCodesDeps {
  factors: Pick<SecondFactorStore, 'secondFactors' | 'replaceRecoveryCodes'>;
  recoveryCodeKeys: PurposeKeys;
  config: Pick<Config, 'reauthWindow'>;
  clock: () => Date;
}

/**
 * `POST /auth/mfa/recovery-codes`: ten new recovery codes, shown this once; every earlier one,
 * used or not, stops working. Needs recent authentication with a second factor, and a second
 * factor to recover (400 `invalid_request` without one).
 */
export async function regenerateRecoveryCodes(deps: RegenerateRecoveryCodesDeps, caller: Caller): Promise<string[]> {
  const userId = caller.user.id;
  const factors = await deps.factors.secondFactors(userId);
  const now = deps.clock();
  const hasFactor = factors.totp || factors.passkeys;
  assertRecentAuthentication(caller, deps.config, now, hasFactor);
  if (!hasFactor) throw new TesseraError('invalid_request', { detail: 'Recovery codes come with a second factor: set up an authenticator app first' });
  const codes = newRecoveryCodes();
  await deps.factors.replaceRecoveryCodes(userId, codes.map((c) => recoveryCodeHashes(deps.recoveryCodeKeys, userId, c)![0]!), now);
  return codes;
}
