import rateLimit, { type RateLimitOptions } from '@fastify/rate-limit';
import type { FastifyRequest } from 'fastify';
import type { IpBudget, RateLimits } from '../auth/rate-limits.js';
import { rateLimited } from '../auth/rate-limits.js';
import type { App } from './context.js';
import type { RedisClient } from './redis.js';

/**
 * The per-IP budgets of src/auth/rate-limits.ts, enforced by @fastify/rate-limit before a
 * route's body is read: in memory, or shared through Redis by every node. Its Redis store
 * works on a Cluster client as on a single Redis: each count is one script on one key
 * (`<prefix>rl:<method><url>-<ip>`), defined with `defineCommand`, which both clients have.
 */
export async function registerPerIpLimits(app: App, redis: RedisClient | undefined, redisPrefix: string): Promise<void> {
  await app.register(rateLimit, {
    global: false,
    errorResponseBuilder: (_request: FastifyRequest, context: { ttl: number }) => rateLimited(context.ttl / 1000),
    ...(redis ? { redis, nameSpace: `${redisPrefix}rl:` } : {}),
  });
}

/** Route config: the route's per-IP budget, or none when RATE_LIMITS=off. */
export function perIp(limits: RateLimits, budget: IpBudget): { rateLimit: RateLimitOptions | false } {
  const b = limits.perIp(budget);
  // The route's own builder, so the refusal is counted under its budget's name.
  const refuse = (_request: FastifyRequest, context: { ttl: number }) => limits.refuse(budget, context.ttl / 1000);
  return { rateLimit: b ? { max: b.max, timeWindow: b.windowSeconds * 1000, errorResponseBuilder: refuse } : false };
}
