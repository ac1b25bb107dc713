import rateLimit, { type RateLimitOptions } from '@fastify/rate-limit';
import type { FastifyRequest } from 'fastify';
import type { Redis } from 'ioredis';
import type { IpBudget, RateLimits } from '../auth/rate-limits.js';
import { rateLimited } from '../auth/rate-limits.js';
import type { App } from './context.js';

/**
 * The per-IP budgets of src/auth/rate-limits.ts, enforced by @fastify/rate-limit before a
 * route's body is read: in memory, or shared through Redis by every node.
 */
export async function registerPerIpLimits(app: App, redis: Redis | undefined, redisPrefix: string): Promise<void> {
  await app.register(rateLimit, {
    global: false,
    errorResponseBuilder: (_request: FastifyRequest, context: { ttl: number }) => rateLimited(context.ttl / 1000),
    ...(redis ? { redis, nameSpace: `${redisPrefix}rl:` } : {}),
  });
}

/** Route config: the route's per-IP budget, or none when RATE_LIMITS=off. */
export function perIp(limits: RateLimits, budget: IpBudget): { rateLimit: RateLimitOptions | false } {
  const b = limits.perIp(budget);
  return { rateLimit: b ? { max: b.max, timeWindow: b.windowSeconds * 1000 } : false };
}
