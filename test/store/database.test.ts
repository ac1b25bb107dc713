/**
 * Opening the database and migrating it (SPEC §1, §9): the configured schema is named in
 * every statement rather than set through `search_path` (which PgBouncer refuses), and
 * migrations from many nodes at once are serialised by a row lock on Kysely's own lock
 * table, never by an advisory lock (node-local on Citus, absent on CockroachDB).
 */
import { randomBytes } from 'node:crypto';
import { sql, type Kysely } from 'kysely';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { migrateToLatest, openDatabase } from '../../src/store/database.js';
import type { Database } from '../../src/store/schema.js';
import { missing } from '../helpers/skip-reason.js';

const DATABASE_URL = process.env.TEST_DATABASE_URL;
const TABLES = ['kysely_migration', 'kysely_migration_lock', 'users', 'sessions', 'security_events', 'signing_keys'];

/** Tables of Tessera's in `schema`, as a connection of its own sees the catalog. */
async function tablesIn(db: Kysely<Database>, schema: string): Promise<string[]> {
  const { rows } = await sql<{ name: string }>`
    select c.relname as name from pg_class c join pg_namespace n on n.oid = c.relnamespace
     where n.nspname = ${schema} and c.relkind in ('r', 'p') and c.relname = any(${TABLES})`.execute(db);
  return rows.map((r) => r.name).sort();
}

describe('a schema on PGlite', () => {
  it('holds every table, named explicitly', async () => {
    const { db } = await openDatabase({ url: 'memory://', dataDir: '', schema: 'tessera_app' });
    try {
      expect((await migrateToLatest(db, 'tessera_app')).length).toBeGreaterThan(0);
      expect(await tablesIn(db, 'tessera_app')).toEqual([...TABLES].sort());
      expect(await tablesIn(db, 'public')).toEqual([]);
    } finally {
      await db.destroy();
    }
  });
});

const SKIP_REASON = 'needs a shared PostgreSQL: set TEST_DATABASE_URL';

describe.skipIf(missing(DATABASE_URL, `a schema on PostgreSQL ${SKIP_REASON}`))(`a schema on PostgreSQL${DATABASE_URL ? '' : ` [skipped: ${SKIP_REASON}]`}`, () => {
  const opened: Kysely<Database>[] = [];
  const schemas: string[] = [];

  /** A new schema name (not created: the migrator creates it) and a pool that works in it. */
  async function open(schema: string, poolSize = 3): Promise<Kysely<Database>> {
    const { db } = await openDatabase({ url: DATABASE_URL, dataDir: '', schema, poolSize });
    opened.push(db);
    return db;
  }
  const freshName = () => {
    const name = `tessera_db_${randomBytes(5).toString('hex')}`;
    schemas.push(name);
    return name;
  };

  /** A connection with nothing set: what PgBouncer or an operator's psql would give. */
  async function plain<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
    const client = new pg.Client({ connectionString: DATABASE_URL });
    await client.connect();
    try {
      return await fn(client);
    } finally {
      await client.end();
    }
  }

  /**
   * Kysely's migrator looks for its tables by listing every schema's tables; a schema that
   * another test file drops in that instant fails the listing with 3F000. That happens before
   * the lock and changes nothing: try again, as openTestStore does.
   */
  async function migrate(db: Kysely<Database>, schema: string): Promise<string[]> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await migrateToLatest(db, schema);
      } catch (error) {
        if ((error as { code?: string }).code !== '3F000' || attempt >= 5) throw error;
      }
    }
  }

  afterEach(async () => {
    await Promise.all(opened.splice(0).map((db) => db.destroy()));
    await plain(async (client) => {
      for (const schema of schemas.splice(0)) await client.query(`drop schema if exists ${schema} cascade`);
    });
  });

  it('two nodes migrating one fresh schema at once both succeed, and each migration runs once', async () => {
    const schema = freshName();
    const [a, b] = [await open(schema), await open(schema)];
    const [appliedA, appliedB] = await Promise.all([migrate(a, schema), migrate(b, schema)]);

    const applied = [...appliedA, ...appliedB].sort();
    expect(applied.length).toBeGreaterThan(0);
    expect(new Set(applied).size, 'a migration ran on both nodes').toBe(applied.length);
    const recorded = await plain(async (client) => (await client.query<{ name: string }>(`select name from ${schema}.kysely_migration order by name`)).rows);
    expect(recorded.map((r) => r.name)).toEqual(applied);
    // and a node that starts later finds nothing to do
    expect(await migrate(await open(schema), schema)).toEqual([]);
  });

  it('names the schema in every statement: the connections carry no search_path, and nothing lands in public', async () => {
    const schema = freshName();
    const db = await open(schema);
    await migrate(db, schema);

    const { rows } = await sql<{ search_path: string }>`show search_path`.execute(db);
    expect(rows[0]!.search_path).toBe('"$user", public');
    expect(await tablesIn(db, schema)).toEqual([...TABLES].sort());
    await plain(async (client) => {
      const defaults = await client.query<{ schema: string }>('select current_schema() as schema');
      const visible = await client.query<{ name: string }>(
        `select c.relname as name from pg_class c join pg_namespace n on n.oid = c.relnamespace
          where n.nspname = current_schema() and c.relname = any($1)`,
        [TABLES],
      );
      expect(defaults.rows[0]!.schema).not.toBe(schema);
      expect(visible.rows, "Tessera's tables in the default schema").toEqual([]);
    });
  });

  it('a node migrating waits on the lock row and holds no advisory lock', async () => {
    const schema = freshName();
    await migrate(await open(schema), schema);
    const second = await open(schema);

    await plain(async (holder) => {
      await holder.query('begin');
      await holder.query(`select id from ${schema}.kysely_migration_lock for update`);
      const holderPid = (await holder.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]!.pid;
      const migrating = migrate(second, schema);
      migrating.catch(() => {}); // awaited below; not an unhandled rejection if the test fails first
      try {
        // The second migrator must come to wait behind the row this test holds.
        const waiter = await plain(async (watch) => {
          for (let i = 0; i < 200; i++) {
            const { rows } = await watch.query<{ pid: number }>('select pid from pg_stat_activity where $1 = any(pg_blocking_pids(pid))', [holderPid]);
            if (rows[0]) return rows[0].pid;
            await new Promise((resolve) => setTimeout(resolve, 50));
          }
          throw new Error('the migrator never waited on the lock row');
        });
        const advisory = await plain((watch) => watch.query<{ n: string }>(`select count(*) as n from pg_locks where locktype = 'advisory' and pid = $1`, [waiter]));
        expect(advisory.rows[0]!.n).toBe('0');
      } finally {
        await holder.query('commit');
      }
      expect(await migrating).toEqual([]);
    });
  });
});
