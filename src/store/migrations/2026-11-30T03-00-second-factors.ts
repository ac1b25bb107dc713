import type { Kysely } from 'kysely';

/**
 * Second factors (SPEC §8). Born shard-ready: every table leads its key with the user id.
 * - `totp_factors`: one authenticator app per user. The secret sealed with AES-GCM under a key
 *   derived from TESSERA_SECRET (like signing keys); `confirmed_at` null while it is being set
 *   up; `last_step` the newest 30-second step accepted: a step is accepted only by
 *   `UPDATE … SET last_step = $s WHERE user_id = $u AND last_step < $s`, so a code works once,
 *   whichever node and however many requests race with it.
 * - `recovery_codes`: an HMAC of each code (never the code), `used_at` set once by a
 *   conditional update.
 * - `mfa_logins`: each sign-in answered `mfa_required`: the transport it began on, until when
 *   it may be finished, and how many wrong codes it has had. Its token is a MAC over the row's
 *   keys and transport (src/core/mfa-token.ts), never stored.
 * - `sessions.auth_time`: when the user last authenticated in the session (re-authentication
 *   sets it, with `amr`); null means at its start, `created_at`.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('totp_factors')
    .addColumn('user_id', 'uuid', (c) => c.primaryKey())
    .addColumn('secret_sealed', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull())
    .addColumn('confirmed_at', 'timestamptz')
    .addColumn('last_step', 'bigint', (c) => c.notNull().defaultTo(0))
    .execute();

  await db.schema
    .createTable('recovery_codes')
    .addColumn('user_id', 'uuid', (c) => c.notNull())
    .addColumn('code_hash', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull())
    .addColumn('used_at', 'timestamptz')
    .addPrimaryKeyConstraint('recovery_codes_pkey', ['user_id', 'code_hash'])
    .execute();

  await db.schema
    .createTable('mfa_logins')
    .addColumn('user_id', 'uuid', (c) => c.notNull())
    .addColumn('id', 'uuid', (c) => c.notNull())
    .addColumn('transport', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull())
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    .addColumn('failures', 'integer', (c) => c.notNull().defaultTo(0))
    .addPrimaryKeyConstraint('mfa_logins_pkey', ['user_id', 'id'])
    .execute();

  await db.schema.alterTable('sessions').addColumn('auth_time', 'timestamptz').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('sessions').dropColumn('auth_time').execute();
  await db.schema.dropTable('mfa_logins').execute();
  await db.schema.dropTable('recovery_codes').execute();
  await db.schema.dropTable('totp_factors').execute();
}
