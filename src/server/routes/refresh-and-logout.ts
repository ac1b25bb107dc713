import type { FastifyReply } from 'fastify';
import { refreshGrant } from '../../auth/refresh-grant.js';
import { signOut } from '../../auth/sign-out.js';
import { TesseraError } from '../../core/errors.js';
import type { App, Request } from '../context.js';
import { verifyBearer } from '../../auth/authenticate.js';
import { CSRF_HEADER } from '../../core/vocabulary.js';
import { clearRefreshCookie, presentedRefreshToken, readRefreshCookie } from '../cookie-transport.js';
import { perIp } from '../per-ip-limits.js';
import { bearerToken, requestMeta } from '../request-meta.js';
import { LogoutBody, Problem, RefreshBody, TokenResponse } from '../schemas.js';
import { tokenResponse } from '../token-response.js';

/** POST /auth/refresh and POST /auth/logout: the two that take a refresh token. */
export function refreshAndLogoutRoutes(app: App) {
  app.post('/refresh', {
    schema: {
      summary: 'Exchange a refresh token for new tokens',
      description: 'Cookie transport needs the header `X-Tessera-CSRF: 1`. A body token takes precedence over the cookie.',
      tags: ['sessions'],
      body: RefreshBody,
      response: { 200: TokenResponse, '4xx': Problem, '5xx': Problem },
    },
    config: perIp(app.tessera.limits, 'refresh'),
  }, postRefresh);

  app.post('/logout', {
    schema: {
      summary: 'Sign out: this session, every other session, or all of them',
      description:
        'The session is named by the body token, else the cookie (which needs `X-Tessera-CSRF: 1`, or a valid Bearer access token of the ' +
        "cookie's own session), else the Bearer access token. " +
        '`local` is idempotent: an unknown or already ended session still answers 204. `others` and `global` need a credential that would still ' +
        'refresh (or a valid access token); an old refresh token there counts as reuse.',
      tags: ['sessions'],
      body: LogoutBody,
      response: { 204: { type: 'null', description: 'Signed out' }, '4xx': Problem, '5xx': Problem },
    },
  }, postLogout);
}

async function postRefresh(request: Request<{ Body: RefreshBody }>, reply: FastifyReply) {
  const { tessera } = request.server;
  const { token, transport } = presentedRefreshToken(request, tessera.config, request.body.refreshToken);
  try {
    if (token === undefined) throw new TesseraError('invalid_refresh_token', { detail: 'No refresh token was sent' });
    return tokenResponse(reply, tessera.config, await refreshGrant(tessera, token, requestMeta(request)), transport);
  } catch (error) {
    // A cookie that can never work again is removed, so the browser stops sending it; the
    // session hint goes with it (also when only the hint was left), so the client stops trying.
    if (transport === 'cookie' && error instanceof TesseraError && error.status === 401) clearRefreshCookie(reply, tessera.config);
    throw error;
  }
}

async function postLogout(request: Request<{ Body: LogoutBody }>, reply: FastifyReply) {
  const { tessera } = request.server;
  const scope = request.body.scope ?? 'local';
  const headerRequired = request.body.refreshToken !== undefined || !(await bearerOfCookieSession(request));
  const { token, transport } = presentedRefreshToken(request, tessera.config, request.body.refreshToken, headerRequired);
  if (transport === 'cookie' && scope !== 'others') clearRefreshCookie(reply, tessera.config);
  await signOut(tessera, { scope, refreshToken: token, accessToken: bearerToken(request), meta: requestMeta(request) });
  return reply.code(204).send(null);
}

/**
 * A cookie logout may go without `X-Tessera-CSRF` when a valid Bearer access token of the
 * cookie's own session comes with it: a cross-site page can send the cookie, never that token.
 * So a front end that forgot the header still ends the session instead of silently keeping it.
 */
async function bearerOfCookieSession(request: Request): Promise<boolean> {
  const cookie = readRefreshCookie(request);
  const accessToken = bearerToken(request);
  if (cookie === undefined || accessToken === undefined || request.headers[CSRF_HEADER] === '1') return false;
  const { tessera } = request.server;
  const session = tessera.refreshTokens.parse(cookie);
  const bearer = await verifyBearer(tessera, accessToken).catch(() => undefined);
  return session !== undefined && bearer?.sessionId === session.sessionId;
}
