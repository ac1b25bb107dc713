import { Redis } from 'ioredis';
import type { Logger } from 'pino';

/** How long a Redis command may take before the request it serves gets its 503. */
const REDIS_COMMAND_TIMEOUT_MS = 250;

/**
 * The REDIS_URL client shared by every rate limit, connected (or given up on after 5 s: it
 * keeps trying in the background, and requests that need it answer 503 until it is there).
 */
export async function connectRedis(url: string, logger: Pick<Logger, 'info' | 'warn'>): Promise<Redis> {
  const redis = new Redis(url, {
    // Fail fast when Redis is away: a command is refused at once while disconnected (no
    // offline queue, no retries) and given up after 250 ms when Redis does not answer, so
    // a request that needs a limit check gets its 503 quickly instead of hanging.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: REDIS_COMMAND_TIMEOUT_MS,
    // Not auto-pipelined: ioredis sends one auto-pipeline at a time, so behind a silent Redis each
    // batch waited for the previous one's 250 ms timeout first (503s after up to 500 ms).
    enableAutoPipelining: false,
  });
  let redisDown = false;
  redis.on('error', (error) => {
    if (!redisDown) logger.warn({ err: { message: error.message } }, 'redis unreachable; requests that need a rate-limit check answer 503 until it is back');
    redisDown = true;
  });
  redis.on('ready', () => {
    if (redisDown) logger.info('redis is reachable again');
    redisDown = false;
  });
  // Without an offline queue, commands sent before the first connection would fail: wait for it (bounded).
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, 5_000);
    redis.once('ready', () => {
      clearTimeout(timer);
      resolve();
    });
  });
  logger.info('rate-limit counters are shared through Redis');
  return redis;
}
