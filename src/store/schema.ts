import type { ColumnType, Generated } from 'kysely';
import type { RevokeReason, SecurityEventType } from '../core/vocabulary.js';

/** Typed tables. Timestamps are `timestamptz`; every time is written by the application's clock. */
export interface Database {
  users: UsersTable;
  sessions: SessionsTable;
  security_events: SecurityEventsTable;
  signing_keys: SigningKeysTable;
  user_emails: UserEmailsTable;
  leases: LeasesTable;
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
}

export interface SecurityEventsTable {
  id: Generated<ColumnType<string, never, never>>;
  user_id: string;
  session_id: string | null;
  type: SecurityEventType;
  ip: string | null;
  user_agent: string | null;
  created_at: Date;
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
