import { verifyAccessToken, type AccessTokenOptions } from '../core/access-token.js';
import { TesseraError } from '../core/errors.js';
import type { Store, UserRecord } from '../store/store.js';
import type { KeyRing } from './key-ring.js';

/** The caller of a protected endpoint: an active session and its user. */
export interface Authenticated {
  sessionId: string;
  user: UserRecord;
}

export interface VerifyDeps {
  keys: Pick<KeyRing, 'publicKey'>;
  accessTokenOptions: AccessTokenOptions;
  clock: () => Date;
}

export interface AuthenticateDeps extends VerifyDeps {
  store: Pick<Store, 'findActiveSession'>;
}

/** Verifies an access token alone (no database): its session and user, or `unauthorized`. */
export async function verifyBearer(deps: VerifyDeps, token: string | undefined): Promise<{ sessionId: string; userId: string }> {
  if (!token) throw new TesseraError('unauthorized', { detail: 'An Authorization: Bearer access token is required' });
  const claims = await verifyAccessToken(token, (kid) => deps.keys.publicKey(kid), deps.accessTokenOptions, deps.clock());
  return { sessionId: claims.sid, userId: claims.sub };
}

/**
 * Verifies the access token and that its session is still active: one
 * primary-key read, which is what makes sign-out instant on Tessera's own API.
 */
export async function authenticate(deps: AuthenticateDeps, token: string | undefined): Promise<Authenticated> {
  const { sessionId, userId } = await verifyBearer(deps, token);
  const active = await deps.store.findActiveSession(userId, sessionId, deps.clock());
  if (!active) {
    throw new TesseraError('unauthorized', { detail: 'The session has ended' });
  }
  return active;
}
