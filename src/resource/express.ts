import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { bearerToken, checkRoles, DETAILS, missingRole, PROBLEM_CONTENT_TYPE, TesseraAuthError } from './errors.js';
import { createVerifier, type AuthContext, type Verifier, type VerifierOptions } from './verify.js';

export { createVerifier, TesseraAuthError, type AuthContext, type Verifier, type VerifierOptions } from './verify.js';

/**
 * No global augmentation of Express's `Request`: it would clash with any other `req.auth` in
 * the same program (express-jwt's `Request & { auth?: JwtPayload }` during a migration, say).
 * `authOf(req)` is the typed way in; docs/resource-servers.md shows the three lines that type
 * `req.auth` for an app that wants it.
 */
type WithAuth = Request & { auth?: AuthContext };

/** The options of `createVerifier`, or a verifier of your own to share between apps. */
export type TesseraAuthOptions = VerifierOptions | { verifier: Verifier };

/** The middleware, and the verifier it created (call `verifier.close()` at shutdown to stop polling). */
export type TesseraAuthMiddleware = RequestHandler & { verifier: Verifier };

/**
 * Express middleware: requires `Authorization: Bearer <access token>`, sets `req.auth` (read it
 * typed with `authOf(req)`), and
 * answers 401 problem+json with `WWW-Authenticate: Bearer` otherwise.
 *
 * @example
 * const auth = tesseraAuth({ issuer: 'https://auth.example.com', revocations: true });
 * app.get('/me', auth, (req, res) => { res.json(authOf(req)) });
 */
export function tesseraAuth(options: TesseraAuthOptions): TesseraAuthMiddleware {
  const verifier = 'verifier' in options ? options.verifier : createVerifier(options);
  const middleware = async (req: Request, res: Response, next: NextFunction) => {
    try {
      (req as WithAuth).auth = await verifier.verify(bearerToken(req.headers.authorization));
    } catch (error) {
      // Anything else is a bug: Express 5 hands a rejected promise to the app's error handler.
      if (!(error instanceof TesseraAuthError)) throw error;
      return refuse(res, error);
    }
    next();
  };
  return Object.assign(middleware, { verifier });
}

/**
 * Passes when the caller has any of `roles`, else 403 `insufficient_role`. Goes after
 * `tesseraAuth()`; without a caller it answers 401.
 *
 * @example
 * app.get('/admin', auth, requireRole('admin'), (req, res) => { res.json({ admin: true }) });
 */
export function requireRole(...roles: string[]): RequestHandler {
  const required = checkRoles(roles);
  return (req, res, next) => {
    const { auth } = req as WithAuth;
    if (!auth) return refuse(res, new TesseraAuthError('unauthorized', DETAILS.missing, { tokenPresented: false }));
    const refusal = missingRole(auth.roles, required);
    if (refusal) return refuse(res, refusal);
    next();
  };
}

/**
 * The caller of a route behind `tesseraAuth()`: `req.auth`, typed. Throws on a route without
 * it (a programming error, answered 500).
 *
 * @example
 * app.get('/me', auth, (req, res) => { res.json({ userId: authOf(req).userId }) });
 */
export function authOf(req: Request): AuthContext {
  const { auth } = req as WithAuth;
  if (!auth) throw new Error('authOf(req) on a route without tesseraAuth()');
  return auth;
}

function refuse(res: Response, error: TesseraAuthError): void {
  res.status(error.status).set(error.headers()).type(PROBLEM_CONTENT_TYPE).send(JSON.stringify(error.toProblem()));
}
