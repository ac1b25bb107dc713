import type { FastifyReply, FastifyRequest } from 'fastify';

/**
 * One record per answered request, written when the answer has gone (Fastify's own request
 * logging, two records a request, is off). `record`: pino's JSON for log collectors, its
 * fields flat (`method`, `url`, `statusCode`, `responseTime` in ms, `ip`): nested `req` and
 * `res` objects would each be cloned and searched by the log's redaction, which cost more than
 * the rest of the line. `line`: `GET /auth/me 200 3 ms`, for a person watching a terminal
 * (`tessera serve` in development).
 */
export type RequestLog = 'record' | 'line';

export function requestLogger(style: RequestLog) {
  return style === 'line' ? logRequestLine : logRequestRecord;
}

function logRequestRecord(request: FastifyRequest, reply: FastifyReply, done: () => void): void {
  request.log.info(
    { method: request.method, url: request.url, statusCode: reply.statusCode, responseTime: reply.elapsedTime, ip: request.ip },
    'request completed',
  );
  done();
}

function logRequestLine(request: FastifyRequest, reply: FastifyReply, done: () => void): void {
  request.log.info(`${request.method} ${request.url} ${reply.statusCode} ${Math.round(reply.elapsedTime)} ms`);
  done();
}
