import type { FastifyRequest } from 'fastify';
import { authenticate, type Authenticated } from '../auth/authenticate.js';
import { bearerToken } from './request-meta.js';

declare module 'fastify' {
  interface FastifyRequest {
    auth: Authenticated | null;
  }
}

/** The preHandler of protected routes: a valid Bearer of an active session, set as `request.auth`. */
export async function requireAuth(request: FastifyRequest): Promise<void> {
  request.auth = await authenticate(request.server.tessera, bearerToken(request));
}

/** The caller of a route guarded by `requireAuth`. */
export function caller(request: FastifyRequest): Authenticated {
  if (!request.auth) throw new Error('caller() on a route without requireAuth');
  return request.auth;
}
