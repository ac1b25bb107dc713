import type { FastifyRequest } from 'fastify';
import { accessTokenOptions, verifyAccessToken } from '../core/access-token.js';
import { TesseraError } from '../core/errors.js';
import type { UserRecord } from '../store/store.js';
import type { Tessera } from './context.js';

export interface Authenticated {
  sessionId: string;
  user: UserRecord;
}

declare module 'fastify' {
  interface FastifyRequest {
    auth: Authenticated | null;
  }
}

/** The Bearer token of a request, if it has one. */
export function bearerToken(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (typeof header !== 'string') return undefined;
  const match = /^Bearer +([^ ]+) *$/i.exec(header);
  return match?.[1];
}

/** Verifies the request's access token alone (no database): its session and user, or `unauthorized`. */
export async function verifyBearer(tessera: Tessera, request: FastifyRequest): Promise<{ sessionId: string; userId: string }> {
  const token = bearerToken(request);
  if (!token) throw new TesseraError('unauthorized', { detail: 'An Authorization: Bearer access token is required' });
  const { config, keys, clock } = tessera;
  const claims = await verifyAccessToken(token, (kid) => keys.publicKey(kid), accessTokenOptions(config), clock());
  return { sessionId: claims.sid, userId: claims.sub };
}

/**
 * Verifies the access token and that its session is still active: one
 * primary-key read, which is what makes sign-out instant on Tessera's own API.
 */
export async function authenticate(tessera: Tessera, request: FastifyRequest): Promise<Authenticated> {
  const { sessionId, userId } = await verifyBearer(tessera, request);
  const active = await tessera.store.findActiveSession(sessionId, tessera.clock());
  if (!active || active.user.id !== userId) {
    throw new TesseraError('unauthorized', { detail: 'The session has ended' });
  }
  return active;
}

/** A preHandler for protected routes: sets `request.auth`. */
export function requireAuth(tessera: Tessera) {
  return async (request: FastifyRequest) => {
    request.auth = await authenticate(tessera, request);
  };
}
