import { Redis } from 'ioredis';
import { buildApp } from '../server/app.js';
import { configOrExit, createLogger, openStore, resolveSecret } from './setup.js';

/** How often a node tries to purge old sessions; only one node at a time actually does. */
const PURGE_INTERVAL_MS = 10 * 60_000;

/** `tessera serve`: validate, open, migrate, listen, purge periodically, shut down cleanly. */
export async function serve(env: NodeJS.ProcessEnv): Promise<void> {
  const config = configOrExit(env);
  const logger = createLogger(config);
  const secret = resolveSecret(config, logger);
  const { store, database } = await openStore(config, logger);
  if (!config.rateLimitsEnabled) {
    logger.warn('RATE_LIMITS=off: every rate limit is disabled. Use this for benchmarks and load tests only, never in production.');
  }
  if (!config.production && !config.cookieSecure) {
    logger.info('development mode: the refresh cookie is not Secure because PUBLIC_URL is http');
  }

  let redis: Redis | undefined;
  if (config.redisUrl) {
    redis = new Redis(config.redisUrl, { maxRetriesPerRequest: 2, enableAutoPipelining: true });
    redis.on('error', (error) => logger.warn({ err: { message: error.message } }, 'redis unreachable; requests that need a rate-limit check answer 503 until it is back'));
    logger.info('rate-limit counters are shared through Redis');
  }

  let app;
  try {
    app = await buildApp({ config, store, secret, logger, redis });
  } catch (error) {
    logger.fatal(`cannot start: ${(error as Error).message}`);
    process.exit(1);
  }
  try {
    await app.listen({ port: config.port, host: config.host });
  } catch (error) {
    logger.fatal(`cannot listen on ${config.host}:${config.port}: ${(error as { code?: string }).code ?? (error as Error).message}`);
    process.exit(1);
  }
  logger.info(`Tessera is ready at ${config.publicUrl} (listening on ${config.host}:${config.port}, storage: ${database.description})`);

  const purge = async () => {
    try {
      const deleted = await store.purgeSessions(new Date(), config.sessionRetention);
      if (deleted > 0) logger.info(`purged ${deleted} expired or revoked session(s)`);
    } catch (error) {
      logger.warn({ err: { message: (error as Error).message } }, 'session purge failed; will retry');
    }
  };
  const timer = setInterval(purge, PURGE_INTERVAL_MS);
  timer.unref();
  setTimeout(purge, 5_000).unref();

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info(`${signal} received, shutting down`);
    clearInterval(timer);
    await app.close();
    await database.db.destroy();
    redis?.disconnect();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
}
