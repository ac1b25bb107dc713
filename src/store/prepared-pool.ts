import { createHash } from 'node:crypto';
import type { PostgresPool, PostgresPoolClient } from 'kysely';
import type pg from 'pg';

/** Distinct statement texts kept as named prepared statements; any beyond are sent unnamed. */
const MAX_NAMED = 256;
const PREPARABLE = /^\s*(select|insert|update|delete|with)\b/i;
/**
 * 42P05 "prepared statement … already exists" and 26000 "… does not exist": the statements a
 * connection prepared are not on the server connection it now talks to. Only a transaction
 * pooler (PgBouncer `pool_mode = transaction`) in front of PostgreSQL does that.
 */
export const LOST_STATEMENT_SQLSTATES: ReadonlySet<string> = new Set(['42P05', '26000']);

export interface PreparedPoolOptions {
  /**
   * Called once, with the error, when named statements turn out to be lost between
   * transactions; the pool sends unnamed statements from then on.
   */
  onPoolerDetected?: (error: Error) => void;
}

/**
 * A `pg.Pool` as Kysely's PostgresDialect wants it, sending each distinct SQL text as a
 * named prepared statement. Kysely sends unnamed ones, so PostgreSQL would parse and plan
 * every query of every request; named, each connection plans a statement once. Measured
 * on the refresh path: PostgreSQL CPU per refresh 375 → 168 µs (docs/benchmarks.md).
 *
 * Not for a transaction pooler: there, open the dialect on the bare `pg.Pool`
 * (DATABASE_POOLER=transaction). If one is in front anyway, the first 42P05/26000 switches
 * this pool to unnamed statements for good and calls `onPoolerDetected`; a statement that
 * failed outside a transaction is sent again unnamed (nothing of it ran), one inside a
 * transaction fails with it (the transaction is aborted; its caller decides).
 *
 * @example
 * new PostgresDialect({ pool: preparedStatementPool(new pg.Pool({ connectionString }), { onPoolerDetected: warn }) });
 */
export function preparedStatementPool(pool: pg.Pool, options: PreparedPoolOptions = {}): PostgresPool {
  const names = new Map<string, string>();
  let named = true;
  const nameOf = (text: string): string | undefined => {
    let name = names.get(text);
    if (name === undefined && names.size < MAX_NAMED && PREPARABLE.test(text)) {
      // Named by content, not by a counter: behind a transaction pooler a statement name meets
      // server connections that other processes prepared, and a counter's "tessera_3" would be
      // another process's statement there, run with our parameters. By content, a name found
      // on any connection is the same SQL, and a missing one is a clean 26000.
      name = `tessera_${createHash('sha256').update(text).digest('hex').slice(0, 32)}`;
      names.set(text, name);
    }
    return name;
  };
  return {
    async connect(): Promise<PostgresPoolClient> {
      const client = await pool.connect();
      return {
        query: (async (text: string, values: unknown[]) => {
          const name = named ? nameOf(text) : undefined;
          if (name === undefined) return client.query(text, values);
          try {
            return await client.query({ name, text, values });
          } catch (error) {
            const code = (error as { code?: string }).code ?? '';
            if (LOST_STATEMENT_SQLSTATES.has(code) && named) {
              named = false;
              options.onPoolerDetected?.(error as Error);
            }
            // Outside a transaction the failed statement did nothing, so its unnamed form may run.
            // 0A000 "cached plan must not change result type": a migration changed a table under a
            // statement this connection prepared before. The unnamed form always works.
            if ((LOST_STATEMENT_SQLSTATES.has(code) || code === '0A000') && client.getTransactionStatus() === 'I') return client.query(text, values);
            throw error;
          }
        }) as unknown as PostgresPoolClient['query'],
        release: () => client.release(),
      };
    },
    end: () => pool.end(),
  };
}
