import express from 'express';
import type { AuthContext } from '../../../src/resource/verify.js';
import { bearer, frameworkServer } from './common.js';

/**
 * Express 5, `GET /me` answering `{ sub, sid }`.
 * bare: the route verifies the Bearer token itself with `createVerifier` (401 on failure);
 * helper: the route behind `tesseraAuth()`, reading the caller with `authOf(req)`.
 */
const server = await frameworkServer();
const app = express();

if (server.variant === 'bare') {
  const { createVerifier } = (await import(server.resource('verify'))) as typeof import('../../../src/resource/verify.js');
  const verifier = createVerifier(server.verifierOptions);
  app.get('/me', async (req, res) => {
    let auth: AuthContext;
    try {
      auth = await verifier.verify(bearer(req.headers.authorization));
    } catch {
      res.status(401).json({ error: 'unauthorized' });
      return;
    }
    res.json({ sub: auth.userId, sid: auth.sessionId });
  });
} else {
  const { tesseraAuth, authOf } = (await import(server.resource('express'))) as typeof import('../../../src/resource/express.js');
  app.get('/me', tesseraAuth(server.verifierOptions), (req, res) => {
    const auth = authOf(req);
    res.json({ sub: auth.userId, sid: auth.sessionId });
  });
}

app.listen(server.port, server.host, (error?: Error) => {
  if (error) throw error;
  server.ready();
});
