import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { Kysely, Migrator, PostgresDialect, sql, type LogConfig, type Migration } from 'kysely';
import { PGliteDialect } from 'kysely-pglite-dialect';
import pg from 'pg';
import type { DatabasePooler } from '../core/config.js';
import * as initial from './migrations/2026-11-22T00-00-initial.js';
import * as userKeys from './migrations/2026-11-30T00-00-user-keys.js';
import * as claimsAndKeys from './migrations/2026-11-30T01-00-claims-and-keys.js';
import * as accounts from './migrations/2026-11-30T02-00-accounts.js';
import * as secondFactors from './migrations/2026-11-30T03-00-second-factors.js';
import * as passkeys from './migrations/2026-11-30T04-00-passkeys.js';
import { withDeadlines } from './deadline.js';
import { LOST_STATEMENT_SQLSTATES, preparedStatementPool } from './prepared-pool.js';
import { CONFLICT_SQLSTATES } from './transaction.js';
import { withRowLockMigrations } from './row-lock-migrations.js';
import type { Database } from './schema.js';

// Timestamped names: Kysely runs them in name order, once each.
export const MIGRATIONS: Readonly<Record<string, Migration>> = {
  '2026-11-22T00-00-initial': initial,
  '2026-11-30T00-00-user-keys': userKeys,
  '2026-11-30T01-00-claims-and-keys': claimsAndKeys,
  '2026-11-30T02-00-accounts': accounts,
  '2026-11-30T03-00-second-factors': secondFactors,
  '2026-11-30T04-00-passkeys': passkeys,
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
  /**
   * `transaction` behind PgBouncer in transaction mode: unnamed statements only, nothing
   * session-level. Default `session`: named prepared statements (see prepared-pool.ts).
   */
  pooler?: DatabasePooler;
  /**
   * Called once if, with the default `session`, named statements turn out to be lost between
   * transactions (42P05/26000: a transaction pooler is in front); the pool then sends unnamed
   * statements. For the warning that names DATABASE_POOLER=transaction.
   */
  onPoolerDetected?: (error: Error) => void;
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
  /** The PostgreSQL pool's counts, for the metrics; undefined on PGlite, which has no pool. */
  pool?: PoolCounts;
}

/** The part of `pg.Pool` the metrics read. */
export type PoolCounts = Pick<pg.Pool, 'totalCount' | 'idleCount' | 'waitingCount'>;

/**
 * Opens PostgreSQL or the embedded PGlite behind one Kysely interface.
 *
 * @example
 * const { db } = await openDatabase({ url: process.env.DATABASE_URL, dataDir: './.tessera' });
 * await migrateToLatest(db);
 */
export async function openDatabase(options: DatabaseOptions): Promise<OpenDatabase> {
  if (options.url && options.url !== 'memory://') {
    // Within a request, its deadline bounds every checkout and query (deadline.ts); query_timeout bounds the rest.
    const pool = withDeadlines(new pg.Pool({
      connectionString: options.url,
      max: options.poolSize ?? 10,
      connectionTimeoutMillis: 5_000,
      // A partitioned network never answers: give up on a query after 10 s rather than hang the request.
      query_timeout: 10_000,
    }));
    // Idle clients report errors on the pool; checked-out ones on themselves. Without a listener on
    // both, a connection reset in the middle of a query is an unhandled 'error' event: a crash.
    pool.on('error', (error) => options.onPoolError?.(error));
    pool.on('connect', (client) => client.on('error', (error) => options.onPoolError?.(error)));
    const url = new URL(options.url);
    // A transaction pooler hands each transaction any server connection: statements prepared on
    // one are missing (26000) or already there (42P05) on the next. Kysely on the bare pool sends
    // unnamed statements only.
    const statements = options.pooler === 'transaction' ? pool : preparedStatementPool(pool, { onPoolerDetected: options.onPoolerDetected });
    return {
      db: inSchema(new Kysely<Database>({ dialect: withRowLockMigrations(new PostgresDialect({ pool: statements })), log: options.log }), options.schema),
      kind: 'postgres',
      pool,
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
  let { error, results = [] } = await migrator.migrateToLatest();
  // A named statement lost to an undeclared transaction pooler (42P05/26000) aborted the
  // migration transaction, which rolled back; the pool has switched to unnamed statements
  // (prepared-pool.ts), so a second attempt goes through.
  if (error && LOST_STATEMENT_SQLSTATES.has((error as { code?: string }).code ?? '')) ({ error, results = [] } = await migrator.migrateToLatest());
  if (error) throw error;
  return results.filter((r) => r.status === 'Success').map((r) => r.migrationName);
}

const UNAVAILABLE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN']);

/**
 * SQLSTATEs that mean "not now" rather than "wrong": 55000 (the database is not accepting
 * connections), 57P01–57P03 (shut down, crashed, starting up), 57014 (a query cancelled:
 * the request's deadline), 53300 (too many connections), 3D000 (the database is gone, as
 * during a drop and re-create); a conflict still refused after its retries (40001, 40P01), and
 * a statement lost to a transaction pooler the moment it is detected (42P05, 26000). Class 08 (connection exception) is matched by prefix.
 */
const UNAVAILABLE_SQLSTATES = new Set(['55000', '57P01', '57P02', '57P03', '57014', '53300', '3D000', ...CONFLICT_SQLSTATES, ...LOST_STATEMENT_SQLSTATES]);

/**
 * True for errors that mean "the database cannot be reached right now" (answered
 * 503 with Retry-After) rather than a bug: refused, dropped or timed-out connections,
 * the SQLSTATEs above, class 08, and pg's own connection and query timeouts.
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  for (let e = error as { code?: unknown; message?: unknown; cause?: unknown } | undefined, depth = 0; e && depth < 5; e = e.cause as typeof e, depth++) {
    const code = typeof e.code === 'string' ? e.code : '';
    if (UNAVAILABLE_CODES.has(code) || code.startsWith('08') || UNAVAILABLE_SQLSTATES.has(code)) return true;
    const message = typeof e.message === 'string' ? e.message : '';
    if (/Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|Query read timeout/i.test(message)) return true;
    if (e instanceof AggregateError && e.errors.some(isDatabaseUnavailable)) return true;
  }
  return false;
}
