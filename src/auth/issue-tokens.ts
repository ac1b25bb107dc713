import { signAccessToken, type AccessTokenOptions } from '../core/access-token.js';
import type { RefreshTokenCodec } from '../core/refresh-token.js';
import type { UserRecord } from '../store/store.js';
import type { KeyRing } from './key-ring.js';

/** What tokens are made from: a session at a generation, valid until `expiresAt`. */
export interface Issue {
  session: { id: string; salt: Buffer; user: UserRecord };
  generation: number;
  expiresAt: Date;
  now: Date;
}

/** What every way into a session (register, sign-in, refresh) ends with. */
export interface Tokens {
  accessToken: string;
  /** Seconds until the access token expires. */
  expiresIn: number;
  refreshToken: string;
  /** Seconds the session has left: the refresh cookie lives no longer. */
  refreshExpiresIn: number;
  user: UserRecord;
}

export interface IssueDeps {
  keys: Pick<KeyRing, 'current'>;
  refreshTokens: Pick<RefreshTokenCodec, 'issue'>;
  accessTokenOptions: AccessTokenOptions;
}

/**
 * Signs an access token with the current key and derives the refresh token of the
 * session's generation; nothing is stored, so a replay derives the identical token.
 */
export async function issueTokens(deps: IssueDeps, issue: Issue): Promise<Tokens> {
  const { session, now } = issue;
  const options = deps.accessTokenOptions;
  return {
    accessToken: await signAccessToken(deps.keys.current, { sub: session.user.id, sid: session.id }, options, now),
    expiresIn: options.ttl,
    refreshToken: deps.refreshTokens.issue(session.user.id, session.id, session.salt, issue.generation),
    refreshExpiresIn: (issue.expiresAt.getTime() - now.getTime()) / 1000,
    user: session.user,
  };
}
