import { createServer } from 'node:http';
import express, { type NextFunction, type Request as ExpressRequest, type Response } from 'express';
import { expressjwt, type Request as JWTRequest } from 'express-jwt';
import jwksRsa from 'jwks-rsa';
import type { Algorithm } from 'jsonwebtoken';
import { closeServer, describeInterop, listen, type VerifierOptions } from './kit.js';

/**
 * express-jwt 8 with jwks-rsa's `expressJwtSecret`, in Express 5, set up as jwks-rsa's
 * express example and express-jwt's README show (docs/resource-servers.md, "Keeping your
 * JWT library", has the same code).
 */
async function start(options: VerifierOptions) {
  const app = express();
  app.use(
    expressjwt({
      secret: jwksRsa.expressJwtSecret({
        cache: true,
        rateLimit: true,
        jwksRequestsPerMinute: 10,
        jwksUri: options.jwksUri,
      }),
      issuer: options.issuer,
      audience: options.audience,
      algorithms: options.algorithms as Algorithm[],
    }),
  );

  app.get('/me', (req: JWTRequest, res: Response) => {
    res.json(req.auth);
  });

  app.use((err: Error, req: ExpressRequest, res: Response, next: NextFunction) => {
    if (err.name === 'UnauthorizedError') {
      res.status(401).json({ name: err.name, message: err.message });
    } else {
      next(err);
    }
  });

  const server = createServer(app);
  return { url: await listen(server), close: () => closeServer(server) };
}

describeInterop({
  name: 'express-jwt 8 + jwks-rsa 4 (expressJwtSecret) in Express 5',
  start,
  algs: ['ES256', 'RS256'],
  eddsaToday: {
    // jsonwebtoken 9, under express-jwt, knows no EdDSA: with `algorithms: ['EdDSA']` it refuses the key type.
    setup: "algorithms: ['EdDSA'] refuses the Ed25519 key: Unknown key type \"ed25519\"",
    start,
    status: 401,
    message: /^Unknown key type "ed25519"\.$/,
  },
  eddsaPinned: { status: 401, message: /^invalid algorithm$/ },
  unreachable: { status: 500 },
});
