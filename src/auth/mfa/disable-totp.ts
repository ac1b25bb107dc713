import type { Config } from '../../core/config.js';
import { TesseraError } from '../../core/errors.js';
import type { RequestMeta } from '../../core/vocabulary.js';
import type { SecondFactorStore } from '../../store/second-factor-store.js';
import { assertRecentAuthentication, type Caller } from './recent-authentication.js';

export interface DisableTotpDeps {
  factors: Pick<SecondFactorStore, 'secondFactors' | 'disableTotp'>;
  config: Pick<Config, 'reauthWindow'>;
  clock: () => Date;
}

/**
 * `DELETE /auth/mfa/totp`: removes the authenticator app (or a setup never confirmed), the
 * recovery codes and any pending sign-in, recording `mfa_disabled` (the `factor_removed`
 * notice). Needs recent authentication with a second factor (no downgrade: a stolen password
 * and an access token cannot take the factor away). 404 `not_found` when there is none.
 */
export async function disableTotp(deps: DisableTotpDeps, caller: Caller, meta: RequestMeta): Promise<void> {
  const userId = caller.user.id;
  const factors = await deps.factors.secondFactors(userId);
  const now = deps.clock();
  assertRecentAuthentication(caller, deps.config, now, factors.totp || factors.passkeys);
  if (!(await deps.factors.disableTotp(userId, caller.sessionId, now, meta))) {
    throw new TesseraError('not_found', { detail: 'No authenticator app is set up' });
  }
}
