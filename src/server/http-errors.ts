import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { problem, TesseraError, type ErrorCode } from '../core/errors.js';
import { isDatabaseUnavailable } from '../store/database.js';
import { isRedisUnavailable } from './redis-unavailable.js';

/** Fastify's own errors for client mistakes, by code. Anything else with a 4xx status falls back on its status. */
const FASTIFY_CODES: Record<string, ErrorCode> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported_media_type',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'invalid_request',
  FST_ERR_CTP_BODY_TOO_LARGE: 'payload_too_large',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'invalid_request',
  FST_ERR_CTP_INVALID_JSON_BODY: 'invalid_request',
  FST_ERR_VALIDATION: 'invalid_request',
};

const BY_STATUS: Record<number, ErrorCode> = {
  404: 'not_found',
  405: 'method_not_allowed',
  413: 'payload_too_large',
  415: 'unsupported_media_type',
  429: 'rate_limited',
};

/** Seconds a client should wait when the database (or Redis) is unreachable. */
const DATABASE_RETRY_AFTER = 5;

/**
 * Turns any error into a problem+json answer. Client mistakes become a 4xx with
 * a stable code; database outages a 503 with Retry-After; anything else a bare
 * 500 `internal_error`. No stack, SQL text or token ever reaches the body.
 */
export function toTesseraError(error: FastifyError | Error): TesseraError {
  if (error instanceof TesseraError) return error;
  const fastifyError = error as FastifyError;
  if (fastifyError.validation) {
    const first = fastifyError.validation[0];
    const where = `${fastifyError.validationContext ?? 'body'}${first?.instancePath ?? ''}`;
    return new TesseraError('invalid_request', { detail: `${where} ${first?.message ?? 'is invalid'}`.slice(0, 200) });
  }
  const known = fastifyError.code && FASTIFY_CODES[fastifyError.code];
  if (known) return new TesseraError(known, { detail: known === 'invalid_request' ? 'The body is not valid JSON' : undefined });
  // Text PostgreSQL cannot store (a NUL byte, bad encoding) that slipped past a schema is still the client's mistake.
  const sqlState = (error as { code?: unknown }).code;
  if (sqlState === '22021' || sqlState === '22P05') return new TesseraError('invalid_request', { detail: 'The request contains characters that cannot be stored' });
  if (unavailable(error)) return new TesseraError('service_unavailable', { retryAfter: DATABASE_RETRY_AFTER, cause: error });
  const status = fastifyError.statusCode ?? 500;
  if (status >= 400 && status < 500) return new TesseraError(BY_STATUS[status] ?? 'invalid_request');
  return new TesseraError('internal_error', { cause: error });
}

/**
 * What is out of reach, if that is what the error says: the database, or Redis (REDIS_URL),
 * which holds the rate-limit counters. Without them no limit can be checked, and Tessera
 * fails closed: 503 rather than letting unlimited guesses through.
 */
export function unavailable(error: unknown): 'database' | 'redis' | undefined {
  if (isDatabaseUnavailable(error)) return 'database';
  if (isRedisUnavailable(error)) return 'redis';
  return undefined;
}

export function errorHandler(error: FastifyError, request: FastifyRequest, reply: FastifyReply) {
  const e = toTesseraError(error);
  if (e.code === 'internal_error') {
    // Name and message only: a stack or a driver's detail can carry SQL text or values.
    request.log.error({ err: { type: error.name, code: error.code, message: error.message } }, 'unhandled error');
  } else if (e.code === 'service_unavailable' && e.cause) {
    // The real cause ("Query read timeout", "Connection terminated", a SQLSTATE): what an operator needs to act on.
    const cause = e.cause as { name?: string; code?: string; message?: string };
    request.log.warn({ err: { type: cause.name, code: cause.code, message: cause.message } }, `${unavailable(cause) ?? 'database'} unavailable`);
  }
  return sendProblem(reply, e);
}

export function sendProblem(reply: FastifyReply, e: TesseraError) {
  if (e.retryAfter !== undefined) reply.header('retry-after', String(e.retryAfter));
  return reply.code(e.status).type('application/problem+json').send(e.toProblem());
}

/**
 * Unknown routes are 404 `not_found`; a known path with another method is 405
 * `method_not_allowed` with `Allow`. Paths are matched against the route patterns
 * collected as routes are added.
 */
export function notFoundHandler(routes: Map<string, Set<string>>) {
  let patterns: { regex: RegExp; methods: Set<string> }[] | undefined;
  return (request: FastifyRequest, reply: FastifyReply) => {
    // Built on first use, when every route has been added.
    patterns ??= [...routes].map(([url, methods]) => ({
      regex: new RegExp(`^${url.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/:[A-Za-z]+/g, '[^/]+')}/?$`),
      methods,
    }));
    const path = request.url.split('?')[0] ?? '';
    const match = patterns.find((p) => p.regex.test(path));
    if (match) {
      reply.header('allow', [...match.methods].join(', '));
      return sendProblem(reply, new TesseraError('method_not_allowed'));
    }
    return reply.code(404).type('application/problem+json').send(problem('not_found'));
  };
}
