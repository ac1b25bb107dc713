import type { FastifyReply } from 'fastify';
import { accessTokenOptions, signAccessToken } from '../core/access-token.js';
import type { UserRecord } from '../store/store.js';
import type { Tessera } from './context.js';
import { setRefreshCookie } from './cookie-transport.js';
import type { TokenResponse, User } from './schemas.js';

export type Transport = 'cookie' | 'body';

/** What a token response is made from: a session at a generation, valid until `expiresAt`. */
export interface Issue {
  session: { id: string; salt: Buffer; user: UserRecord };
  generation: number;
  expiresAt: Date;
  now: Date;
}

/**
 * Builds a token response. With the cookie transport the refresh token goes
 * only into the HttpOnly cookie and never into the body.
 */
export async function issueTokens(tessera: Tessera, reply: FastifyReply, issue: Issue, transport: Transport): Promise<TokenResponse> {
  const { config, keys, refreshTokens } = tessera;
  const { session, now } = issue;
  const accessToken = await signAccessToken(keys.current, { sub: session.user.id, sid: session.id }, accessTokenOptions(config), now);
  const refreshToken = refreshTokens.issue(session.id, session.salt, issue.generation);
  const response: TokenResponse = { accessToken, tokenType: 'Bearer', expiresIn: config.accessTokenTtl, user: publicUser(session.user) };
  if (transport === 'cookie') {
    setRefreshCookie(reply, config, refreshToken, (issue.expiresAt.getTime() - now.getTime()) / 1000);
  } else {
    response.refreshToken = refreshToken;
  }
  return response;
}

export function publicUser(user: UserRecord): User {
  return { id: user.id, email: user.email, name: user.name, createdAt: user.createdAt.toISOString() };
}
