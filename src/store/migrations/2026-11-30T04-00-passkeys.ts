import { sql, type Kysely } from 'kysely';

/**
 * Passkeys (SPEC §8). Born shard-ready: both tables lead their key with the user id.
 * - `passkeys`: one row per WebAuthn credential, keyed (user id, credential id): a
 *   discoverable credential's assertion carries the user id as its userHandle, so a sign-in
 *   finds its passkey in one shard without an email. `counter` is the authenticator's sign
 *   count (0: it keeps none, as synced passkeys do); it only moves forward, by a conditional
 *   update.
 * - `used_challenges`: challenges are never stored when they are handed out (they are MAC'd,
 *   src/core/webauthn-challenge.ts); one is written only when an assertion or a registration
 *   uses it, under the user it was used for, so a second use fails on the key. Rows go once
 *   they have expired (housekeeping).
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('passkeys')
    .addColumn('user_id', 'uuid', (c) => c.notNull())
    .addColumn('id', 'text', (c) => c.notNull())
    .addColumn('public_key', 'bytea', (c) => c.notNull())
    .addColumn('counter', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('transports', sql`text[]`, (c) => c.notNull().defaultTo(sql`'{}'`))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull())
    .addColumn('last_used_at', 'timestamptz')
    .addPrimaryKeyConstraint('passkeys_pkey', ['user_id', 'id'])
    .execute();

  await db.schema
    .createTable('used_challenges')
    .addColumn('user_id', 'uuid', (c) => c.notNull())
    .addColumn('id', 'text', (c) => c.notNull())
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    .addPrimaryKeyConstraint('used_challenges_pkey', ['user_id', 'id'])
    .execute();
  await db.schema.createIndex('used_challenges_expires_at').on('used_challenges').column('expires_at').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('used_challenges').execute();
  await db.schema.dropTable('passkeys').execute();
}

