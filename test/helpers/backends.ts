import { randomBytes } from 'node:crypto';
import type { LogConfig } from 'kysely';
import pg from 'pg';
import { migrateToLatest, openDatabase } from '../../src/store/database.js';
import { Store } from '../../src/store/store.js';
import { partitionByUser } from './partition.js';

/**
 * `postgres-partitioned`: PostgreSQL with the user-keyed tables hash-partitioned by user id
 * (email for `user_emails`), standing in for Citus, which this machine cannot run (SPEC §1).
 */
export type Backend = 'pglite' | 'postgres' | 'postgres-partitioned';

/**
 * PGlite always; PostgreSQL too when TEST_DATABASE_URL is set (CI sets it), both as migrated
 * and with the user-keyed tables partitioned (test/helpers/partition.ts).
 */
export const BACKENDS: Backend[] = process.env.TEST_DATABASE_URL ? ['pglite', 'postgres', 'postgres-partitioned'] : ['pglite'];

/**
 * The backends of suites about a feature rather than storage: PGlite and PostgreSQL. What
 * partitioning can break is proven where it is the subject: the store's conformance and
 * concurrency suites run on all three, and test/store/shard-local.test.ts shows every hot
 * statement (accounts' and factors' included) touching one partition.
 */
export const FEATURE_BACKENDS: Backend[] = BACKENDS.filter((b) => b !== 'postgres-partitioned');

export interface TestStore {
  store: Store;
  /** the database URL and schema, for tests that start separate server processes */
  url: string | undefined;
  schema: string | undefined;
  close(): Promise<void>;
}

/**
 * A fresh, migrated database of the given kind: an in-memory PGlite, or a new
 * schema in TEST_DATABASE_URL that is dropped again on close, so runs never collide;
 * for `postgres-partitioned`, its user-keyed tables are then partitioned.
 */
export async function openTestStore(backend: Backend, options: { poolSize?: number; log?: LogConfig } = {}): Promise<TestStore> {
  if (backend === 'pglite') {
    const { db } = await openDatabase({ url: 'memory://', dataDir: '', log: options.log });
    await migrateToLatest(db);
    return { store: new Store(db), url: undefined, schema: undefined, close: () => db.destroy() };
  }
  const url = process.env.TEST_DATABASE_URL!;
  // Kysely's migrator looks at every schema of the database; one that another test file drops at
  // that moment fails it with 3F000. That is a race between test files, not a product case: try again.
  for (let attempt = 1; ; attempt++) {
    const schema = `tessera_test_${randomBytes(6).toString('hex')}`;
    await admin(url, `create schema ${schema}`);
    const { db } = await openDatabase({ url, dataDir: '', schema, poolSize: options.poolSize ?? 10, log: options.log });
    const drop = async () => {
      await db.destroy();
      await admin(url, `drop schema ${schema} cascade`);
    };
    try {
      await migrateToLatest(db, schema);
      if (backend === 'postgres-partitioned') await partitionByUser(url, schema);
    } catch (error) {
      await drop();
      if ((error as { code?: string }).code === '3F000' && attempt < 5) continue;
      throw error;
    }
    return { store: new Store(db), url, schema, close: drop };
  }
}

async function admin(url: string, statement: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(statement);
  } finally {
    await client.end();
  }
}
