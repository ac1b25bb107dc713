import type { FastifyRequest } from 'fastify';
import { TesseraError } from '../../core/errors.js';
import { authenticate, verifyBearer } from '../authenticate.js';
import type { App, Tessera } from '../context.js';
import { assertSameSiteRequest, clearRefreshCookie, readRefreshCookie } from '../cookie-transport.js';
import { issueTokens, type Transport } from '../issue-tokens.js';
import type { RequestMeta } from '../../store/store.js';
import { requestMeta } from '../request-meta.js';
import { rateLimitPerIp } from '../rate-limits.js';
import { judge, recognise, refreshGrant, tryRecognise, unlessTesseraError } from '../refresh-grant.js';
import { LogoutBody, Problem, RefreshBody, TokenResponse } from '../schemas.js';

/** POST /auth/refresh and POST /auth/logout: the two that take a refresh token. */
export function refreshAndLogoutRoutes(app: App, tessera: Tessera) {
  const { config, store, clock } = tessera;
  const limits = config.rateLimits;
  app.post('/auth/refresh', {
    schema: {
      summary: 'Exchange a refresh token for new tokens (SPEC §3)',
      description: 'Cookie transport needs the header `X-Tessera-CSRF: 1`. A body token takes precedence over the cookie.',
      tags: ['sessions'],
      body: RefreshBody,
      response: { 200: TokenResponse, '4xx': Problem, '5xx': Problem },
    },
    config: rateLimitPerIp(config, limits.refreshPerIp, limits.refreshPerIpWindow),
  }, async (request, reply) => {
    const { token, transport } = presentedToken(tessera, request, request.body.refreshToken);
    if (token === undefined) throw new TesseraError('invalid_refresh_token', { detail: 'No refresh token was sent' });
    try {
      return await issueTokens(tessera, reply, await refreshGrant(tessera, token, requestMeta(request)), transport);
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
        '`local` is idempotent: an unknown or already ended session still answers 204. `others` and `global` need a credential that would still ' +
        'refresh (or a valid access token); an old refresh token there counts as reuse (SPEC §3 rule 4).',
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

    if (scope === 'local') {
      // Idempotent: whatever names a session of ours ends it; anything else changes nothing and is still 204.
      const session = await sessionToEnd(tessera, request, token, meta);
      if (session) await store.revokeSession(session.userId, session.id, 'logout', 'logout', now, meta);
      return reply.code(204).send(null);
    }

    // Signing other devices out needs a credential that would still work: an old token must not
    // become a remote kill switch. An old refresh token here is theft evidence like anywhere else.
    const session = token !== undefined
      ? (await judge(tessera, await recognise(tessera, token), meta)).session
      : await authenticate(tessera, request).then((auth) => ({ id: auth.sessionId, user: auth.user }));
    await store.revokeUserSessions(
      session.user.id,
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

/**
 * The session a local logout ends: the one a genuine refresh token names, else the one a
 * valid Bearer names. An old refresh token is theft evidence here too (§3 rule 4): `judge`
 * revokes the session for reuse and records it, and there is nothing left to end.
 */
async function sessionToEnd(tessera: Tessera, request: FastifyRequest, token: string | undefined, meta: RequestMeta) {
  if (token === undefined) {
    const bearer = await verifyBearer(tessera, request).catch(unlessTesseraError);
    return bearer && { id: bearer.sessionId, userId: bearer.userId };
  }
  const named = await tryRecognise(tessera, token);
  if (!named) return undefined;
  try {
    await judge(tessera, named, meta);
  } catch (error) {
    if (error instanceof TesseraError && error.code === 'refresh_token_reused') return undefined;
    // Other refusals (expired, user disabled): ending the session anyway is harmless.
    unlessTesseraError(error);
  }
  return { id: named.session.id, userId: named.session.user.id };
}
