import { createServer } from 'node:http';
import express, { type NextFunction, type Request, type Response } from 'express';
import jwt, { type Algorithm, type GetPublicKeyOrSecret, type JwtPayload } from 'jsonwebtoken';
import jwksClient from 'jwks-rsa';
import { closeServer, describeInterop, listen, type VerifierOptions } from './kit.js';

/**
 * jsonwebtoken 9 on its own: `jwt.verify` with the `getKey` callback of its README, the
 * key from jwks-rsa, in a hand-written Express 5 middleware, the way an "Express +
 * jsonwebtoken" API verifies its tokens (docs/resource-servers.md, "Keeping your JWT
 * library", and docs/migrating.md have the same code).
 */
async function start(options: VerifierOptions) {
  const client = jwksClient({ cache: true, rateLimit: true, jwksRequestsPerMinute: 10, jwksUri: options.jwksUri });

  const getKey: GetPublicKeyOrSecret = (header, callback) => {
    client.getSigningKey(header.kid, (err, key) => {
      if (err) return callback(err);
      callback(null, key!.getPublicKey());
    });
  };

  function requireAuth(req: Request, res: Response, next: NextFunction) {
    const [type, token] = req.headers.authorization?.split(' ') ?? [];
    if (type !== 'Bearer' || !token) return res.status(401).json({ message: 'No bearer token' });
    jwt.verify(
      token,
      getKey,
      { issuer: options.issuer, audience: options.audience, algorithms: options.algorithms as Algorithm[] },
      (err, payload) => {
        if (err) return res.status(401).json({ message: err.message });
        res.locals.auth = payload as JwtPayload;
        next();
      },
    );
  }

  const app = express();
  app.get('/me', requireAuth, (req: Request, res: Response) => {
    res.json(res.locals.auth);
  });

  const server = createServer(app);
  return { url: await listen(server), close: () => closeServer(server) };
}

describeInterop({
  name: 'jsonwebtoken 9 (jwt.verify with a getKey callback) + jwks-rsa 4',
  start,
  algs: ['ES256', 'RS256'],
  eddsaToday: {
    setup: "algorithms: ['EdDSA'] refuses the Ed25519 key: Unknown key type \"ed25519\"",
    start,
    status: 401,
    message: /^Unknown key type "ed25519"\.$/,
  },
  eddsaPinned: { status: 401, message: /^invalid algorithm$/ },
  unreachable: { status: 401 },
});
