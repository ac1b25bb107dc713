import type { FastifyReply } from 'fastify';
import type { Tokens } from '../auth/issue-tokens.js';
import type { Config } from '../core/config.js';
import type { Transport } from '../core/vocabulary.js';
import type { UserRecord } from '../store/store.js';
import { setRefreshCookie } from './cookie-transport.js';
import type { TokenResponse, User } from './schemas.js';

/**
 * A token response. With the cookie transport the refresh token goes only into the
 * HttpOnly cookie and never into the body.
 */
export function tokenResponse(reply: FastifyReply, config: Config, tokens: Tokens, transport: Transport): TokenResponse {
  const response: TokenResponse = { accessToken: tokens.accessToken, tokenType: 'Bearer', expiresIn: tokens.expiresIn, user: publicUser(tokens.user) };
  if (transport === 'cookie') setRefreshCookie(reply, config, tokens.refreshToken, tokens.refreshExpiresIn);
  else response.refreshToken = tokens.refreshToken;
  return response;
}

export function publicUser(user: UserRecord): User {
  return {
    id: user.id, email: user.email, name: user.name, createdAt: user.createdAt.toISOString(), roles: user.roles, orgId: user.orgId,
    emailVerified: user.emailVerified,
  };
}
