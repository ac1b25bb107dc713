import { verifyAccessToken } from '../../core/access-token.js';
import type { Config } from '../../core/config.js';
import { TesseraError } from '../../core/errors.js';
import { FACTOR_AMR } from '../../core/vocabulary.js';
import type { Store } from '../../store/store.js';
import type { Authenticated, VerifyDeps } from '../authenticate.js';

/** The caller of a second-factor route: an active session, and how and when its access token says the user authenticated. */
export interface Caller extends Authenticated {
  /** RFC 8176 values of the access token */
  amr: string[];
  /** the access token's `auth_time` */
  authTime: Date;
}

export interface CallerDeps extends VerifyDeps {
  store: Pick<Store, 'findActiveSession'>;
}

/**
 * Verifies the Bearer access token and that its session is active, as `authenticate` does,
 * and keeps the token's `amr` and `auth_time`: recent authentication is judged by the token
 * presented, so an older token of the same session does not become recent when the user
 * re-authenticates elsewhere.
 */
export async function authenticateCaller(deps: CallerDeps, token: string | undefined): Promise<Caller> {
  if (!token) throw new TesseraError('unauthorized', { detail: 'An Authorization: Bearer access token is required' });
  const now = deps.clock();
  const claims = await verifyAccessToken(token, (kid) => deps.keys.publicKey(kid), deps.accessTokenOptions, now);
  const active = await deps.store.findActiveSession(claims.sub, claims.sid, now);
  if (!active) throw new TesseraError('unauthorized', { detail: 'The session has ended' });
  const amr = Array.isArray(claims.amr) ? claims.amr.filter((v): v is string => typeof v === 'string') : [];
  const authTime = new Date((typeof claims.auth_time === 'number' ? claims.auth_time : 0) * 1000);
  return { ...active, amr, authTime };
}

/**
 * Recent authentication (SPEC §8): the token's `auth_time` within REAUTH_WINDOW, and, when
 * the user has a second factor and the action changes factors (`withFactor`), an `amr` that
 * shows one (`otp`, `hwk` or `mfa`): once a factor exists, the password alone cannot remove or
 * replace it. Else 403 `reauthentication_required` (`POST /auth/reauthenticate`, then retry).
 */
export function assertRecentAuthentication(
  caller: Pick<Caller, 'amr' | 'authTime'>, config: Pick<Config, 'reauthWindow'>, now: Date, withFactor: boolean,
): void {
  if (now.getTime() - caller.authTime.getTime() > config.reauthWindow * 1000) {
    throw new TesseraError('reauthentication_required', {
      detail: 'The last sign-in is too old for this: re-authenticate (POST /auth/reauthenticate) and retry with the new access token',
    });
  }
  if (withFactor && !caller.amr.some((value) => FACTOR_AMR.includes(value))) {
    throw new TesseraError('reauthentication_required', {
      detail: 'Changing second factors needs re-authentication with a second factor, not the password alone',
    });
  }
}
