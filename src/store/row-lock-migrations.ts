import {
  CompiledQuery,
  PostgresAdapter,
  sql,
  type DatabaseConnection,
  type Dialect,
  type Driver,
  type Kysely,
  type MigrationLockOptions,
  type TransactionSettings,
} from 'kysely';

/**
 * `dialect` with Kysely's migration lock taken as a row lock on Kysely's own lock row
 * (`select … for update`) instead of `pg_advisory_lock`, so that many nodes migrating at
 * start stay safe on any PostgreSQL-wire engine: advisory locks are node-local on Citus and
 * absent on CockroachDB, and a session lock is meaningless through PgBouncer in transaction
 * mode, where the unlock may reach another server connection than the lock.
 *
 * The row lock lives in the migration transaction (PostgreSQL has transactional DDL, so
 * Kysely runs every pending migration in one), and its commit or rollback releases it. A
 * second node waits on the row, then reads the migration table afresh and finds nothing to do.
 *
 * @example
 * new Kysely<Database>({ dialect: withRowLockMigrations(new PostgresDialect({ pool })) });
 */
export function withRowLockMigrations(dialect: Dialect): Dialect {
  return {
    createAdapter: () => new RowLockAdapter(),
    createDriver: () => new RowLockDriver(dialect.createDriver()),
    createQueryCompiler: () => dialect.createQueryCompiler(),
    createIntrospector: (db) => dialect.createIntrospector(db),
  };
}

/**
 * Connections on which the lock opened the migration transaction itself. Kysely ≥ 0.28.17
 * (kysely-org/kysely#1919) asks for the lock on the migration's connection *before* it
 * begins the transaction; a row lock outside a transaction would be released at once.
 */
const openedByLock = new WeakSet<DatabaseConnection>();

class RowLockAdapter extends PostgresAdapter {
  override async acquireMigrationLock(db: Kysely<any>, { lockTable, lockRowId, lockTableSchema }: MigrationLockOptions): Promise<void> {
    const table = sql.table(lockTableSchema ? `${lockTableSchema}.${lockTable}` : lockTable);
    const lock = sql`select id from ${table} where id = ${lockRowId} for update`;
    // Called inside the migration transaction (as Kysely's docs describe): the lock is all.
    if (db.isTransaction) {
      await lock.execute(db);
      return;
    }
    const compiled = lock.compile(db);
    await db.getExecutor().provideConnection(async (connection) => {
      await connection.executeQuery(CompiledQuery.raw('begin'));
      try {
        await connection.executeQuery(compiled);
      } catch (error) {
        // Never hand a connection back to the pool inside an aborted transaction.
        await connection.executeQuery(CompiledQuery.raw('rollback')).catch(() => {});
        throw error;
      }
      openedByLock.add(connection);
    });
  }

  override async releaseMigrationLock(db: Kysely<any>): Promise<void> {
    // The migration transaction's commit or rollback released the row. Only if Kysely never
    // ran that transaction is ours still open: end it.
    if (db.isTransaction) return;
    await db.getExecutor().provideConnection(async (connection) => {
      if (openedByLock.delete(connection)) await connection.executeQuery(CompiledQuery.raw('rollback'));
    });
  }
}

/** The dialect's driver, except that the migration transaction begun by the lock is not begun twice. */
class RowLockDriver implements Driver {
  readonly savepoint?: Driver['savepoint'];
  readonly rollbackToSavepoint?: Driver['rollbackToSavepoint'];
  readonly releaseSavepoint?: Driver['releaseSavepoint'];

  constructor(private readonly inner: Driver) {
    this.savepoint = inner.savepoint?.bind(inner);
    this.rollbackToSavepoint = inner.rollbackToSavepoint?.bind(inner);
    this.releaseSavepoint = inner.releaseSavepoint?.bind(inner);
  }

  init = () => this.inner.init();
  acquireConnection = () => this.inner.acquireConnection();
  releaseConnection = (connection: DatabaseConnection) => this.inner.releaseConnection(connection);
  destroy = () => this.inner.destroy();

  async beginTransaction(connection: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    if (openedByLock.has(connection)) return;
    await this.inner.beginTransaction(connection, settings);
  }

  async commitTransaction(connection: DatabaseConnection): Promise<void> {
    openedByLock.delete(connection);
    await this.inner.commitTransaction(connection);
  }

  async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    openedByLock.delete(connection);
    await this.inner.rollbackTransaction(connection);
  }
}
