import { createServer, STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import cookie from '@fastify/cookie';
import cors from '@fastify/cors';
import swagger from '@fastify/swagger';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { LogController, type FastifyServerOptions } from 'fastify';
import { AdminKeys } from '../auth/admin/authorize-admin.js';
import { AdminCursors } from '../auth/admin/cursors.js';
import type { ClaimsHook } from '../auth/issue-tokens.js';
import { KeyRing } from '../auth/key-ring.js';
import { RevocationFeed } from '../auth/revocation-feed.js';
import { NO_METER } from '../auth/meter.js';
import { PasswordHasher } from '../auth/password-hasher.js';
import { totpSecretSealer } from '../auth/mfa/totp-sealer.js';
import { RateLimits } from '../auth/rate-limits.js';
import { MemoryWindowCounter, RedisWindowCounter } from '../auth/window-counter.js';
import { accessTokenOptions } from '../core/access-token.js';
import type { Config } from '../core/config.js';
import { problem } from '../core/errors.js';
import { RefreshTokenCodec } from '../core/refresh-token.js';
import { LOG_REDACT_PATHS } from '../core/vocabulary.js';
import { startOutboxWorker } from '../delivery/deliver-message.js';
import type { PoolCounts } from '../store/database.js';
import { deriveKeys } from '../core/derive-key.js';
import { LinkTokenCodec } from '../core/link-token.js';
import { MfaTokenCodec } from '../core/mfa-token.js';
import { WebAuthnChallengeCodec } from '../core/webauthn-challenge.js';
import { PasskeyStore } from '../store/passkey-store.js';
import { AccountStore } from '../store/account-store.js';
import { AdminStore } from '../store/admin-store.js';
import { withDeadline } from '../store/deadline.js';
import { outboxPolicy } from '../store/event-log.js';
import { SecondFactorStore } from '../store/second-factor-store.js';
import type { Store } from '../store/store.js';
import type { App, Tessera } from './context.js';
import { isAllowedOrigin } from './cookie-transport.js';
import { errorHandler, notFoundHandler } from './http-errors.js';
import { registerEmptyBodyParser, registerStrictJsonParser } from './json-body.js';
import { Metrics, metricsWanted } from './metrics.js';
import { registerPerIpLimits } from './per-ip-limits.js';
import { securityHeaders } from './security-headers.js';
import type { RedisClient } from './redis.js';
import { requestLogger, type RequestLog } from './request-line.js';
import { accountRoutes } from './routes/account.js';
import { accountEmailRoutes } from './routes/account-email.js';
import { adminRoutes } from './routes/admin.js';
import { demoRoutes } from './routes/demo.js';
import { metaRoutes } from './routes/meta.js';
import { metricsRoutes } from './routes/metrics.js';
import { mfaRoutes } from './routes/mfa.js';
import { passkeyRoutes } from './routes/passkeys.js';
import { refreshAndLogoutRoutes } from './routes/refresh-and-logout.js';
import { registerAndLoginRoutes } from './routes/register-and-login.js';
import { revocationRoutes } from './routes/revocations.js';
import { Problem } from './schemas.js';

export const BODY_LIMIT = 16 * 1024;
export const HEADER_LIMIT = 16 * 1024;
/** All the database work of one request must be done within this; past it, 503 service_unavailable. */
export const DATABASE_DEADLINE_MS = 8_000;

export interface BuildOptions {
  config: Config;
  store: Store;
  /** The server's only clock. Tests pass a frozen one. */
  clock?: () => Date;
  /** pino options, or a logger; defaults to pino at `config.logLevel`. */
  logger?: FastifyServerOptions['logger'] | FastifyServerOptions['loggerInstance'];
  /**
   * How each request is logged, once, after its answer (src/server/request-line.ts): `record`
   * (default) is one JSON record; `line` is one short line (`GET /auth/me 200 3 ms`) for a person at a terminal.
   */
  requestLog?: RequestLog;
  /** REDIS_URL's client (a single Redis or a Cluster): rate-limit counters shared by every node. Without it they live in this process. */
  redis?: RedisClient;
  /** Prefix of every Redis key (tests use their own). */
  redisPrefix?: string;
  /** TESSERA_SECRET, resolved (in development it may come from DATA_DIR). */
  secret: string;
  /**
   * TESSERA_SECRET_PREVIOUS while the root secret changes: what was made under it (refresh tokens,
   * feed cursors, sealed signing keys) is still accepted; nothing new is made with it. Default: `config.secretPrevious`.
   */
  secretPrevious?: string | undefined;
  /** Extra claims for access tokens, when Tessera is embedded; Tessera's own claims cannot be overridden. */
  claims?: ClaimsHook;
  /**
   * Embedded in another app (see embed.ts): every route of Tessera under this path, such as
   * `/api/auth` (`/api/auth/login`, `/api/auth/.well-known/jwks.json`), the refresh cookie's
   * Path with them, and no demo page. Default: `/auth/…` routes, keys and health at the root.
   */
  prefix?: string;
  /** The PostgreSQL pool (`openDatabase().pool`), whose connection counts the metrics publish. */
  databasePool?: PoolCounts;
  /**
   * Deliver the outbox (mails and webhooks, SPEC §7) from this app: on by default when mail is
   * not `off` or WEBHOOK_URL is set. `false`: this app delivers nothing (tests that read the outbox).
   */
  outbox?: boolean;
}

/**
 * Builds the Tessera HTTP app without listening. Tests drive it with
 * `app.inject()`; `tessera serve` calls `listen()` on it.
 *
 * @example
 * const app = await buildApp({ config, store, secret });
 * const res = await app.inject({ method: 'GET', url: '/healthz' });
 */
export async function buildApp(options: BuildOptions): Promise<App> {
  const { prefix } = options;
  if (prefix !== undefined && !/^(\/[A-Za-z0-9._~-]+)+$/.test(prefix)) {
    throw new Error(`prefix ${JSON.stringify(prefix)} is not a path such as /api/auth (no trailing slash)`);
  }
  const config = prefix === undefined ? options.config : Object.freeze({ ...options.config, refreshCookiePath: prefix });
  const clock = options.clock ?? (() => new Date());
  const secretPrevious = options.secretPrevious ?? config.secretPrevious;
  if (secretPrevious === options.secret) throw new Error('TESSERA_SECRET_PREVIOUS is the same as TESSERA_SECRET: it must be the secret TESSERA_SECRET replaced, or unset');
  const logger = options.logger ?? { level: config.logLevel, redact: [...LOG_REDACT_PATHS] };

  const app = Fastify<Server, IncomingMessage, ServerResponse>({
    ...(isLoggerInstance(logger) ? { loggerInstance: logger } : { logger }),
    // One record per request (the onResponse hook below), not Fastify's two.
    logController: new LogController({ disableRequestLogging: true }),
    // A hop count trusts that many proxies nearest to us.
    trustProxy: typeof config.trustProxy === 'number' ? hops(config.trustProxy) : config.trustProxy,
    bodyLimit: BODY_LIMIT,
    // Slow clients are cut off: 10 s to send headers, 30 s for the whole request.
    serverFactory: (handler) =>
      createServer(
        { maxHeaderSize: HEADER_LIMIT, headersTimeout: 10_000, requestTimeout: 30_000, connectionsCheckingInterval: 1_000 },
        handler,
      ),
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false } },
    clientErrorHandler: rawClientError,
    // While closing, requests already on open connections are still served; the database closes after.
    return503OnClosing: false,
    forceCloseConnections: 'idle',
  }).withTypeProvider<TypeBoxTypeProvider>();

  const redisPrefix = options.redisPrefix ?? 'tessera:';
  // Events recorded by this app write the webhooks and notices its configuration asks for.
  const store = options.store.withOutbox(outboxPolicy(config));
  const hasher = new PasswordHasher(config.passwordHashConcurrency, config.passwordHashQueue);
  // Only when asked for (METRICS_PORT or METRICS_TOKEN): otherwise nothing is counted or timed.
  const metrics = metricsWanted(config)
    ? new Metrics({
        hasher,
        hashLimits: { concurrency: config.passwordHashConcurrency, queue: config.passwordHashQueue },
        pool: options.databasePool,
      })
    : undefined;
  const tessera: Tessera = Object.freeze({
    config,
    store,
    clock,
    keys: (await KeyRing.load(
      store,
      { secret: options.secret, secretPrevious, configured: config.signingKeys, alg: config.signingAlg, accessTokenTtl: config.accessTokenTtl },
      clock(),
    )).watch(),
    claims: options.claims,
    revocations: new RevocationFeed({ store, clock, accessTokenTtl: config.accessTokenTtl, secret: options.secret, secretPrevious }),
    hasher,
    refreshTokens: new RefreshTokenCodec(options.secret, secretPrevious),
    accounts: new AccountStore(store.db, store.events),
    links: new LinkTokenCodec(options.secret, secretPrevious),
    deviceKeys: deriveKeys(options.secret, secretPrevious, 'device'),
    admin: new AdminStore(store.db, store.events),
    adminKeys: new AdminKeys(config.adminApiKeys),
    adminCursors: new AdminCursors(options.secret, secretPrevious),
    factors: new SecondFactorStore(store.db, store.events),
    mfaTokens: new MfaTokenCodec(deriveKeys(options.secret, secretPrevious, 'mfa-token')),
    totpSecrets: totpSecretSealer(options.secret, secretPrevious),
    recoveryCodeKeys: deriveKeys(options.secret, secretPrevious, 'recovery-code'),
    passkeys: new PasskeyStore(store.db, store.events),
    challenges: new WebAuthnChallengeCodec(deriveKeys(options.secret, secretPrevious, 'webauthn-challenge')),
    limits: new RateLimits(
      config.rateLimitsEnabled,
      config.rateLimits,
      options.redis ? new RedisWindowCounter(options.redis, redisPrefix) : new MemoryWindowCounter(() => clock().getTime()),
      metrics,
    ),
    meter: metrics ?? NO_METER,
    refreshPolicy: Object.freeze({ graceMs: config.refreshReuseGrace * 1000, idleTtlMs: config.refreshTokenTtl * 1000 }),
    accessTokenOptions: Object.freeze(accessTokenOptions(config)),
  });
  app.decorate('tessera', tessera);
  app.decorateRequest('auth', null);

  // Collected for 405 answers: a known path asked with the wrong method.
  const routes = new Map<string, Set<string>>();
  app.addHook('onRoute', (route) => {
    const methods = routes.get(route.url) ?? new Set<string>();
    for (const m of [route.method].flat()) methods.add(m);
    routes.set(route.url, methods);
  });
  // Before any route is added: each route gets its timing hook as it is added.
  metrics?.instrument(app, config.refreshCookiePath);

  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler(notFoundHandler(routes));

  // Only JSON bodies: 415 for anything else. A POST with an empty body is read as {}, whatever its type.
  app.removeContentTypeParser(['text/plain']);
  registerStrictJsonParser(app);
  registerEmptyBodyParser(app);
  app.addHook('preValidation', async (request) => {
    if (request.body === undefined && request.method === 'POST') request.body = {};
  });
  // One deadline for all the database work of a request, from when its body has arrived: a slow
  // database costs a request at most this, however many queries it makes (src/store/deadline.ts).
  // Set here and not on request: the body is read in the stream's own async context.
  app.addHook('preValidation', (_request, _reply, done) => withDeadline(DATABASE_DEADLINE_MS, done));
  app.addHook('onSend', async (_request, reply) => {
    reply.header('cache-control', 'no-store');
  });
  app.addHook('onResponse', requestLogger(options.requestLog ?? 'record'));

  const headers = securityHeaders(config.publicUrl.startsWith('https:'));
  app.addHook('onRequest', (_request, reply, done) => {
    reply.headers(headers);
    done();
  });
  await app.register(cookie);
  await app.register(cors, {
    origin: (origin, callback) => callback(null, origin !== undefined && isAllowedOrigin(origin, config)),
    credentials: true,
    methods: ['GET', 'POST', 'PATCH', 'DELETE'],
    allowedHeaders: ['Content-Type', 'Authorization', 'X-Tessera-CSRF'],
    maxAge: 600,
  });
  await registerPerIpLimits(app, options.redis, redisPrefix);
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Tessera',
        version: '0.1.0',
        description: 'Short-lived JWT access tokens, rotating refresh tokens with theft detection, revocable sessions.',
      },
      servers: [{ url: config.publicUrl }],
      components: { securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } } },
    },
  });
  app.addSchema(Problem);

  await app.register(async (auth: App) => {
    registerAndLoginRoutes(auth);
    refreshAndLogoutRoutes(auth);
    accountRoutes(auth);
    mfaRoutes(auth);
    // Off (404) without a relying party ID: browsers refuse an IP address as one.
    if (config.webauthnRpId !== undefined) passkeyRoutes(auth);
    if (config.mail !== 'off') accountEmailRoutes(auth);
    revocationRoutes(auth);
  }, { prefix: config.refreshCookiePath });
  await app.register(async (meta: App) => {
    metaRoutes(meta);
    // With METRICS_PORT the metrics have a listener of their own (listenForMetrics), never the main port.
    if (metrics && config.metricsPort === undefined && config.metricsToken !== undefined) metricsRoutes(meta, metrics, config.metricsToken);
  }, { prefix: prefix ?? '' });
  // The admin API exists only with ADMIN_API_KEY (else 404 as any unknown path): /admin, or under the embedding prefix.
  if (tessera.adminKeys.enabled) await app.register(async (admin: App) => adminRoutes(admin, { secret: options.secret }), { prefix: `${prefix ?? ''}/admin` });
  if (prefix === undefined) demoRoutes(app);

  let outboxWorker: ReturnType<typeof startOutboxWorker>;
  app.addHook('onClose', async () => {
    // First: deliveries in flight record their outcome while the database is still open.
    await outboxWorker?.stop();
    tessera.keys.close();
    await tessera.limits.close();
  });
  await app.ready();
  // Any node may deliver: rows are leased, never taken twice at once (src/delivery/outbox-worker.ts).
  if (options.outbox !== false) outboxWorker = startOutboxWorker({ config, db: store.db, secret: options.secret, logger: app.log, clock });
  return app;
}

/**
 * Errors Node's HTTP server raises before Fastify sees a request: oversized headers (431),
 * slow clients cut off (408) and malformed requests (400), in the same problem+json shape.
 */
function rawClientError(error: NodeJS.ErrnoException, socket: Duplex) {
  if (!socket.writable) return socket.destroy();
  const answer =
    error.code === 'HPE_HEADER_OVERFLOW' ? problem('invalid_request', 'The request headers are larger than 16 KiB', 'headers_too_large')
    : error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? problem('invalid_request', 'The request took too long to arrive', 'request_timeout')
    : problem('invalid_request', 'The request is not valid HTTP');
  const body = JSON.stringify(answer);
  socket.end(
    `HTTP/1.1 ${answer.status} ${STATUS_CODES[answer.status]}\r\n` +
      `Content-Type: application/problem+json\r\nCache-Control: no-store\r\nConnection: close\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}

function hops(n: number) {
  return (_address: string, i: number) => i < n;
}

function isLoggerInstance(logger: unknown): logger is NonNullable<FastifyServerOptions['loggerInstance']> {
  return typeof logger === 'object' && logger !== null && typeof (logger as { child?: unknown }).child === 'function';
}

