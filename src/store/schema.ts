import type { ColumnType, Generated } from 'kysely';
import type { LinkPurpose } from '../core/link-token.js';
import type { OutboxMessage } from '../core/outbox-message.js';
import type { RevokeReason, SecurityEventType } from '../core/vocabulary.js';

/** Typed tables. Timestamps are `timestamptz`; every time is written by the application's clock. */
export interface Database {
  users: UsersTable;
  sessions: SessionsTable;
  security_events: SecurityEventsTable;
  signing_keys: SigningKeysTable;
  user_emails: UserEmailsTable;
  leases: LeasesTable;
  account_tokens: AccountTokensTable;
  outbox: OutboxTable;
  known_devices: KnownDevicesTable;
  totp_factors: TotpFactorsTable;
  recovery_codes: RecoveryCodesTable;
  mfa_logins: MfaLoginsTable;
  passkeys: PasskeysTable;
  used_challenges: UsedChallengesTable;
}

/** Who owns an address: the one place an email is unique (a uniqueness that spans users cannot live in `users` on a sharded engine). */
export interface UserEmailsTable {
  /** normalized, as users.email */
  email: string;
  user_id: string;
}

/** Single-runner jobs (purge, signing-key creation): held by `holder` until `expires_at`. */
export interface LeasesTable {
  name: string;
  holder: string | null;
  expires_at: Date;
}

export interface UsersTable {
  id: string;
  /** normalized: trimmed, NFC, lower case */
  email: string;
  name: string;
  /** argon2id PHC string */
  password_hash: string;
  disabled_at: Date | null;
  created_at: Date;
  /** at most 20 role names; carried by access tokens */
  roles: ColumnType<string[], string[] | undefined, string[]>;
  org_id: string | null;
  /** a JSON object of at most 4 KiB; never in tokens unless a claims hook puts it there */
  metadata: ColumnType<Record<string, unknown>, string | undefined, string>;
  email_verified_at: Date | null;
}

export interface SessionsTable {
  id: string;
  user_id: string;
  /** per-session salt for K_session; no token and no hash of one is ever stored */
  salt: Uint8Array;
  generation: number;
  parent_generation: number | null;
  rotated_at: Date | null;
  created_at: Date;
  last_used_at: Date;
  /** idle expiry, extended by every refresh, never past absolute_expires_at */
  expires_at: Date;
  absolute_expires_at: Date;
  revoked_at: Date | null;
  revoked_reason: RevokeReason | null;
  ip: string | null;
  user_agent: string | null;
  /** how the session was authenticated (RFC 8176 values: pwd, otp, hwk…): the `amr` claim */
  amr: ColumnType<string[], string[] | undefined, string[]>;
  /** when the user last authenticated (re-authentication sets it, with `amr`); null: `created_at` */
  auth_time: ColumnType<Date | null, Date | null | undefined, Date | null>;
}

export interface SecurityEventsTable {
  id: Generated<ColumnType<string, never, never>>;
  user_id: string;
  session_id: string | null;
  type: SecurityEventType;
  ip: string | null;
  user_agent: string | null;
  created_at: Date;
  /** admin actions: `{ actor, action }` */
  detail: ColumnType<Record<string, unknown> | null, string | null | undefined, string | null>;
}

export interface SigningKeysTable {
  kid: string;
  public_jwk: ColumnType<Record<string, unknown>, string, string>;
  /** AES-256-GCM under a key derived from TESSERA_SECRET */
  private_jwk_sealed: string;
  created_at: Date;
  /** EdDSA | ES256 | RS256 */
  alg: string;
  /** a rotated-in key is published at once and signs from here on (60 s later) */
  signs_from: Date;
}

/**
 * The one outstanding link of each purpose per user. Never the token itself: the link's
 * token is a MAC over (purpose, user id, request id, email), derived when the mail is sent.
 */
export interface AccountTokensTable {
  user_id: string;
  purpose: LinkPurpose;
  request_id: string;
  /** the address the link was sent to and is valid for (normalized) */
  email: string;
  created_at: Date;
  expires_at: Date;
}

/** Mails and webhooks to deliver, written with the change that caused them. */
export interface OutboxTable {
  user_id: string;
  id: string;
  kind: OutboxMessage['kind'];
  payload: ColumnType<OutboxMessage, string, string>;
  created_at: Date;
  /** not before this: the next attempt, after exponential backoff */
  deliver_after: Date;
  attempts: ColumnType<number, number | undefined, number>;
  /** a worker's lease on the row while it delivers; past it, another worker may take the row */
  claimed_until: Date | null;
  delivered_at: Date | null;
  /** given up (24 h of failures) */
  failed_at: Date | null;
  /** the last failure in words, never a token or a credential */
  last_error: string | null;
}

export interface KnownDevicesTable {
  user_id: string;
  /** HMAC of the device cookie, or of an app's name and IP range */
  device: string;
  created_at: Date;
  last_seen_at: Date;
}

/** One authenticator app per user (SPEC §8). */
export interface TotpFactorsTable {
  user_id: string;
  /** the base32 secret, AES-256-GCM under a key derived from TESSERA_SECRET */
  secret_sealed: string;
  created_at: Date;
  /** null while being set up: not a factor until a code confirmed it */
  confirmed_at: Date | null;
  /** the newest time step accepted (bigint: read back as a string on pg); a step is accepted once */
  last_step: ColumnType<string | number, number | undefined, number>;
}

/** A recovery code, as an HMAC bound to its user: never the code. */
export interface RecoveryCodesTable {
  user_id: string;
  code_hash: string;
  created_at: Date;
  used_at: Date | null;
}

/** A sign-in answered `mfa_required`, until its second factor finishes it (the mfaToken's row). */
export interface MfaLoginsTable {
  user_id: string;
  id: string;
  transport: 'cookie' | 'body';
  created_at: Date;
  expires_at: Date;
  /** wrong codes so far, counted before each check; at MFA_LOGIN_MAX_FAILURES the token is spent */
  failures: ColumnType<number, number | undefined, number>;
}

/** A WebAuthn credential (SPEC §8), keyed by its user and its credential id (base64url). */
export interface PasskeysTable {
  user_id: string;
  id: string;
  /** the COSE public key */
  public_key: Uint8Array;
  /** the authenticator's sign count (bigint: read back as a string on pg); 0: it keeps none */
  counter: ColumnType<string | number, number | undefined, number>;
  transports: ColumnType<string[], string[] | undefined, string[]>;
  name: string;
  created_at: Date;
  last_used_at: Date | null;
}

/** A WebAuthn challenge that was used (for its user), until it expires: a second use fails on the key. */
export interface UsedChallengesTable {
  user_id: string;
  id: string;
  expires_at: Date;
}
