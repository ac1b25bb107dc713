import type { FastifyReply, FastifyRequest } from 'fastify';

/**
 * One record per answered request, written when the answer has gone (Fastify's own request
 * logging, two records a request, is off). `record`: pino's JSON, with Fastify's `req` and
 * `res` shapes, for log collectors. `line`: `GET /auth/me 200 3 ms`, for a person watching a
 * terminal (`tessera serve` in development).
 */
export type RequestLog = 'record' | 'line';

export function requestLogger(style: RequestLog) {
  return style === 'line' ? logRequestLine : logRequestRecord;
}

function logRequestRecord(request: FastifyRequest, reply: FastifyReply, done: () => void): void {
  request.log.info({ req: request, res: reply, responseTime: reply.elapsedTime }, 'request completed');
  done();
}

function logRequestLine(request: FastifyRequest, reply: FastifyReply, done: () => void): void {
  request.log.info(`${request.method} ${request.url} ${reply.statusCode} ${Math.round(reply.elapsedTime)} ms`);
  done();
}
