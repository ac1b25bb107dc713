import { Server } from 'node:net';
import type { Logger } from 'pino';
import type { Config } from '../core/config.js';
import { buildApp } from '../server/app.js';
import type { App } from '../server/context.js';
import { schedulePurge } from '../server/housekeeping.js';
import { listenForMetrics, type MetricsListener } from '../server/metrics.js';
import { connectRedis } from '../server/redis.js';
import { configOrExit, createLogger, openStore, resolveSecret } from './setup.js';

/** How long in-flight requests get to finish after SIGTERM before the process exits anyway. */
const SHUTDOWN_GRACE_MS = 10_000;
/**
 * After SIGTERM, how long keep-alive connections stay open, each answer telling its client to
 * close it (`Connection: close`), before idle ones are closed: a client whose request is on its
 * way over an idle connection gets an answer, not a reset.
 */
const KEEP_ALIVE_DRAIN_MS = 1_000;

/** `tessera serve`: validate, open, migrate, listen, purge periodically, shut down cleanly. */
export async function serve(env: NodeJS.ProcessEnv): Promise<void> {
  // Milliseconds since the process started: Node itself and the modules loaded so far.
  const started = { loaded: performance.now(), opened: 0, built: 0 };
  const config = configOrExit(env);
  // A person at a terminal in development reads text, one line a request; anything else gets pino's JSON.
  const terminal = !config.production && process.stdout.isTTY === true;
  const logger = createLogger(config, terminal ? 'terminal' : 'json');
  const secret = resolveSecret(config, logger);
  const { store, database } = await openStore(config, logger, { serve: true });
  started.opened = performance.now();
  if (config.production && !config.publicUrl.startsWith('https:')) {
    logger.warn(
      `NODE_ENV=production with an http PUBLIC_URL (${config.publicUrl}): the refresh cookie is Secure in production, and browsers ` +
        'do not store a Secure cookie sent over http (except on localhost), so browser sign-ins will not last, and HSTS is off. ' +
        'Serve Tessera over https and set PUBLIC_URL to its https address.',
    );
  }
  if (config.production && database.kind === 'pglite') {
    logger.warn(
      `NODE_ENV=production with the embedded database (${database.description}): PGlite serves this one process only: ` +
        'no second node, and no `tessera users …` or `tessera keys …` while the server runs. ' +
        'Set DATABASE_URL to a PostgreSQL database for production.',
    );
  }
  if (!config.rateLimitsEnabled) {
    logger.warn('RATE_LIMITS=off: every rate limit is disabled. Use this for benchmarks and load tests only, never in production.');
  }
  if (config.mailOffReason) {
    logger.warn(`email features are off: ${config.mailOffReason}. Password reset, email verification and notices need SMTP_URL (docs/email.md); EMAIL=off silences this.`);
  } else if (config.mail === 'log') {
    logger.info('no SMTP_URL: mails (with their links) are written to this log, for development');
  }
  if (config.webauthnOffReason) {
    logger.warn(`passkeys are off: ${config.webauthnOffReason} (docs/mfa.md). Their routes answer 404.`);
  }
  if (config.secretPrevious) {
    logger.info(
      'TESSERA_SECRET_PREVIOUS is set: refresh tokens, cursors and signing keys made under it are still accepted; everything new is made under TESSERA_SECRET. ' +
        'Once every node runs with the new secret, run `tessera secrets rotate`; remove TESSERA_SECRET_PREVIOUS after SESSION_MAX_AGE (docs/operations.md).',
    );
  }
  if (!config.production && !config.cookieSecure) {
    logger.info('development mode: the refresh cookie is not Secure because PUBLIC_URL is http');
  }

  const redis = config.redisUrl ? await connectRedis(config.redisUrl, logger, { cluster: config.redisCluster }) : undefined;

  let app;
  try {
    app = await buildApp({ config, store, secret, secretPrevious: config.secretPrevious, logger, redis, requestLog: terminal ? 'line' : 'record', databasePool: database.pool });
  } catch (error) {
    logger.fatal(`cannot start: ${(error as Error).message}`);
    process.exit(1);
  }
  started.built = performance.now();
  try {
    await app.listen({ port: config.port, host: config.host });
  } catch (error) {
    logger.fatal(`cannot listen on ${config.host}:${config.port}: ${(error as { code?: string }).code ?? (error as Error).message}`);
    process.exit(1);
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  const seconds = (ms: number) => (ms / 1000).toFixed(2);
  const now = performance.now();
  logger.info(
    `Tessera is ready at ${config.publicUrl} — open it for the demo page (listening on ${config.host}:${port}, storage: ${database.description}; ` +
      `started in ${seconds(now)} s: Node and modules ${seconds(started.loaded)}, database and migrations ${seconds(started.opened - started.loaded)}, ` +
      `keys and routes ${seconds(started.built - started.opened)}, listening ${seconds(now - started.built)})`,
  );
  // Whoever started the process may be waiting for that line.
  logger.flush();
  const metrics = await startMetrics(app, config, logger);

  const stopPurging = schedulePurge(store, config.sessionRetention, logger);

  // Graceful: stop accepting, let in-flight requests finish (at most SHUTDOWN_GRACE_MS), close
  // the pools, exit 0. Keep-alive connections are told to close with their next answer, and
  // those still idle after KEEP_ALIVE_DRAIN_MS are closed.
  let draining = false;
  app.server.prependListener('request', (_request, response) => {
    if (draining) response.setHeader('connection', 'close');
  });
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info(`${signal} received: finishing in-flight requests, then exiting`);
    stopPurging();
    const late = setTimeout(() => {
      logger.warn(`in-flight requests still running after ${SHUTDOWN_GRACE_MS / 1000} s; exiting anyway`);
      process.exit(0);
    }, SHUTDOWN_GRACE_MS);
    late.unref();
    draining = true;
    // Stop accepting at once; http.Server's own close() would also drop idle keep-alive connections now.
    Server.prototype.close.call(app.server);
    await new Promise((resolve) => setTimeout(resolve, KEEP_ALIVE_DRAIN_MS));
    // A request that was already running at the signal keeps its connection alive after its
    // answer: close such connections as soon as they fall idle, not after the keep-alive timeout.
    const reaper = setInterval(() => app.server.closeIdleConnections(), 100);
    await app.close();
    clearInterval(reaper);
    await metrics?.close();
    await database.db.destroy().catch((error: Error) => logger.warn({ err: { message: error.message } }, 'closing the database pool failed'));
    await redis?.quit().catch(() => redis?.disconnect());
    logger.info('stopped');
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
}

/**
 * METRICS_PORT's listener, started and logged; or the line that says where the metrics are on
 * the main port (METRICS_TOKEN alone). Nothing without either.
 */
async function startMetrics(app: App, config: Config, logger: Logger): Promise<MetricsListener | undefined> {
  let listener: MetricsListener | undefined;
  try {
    listener = await listenForMetrics(app);
  } catch (error) {
    logger.fatal(`cannot listen for metrics on ${config.host}:${config.metricsPort}: ${(error as { code?: string }).code ?? (error as Error).message}`);
    process.exit(1);
  }
  if (listener) {
    const credential = config.metricsToken ? 'with Authorization: Bearer <METRICS_TOKEN>' : 'with no credential';
    logger.info(`metrics at http://${config.host}:${listener.port}/metrics, ${credential}`);
    if (!config.metricsToken && !isLoopback(config.host)) {
      logger.warn(
        `METRICS_PORT listens on ${config.host} with no credential: keep port ${listener.port} reachable by your scraper only ` +
          '(a firewall or private network), or set METRICS_TOKEN as well',
      );
    }
  } else if (config.metricsToken) {
    logger.info(`metrics at ${config.publicUrl}/metrics, with Authorization: Bearer <METRICS_TOKEN>`);
  }
  return listener;
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}
