import type { FastifyRequest } from 'fastify';
import { accessTokenOptions, verifyAccessToken } from '../core/access-token.js';
import { TesseraError } from '../core/errors.js';
import { isUuid } from '../core/uuid.js';
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

/**
 * Verifies the access token and that its session is still active: one
 * primary-key read, which is what makes sign-out instant on Tessera's own API.
 */
export async function authenticate(tessera: Tessera, request: FastifyRequest): Promise<Authenticated> {
  const token = bearerToken(request);
  if (!token) throw new TesseraError('unauthorized', { detail: 'An Authorization: Bearer access token is required' });
  const { config, keys, store, clock } = tessera;
  const now = clock();
  const claims = await verifyAccessToken(
    token,
    (kid) => keys.publicKey(kid),
    accessTokenOptions(config),
    now,
  );
  const active = isUuid(claims.sid) ? await store.findActiveSession(claims.sid, now) : undefined;
  if (!active || active.user.id !== claims.sub) {
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
