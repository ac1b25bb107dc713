import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { bearerToken, checkRoles, missingRole, PROBLEM_CONTENT_TYPE, TesseraAuthError } from './errors.js';
import { createVerifier, type AuthContext, type Verifier, type VerifierOptions } from './verify.js';

export { createVerifier, TesseraAuthError, type AuthContext, type Verifier, type VerifierOptions } from './verify.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** The verifier `tesseraAuth` registered. */
    tesseraVerifier: Verifier;
  }
}

/** The options of `createVerifier`, or a verifier of your own to share between apps. */
export type TesseraAuthOptions = VerifierOptions | { verifier: Verifier };

async function register(app: FastifyInstance, options: TesseraAuthOptions): Promise<void> {
  const owned = !('verifier' in options);
  const verifier = 'verifier' in options ? options.verifier : createVerifier(options);
  app.decorate('tesseraVerifier', verifier);
  if (!app.hasRequestDecorator('auth')) app.decorateRequest('auth', null);
  if (owned) app.addHook('onClose', async () => verifier.close());
}

/**
 * The Fastify plugin: registers a verifier and decorates `request.auth` (null until
 * `requireAuth` or `requireRole` has run). Not encapsulated, like a `fastify-plugin`, so the
 * routes of the app that registers it see both. Closes its verifier when the app closes.
 *
 * @example
 * await app.register(tesseraAuth, { issuer: 'https://auth.example.com', revocations: true });
 * app.get('/me', { preHandler: requireAuth }, async (request) => authOf(request));
 */
export const tesseraAuth = Object.assign(register, {
  // What fastify-plugin sets: the decorations go to the parent instead of a child context.
  [Symbol.for('skip-override')]: true,
  [Symbol.for('fastify.display-name')]: 'tessera-auth',
});

/**
 * preHandler: a valid `Authorization: Bearer` access token, else 401 problem+json with
 * `WWW-Authenticate: Bearer`. Sets `request.auth`.
 */
export async function requireAuth(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> {
  const verifier = request.server.tesseraVerifier as Verifier | undefined;
  if (!verifier) throw new Error('requireAuth needs the tesseraAuth plugin: await app.register(tesseraAuth, { issuer })');
  try {
    request.setDecorator<AuthContext>('auth', await verifier.verify(bearerToken(request.headers.authorization)));
    return undefined;
  } catch (error) {
    if (!(error instanceof TesseraAuthError)) throw error;
    return refuse(reply, error);
  }
}

/**
 * preHandler: `requireAuth`, then the caller must have any of `roles`, else 403 `insufficient_role`.
 *
 * @example
 * app.get('/admin', { preHandler: requireRole('admin') }, async () => ({ admin: true }));
 */
export function requireRole(...roles: string[]) {
  const required = checkRoles(roles);
  return async function requireRole(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> {
    if (request.getDecorator<AuthContext | null>('auth') === null) {
      await requireAuth(request, reply);
      if (reply.sent) return reply;
    }
    const refusal = missingRole(authOf(request).roles, required);
    return refusal ? refuse(reply, refusal) : undefined;
  };
}

/**
 * The caller of a route guarded by `requireAuth` or `requireRole`: `request.auth`, typed.
 * Throws on a route without either (a programming error, answered 500).
 */
export function authOf(request: FastifyRequest): AuthContext {
  const auth = request.getDecorator<AuthContext | null>('auth');
  if (!auth) throw new Error('authOf(request) on a route without requireAuth or requireRole');
  return auth;
}

function refuse(reply: FastifyReply, error: TesseraAuthError): FastifyReply {
  // An async hook that answers returns the reply, so Fastify runs no handler after it.
  return reply.code(error.status).headers(error.headers()).type(PROBLEM_CONTENT_TYPE).send(error.toProblem());
}
