import pg from 'pg';

/**
 * The user-keyed tables and the column each is distributed by: on Citus, `user_id` (users by
 * their `id`, co-located), and the email for the table that makes an email unique. Everything
 * else (`signing_keys`, `leases`, Kysely's bookkeeping) stays a plain table, as reference
 * tables would on Citus.
 */
export const PARTITION_KEYS = {
  users: 'id', sessions: 'user_id', security_events: 'user_id', user_emails: 'email',
  account_tokens: 'user_id', outbox: 'user_id', known_devices: 'user_id', totp_factors: 'user_id', recovery_codes: 'user_id', mfa_logins: 'user_id',
  passkeys: 'user_id', used_challenges: 'user_id',
} as const;
export type PartitionedTable = keyof typeof PARTITION_KEYS;
export const PARTITION_COUNT = 8;

/** `<table>_p<i>`: the name of one partition. */
export const partitionName = (table: PartitionedTable, i: number) => `${table}_p${i}`;

/**
 * Turns the user-keyed tables of a migrated `schema` into `PARTITION BY HASH` tables of
 * PARTITION_COUNT partitions each, rows kept, in one transaction. PostgreSQL refuses a primary
 * key or unique constraint that does not include the partition key, as Citus refuses one without
 * the distribution column, so a schema that relied on a uniqueness spanning users fails here.
 *
 * Foreign keys between these tables (sessions → users, security_events → users) are dropped with
 * the plain tables and added again to the partitioned ones: both sides are keyed by the user id,
 * which PostgreSQL accepts here as Citus does between co-located tables.
 *
 * @example
 * await migrateToLatest(db, schema);
 * await partitionByUser(process.env.TEST_DATABASE_URL!, schema);
 */
export async function partitionByUser(url: string, schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const q = (name: string) => client.escapeIdentifier(name);
  const at = (table: string) => `${q(schema)}.${q(table)}`;
  try {
    await client.query('begin');
    const tables = Object.keys(PARTITION_KEYS) as PartitionedTable[];
    // Read before any rename: the definitions then name the tables by the names they keep.
    const { rows: foreignKeys } = await client.query<{ table: string; name: string; definition: string }>(
      `select c.relname as table, k.conname as name, pg_get_constraintdef(k.oid) as definition
         from pg_constraint k join pg_class c on c.oid = k.conrelid
        where k.contype = 'f' and k.connamespace = $1::regnamespace and c.relname = any($2)`,
      [schema, tables],
    );
    for (const table of tables) {
      const { rows: [info] } = await client.query<{ reloptions: string[] | null }>(
        `select reloptions from pg_class where oid = $1::regclass`, [`${schema}.${table}`],
      );
      const storage = info?.reloptions?.length ? ` with (${info.reloptions.join(', ')})` : '';
      const plain = `${table}_plain`;
      await client.query(`alter table ${at(table)} rename to ${q(plain)}`);
      await client.query(`create table ${at(table)} (like ${at(plain)} including all) partition by hash (${q(PARTITION_KEYS[table])})`);
      for (let i = 0; i < PARTITION_COUNT; i++) {
        // Storage parameters (sessions' fillfactor, which keeps refresh updates HOT) belong on the partitions.
        await client.query(
          `create table ${at(partitionName(table, i))} partition of ${at(table)} for values with (modulus ${PARTITION_COUNT}, remainder ${i})${storage}`,
        );
      }
      await client.query(`insert into ${at(table)} overriding system value select * from ${at(plain)}`);
      await client.query(`drop table ${at(plain)} cascade`);
      // Identity columns (security_events.id) got a fresh sequence: continue after the copied rows.
      const { rows: identities } = await client.query<{ column: string }>(
        `select attname as column from pg_attribute where attrelid = $1::regclass and attidentity <> '' and not attisdropped`,
        [`${schema}.${table}`],
      );
      for (const { column } of identities) {
        const { rows: [max] } = await client.query<{ next: string }>(`select coalesce(max(${q(column)}), 0) + 1 as next from ${at(table)}`);
        await client.query(`alter table ${at(table)} alter column ${q(column)} restart with ${Number(max!.next)}`);
      }
    }
    for (const fk of foreignKeys) await client.query(`alter table ${at(fk.table)} add constraint ${q(fk.name)} ${fk.definition}`);
    await client.query('commit');
  } catch (error) {
    await client.query('rollback').catch(() => {});
    throw error;
  } finally {
    await client.end();
  }
}
