import { createServer } from 'node:http';
import express, { type NextFunction, type Request, type Response } from 'express';
import jwksRsa from 'jwks-rsa';
import type { Algorithm } from 'jsonwebtoken';
import { Passport } from 'passport';
import { ExtractJwt, Strategy as JwtStrategy, type VerifiedCallback } from 'passport-jwt';
import { closeServer, describeInterop, listen, type VerifierOptions } from './kit.js';

/**
 * passport-jwt 4 with jwks-rsa's `passportJwtSecret`, in Express 5, set up as jwks-rsa's
 * passport example shows (docs/resource-servers.md, "Keeping your JWT library", has the
 * same code). The route uses passport's custom callback so that a refusal says why.
 */
async function start(options: VerifierOptions) {
  // One Passport per server here, as each test server verifies with its own options; an app has `import passport from 'passport'`.
  const passport = new Passport();
  passport.use(
    new JwtStrategy(
      {
        secretOrKeyProvider: jwksRsa.passportJwtSecret({
          cache: true,
          rateLimit: true,
          jwksRequestsPerMinute: 10,
          jwksUri: options.jwksUri,
        }),
        jwtFromRequest: ExtractJwt.fromAuthHeaderAsBearerToken(),
        issuer: options.issuer,
        audience: options.audience,
        algorithms: options.algorithms as Algorithm[],
      },
      (payload: { sub?: string }, done: VerifiedCallback) => done(null, payload.sub ? payload : false),
    ),
  );

  const app = express();
  app.use(passport.initialize());

  app.get('/me', (req: Request, res: Response, next: NextFunction) => {
    passport.authenticate('jwt', { session: false }, (err: unknown, user: unknown, info?: Error) => {
      if (err) return next(err);
      if (!user) return res.status(401).json({ message: info?.message ?? 'Unauthorized' });
      res.json(user);
    })(req, res, next);
  });

  const server = createServer(app);
  return { url: await listen(server), close: () => closeServer(server) };
}

describeInterop({
  name: 'passport-jwt 4 + jwks-rsa 4 (passportJwtSecret) in Express 5',
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
