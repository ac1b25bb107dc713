import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { withDeadline } from '../../src/store/deadline.js';
import { openTestStore, type TestStore } from '../helpers/backends.js';
import { missing } from '../helpers/skip-reason.js';

/**
 * The per-request deadline (src/store/deadline.ts) on a real PostgreSQL pool of one
 * connection: a deadline that passes in the middle of a transaction refuses the next
 * statement, yet the rollback gets through and the connection goes back to the pool clean,
 * never inside an open transaction that the next request would write into.
 */
describe.skipIf(missing(process.env.TEST_DATABASE_URL, 'the deadline on a real connection pool needs a shared PostgreSQL: set TEST_DATABASE_URL'))('one deadline per request, on PostgreSQL', () => {
  let db: TestStore;
  beforeAll(async () => {
    db = await openTestStore('postgres', { poolSize: 1 });
  });
  afterAll(() => db?.close());
  afterEach(() => vi.useRealTimers());

  const table = () => sql.raw(`"${db.schema}"."leases"`);

  it('a deadline passed mid-transaction: 503-class error, rolled back, and the pooled connection is clean', async () => {
    const name = `deadline-${randomUUID()}`;
    vi.useFakeTimers({ toFake: ['Date'] });
    const outcome = withDeadline(1_000, () =>
      db.store.db.transaction().execute(async (trx) => {
        await sql`insert into ${table()} (name, holder, expires_at) values (${name}, 'first', now())`.execute(trx);
        vi.setSystemTime(Date.now() + 2_000);
        await sql`insert into ${table()} (name, holder, expires_at) values (${`${name}-2`}, 'second', now())`.execute(trx);
      }),
    );
    await expect(outcome).rejects.toMatchObject({ code: 'ETIMEDOUT' });
    vi.useRealTimers();

    // The one pooled connection is not inside the failed transaction: what it writes now is committed at once.
    await sql`insert into ${table()} (name, holder, expires_at) values (${`${name}-after`}, 'after', now())`.execute(db.store.db);
    const other = new pg.Client({ connectionString: process.env.TEST_DATABASE_URL });
    await other.connect();
    try {
      const { rows } = await other.query(`select name from "${db.schema}"."leases" where name like $1 order by name`, [`${name}%`]);
      expect(rows.map((r: { name: string }) => r.name)).toEqual([`${name}-after`]);
    } finally {
      await other.end();
    }
  });

  it('outside a deadline nothing changes, and within one a quick query runs', async () => {
    expect((await sql<{ one: number }>`select 1 as one`.execute(db.store.db)).rows).toEqual([{ one: 1 }]);
    const rows = await withDeadline(5_000, () => sql<{ one: number }>`select 1 as one`.execute(db.store.db));
    expect(rows.rows).toEqual([{ one: 1 }]);
  });
});
