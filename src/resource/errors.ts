import { problem, type Problem } from '../core/errors.js';

/** The codes a resource server answers with; titles and statuses come from Tessera's one error table. */
export type TesseraAuthErrorCode = 'unauthorized' | 'insufficient_role' | 'service_unavailable';

/** Public details: the only words about a refusal that leave the process. */
export const DETAILS = {
  missing: 'An Authorization: Bearer access token is required',
  invalid: 'The access token is not valid',
  expired: 'The access token has expired',
  ended: 'The session has ended',
  role: 'The caller has none of the roles this route requires',
  unavailable: 'The access token cannot be checked right now',
} as const;

/** Seconds a client waits before retrying a 503. */
const RETRY_AFTER = 5;

/**
 * Why a request was refused. `detail` is public; the real cause (which jose check failed, why
 * the JWKS could not be fetched) stays in `cause`, for the log only: "bad signature" and
 * "unknown key" must look the same to the caller.
 *
 * - `unauthorized` (401): no token, or a token that is not valid, has expired or whose session ended.
 * - `insufficient_role` (403): a valid token without any of the roles a route requires.
 * - `service_unavailable` (503): the token could not be checked, through no fault of its own:
 *   the issuer's JWKS could not be fetched, or the revocation feed is down with `'fail-closed'`.
 *
 * @example
 * try { await verifier.verify(token) } catch (e) {
 *   if (e instanceof TesseraAuthError) reply.code(e.status).headers(e.headers()).send(e.toProblem());
 * }
 */
export class TesseraAuthError extends Error {
  readonly code: TesseraAuthErrorCode;
  readonly status: 401 | 403 | 503;
  readonly detail: string;
  /** Whether the request carried a token: RFC 6750 adds `error="invalid_token"` only then. */
  readonly tokenPresented: boolean;

  constructor(code: TesseraAuthErrorCode, detail: string, options: { cause?: unknown; tokenPresented?: boolean } = {}) {
    super(detail, { cause: options.cause });
    this.name = 'TesseraAuthError';
    this.code = code;
    this.status = code === 'unauthorized' ? 401 : code === 'insufficient_role' ? 403 : 503;
    this.detail = detail;
    this.tokenPresented = options.tokenPresented ?? true;
  }

  /**
   * The headers the answer carries: `WWW-Authenticate` (RFC 6750 §3) on 401 and 403, a bare
   * `Bearer` challenge when no token was sent; `Retry-After` on 503.
   */
  headers(): Record<string, string> {
    if (this.code === 'service_unavailable') return { 'retry-after': String(RETRY_AFTER) };
    if (!this.tokenPresented) return { 'www-authenticate': 'Bearer' };
    const error = this.code === 'insufficient_role' ? 'insufficient_scope' : 'invalid_token';
    // The detail is one of our own fixed sentences: no quote or backslash to escape.
    return { 'www-authenticate': `Bearer error="${error}", error_description="${this.detail}"` };
  }

  /** The problem+json body, the same shape as Tessera's own errors. */
  toProblem(): Problem {
    return problem(this.code, this.detail);
  }
}

/** The content type of every refusal, as Tessera's own. */
export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

/** The token of an `Authorization: Bearer …` header (scheme case-insensitive), or undefined. */
export function bearerToken(header: string | string[] | undefined): string | undefined {
  if (typeof header !== 'string') return undefined;
  return /^Bearer +([^ ]+) *$/i.exec(header)?.[1];
}

/** The 403 of a valid caller without any of `roles`; `undefined` when one of them is there. */
export function missingRole(granted: readonly string[], roles: readonly string[]): TesseraAuthError | undefined {
  return roles.some((role) => granted.includes(role)) ? undefined : new TesseraAuthError('insufficient_role', DETAILS.role);
}

/** `requireRole()` with no role would let every caller through by accident: refuse it at start. */
export function checkRoles(roles: readonly string[]): string[] {
  if (roles.length === 0 || !roles.every((r) => typeof r === 'string' && r !== '')) {
    throw new TypeError('a role check needs at least one role name: requireRole(\'admin\'), @Roles(\'admin\')');
  }
  return [...roles];
}

/** A failure in a few words for a log line: fetch's own "fetch failed" says little, its cause (ECONNREFUSED) more. */
export function reasonOf(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause as { code?: unknown; message?: unknown } | undefined;
  const reason = typeof cause?.code === 'string' ? cause.code : typeof cause?.message === 'string' ? cause.message : undefined;
  return reason ? `${error.message}: ${reason}` : error.message;
}
