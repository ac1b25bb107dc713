import { sql, type Kysely } from 'kysely';

/**
 * Accounts (email verification, password reset, email change, notifications, webhooks).
 * Born shard-ready: every table leads its key with the user id.
 * - `account_tokens`: the one outstanding link of each purpose per user. It holds a random
 *   request id and the address the link is for, never the link's token: that is a MAC over
 *   them, derived when the mail is sent (src/core/link-token.ts). A newer request replaces
 *   the row, so older links stop working.
 * - `outbox`: mails and webhooks, written in the transaction of the change that caused them,
 *   delivered by a worker on any node (rows claimed with FOR UPDATE SKIP LOCKED, then leased
 *   by `claimed_until`, so a node that dies mid-delivery leaves them to the next).
 * - `known_devices`: browsers and apps an account has signed in from (a MAC of the device
 *   cookie, or of the app's name and IP range), for "sign-in from a new device" mails.
 * - `security_events.detail`: what an admin action was and who did it.
 * - Sessions and events no longer cascade from their user: a deleted account's sessions stay,
 *   revoked and stripped of IP and user agent, until the purge (the revocation feed must still
 *   list them), and its events stay without personal data; events about no user (an operator
 *   rotating keys) name the nil UUID.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('account_tokens')
    .addColumn('user_id', 'uuid', (c) => c.notNull())
    .addColumn('purpose', 'text', (c) => c.notNull())
    .addColumn('request_id', 'uuid', (c) => c.notNull())
    .addColumn('email', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull())
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    .addPrimaryKeyConstraint('account_tokens_pkey', ['user_id', 'purpose'])
    .execute();

  await db.schema
    .createTable('outbox')
    .addColumn('user_id', 'uuid', (c) => c.notNull())
    .addColumn('id', 'uuid', (c) => c.notNull())
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('payload', 'jsonb', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull())
    .addColumn('deliver_after', 'timestamptz', (c) => c.notNull())
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('claimed_until', 'timestamptz')
    .addColumn('delivered_at', 'timestamptz')
    .addColumn('failed_at', 'timestamptz')
    .addColumn('last_error', 'text')
    .addPrimaryKeyConstraint('outbox_pkey', ['user_id', 'id'])
    .execute();
  // Only rows still to deliver: delivered and failed ones never weigh on the worker's claim.
  await db.schema
    .createIndex('outbox_due')
    .on('outbox')
    .column('deliver_after')
    .where(sql.ref('delivered_at'), 'is', null)
    .where(sql.ref('failed_at'), 'is', null)
    .execute();

  await db.schema
    .createTable('known_devices')
    .addColumn('user_id', 'uuid', (c) => c.notNull())
    .addColumn('device', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull())
    .addColumn('last_seen_at', 'timestamptz', (c) => c.notNull())
    .addPrimaryKeyConstraint('known_devices_pkey', ['user_id', 'device'])
    .execute();

  await db.schema.alterTable('security_events').addColumn('detail', 'jsonb').execute();
  await db.schema.alterTable('security_events').dropConstraint('security_events_user_id_fkey').execute();
  await db.schema.alterTable('sessions').dropConstraint('sessions_user_id_fkey').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const table of ['sessions', 'security_events']) {
    await db.schema
      .alterTable(table)
      .addForeignKeyConstraint(`${table}_user_id_fkey`, ['user_id'], 'users', ['id'], (c) => c.onDelete('cascade'))
      .execute();
  }
  await db.schema.alterTable('security_events').dropColumn('detail').execute();
  await db.schema.dropTable('known_devices').execute();
  await db.schema.dropTable('outbox').execute();
  await db.schema.dropTable('account_tokens').execute();
}
