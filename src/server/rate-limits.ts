import type { FastifyRequest } from 'fastify';
import type { RateLimitOptions } from '@fastify/rate-limit';
import type { Config } from '../core/config.js';
import { TesseraError } from '../core/errors.js';

/** Route config for @fastify/rate-limit: `max` requests per IP per window, or none with RATE_LIMITS=off. */
export function rateLimitPerIp(config: Config, max: number, windowSeconds: number): { rateLimit: RateLimitOptions | false } {
  if (!config.rateLimitsEnabled) return { rateLimit: false };
  return { rateLimit: { max, timeWindow: windowSeconds * 1000 } };
}

/** Every 429 is a problem+json `rate_limited` with Retry-After. */
export function rateLimitError(_request: FastifyRequest, context: { ttl: number }) {
  return new TesseraError('rate_limited', { retryAfter: Math.max(1, Math.ceil(context.ttl / 1000)) });
}
