import type { FastifyRequest } from 'fastify';
import type { AdminActor } from '../auth/admin/actor.js';
import { authorizeAdmin } from '../auth/admin/authorize-admin.js';
import { bearerToken } from './request-meta.js';

declare module 'fastify' {
  interface FastifyRequest {
    adminActor: AdminActor | null;
  }
}

/**
 * The preValidation hook of every admin route: an admin key or an admin's access token
 * (authorizeAdmin), before the body and query are looked at, so an unauthenticated caller
 * learns nothing of the schemas; set as `request.adminActor`.
 */
export async function requireAdmin(request: FastifyRequest): Promise<void> {
  request.adminActor = await authorizeAdmin(request.server.tessera, bearerToken(request), request.ip);
}

/** The caller of an admin route. */
export function adminActor(request: FastifyRequest): AdminActor {
  if (!request.adminActor) throw new Error('adminActor() on a route without requireAdmin');
  return request.adminActor;
}
