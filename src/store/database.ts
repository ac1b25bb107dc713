import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { Kysely, Migrator, PostgresDialect, sql, type LogConfig, type Migration } from 'kysely';
import { PGliteDialect } from 'kysely-pglite-dialect';
import pg from 'pg';
import * as initial from './migrations/2026-11-22T00-00-initial.js';
import * as userKeys from './migrations/2026-11-30T00-00-user-keys.js';
import { preparedStatementPool } from './prepared-pool.js';
import { withRowLockMigrations } from './row-lock-migrations.js';
import type { Database } from './schema.js';

// Timestamped names: Kysely runs them in name order, once each.
export const MIGRATIONS: Readonly<Record<string, Migration>> = {
  '2026-11-22T00-00-initial': initial,
  '2026-11-30T00-00-user-keys': userKeys,
};

export interface DatabaseOptions {
  /** postgres://… for PostgreSQL; `memory://` or undefined for embedded PGlite. */
  url: string | undefined;
  /** Where PGlite keeps its files when `url` is undefined. */
  dataDir: string;
  /**
   * A schema that every statement names explicitly (`schema.table`), for PostgreSQL and PGlite
   * alike; unset: unqualified names. Never through `search_path`, which poolers (PgBouncer,
   * Neon) refuse as a startup parameter and lose between transactions.
   */
  schema?: string;
  /** PostgreSQL pool size. */
  poolSize?: number;
  /** Called for errors of idle pooled connections, which would otherwise crash the process. */
  onPoolError?: (error: Error) => void;
  /** Kysely's query log (`{level, query: {sql, parameters}}` per query), for tests and debugging. */
  log?: LogConfig;
}

export interface OpenDatabase {
  db: Kysely<Database>;
  kind: 'postgres' | 'pglite';
  /** Human-readable location for the start-up line; never includes a password. */
  description: string;
}

/**
 * Opens PostgreSQL or the embedded PGlite behind one Kysely interface.
 *
 * @example
 * const { db } = await openDatabase({ url: process.env.DATABASE_URL, dataDir: './.tessera' });
 * await migrateToLatest(db);
 */
export async function openDatabase(options: DatabaseOptions): Promise<OpenDatabase> {
  if (options.url && options.url !== 'memory://') {
    const pool = new pg.Pool({
      connectionString: options.url,
      max: options.poolSize ?? 10,
      connectionTimeoutMillis: 5_000,
      // A partitioned network never answers: give up on a query after 10 s rather than hang the request.
      query_timeout: 10_000,
    });
    // Idle clients report errors on the pool; checked-out ones on themselves. Without a listener on
    // both, a connection reset in the middle of a query is an unhandled 'error' event: a crash.
    pool.on('error', (error) => options.onPoolError?.(error));
    pool.on('connect', (client) => client.on('error', (error) => options.onPoolError?.(error)));
    const url = new URL(options.url);
    return {
      db: inSchema(new Kysely<Database>({ dialect: withRowLockMigrations(new PostgresDialect({ pool: preparedStatementPool(pool) })), log: options.log }), options.schema),
      kind: 'postgres',
      description: `PostgreSQL at ${url.hostname}:${url.port || 5432}${url.pathname}${options.schema ? `, schema ${options.schema}` : ''}`,
    };
  }
  let dataDir: string | undefined;
  if (options.url !== 'memory://') {
    dataDir = join(options.dataDir, 'pgdata');
    mkdirSync(dataDir, { recursive: true });
  }
  const pglite = await PGlite.create(dataDir);
  return {
    db: inSchema(new Kysely<Database>({ dialect: withRowLockMigrations(new PGliteDialect(pglite)), log: options.log }), options.schema),
    kind: 'pglite',
    description: dataDir ? `embedded PGlite in ${dataDir}` : 'embedded PGlite in memory (data is lost on exit)',
  };
}

/**
 * Kysely's schema plugin qualifies every table a query builder names, DDL included
 * (create/alter/drop table, create/drop index, foreign-key references); raw `sql` text is
 * left as written, so raw fragments must not name tables.
 */
function inSchema(db: Kysely<Database>, schema: string | undefined): Kysely<Database> {
  return schema ? db.withSchema(schema) : db;
}

/**
 * Applies every pending migration; throws with the failing migration's error. `schema` must
 * be the one `openDatabase` was given. Safe to run from many nodes at once: the first takes a
 * row lock on Kysely's lock table (see row-lock-migrations.ts), the others wait, then find
 * nothing left to do.
 */
export async function migrateToLatest(db: Kysely<Database>, schema?: string): Promise<string[]> {
  // Kysely looks for its bookkeeping tables in every schema unless told which: pin it to ours,
  // so a deployment in one schema is not confused by another's tables in the same database.
  schema ??= (await sql<{ schema: string }>`select current_schema() as schema`.execute(db)).rows[0]?.schema;
  const migrator = new Migrator({
    db,
    provider: { getMigrations: async () => MIGRATIONS },
    ...(schema ? { migrationTableSchema: schema } : {}),
  });
  const { error, results = [] } = await migrator.migrateToLatest();
  if (error) throw error;
  return results.filter((r) => r.status === 'Success').map((r) => r.migrationName);
}

const UNAVAILABLE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN']);

/**
 * True for errors that mean "the database cannot be reached right now" (answered
 * 503 with Retry-After) rather than a bug: refused or dropped connections,
 * SQLSTATE class 08 (connection exception), 57P01–57P03 (shutdown, cannot connect now),
 * 53300 (too many connections), and pg's own connection timeouts.
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  for (let e = error as { code?: unknown; message?: unknown; cause?: unknown } | undefined, depth = 0; e && depth < 5; e = e.cause as typeof e, depth++) {
    const code = typeof e.code === 'string' ? e.code : '';
    if (UNAVAILABLE_CODES.has(code) || code.startsWith('08') || /^57P0[123]$/.test(code) || code === '53300') return true;
    const message = typeof e.message === 'string' ? e.message : '';
    if (/Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|Query read timeout/i.test(message)) return true;
    if (e instanceof AggregateError && e.errors.some(isDatabaseUnavailable)) return true;
  }
  return false;
}
