import type {} from '@fastify/cookie';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Config } from '../core/config.js';
import { TesseraError } from '../core/errors.js';
import { newDeviceCookie } from '../auth/known-device.js';
import {
  CSRF_HEADER, DEVICE_COOKIE, DEVICE_COOKIE_MAX_AGE, REFRESH_COOKIE, SESSION_HINT_COOKIE, SESSION_HINT_COOKIE_PATH, SESSION_HINT_VALUE, type Transport,
} from '../core/vocabulary.js';

/**
 * Sets the refresh cookie: HttpOnly (never readable by scripts), Path=/auth or the embedding
 * prefix (never sent to the app's other routes), Max-Age no longer than the session has left. The
 * session hint goes with it, with the same lifetime and site rules: readable by scripts,
 * Path=/, no secret in it, so the client knows whether a refresh on load can succeed.
 */
export function setRefreshCookie(reply: FastifyReply, config: Config, token: string, maxAgeSeconds: number): void {
  const maxAge = Math.max(0, Math.floor(maxAgeSeconds));
  reply.setCookie(REFRESH_COOKIE, token, { ...refreshCookieOptions(config), maxAge });
  reply.setCookie(SESSION_HINT_COOKIE, SESSION_HINT_VALUE, { ...hintCookieOptions(config), maxAge });
}

/** Clears the refresh cookie and the session hint together: the hint must never outlive the session it announces. */
export function clearRefreshCookie(reply: FastifyReply, config: Config): void {
  reply.clearCookie(REFRESH_COOKIE, refreshCookieOptions(config));
  reply.clearCookie(SESSION_HINT_COOKIE, hintCookieOptions(config));
}

function refreshCookieOptions(config: Config) {
  return { httpOnly: true, secure: config.cookieSecure, sameSite: config.cookieSameSite, path: config.refreshCookiePath, domain: config.cookieDomain };
}

// Not HttpOnly on purpose: scripts must read it. It is never trusted: see docs/security.md.
function hintCookieOptions(config: Config) {
  return { httpOnly: false, secure: config.cookieSecure, sameSite: config.cookieSameSite, path: SESSION_HINT_COOKIE_PATH, domain: config.cookieDomain };
}

/**
 * The browser's device cookie (cookie transport only): the one it sent, or a new one set on
 * this answer. Apps on the body transport have none: they are known by name and network.
 */
export function deviceCookie(request: FastifyRequest, reply: FastifyReply, config: Config, transport: Transport): string | undefined {
  if (transport !== 'cookie') return undefined;
  const sent = request.cookies[DEVICE_COOKIE];
  if (sent && /^[A-Za-z0-9_-]{16,64}$/.test(sent)) return sent;
  const fresh = newDeviceCookie();
  reply.setCookie(DEVICE_COOKIE, fresh, { ...refreshCookieOptions(config), maxAge: DEVICE_COOKIE_MAX_AGE });
  return fresh;
}

export function readRefreshCookie(request: FastifyRequest): string | undefined {
  const value = request.cookies[REFRESH_COOKIE];
  return value === undefined || value === '' ? undefined : value;
}

/**
 * The cross-site checks of cookie-mode refresh and logout. The custom header
 * cannot be sent cross-site without a CORS preflight we would refuse; the
 * Origin and fetch-metadata checks stop what slips past (old browsers, lax setups).
 */
export function assertSameSiteRequest(request: FastifyRequest, config: Config, headerRequired = true): void {
  if (headerRequired && request.headers[CSRF_HEADER] !== '1') {
    throw new TesseraError('csrf_failed', { detail: 'Cookie requests must send the header X-Tessera-CSRF: 1' });
  }
  const origin = request.headers.origin;
  if (origin !== undefined) {
    if (!isAllowedOrigin(origin, config)) throw new TesseraError('csrf_failed', { detail: 'The request origin is not allowed' });
  } else if (request.headers['sec-fetch-site'] === 'cross-site') {
    throw new TesseraError('csrf_failed', { detail: 'Cross-site requests are not allowed' });
  }
}

/** PUBLIC_URL's origin or one of CORS_ORIGINS; the opaque origin `null` never is. */
export function isAllowedOrigin(origin: string, config: Config): boolean {
  return origin !== 'null' && (origin === config.publicOrigin || config.corsOrigins.includes(origin));
}

/**
 * Which refresh token a request presents: the body's (mobile and server clients)
 * takes precedence, else the cookie, which must pass the cross-site checks. `headerRequired`
 * false: the caller proved it is no cross-site page some other way (a logout's Bearer token).
 */
export function presentedRefreshToken(
  request: FastifyRequest, config: Config, bodyToken: string | undefined, headerRequired = true,
): { token: string | undefined; transport: Transport } {
  if (bodyToken !== undefined) return { token: bodyToken, transport: 'body' };
  const cookie = readRefreshCookie(request);
  if (cookie !== undefined) assertSameSiteRequest(request, config, headerRequired);
  return { token: cookie, transport: 'cookie' };
}
