import { ERRORS, isErrorCode, type ErrorCode } from '../core/errors.js';

export type ClientErrorCode = ErrorCode | 'network_error';

/**
 * An error from Tessera, carrying the server's stable `code` (see docs/errors.md),
 * or `network_error` when no answer arrived.
 *
 * @example
 * try { await client.login({ email, password }); }
 * catch (e) { if (e instanceof TesseraClientError && e.code === 'invalid_credentials') showWrongPassword(); }
 */
export class TesseraClientError extends Error {
  readonly code: ClientErrorCode;
  readonly status: number;
  readonly detail: string | undefined;
  /** Seconds to wait, from Retry-After, for `rate_limited` and `service_unavailable`. */
  readonly retryAfter: number | undefined;

  constructor(code: ClientErrorCode, status: number, detail?: string, retryAfter?: number) {
    super(detail ?? (code === 'network_error' ? 'The server could not be reached' : ERRORS[code].title));
    this.name = 'TesseraClientError';
    this.code = code;
    this.status = status;
    this.detail = detail;
    this.retryAfter = retryAfter;
  }

  /** Reads a problem+json response into an error; unknown shapes become `internal_error`. */
  static async from(response: Response): Promise<TesseraClientError> {
    let body: { code?: unknown; detail?: unknown; mfaToken?: unknown; methods?: unknown } = {};
    try {
      body = await response.json();
    } catch {
      // not JSON: fall through with the status alone
    }
    const code = isErrorCode(body.code) ? body.code : response.status >= 500 ? 'internal_error' : 'invalid_request';
    const retryAfter = Number(response.headers.get('retry-after')) || undefined;
    if (code === 'mfa_required' && typeof body.mfaToken === 'string') {
      const methods = Array.isArray(body.methods) ? body.methods.filter((m): m is MfaMethod => typeof m === 'string') : [];
      return new MfaRequiredError(response.status, body.mfaToken, methods, typeof body.detail === 'string' ? body.detail : undefined);
    }
    return new TesseraClientError(code, response.status, typeof body.detail === 'string' ? body.detail : undefined, retryAfter);
  }
}

/** A second factor that can finish a sign-in answered `mfa_required`. */
export type MfaMethod = 'totp' | 'recovery_code' | 'passkey';

/**
 * `login()` was answered `mfa_required`: the password was right, and a second factor finishes
 * the sign-in. `methods` says which (`totp`, `recovery_code`, `passkey`); the client keeps the
 * pending sign-in for `verifyMfa({ code })`, and `mfaToken` is here for
 * `signInWithPasskey(client, { mfaToken })`. Valid 5 minutes, single use.
 */
export class MfaRequiredError extends TesseraClientError {
  readonly mfaRequired = true as const;
  readonly mfaToken: string;
  readonly methods: MfaMethod[];

  constructor(status: number, mfaToken: string, methods: MfaMethod[], detail?: string) {
    super('mfa_required', status, detail);
    this.name = 'MfaRequiredError';
    this.mfaToken = mfaToken;
    this.methods = methods;
  }
}
