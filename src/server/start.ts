import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import pino, { type Logger } from 'pino';
import { loadConfig, type Config } from '../core/config.js';
import { migrateToLatest, openDatabase, type OpenDatabase } from '../store/database.js';
import { Store } from '../store/store.js';
import { buildApp, REDACT } from './app.js';

/** How often a node tries to purge old sessions; only one node at a time actually does. */
const PURGE_INTERVAL_MS = 10 * 60_000;

/** Validates configuration or exits with one line per problem. */
export function configOrExit(env: NodeJS.ProcessEnv): Config {
  const result = loadConfig(env);
  if (!result.ok) {
    for (const line of result.errors) process.stderr.write(`tessera: ${line}\n`);
    process.stderr.write(`tessera: refusing to start with ${result.errors.length} configuration error(s); see docs/configuration.md\n`);
    process.exit(1);
  }
  return result.config;
}

/** Opens the configured database and brings its schema up to date, or exits with a clear reason. */
export async function openStore(config: Config, logger: Logger): Promise<{ store: Store; database: OpenDatabase }> {
  let database: OpenDatabase | undefined;
  try {
    database = await openDatabase({
      url: config.databaseUrl,
      dataDir: config.dataDir,
      onPoolError: (error) => logger.warn({ err: { message: error.message } }, 'database connection lost; it is re-opened on the next query'),
    });
    const applied = await migrateToLatest(database.db);
    for (const name of applied) logger.info(`applied migration ${name}`);
    return { store: new Store(database.db), database };
  } catch (error) {
    await database?.db.destroy().catch(() => {});
    const reason = (error as { code?: string }).code ?? (error as Error).message;
    // The description never includes DATABASE_URL itself, which usually carries a password.
    logger.fatal(`cannot open the database (${database?.description ?? (config.databaseUrl ? 'PostgreSQL' : config.dataDir)}): ${reason}`);
    process.exit(1);
  }
}

/**
 * TESSERA_SECRET, or in development a secret generated once into DATA_DIR (mode 0600)
 * so that sessions survive restarts. Production refuses to start without one (see config).
 */
export function resolveSecret(config: Config, logger: Logger): string {
  if (config.secret) return config.secret;
  const file = join(config.dataDir, 'secret');
  try {
    const secret = readFileSync(file, 'utf8').trim();
    if (Buffer.byteLength(secret) < 32) {
      logger.fatal(`${file} holds fewer than 32 bytes; delete it to generate a new one (existing sessions end), or set TESSERA_SECRET`);
      process.exit(1);
    }
    return secret;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    mkdirSync(config.dataDir, { recursive: true });
    const secret = randomBytes(48).toString('base64url');
    try {
      writeFileSync(file, `${secret}\n`, { mode: 0o600, flag: 'wx' });
      logger.warn(`generated a development secret in ${file}; set TESSERA_SECRET in production`);
      return secret;
    } catch {
      // Another process wrote it first: use theirs.
      return readFileSync(file, 'utf8').trim();
    }
  }
}

export function createLogger(config: Config): Logger {
  return pino({ level: config.logLevel, redact: REDACT });
}

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
