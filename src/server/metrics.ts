import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { FastifyError, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { AuthMeter, RefreshRule } from '../auth/meter.js';
import { HashQueueFull, type PasswordHasher } from '../auth/password-hasher.js';
import type { IpBudget, KeyedBudget } from '../auth/rate-limits.js';
import { ReuseDetected } from '../auth/recognise-refresh-token.js';
import type { Config } from '../core/config.js';
import { problem, type ErrorCode, type Problem } from '../core/errors.js';
import type { PoolCounts } from '../store/database.js';
import type { App } from './context.js';
import { toTesseraError, unavailable } from './http-errors.js';

/**
 * Prometheus metrics (SPEC §9), one registry per app: tests build many apps in one process,
 * and prom-client's global registry would mix them. Every label value comes from a closed
 * set (rules, error codes, budget names, route patterns): never an email, id, IP or raw path.
 * docs/operations.md lists every metric.
 */

/** Why a request was answered 503 `service_unavailable`. */
export type UnavailableCause = 'database' | 'redis' | 'hash_queue' | 'other';

/** What a refresh came to: the rule that answered it (rule 4 is `reuse`), or the code that refused it. */
type RefreshOutcome = RefreshRule | 'reuse' | ErrorCode;

/** Login takes an argon2 verification (tens of ms); a refresh a millisecond or two: both ends are covered. */
const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** The `route` of a request that matched no route (404, and 405 for a known path), so a scan adds no series. */
export const UNMATCHED_ROUTE = 'unmatched';

type Increment = { inc(value?: number): void };
type Observe = { observe(value: number): void };

export interface MetricsOptions {
  hasher: Pick<PasswordHasher, 'inFlight' | 'queued'>;
  /** PASSWORD_HASH_CONCURRENCY and PASSWORD_HASH_QUEUE, published beside the hasher's gauges for saturation alerts. */
  hashLimits: { concurrency: number; queue: number };
  /** The PostgreSQL pool; undefined on PGlite. */
  pool?: PoolCounts;
}

/** True when METRICS_PORT or METRICS_TOKEN asks for metrics; otherwise nothing is counted at all. */
export function metricsWanted(config: Pick<Config, 'metricsPort' | 'metricsToken'>): boolean {
  return config.metricsPort !== undefined || config.metricsToken !== undefined;
}

/**
 * The app's metrics: the `AuthMeter` the use cases report to, the HTTP hooks that count what
 * answers tell (`instrument`), and the registry a scrape reads (`scrape`).
 *
 * @example
 * const metrics = new Metrics({ hasher, hashLimits: { concurrency: 4, queue: 32 } });
 * metrics.instrument(app, '/auth'); // before the routes are added
 * const text = await metrics.scrape();
 */
export class Metrics implements AuthMeter {
  readonly registry = new Registry();
  readonly #refresh: Counter<'outcome'>;
  readonly #logins: Counter<'outcome'>;
  readonly #rateLimited: Counter<'limit'>;
  readonly #reuse: Counter;
  readonly #unavailable: Record<UnavailableCause, Increment>;
  readonly #duration: Histogram<'method' | 'route' | 'status_class'>;
  // Labelled children, created once each: the refresh path only finds one and counts.
  readonly #refreshBy: Partial<Record<RefreshOutcome, Increment>> = {};
  readonly #loginsBy: Partial<Record<string, Increment>> = {};
  readonly #rateLimitedBy: Partial<Record<string, Increment>> = {};

  constructor(options: MetricsOptions) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    this.#refresh = new Counter({
      name: 'tessera_refresh_total', registers, labelNames: ['outcome'],
      help: 'POST /auth/refresh by outcome: the rule that answered (rotate, replay, reissue; reuse ended the session) or the error code that refused it',
    });
    this.#logins = new Counter({
      name: 'tessera_logins_total', registers, labelNames: ['outcome'],
      help: 'POST /auth/login by outcome: success, or the error code (invalid_credentials, rate_limited, account_disabled, …)',
    });
    this.#reuse = new Counter({
      name: 'tessera_reuse_detections_total', registers,
      help: 'Sessions ended because an old refresh token came back (SPEC §3 rule 4), on refresh or sign-out',
    });
    this.#rateLimited = new Counter({
      name: 'tessera_rate_limited_total', registers, labelNames: ['limit'],
      help: 'Requests refused with 429, by the budget that refused them',
    });
    const unavailableTotal = new Counter({
      name: 'tessera_unavailable_total', registers, labelNames: ['cause'],
      help: 'Answers 503 service_unavailable, by cause: database, redis, hash_queue (too many password hashes waiting), other',
    });
    this.#duration = new Histogram({
      name: 'tessera_http_request_duration_seconds', registers, labelNames: ['method', 'route', 'status_class'], buckets: DURATION_BUCKETS,
      help: `Time from a request's arrival to its answer, by route pattern (${UNMATCHED_ROUTE}: no route) and status class`,
    });

    // Zero from the start, so that rate() and increase() see the first event of each.
    for (const outcome of ['rotate', 'replay', 'reissue', 'reuse', 'invalid_refresh_token', 'session_expired', 'refresh_token_reused'] as const) {
      this.#refreshOutcome(outcome).inc(0);
    }
    for (const outcome of ['success', 'invalid_credentials', 'rate_limited', 'account_disabled']) this.#loginOutcome(outcome).inc(0);
    this.#reuse.inc(0);
    this.#unavailable = {
      database: unavailableTotal.labels('database'),
      redis: unavailableTotal.labels('redis'),
      hash_queue: unavailableTotal.labels('hash_queue'),
      other: unavailableTotal.labels('other'),
    };
    for (const child of Object.values(this.#unavailable)) child.inc(0);

    // Gauges are read at scrape time, never on a request's path.
    const { hasher, hashLimits, pool } = options;
    gauge(this.registry, 'tessera_password_hash_in_flight', 'Password hashes and verifications running now', () => hasher.inFlight);
    gauge(this.registry, 'tessera_password_hash_queued', 'Password hashes and verifications waiting for a slot', () => hasher.queued);
    gauge(this.registry, 'tessera_password_hash_concurrency', 'PASSWORD_HASH_CONCURRENCY: at most this many run at once', () => hashLimits.concurrency);
    gauge(this.registry, 'tessera_password_hash_queue_limit', 'PASSWORD_HASH_QUEUE: past this many waiting, sign-ins answer 503', () => hashLimits.queue);
    if (pool) {
      gauge(this.registry, 'tessera_database_pool_connections', 'PostgreSQL connections open in the pool, busy or idle', () => pool.totalCount);
      gauge(this.registry, 'tessera_database_pool_idle_connections', 'PostgreSQL connections open and idle', () => pool.idleCount);
      gauge(this.registry, 'tessera_database_pool_waiting', 'Queries waiting for a pooled connection', () => pool.waitingCount);
    }
  }

  refreshed(rule: RefreshRule): void {
    this.#refreshOutcome(rule).inc();
  }

  reuseDetected(): void {
    this.#reuse.inc();
  }

  rateLimited(budget: KeyedBudget | IpBudget): void {
    (this.#rateLimitedBy[budget] ??= this.#rateLimited.labels(budget)).inc();
  }

  /** The metrics in Prometheus' text format. */
  scrape(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /**
   * Adds the hooks that time every route and count what answers tell: logins by outcome,
   * refresh refusals by code, 503s by cause. Call it before any route is added: each route
   * gets its own timing hook, with its labelled series found once, when the route is added.
   * `authPath` is where the auth routes live (`/auth`, or the embedding prefix).
   */
  instrument(app: App, authPath: string): void {
    instrumented.set(app, this);
    const loginUrl = `${authPath}/login`;
    const refreshUrl = `${authPath}/refresh`;
    const loginSucceeded = this.#loginOutcome('success');

    app.addHook('onRoute', (route) => {
      const timer = this.#timer(route.url);
      const login = route.url === loginUrl;
      const timed = (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) => {
        timer(request.method, reply.statusCode).observe(reply.elapsedTime / 1000);
        if (login && reply.statusCode === 200) loginSucceeded.inc();
        done();
      };
      route.onResponse = route.onResponse === undefined ? [timed] : [route.onResponse, timed].flat();
    });

    const unmatched = this.#timer(UNMATCHED_ROUTE);
    app.addHook('onResponse', (request, reply, done) => {
      if (request.is404) unmatched(request.method, reply.statusCode).observe(reply.elapsedTime / 1000);
      done();
    });

    // Failures only: what the answer will say, as the error handler will say it.
    app.addHook('onError', (request, _reply, error: FastifyError, done) => {
      const e = toTesseraError(error);
      if (e.code === 'service_unavailable') this.#unavailable[unavailableCause(error, e.cause)].inc();
      const url = request.routeOptions.url;
      if (url === loginUrl) this.#loginOutcome(e.code).inc();
      else if (url === refreshUrl) this.#refreshOutcome(error instanceof ReuseDetected ? 'reuse' : e.code).inc();
      done();
    });
  }

  #refreshOutcome(outcome: RefreshOutcome): Increment {
    return (this.#refreshBy[outcome] ??= this.#refresh.labels(outcome));
  }

  #loginOutcome(outcome: string): Increment {
    return (this.#loginsBy[outcome] ??= this.#logins.labels(outcome));
  }

  /** The duration series of one route, by method and status class, each made on first use. */
  #timer(route: string): (method: string, status: number) => Observe {
    const byMethod: Record<string, Observe[]> = {};
    return (method, status) => {
      const byClass = (byMethod[method] ??= []);
      const statusClass = Math.trunc(status / 100);
      return (byClass[statusClass] ??= this.#duration.labels(method, route, `${statusClass}xx`));
    };
  }
}

function gauge(registry: Registry, name: string, help: string, read: () => number): void {
  new Gauge({ name, help, registers: [registry], collect() { this.set(read()); } });
}

/** The cause of a 503: what the error handler logs (`database unavailable`, `redis unavailable`), or a full hash queue. */
function unavailableCause(error: unknown, cause: unknown): UnavailableCause {
  if (error instanceof HashQueueFull) return 'hash_queue';
  if (cause !== undefined) return unavailable(cause) ?? 'database';
  return unavailable(error) ?? 'other';
}

/**
 * A check of `Authorization: Bearer <token>` against METRICS_TOKEN.
 * Both sides are hashed first, so the comparison is constant-time whatever the lengths:
 * a timing oracle would give the token away a byte at a time.
 */
export function bearerTokenCheck(token: string): (authorization: string | undefined) => boolean {
  const expected = createHash('sha256').update(token).digest();
  return (authorization) => {
    const presented = typeof authorization === 'string' ? /^Bearer +([^ ]+) *$/i.exec(authorization)?.[1] : undefined;
    return timingSafeEqual(createHash('sha256').update(presented ?? '').digest(), expected) && presented !== undefined;
  };
}

/** The detail of the 401 `unauthorized` for a missing or wrong metrics token. */
export const METRICS_TOKEN_DETAIL = 'Send Authorization: Bearer <METRICS_TOKEN>';

const instrumented = new WeakMap<App, Metrics>();

export interface MetricsListener {
  /** The port it listens on (METRICS_PORT, or the one picked for 0). */
  port: number;
  close(): Promise<void>;
}

/**
 * The METRICS_PORT listener: `GET /metrics` and nothing else, on a plain Node server of its
 * own, bound to `host` (HOST). It asks for no credential unless METRICS_TOKEN is also set: bind
 * it where only the scraper reaches it. Undefined when the app has no metrics or no METRICS_PORT.
 *
 * @example
 * const listener = await listenForMetrics(app);
 * logger.info(`metrics at http://${config.host}:${listener.port}/metrics`);
 */
export async function listenForMetrics(
  app: App, options: { port?: number; host?: string } = {},
): Promise<MetricsListener | undefined> {
  const metrics = instrumented.get(app);
  const { config } = app.tessera;
  const port = options.port ?? config.metricsPort;
  if (!metrics || port === undefined) return undefined;
  const authorized = config.metricsToken === undefined ? () => true : bearerTokenCheck(config.metricsToken);

  const server = createServer({ headersTimeout: 10_000, requestTimeout: 30_000 }, (request, response) => {
    answerScrape(metrics, authorized, request, response).catch(() => {
      if (!response.headersSent) sendProblem(response, problem('internal_error'));
      else response.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, options.host ?? config.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function answerScrape(
  metrics: Metrics, authorized: (authorization: string | undefined) => boolean, request: IncomingMessage, response: ServerResponse,
): Promise<void> {
  const path = (request.url ?? '/').split('?', 1)[0];
  if (path !== '/metrics') return sendProblem(response, problem('not_found'));
  if (request.method !== 'GET' && request.method !== 'HEAD') {
    response.setHeader('allow', 'GET, HEAD');
    return sendProblem(response, problem('method_not_allowed'));
  }
  if (!authorized(request.headers.authorization)) {
    response.setHeader('www-authenticate', 'Bearer');
    return sendProblem(response, problem('unauthorized', METRICS_TOKEN_DETAIL));
  }
  const body = await metrics.scrape();
  response.writeHead(200, { 'content-type': metrics.contentType, 'cache-control': 'no-store' });
  response.end(request.method === 'HEAD' ? undefined : body);
}

function sendProblem(response: ServerResponse, answer: Problem): void {
  response.writeHead(answer.status, { 'content-type': 'application/problem+json', 'cache-control': 'no-store' });
  response.end(JSON.stringify(answer));
}
