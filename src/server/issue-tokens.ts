import type { FastifyReply, FastifyRequest } from 'fastify';
import { accessTokenOptions, signAccessToken } from '../core/access-token.js';
import type { RequestMeta, UserRecord } from '../store/store.js';
import type { Tessera } from './context.js';
import { setRefreshCookie } from './cookie-transport.js';
import type { TokenResponse, User } from './schemas.js';

export type Transport = 'cookie' | 'body';

/**
 * Builds a token response. With the cookie transport the refresh token goes
 * only into the HttpOnly cookie and never into the body.
 */
export async function issueTokens(
  tessera: Tessera,
  reply: FastifyReply,
  issued: { userId: string; sessionId: string; salt: Buffer; generation: number; expiresAt: Date; now: Date; transport: Transport; user?: UserRecord },
): Promise<TokenResponse> {
  const { config, keys, refreshTokens } = tessera;
  const accessToken = await signAccessToken(
    keys.current,
    { sub: issued.userId, sid: issued.sessionId },
    accessTokenOptions(config),
    issued.now,
  );
  const refreshToken = refreshTokens.issue(issued.sessionId, issued.salt, issued.generation);
  const response: TokenResponse = { accessToken, tokenType: 'Bearer', expiresIn: config.accessTokenTtl };
  if (issued.transport === 'cookie') {
    setRefreshCookie(reply, config, refreshToken, (issued.expiresAt.getTime() - issued.now.getTime()) / 1000);
  } else {
    response.refreshToken = refreshToken;
  }
  if (issued.user) response.user = publicUser(issued.user);
  return response;
}

export function publicUser(user: UserRecord): User {
  return { id: user.id, email: user.email, name: user.name, createdAt: user.createdAt.toISOString() };
}

/** The IP and user agent recorded with sessions and events. */
export function requestMeta(request: FastifyRequest): RequestMeta {
  const userAgent = request.headers['user-agent'];
  return { ip: request.ip ?? null, userAgent: typeof userAgent === 'string' ? userAgent.slice(0, 512) : null };
}
