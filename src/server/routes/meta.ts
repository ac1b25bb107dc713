import type {} from '@fastify/swagger';
import { Type } from 'typebox';
import { TesseraError } from '../../core/errors.js';
import type { App } from '../context.js';
import { Jwks, Problem } from '../schemas.js';

/** Public endpoints about the service itself: keys, health, readiness, the API description. */
export function metaRoutes(app: App) {
  const { tessera } = app;
  app.get('/.well-known/jwks.json', {
    schema: { summary: 'Public keys that verify access tokens', tags: ['meta'], response: { 200: Jwks } },
  }, async () => tessera.keys.jwks(tessera.clock()));

  app.get('/healthz', {
    schema: { summary: 'Liveness: the process is up', tags: ['meta'], response: { 200: Type.Object({ status: Type.Literal('ok') }) } },
  }, async () => ({ status: 'ok' as const }));

  app.get('/readyz', {
    schema: {
      summary: 'Readiness: the database answers (503 service_unavailable when it does not)',
      tags: ['meta'],
      response: { 200: Type.Object({ status: Type.Literal('ready') }), 503: Problem },
    },
  }, async () => {
    try {
      await tessera.store.ping();
    } catch (error) {
      throw new TesseraError('service_unavailable', { detail: 'The database is unreachable', retryAfter: 5, cause: error });
    }
    return { status: 'ready' as const };
  });

  app.get('/openapi.json', {
    schema: { summary: 'This OpenAPI 3.1 document', tags: ['meta'], hide: true },
  }, async () => app.swagger());
}
