/**
 * The one table of Tessera's error codes. The server's error handler, the
 * OpenAPI document, `docs/errors.md` and the client's typed errors all read it.
 * A code that the HTTP contract sends with another status in one named case
 * declares that case here, under `cases`, rather than at the place that throws it.
 */
export const ERRORS = {
  invalid_request: {
    status: 400,
    title: 'The request is malformed',
    // Refused by Node's HTTP server before any route runs; HTTP has a status of its own for each.
    cases: { request_timeout: 408, headers_too_large: 431 },
  },
  weak_password: { status: 400, title: 'The password is too short, too long or too common' },
  invalid_token: { status: 400, title: 'The link is not valid: it was used, has expired, or was replaced by a newer one' },
  invalid_code: { status: 400, title: 'The code is not valid' },
  unauthorized: { status: 401, title: 'A valid access token is required' },
  invalid_refresh_token: { status: 401, title: 'The refresh token is not valid' },
  refresh_token_reused: { status: 401, title: 'The refresh token was already used; the session was ended for your security' },
  session_expired: { status: 401, title: 'The session has expired' },
  invalid_credentials: {
    status: 401,
    title: 'Email or password is incorrect',
    // A signed-in caller's wrong current password: clients take a 401 for "refresh and retry".
    cases: { current_password: 403 },
  },
  account_disabled: { status: 403, title: 'The account is disabled' },
  email_not_verified: { status: 403, title: 'The email address is not verified yet' },
  mfa_required: { status: 403, title: 'A second factor is required to finish signing in' },
  reauthentication_required: { status: 403, title: 'Sign in again to do this: the last sign-in is too old' },
  forbidden: { status: 403, title: 'The caller is not allowed to do this' },
  insufficient_role: { status: 403, title: 'The caller has none of the roles this route requires' },
  csrf_failed: { status: 403, title: 'The request failed the cross-site request checks' },
  not_found: { status: 404, title: 'Not found' },
  method_not_allowed: { status: 405, title: 'Method not allowed' },
  email_taken: { status: 409, title: 'An account with this email already exists' },
  totp_already_enabled: { status: 409, title: 'An authenticator app is already set up: remove it first' },
  payload_too_large: { status: 413, title: 'The request body is too large' },
  unsupported_media_type: { status: 415, title: 'The request body must be application/json' },
  rate_limited: { status: 429, title: 'Too many requests' },
  internal_error: { status: 500, title: 'Internal server error' },
  service_unavailable: { status: 503, title: 'The service is temporarily unavailable' },
} as const satisfies Record<string, { status: number; title: string; cases?: Record<string, number> }>;

export type ErrorCode = keyof typeof ERRORS;

/** The named cases of every code, such as `current_password` of `invalid_credentials`. */
export type ErrorCase = { [C in ErrorCode]: (typeof ERRORS)[C] extends { cases: infer K } ? keyof K : never }[ErrorCode];

/** The status of a code, in one of its named cases if given. */
export function statusOf(code: ErrorCode, errorCase?: ErrorCase): number {
  const entry: { status: number; cases?: Record<string, number> } = ERRORS[code];
  return (errorCase && entry.cases?.[errorCase]) ?? entry.status;
}

export const ERROR_CODES = Object.keys(ERRORS) as ErrorCode[];

/**
 * Extension members (RFC 9457 §3.2) some answers carry beside the standard ones: `mfa_required`
 * carries the pending sign-in's `mfaToken` and the `methods` that can finish it.
 */
export interface ProblemExtensions {
  mfaToken?: string;
  methods?: string[];
}

/** The body of every error response (RFC 9457 problem details). */
export interface Problem extends ProblemExtensions {
  type: string;
  title: string;
  status: number;
  code: ErrorCode;
  detail?: string;
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ERRORS, value);
}

/**
 * An error with a public code. `detail` is shown to the client; it must never
 * carry a secret, a token, SQL text or a stack.
 *
 * @example
 * throw new TesseraError('email_taken');
 * throw new TesseraError('rate_limited', { retryAfter: 60 });
 */
export class TesseraError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly detail: string | undefined;
  /** Seconds, sent as `Retry-After` with `rate_limited` and `service_unavailable`. */
  readonly retryAfter: number | undefined;
  /** Extension members of the problem body (`mfaToken`, `methods`); they never replace a standard member. */
  readonly extensions: ProblemExtensions | undefined;

  /** `case` picks one of the code's named cases in the error table, with its own status. */
  constructor(
    code: ErrorCode,
    options: { detail?: string; retryAfter?: number; case?: ErrorCase; cause?: unknown; extensions?: ProblemExtensions } = {},
  ) {
    super(options.detail ?? ERRORS[code].title, { cause: options.cause });
    this.name = 'TesseraError';
    this.code = code;
    this.status = statusOf(code, options.case);
    this.detail = options.detail;
    this.retryAfter = options.retryAfter;
    this.extensions = options.extensions;
  }

  toProblem(): Problem {
    return { ...this.extensions, ...problem(this.code, this.detail), status: this.status };
  }
}

export function problem(code: ErrorCode, detail?: string, errorCase?: ErrorCase): Problem {
  return { type: `urn:tessera:error:${code}`, title: ERRORS[code].title, status: statusOf(code, errorCase), code, ...(detail ? { detail } : {}) };
}
