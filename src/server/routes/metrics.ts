import type { FastifyReply } from 'fastify';
import { TesseraError } from '../../core/errors.js';
import type { App, Request } from '../context.js';
import { bearerTokenCheck, METRICS_TOKEN_DETAIL, type Metrics } from '../metrics.js';

/**
 * GET /metrics on the main port, for METRICS_TOKEN without METRICS_PORT: Prometheus' text
 * format to a scraper that sends `Authorization: Bearer <METRICS_TOKEN>`, 401 `unauthorized`
 * to anyone else. Not in the OpenAPI document: it is for operators, not for clients.
 */
export function metricsRoutes(app: App, metrics: Metrics, token: string) {
  const authorized = bearerTokenCheck(token);
  app.get('/metrics', { schema: { hide: true } }, async function getMetrics(request: Request, reply: FastifyReply) {
    if (!authorized(request.headers.authorization)) {
      reply.header('www-authenticate', 'Bearer');
      throw new TesseraError('unauthorized', { detail: METRICS_TOKEN_DETAIL });
    }
    return reply.type(metrics.contentType).send(await metrics.scrape());
  });
}
