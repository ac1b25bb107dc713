/**
 * The words the store, the server, the client and the demo page share, defined once.
 * Everything here is plain data: the browser client imports it without pulling in
 * anything of the server.
 */

/** What is recorded in a user's security log (`GET /auth/events`). */
export const SECURITY_EVENT_TYPES = [
  'registered',
  'login_succeeded',
  'login_failed',
  'logout',
  'session_revoked',
  'sessions_revoked',
  'password_changed',
  'reuse_detected',
  /** created by `tessera users import` (not `registered`: the user did not sign up here) */
  'imported',
  /** the set of roles replaced (`tessera users roles`) */
  'roles_changed',
  // accounts: email, recovery, notifications
  'email_verified',
  'password_reset_requested',
  'password_reset',
  'email_change_requested',
  'email_changed',
  /** a sign-in from a browser or app not seen before for this account */
  'new_device',
  'account_deleted',
  'profile_updated',
  // second factors
  'mfa_enabled',
  'mfa_disabled',
  'mfa_failed',
  'recovery_code_used',
  'passkey_added',
  'passkey_removed',
  /** anything an operator did through the admin API or CLI; `detail` names the actor and the action */
  'admin_action',
] as const;
export type SecurityEventType = (typeof SECURITY_EVENT_TYPES)[number];

/** Why a session was ended; `reuse` is the one that makes every later holder hear `refresh_token_reused`. */
export const REVOKE_REASONS = [
  'logout', 'reuse', 'revoked', 'password_changed', 'logout_others', 'logout_global', 'password_reset', 'account_deleted', 'admin',
] as const;
export type RevokeReason = (typeof REVOKE_REASONS)[number];

/** Who did something, from where: recorded with sessions and security events. */
export interface RequestMeta {
  ip: string | null;
  userAgent: string | null;
}

/**
 * Where a refresh token travels: `cookie` (browsers; an HttpOnly cookie, never a body) or
 * `body` (mobile and server clients).
 */
export type Transport = 'cookie' | 'body';

/**
 * How a sign-in answered `mfa_required` can be finished (the `methods` of that answer):
 * an authenticator app's code, a recovery code, or a passkey.
 */
export const MFA_METHODS = ['totp', 'recovery_code', 'passkey'] as const;
export type MfaMethod = (typeof MFA_METHODS)[number];

/**
 * RFC 8176 `amr` values that prove a second factor (a one-time code, a hardware key, or
 * several factors): what "re-authenticated with a factor" means once a user has one.
 */
export const FACTOR_AMR: readonly string[] = Object.freeze(['otp', 'hwk', 'mfa']);

/** User agents are stored up to this many characters. */
export const USER_AGENT_MAX_LENGTH = 512;

/** Passwords: 8 to 1024 Unicode code points, never truncated (NIST SP 800-63B). */
export const PASSWORD_MIN_LENGTH = 8;
export const PASSWORD_MAX_LENGTH = 1024;

/** The HttpOnly cookie that carries the refresh token, and the only path it is sent to. */
export const REFRESH_COOKIE = 'tessera_refresh';
export const REFRESH_COOKIE_PATH = '/auth';

/**
 * The session hint: set and cleared with the refresh cookie, readable by scripts on every
 * path, so a page can tell without a request whether there is a session to restore. Its
 * value is no secret and the server never reads it.
 */
export const SESSION_HINT_COOKIE = 'tessera_session';
export const SESSION_HINT_COOKIE_PATH = '/';
export const SESSION_HINT_VALUE = '1';

/**
 * The browser's device cookie: random, HttpOnly, sent only to Tessera's routes, kept 400 days
 * (browsers' limit) and never cleared by sign-out, so a sign-in from a browser not seen before
 * can be told apart (SPEC §7 notices).
 */
export const DEVICE_COOKIE = 'tessera_device';
export const DEVICE_COOKIE_MAX_AGE = 400 * 24 * 60 * 60;

/** The header cookie-mode refresh and logout must carry (a cross-site form cannot set it). */
export const CSRF_HEADER = 'x-tessera-csrf';

/** Log redaction: no credential ever reaches a log line, even at debug level. */
export const LOG_REDACT_PATHS: readonly string[] = Object.freeze([
  'req.headers.authorization',
  'req.headers.cookie',
  'res.headers["set-cookie"]',
  '*.password',
  '*.currentPassword',
  '*.newPassword',
  '*.token',
  // Not `*.code`: that is an error's SQLSTATE or errno, which the log must keep. A second
  // factor's code lives only in request bodies, which are never logged.
  '*.recoveryCode',
  '*.recoveryCodes',
  '*.mfaToken',
  '*.secret',
  '*.otpauthUri',
  '*.refreshToken',
  '*.accessToken',
]);
