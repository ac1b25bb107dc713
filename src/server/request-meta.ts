import type { FastifyRequest } from 'fastify';
import type { RequestMeta } from '../store/store.js';

/** The IP and user agent recorded with sessions and events. */
export function requestMeta(request: FastifyRequest): RequestMeta {
  const userAgent = request.headers['user-agent'];
  return { ip: request.ip ?? null, userAgent: typeof userAgent === 'string' ? userAgent.slice(0, 512) : null };
}
