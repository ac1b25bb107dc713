import { sql, type Kysely } from 'kysely';

/**
 * Authorisation claims and signing-key rotation (resource servers):
 * - users gain `roles`, `org_id`, `metadata` and `email_verified_at`; tokens carry roles
 *   and org_id, read at every refresh (the refresh already joins its user by primary key);
 * - sessions record how and when they were authenticated (`amr`, `auth_time` claims);
 * - signing keys record their algorithm and when they start signing, so a rotated-in key
 *   is published before it signs;
 * - the revocation feed reads ended sessions by `revoked_at` (indexed since the first
 *   migration) and disabled users by `disabled_at`: a partial index holding only disabled
 *   users, so no sign-up or refresh writes to it.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable('users')
    .addColumn('roles', sql`text[]`, (c) => c.notNull().defaultTo(sql`'{}'`))
    .addColumn('org_id', 'text')
    .addColumn('metadata', 'jsonb', (c) => c.notNull().defaultTo(sql`'{}'`))
    .addColumn('email_verified_at', 'timestamptz')
    .execute();
  await db.schema
    .alterTable('sessions')
    .addColumn('amr', sql`text[]`, (c) => c.notNull().defaultTo(sql`'{pwd}'`))
    .execute();
  await db.schema
    .alterTable('signing_keys')
    .addColumn('alg', 'text', (c) => c.notNull().defaultTo('EdDSA'))
    .addColumn('signs_from', 'timestamptz')
    .execute();
  // Through the builder, not raw SQL: only the builder qualifies names with DATABASE_SCHEMA.
  await (db as Kysely<{ signing_keys: { signs_from: Date; created_at: Date } }>)
    .updateTable('signing_keys')
    .set((eb) => ({ signs_from: eb.ref('created_at') }))
    .execute();
  await db.schema.alterTable('signing_keys').alterColumn('signs_from', (c) => c.setNotNull()).execute();

  await db.schema.createIndex('users_disabled_at').on('users').column('disabled_at').where(sql.ref('disabled_at'), 'is not', null).execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropIndex('users_disabled_at').execute();
  await db.schema.alterTable('signing_keys').dropColumn('signs_from').dropColumn('alg').execute();
  await db.schema.alterTable('sessions').dropColumn('amr').execute();
  await db.schema.alterTable('users').dropColumn('email_verified_at').dropColumn('metadata').dropColumn('org_id').dropColumn('roles').execute();
}
