import type { IncomingMessage, ServerResponse } from 'node:http';
import pino, { type Logger } from 'pino';
import type { ClaimsHook } from '../auth/issue-tokens.js';
import { loadConfig } from '../core/config.js';
import { LOG_REDACT_PATHS } from '../core/vocabulary.js';
import { migrateToLatest, openDatabase } from '../store/database.js';
import { Store } from '../store/store.js';
import { buildApp } from './app.js';
import type { App } from './context.js';
import { schedulePurge } from './housekeeping.js';
import { listenForMetrics } from './metrics.js';
import { connectRedis, type RedisClient } from './redis.js';

export interface EmbedOptions {
  /** Where Tessera's routes go in the host app, such as `/api/auth`. */
  prefix: string;
  /** The configuration, as environment variables (default `process.env`); TESSERA_SECRET is required. */
  env?: Record<string, string | undefined>;
  /** Extra claims for access tokens; Tessera's own cannot be overridden. */
  claims?: ClaimsHook;
  /** A pino logger of the host app; default: pino at LOG_LEVEL. */
  logger?: Logger;
}

export interface EmbeddedTessera {
  /**
   * Express/Connect middleware (also `app.use()` of NestJS on Express): answers every request
   * under the prefix and passes the others on. Mount it before any body parser.
   */
  middleware: (req: IncomingMessage, res: ServerResponse, next: (error?: unknown) => void) => void;
  /** The Fastify app behind it (for `inject()` in tests, or `app.tessera`). */
  app: App;
  /** Stops the purge, closes the app, the database and Redis. */
  close(): Promise<void>;
}

/**
 * Tessera inside an existing Express or NestJS app, in its process: its routes under
 * `prefix` (`/api/auth/login`, `/api/auth/refresh`, `/api/auth/.well-known/jwks.json`…), the
 * refresh cookie's Path with them. Opens and migrates the database as `tessera serve` does.
 *
 * @example
 * const tessera = await embedTessera({ prefix: '/api/auth' });
 * app.use(tessera.middleware); // before express.json()
 */
export async function embedTessera(options: EmbedOptions): Promise<EmbeddedTessera> {
  const loaded = loadConfig(options.env ?? process.env);
  if (!loaded.ok) throw new Error(`Tessera's configuration is not valid:\n${loaded.errors.join('\n')}`);
  const { config } = loaded;
  if (!config.secret) throw new Error('TESSERA_SECRET is required when Tessera is embedded: set at least 32 random bytes (try: openssl rand -base64 48)');
  const logger = options.logger ?? pino({ level: config.logLevel, redact: [...LOG_REDACT_PATHS] }, pino.destination({ dest: 1, sync: false }));

  const database = await openDatabase({ url: config.databaseUrl, dataDir: config.dataDir, schema: config.databaseSchema, pooler: config.databasePooler });
  let redis: RedisClient | undefined;
  let app: App;
  try {
    await migrateToLatest(database.db, config.databaseSchema);
    redis = config.redisUrl ? await connectRedis(config.redisUrl, logger, { cluster: config.redisCluster }) : undefined;
    app = await buildApp({
      config, store: new Store(database.db), secret: config.secret, logger, redis, claims: options.claims, prefix: options.prefix,
      databasePool: database.pool,
    });
  } catch (error) {
    redis?.disconnect();
    await database.db.destroy();
    throw error;
  }
  const stopPurging = schedulePurge(app.tessera.store, config.sessionRetention, logger);
  // METRICS_PORT: the metrics' own listener, as `tessera serve` starts it.
  const metrics = await listenForMetrics(app);
  const { prefix } = options;

  return {
    app,
    middleware(req, res, next) {
      // Express strips a mount path from req.url (app.use('/api', …)); originalUrl keeps it.
      const url = (req as { originalUrl?: string }).originalUrl ?? req.url ?? '/';
      const path = url.split('?', 1)[0]!;
      if (path !== prefix && !path.startsWith(`${prefix}/`)) return next();
      // A body parser mounted before us has read the stream: what Tessera would read is gone.
      if (req.readableEnded && (req as { body?: unknown }).body !== undefined) {
        return next(new Error(`mount Tessera's middleware before any body parser (such as express.json()): the body of ${path} was already read`));
      }
      req.url = url;
      app.routing(req, res);
    },
    async close() {
      stopPurging();
      await metrics?.close();
      await app.close();
      await database.db.destroy();
      await redis?.quit().catch(() => redis?.disconnect());
    },
  };
}
