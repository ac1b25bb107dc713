import type { Kysely, Transaction } from 'kysely';
import type { Database } from './schema.js';

export type Executor = Kysely<Database> | Transaction<Database>;

/** Transactions the engine refused for a conflict (serialization failure, deadlock) are tried this many times. */
export const MAX_TRANSACTION_ATTEMPTS = 5;

/**
 * Runs `body` in a transaction, and again (a bounded number of times, after a random pause)
 * when the engine refuses it for a conflict: a serialization failure or a deadlock, which
 * distributed engines report where one PostgreSQL would have waited. Every body in the
 * store writes only values computed before it starts, so running it twice is safe.
 */
export function inTransaction<T>(db: Kysely<Database>, body: (trx: Transaction<Database>) => Promise<T>): Promise<T> {
  return retrying(() => db.transaction().execute(body));
}

/** Serialization failure and deadlock: the engine's "try again". */
export const CONFLICT_SQLSTATES: ReadonlySet<string> = new Set(['40001', '40P01']);

/** `run`, again after a conflict, at most MAX_TRANSACTION_ATTEMPTS times. */
export async function retrying<T>(run: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await run();
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      if (typeof code !== 'string' || !CONFLICT_SQLSTATES.has(code) || attempt >= MAX_TRANSACTION_ATTEMPTS) throw error;
      // Full jitter: racing transactions that collided once should not collide again in step.
      await sleep(Math.random() * 5 * 2 ** attempt);
    }
  }
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
