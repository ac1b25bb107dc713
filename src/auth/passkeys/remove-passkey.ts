import type { Config } from '../../core/config.js';
import { TesseraError } from '../../core/errors.js';
import type { RequestMeta } from '../../core/vocabulary.js';
import type { PasskeyStore } from '../../store/passkey-store.js';
import type { SecondFactorStore } from '../../store/second-factor-store.js';
import { assertRecentAuthentication, type Caller } from '../mfa/recent-authentication.js';

export interface RemovePasskeyDeps {
  factors: Pick<SecondFactorStore, 'secondFactors'>;
  passkeys: Pick<PasskeyStore, 'removePasskey'>;
  config: Pick<Config, 'reauthWindow'>;
  clock: () => Date;
}

/**
 * `DELETE /auth/passkeys/:id`: removes one of the caller's passkeys, with `passkey_removed`
 * (the `factor_removed` notice). Recent authentication with a second factor, as removing the
 * authenticator app needs (no downgrade: a stolen password and access token cannot take a
 * factor away). 404 `not_found` when the caller has no such passkey.
 */
export async function removePasskey(deps: RemovePasskeyDeps, caller: Caller, id: string, meta: RequestMeta): Promise<void> {
  const factors = await deps.factors.secondFactors(caller.user.id);
  const now = deps.clock();
  assertRecentAuthentication(caller, deps.config, now, factors.totp || factors.passkeys);
  if (!(await deps.passkeys.removePasskey(caller.user.id, id, caller.sessionId, now, meta))) {
    throw new TesseraError('not_found', { detail: 'No such passkey' });
  }
}
