import { signAccessToken, type AccessTokenOptions } from '../core/access-token.js';
import type { RefreshTokenCodec } from '../core/refresh-token.js';
import type { UserRecord } from '../store/store.js';
import type { KeyRing } from './key-ring.js';

/** What tokens are made from: a session at a generation, valid until `expiresAt`. */
export interface Issue {
  session: { id: string; salt: Buffer; user: UserRecord; amr: string[]; authTime: Date };
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

/**
 * An embedding application's extra claims for an access token (`buildApp({ claims })`).
 * Tessera's own claims cannot be overridden; a token over 8 KiB is refused at issue.
 *
 * @example
 * const claims: ClaimsHook = ({ user }) => ({ plan: user.metadata.plan });
 */
export type ClaimsHook = (context: {
  user: UserRecord;
  session: { id: string; amr: string[]; authTime: Date };
}) => Record<string, unknown> | Promise<Record<string, unknown>>;

export interface IssueDeps {
  keys: Pick<KeyRing, 'signingKey'>;
  refreshTokens: Pick<RefreshTokenCodec, 'issue'>;
  accessTokenOptions: AccessTokenOptions;
  claims?: ClaimsHook | undefined;
}

/**
 * Signs an access token with the current key and derives the refresh token of the
 * session's generation; nothing is stored, so a replay derives the identical token.
 */
export async function issueTokens(deps: IssueDeps, issue: Issue): Promise<Tokens> {
  const { session, now } = issue;
  const { user } = session;
  const options = deps.accessTokenOptions;
  const extra = deps.claims ? await deps.claims({ user, session: { id: session.id, amr: session.amr, authTime: session.authTime } }) : {};
  const subject = { userId: user.id, sessionId: session.id, roles: user.roles, orgId: user.orgId, amr: session.amr, authTime: session.authTime };
  return {
    accessToken: signAccessToken(deps.keys.signingKey(now), subject, options, now, extra),
    expiresIn: options.ttl,
    refreshToken: deps.refreshTokens.issue(user.id, session.id, session.salt, issue.generation),
    refreshExpiresIn: (issue.expiresAt.getTime() - now.getTime()) / 1000,
    user,
  };
}
