import { AsyncLocalStorage } from 'node:async_hooks';
import type pg from 'pg';

/**
 * One deadline for all the database work of a request: its queries share it,
 * instead of each getting a timeout of its own, so a database that answers slowly costs a
 * request at most the deadline, not the deadline times the number of its queries.
 */
const deadlines = new AsyncLocalStorage<number>();

/** Runs `fn` (and everything it starts) with a deadline `ms` from now. */
export function withDeadline<T>(ms: number, fn: () => T): T {
  return deadlines.run(Date.now() + ms, fn);
}

/** Milliseconds left before the current deadline; undefined outside of one. */
function remainingMs(): number | undefined {
  const deadline = deadlines.getStore();
  return deadline === undefined ? undefined : deadline - Date.now();
}

/** Answered as 503 `service_unavailable`, like any other timeout (src/store/database.ts). */
function deadlineExceeded(): Error {
  return Object.assign(new Error('the request deadline passed before the database answered'), { code: 'ETIMEDOUT' });
}

/**
 * `pool`, with the current deadline applied to every checkout and query: waiting for a
 * connection gives up when it passes, and each query gets at most the time that is left
 * (pg's `query_timeout`). Outside a deadline (migrations, the purge), nothing changes.
 */
export function withDeadlines(pool: pg.Pool): pg.Pool {
  return new Proxy(pool, {
    get(target, property, receiver) {
      if (property !== 'connect') return Reflect.get(target, property, receiver);
      return async () => {
        const ms = remainingMs();
        if (ms === undefined) return clientWithDeadlines(await target.connect());
        if (ms <= 0) throw deadlineExceeded();
        const pending = target.connect();
        let timer: NodeJS.Timeout | undefined;
        const late = new Promise<never>((_, reject) => {
          timer = setTimeout(() => {
            // The connection may still come: hand it straight back to the pool.
            pending.then((client) => client.release(), () => {});
            reject(deadlineExceeded());
          }, ms);
        });
        try {
          return clientWithDeadlines(await Promise.race([pending, late]));
        } finally {
          clearTimeout(timer);
        }
      };
    },
  });
}

/**
 * The client, with each query bounded by the deadline. A query that timed out may still be
 * running on its connection, so that connection is destroyed on release, never reused.
 */
function clientWithDeadlines(client: pg.PoolClient): pg.PoolClient {
  let timedOut: Error | undefined;
  const query = async (config: unknown, values?: unknown[]) => {
    const ms = remainingMs();
    try {
      // Submittables (cursors), calls outside a deadline and a rollback (which must always get
      // through, or the transaction would stay open) go as they are.
      if (ms === undefined || (typeof config === 'object' && config !== null && 'submit' in config) || config === 'rollback') {
        return await client.query(config as string, values);
      }
      if (ms <= 0) {
        timedOut = deadlineExceeded();
        throw timedOut;
      }
      const text: pg.QueryConfig = typeof config === 'string' ? { text: config, values } : (config as pg.QueryConfig);
      return await client.query({ ...text, query_timeout: ms } as pg.QueryConfig);
    } catch (error) {
      if ((error as Error).message === 'Query read timeout') timedOut = error as Error;
      throw error;
    }
  };
  return new Proxy(client, {
    get(target, property, receiver) {
      if (property === 'query') return query;
      // Never back to the pool inside a transaction, nor after a query it may still be running.
      if (property === 'release') {
        return (error?: Error | boolean) => target.release(error ?? timedOut ?? (target.getTransactionStatus() === 'I' ? undefined : deadlineExceeded()));
      }
      const value = Reflect.get(target, property, receiver);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}
