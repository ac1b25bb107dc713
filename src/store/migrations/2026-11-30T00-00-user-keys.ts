import type { Kysely } from 'kysely';

/** The two tables this migration copies between, as they are at this point in history. */
interface Tables {
  users: { id: string; email: string };
  user_emails: { email: string; user_id: string };
}

/**
 * Shard-ready keys: every user-owned table is keyed by its user first, so on a
 * distributed engine (Citus) each user's rows live on one shard and every hot statement,
 * which names the user, touches one shard. PostgreSQL refuses a unique constraint that
 * does not include the partition key, as Citus does, so uniqueness of emails moves to a
 * table of its own, keyed by the email. Single-runner jobs take a lease row, not an
 * advisory lock (node-local on Citus, absent on CockroachDB, broken by poolers).
 */
export async function up(db: Kysely<Tables>): Promise<void> {
  await db.schema.alterTable('sessions').dropConstraint('sessions_pkey').execute();
  await db.schema.alterTable('sessions').addPrimaryKeyConstraint('sessions_pkey', ['user_id', 'id']).execute();
  // The primary key now leads with user_id: it serves "all sessions of a user" on its own.
  await db.schema.dropIndex('sessions_user_id').execute();
  // Version 1 refresh tokens name only the session; they are found by id until they rotate
  // (at most SESSION_MAX_AGE after the upgrade), then this index can go.
  await db.schema.createIndex('sessions_id').on('sessions').column('id').execute();

  await db.schema.alterTable('security_events').dropConstraint('security_events_pkey').execute();
  await db.schema.alterTable('security_events').addPrimaryKeyConstraint('security_events_pkey', ['user_id', 'id']).execute();

  await db.schema
    .createTable('user_emails')
    .addColumn('email', 'text', (c) => c.primaryKey())
    .addColumn('user_id', 'uuid', (c) => c.notNull())
    .execute();
  await db
    .insertInto('user_emails')
    .columns(['email', 'user_id'])
    .expression(db.selectFrom('users').select(['email', 'id']))
    .execute();
  await db.schema.alterTable('users').dropConstraint('users_email_key').execute();

  await db.schema
    .createTable('leases')
    .addColumn('name', 'text', (c) => c.primaryKey())
    .addColumn('holder', 'text')
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('leases').execute();
  await db.schema.alterTable('users').addUniqueConstraint('users_email_key', ['email']).execute();
  await db.schema.dropTable('user_emails').execute();
  await db.schema.alterTable('security_events').dropConstraint('security_events_pkey').execute();
  await db.schema.alterTable('security_events').addPrimaryKeyConstraint('security_events_pkey', ['id']).execute();
  await db.schema.dropIndex('sessions_id').execute();
  await db.schema.createIndex('sessions_user_id').on('sessions').column('user_id').execute();
  await db.schema.alterTable('sessions').dropConstraint('sessions_pkey').execute();
  await db.schema.alterTable('sessions').addPrimaryKeyConstraint('sessions_pkey', ['id']).execute();
}
