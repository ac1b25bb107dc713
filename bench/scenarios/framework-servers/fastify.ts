import Fastify from 'fastify';
import type { AuthContext } from '../../../src/resource/verify.js';
import { bearer, frameworkServer } from './common.js';

/**
 * Fastify 5, `GET /me` answering `{ sub, sid }`.
 * bare: the route verifies the Bearer token itself with `createVerifier` (401 on failure);
 * helper: the `tesseraAuth` plugin, `requireAuth` as the route's preHandler, `authOf(request)`.
 */
const server = await frameworkServer();
const app = Fastify({ logger: false });

if (server.variant === 'bare') {
  const { createVerifier } = (await import(server.resource('verify'))) as typeof import('../../../src/resource/verify.js');
  const verifier = createVerifier(server.verifierOptions);
  app.get('/me', async (request, reply) => {
    let auth: AuthContext;
    try {
      auth = await verifier.verify(bearer(request.headers.authorization));
    } catch {
      return reply.code(401).send({ error: 'unauthorized' });
    }
    return { sub: auth.userId, sid: auth.sessionId };
  });
} else {
  const { tesseraAuth, requireAuth, authOf } = (await import(server.resource('fastify'))) as typeof import('../../../src/resource/fastify.js');
  await app.register(tesseraAuth, server.verifierOptions);
  app.get('/me', { preHandler: requireAuth }, async (request) => {
    const auth = authOf(request);
    return { sub: auth.userId, sid: auth.sessionId };
  });
}

await app.listen({ port: server.port, host: server.host });
server.ready();
