import type { FastifyRequest } from 'fastify';
import { TesseraError } from '../../core/errors.js';
import { authenticate, bearerToken } from '../authenticate.js';
import type { App, Tessera } from '../context.js';
import { assertSameSiteRequest, clearRefreshCookie, readRefreshCookie } from '../cookie-transport.js';
import { issueTokens, requestMeta, type Transport } from '../issue-tokens.js';
import { rateLimitError, rateLimitPerIp } from '../rate-limits.js';
import { recognise, refreshGrant } from '../refresh-grant.js';
import { LogoutBody, Problem, RefreshBody, TokenResponse } from '../schemas.js';

/** POST /auth/refresh and POST /auth/logout: the two that take a refresh token. */
export function refreshAndLogoutRoutes(app: App, tessera: Tessera) {
  const { config, store, clock } = tessera;
  const limits = config.rateLimits;
  const perSession = config.rateLimitsEnabled
    ? app.rateLimit({
        max: limits.refreshPerSession,
        timeWindow: limits.refreshPerSessionWindow * 1000,
        hook: 'preHandler',
        keyGenerator: (request) => `session:${sessionIdOf(tessera, request)}`,
        // Tokens that do not even parse are refused without a database read; they need no per-session budget.
        allowList: (request) => sessionIdOf(tessera, request) === undefined,
        errorResponseBuilder: rateLimitError,
      })
    : [];

  app.post('/auth/refresh', {
    schema: {
      summary: 'Exchange a refresh token for new tokens (SPEC §3)',
      description: 'Cookie transport needs the header `X-Tessera-CSRF: 1`. A body token takes precedence over the cookie.',
      tags: ['sessions'],
      body: RefreshBody,
      response: { 200: TokenResponse, '4xx': Problem, '5xx': Problem },
    },
    config: rateLimitPerIp(config, limits.refreshPerIp, limits.refreshPerIpWindow),
    preHandler: perSession,
  }, async (request, reply) => {
    const { token, transport } = presentedToken(tessera, request, request.body.refreshToken);
    if (token === undefined) throw new TesseraError('invalid_refresh_token', { detail: 'No refresh token was sent' });
    try {
      const outcome = await refreshGrant(tessera, token, requestMeta(request));
      return await issueTokens(tessera, reply, {
        userId: outcome.session.user.id,
        sessionId: outcome.session.id,
        salt: outcome.session.salt,
        generation: outcome.generation,
        expiresAt: outcome.expiresAt,
        now: outcome.now,
        transport,
        user: outcome.session.user,
      });
    } catch (error) {
      // A cookie that can never work again is removed, so the browser stops sending it.
      if (transport === 'cookie' && error instanceof TesseraError && error.status === 401) clearRefreshCookie(reply, config);
      throw error;
    }
  });

  app.post('/auth/logout', {
    schema: {
      summary: 'Sign out: this session, every other session, or all of them',
      description:
        'The session is named by the body token, else the cookie (which needs `X-Tessera-CSRF: 1`), else the Bearer access token. ' +
        '`local` is idempotent: an unknown or already ended session still answers 204. `others` and `global` need an active session.',
      tags: ['sessions'],
      body: LogoutBody,
      response: { 204: { type: 'null', description: 'Signed out' }, '4xx': Problem, '5xx': Problem },
    },
  }, async (request, reply) => {
    const scope = request.body.scope ?? 'local';
    const meta = requestMeta(request);
    const now = clock();
    const { token, transport } = presentedToken(tessera, request, request.body.refreshToken);
    if (transport === 'cookie' && scope !== 'others') clearRefreshCookie(reply, config);

    let session: { id: string; userId: string; active: boolean } | undefined;
    if (token !== undefined) {
      try {
        const { session: found } = await recognise(tessera, token);
        const t = now.getTime();
        const active = !found.revokedAt && !found.userDisabled && t < found.expiresAt.getTime() && t < found.absoluteExpiresAt.getTime();
        session = { id: found.id, userId: found.user.id, active };
      } catch (error) {
        if (!(error instanceof TesseraError)) throw error;
      }
    } else if (bearerToken(request)) {
      const auth = await authenticate(tessera, request);
      session = { id: auth.sessionId, userId: auth.user.id, active: true };
    }

    if (scope === 'local') {
      if (session) await store.revokeSession(session.userId, session.id, 'logout', 'logout', now, meta);
      return reply.code(204).send(null);
    }
    // Signing other devices out needs a session that still works: an old token must not become a remote kill switch.
    if (!session?.active) {
      throw new TesseraError(token !== undefined ? 'invalid_refresh_token' : 'unauthorized', { detail: `scope=${scope} needs an active session` });
    }
    await store.revokeUserSessions(
      session.userId,
      scope === 'others' ? session.id : null,
      scope === 'others' ? 'logout_others' : 'logout_global',
      session.id,
      now,
      meta,
    );
    return reply.code(204).send(null);
  });
}

/**
 * Which refresh token a request presents: the body's (mobile and server clients)
 * takes precedence, else the cookie, which must pass the cross-site checks.
 */
function presentedToken(tessera: Tessera, request: FastifyRequest, bodyToken: string | undefined): { token: string | undefined; transport: Transport } {
  if (bodyToken !== undefined) return { token: bodyToken, transport: 'body' };
  const cookie = readRefreshCookie(request);
  if (cookie !== undefined) assertSameSiteRequest(request, tessera.config);
  return { token: cookie, transport: 'cookie' };
}

function sessionIdOf(tessera: Tessera, request: FastifyRequest): string | undefined {
  const body = request.body as { refreshToken?: unknown } | undefined;
  const token = body?.refreshToken ?? readRefreshCookie(request);
  return tessera.refreshTokens.parse(token)?.sessionId;
}

