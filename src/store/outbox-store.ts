import type { Kysely } from 'kysely';
import type { OutboxMessage } from '../core/outbox-message.js';
import type { Database } from './schema.js';
import { inTransaction } from './transaction.js';

/** A row of the outbox a worker has leased: deliver it, then say how it went. */
export interface ClaimedMessage {
  userId: string;
  id: string;
  message: OutboxMessage;
  createdAt: Date;
  /** this attempt's number: 1 for the first */
  attempts: number;
}

/** Where a row stands, for tests and for an operator reading the table. */
export interface OutboxState {
  attempts: number;
  deliverAfter: Date;
  claimedUntil: Date | null;
  deliveredAt: Date | null;
  failedAt: Date | null;
  lastError: string | null;
}

/** Rows deleted per statement by `purge`. */
const PURGE_BATCH = 1000;
/** A reason in words is kept short: it is for a person reading the table, never a body. */
const ERROR_MAX_LENGTH = 500;

/**
 * The SQL of delivering the outbox (rows are written by `enqueue` in src/store/event-log.ts,
 * in the transaction of the change that caused them). Any number of workers, on any nodes,
 * share the table: `claim` takes rows with FOR UPDATE SKIP LOCKED, so two workers never take
 * the same row at once, and leases them until `claimed_until`, so the rows of a worker that
 * dies mid-delivery are taken again once the lease has passed. Delivery is therefore at least
 * once. Every statement on a row names its user id and id (the key leads with the user id:
 * one shard on Citus); every time is the caller's clock.
 *
 * @example
 * const outbox = new OutboxStore(db);
 * for (const row of await outbox.claim(now, 10, 120)) {
 *   try { await send(row.message); await outbox.delivered(row.userId, row.id, clock()); }
 *   catch (error) { await outbox.retryLater(row.userId, row.id, nextTry, 'connection refused'); }
 * }
 */
export class OutboxStore {
  constructor(readonly db: Kysely<Database>) {}

  /**
   * Leases up to `limit` rows that are due at `now` (oldest first) until `now + leaseSeconds`,
   * counting the attempt; `kinds` limits them to what this worker can deliver (a node without
   * SMTP leaves mails to the nodes that have it).
   */
  async claim(now: Date, limit: number, leaseSeconds: number, kinds?: readonly OutboxMessage['kind'][]): Promise<ClaimedMessage[]> {
    if (limit <= 0 || kinds?.length === 0) return [];
    const claimedUntil = new Date(now.getTime() + leaseSeconds * 1000);
    const rows = await inTransaction(this.db, async (trx) => {
      let due = trx
        .selectFrom('outbox')
        .select(['user_id', 'id'])
        .where('delivered_at', 'is', null)
        .where('failed_at', 'is', null)
        .where('deliver_after', '<=', now)
        .where((eb) => eb.or([eb('claimed_until', 'is', null), eb('claimed_until', '<=', now)]))
        .orderBy('deliver_after')
        .limit(limit)
        // Rows another worker is claiming right now are skipped, not waited for.
        .forUpdate()
        .skipLocked();
      if (kinds) due = due.where('kind', 'in', kinds);
      const picked = await due.execute();
      if (picked.length === 0) return [];
      return trx
        .updateTable('outbox')
        .set((eb) => ({ claimed_until: claimedUntil, attempts: eb('attempts', '+', 1) }))
        .where((eb) => eb(eb.refTuple('user_id', 'id'), 'in', picked.map((row) => eb.tuple(row.user_id, row.id))))
        .returning(['user_id', 'id', 'payload', 'created_at', 'attempts', 'deliver_after'])
        .execute();
    });
    return rows
      .sort((a, b) => a.deliver_after.getTime() - b.deliver_after.getTime())
      .map((row) => ({ userId: row.user_id, id: row.id, message: row.payload, createdAt: row.created_at, attempts: row.attempts }));
  }

  /** Delivered: never taken again. */
  async delivered(userId: string, id: string, now: Date): Promise<void> {
    await this.db
      .updateTable('outbox')
      .set({ delivered_at: now, claimed_until: null, last_error: null })
      .where('user_id', '=', userId)
      .where('id', '=', id)
      .execute();
  }

  /**
   * Not delivered this time: due again at `deliverAfter`, its lease given back. A row another
   * worker delivered meanwhile (this one's lease had passed) stays delivered.
   */
  async retryLater(userId: string, id: string, deliverAfter: Date, error: string): Promise<void> {
    await this.db
      .updateTable('outbox')
      .set({ deliver_after: deliverAfter, claimed_until: null, last_error: error.slice(0, ERROR_MAX_LENGTH) })
      .where('user_id', '=', userId)
      .where('id', '=', id)
      .where('delivered_at', 'is', null)
      .execute();
  }

  /** Given up: never taken again, kept with its reason until the purge. */
  async failed(userId: string, id: string, now: Date, error: string): Promise<void> {
    await this.db
      .updateTable('outbox')
      .set({ failed_at: now, claimed_until: null, last_error: error.slice(0, ERROR_MAX_LENGTH) })
      .where('user_id', '=', userId)
      .where('id', '=', id)
      .where('delivered_at', 'is', null)
      .execute();
  }

  /** Deletes rows delivered or given up before `before`, in batches; returns how many. */
  async purge(before: Date): Promise<number> {
    let total = 0;
    for (;;) {
      const result = await this.db
        .deleteFrom('outbox')
        .where((eb) =>
          eb(
            eb.refTuple('user_id', 'id'),
            'in',
            eb
              .selectFrom('outbox')
              .select(['user_id', 'id'])
              .where((w) => w.or([w('delivered_at', '<', before), w('failed_at', '<', before)]))
              .limit(PURGE_BATCH)
              .$asTuple('user_id', 'id'),
          ),
        )
        .executeTakeFirst();
      const deleted = Number(result.numDeletedRows);
      total += deleted;
      if (deleted < PURGE_BATCH) return total;
    }
  }

  /** One row's state, or undefined once purged. */
  async state(userId: string, id: string): Promise<OutboxState | undefined> {
    const row = await this.db
      .selectFrom('outbox')
      .select(['attempts', 'deliver_after', 'claimed_until', 'delivered_at', 'failed_at', 'last_error'])
      .where('user_id', '=', userId)
      .where('id', '=', id)
      .executeTakeFirst();
    return row && {
      attempts: row.attempts, deliverAfter: row.deliver_after, claimedUntil: row.claimed_until,
      deliveredAt: row.delivered_at, failedAt: row.failed_at, lastError: row.last_error,
    };
  }

  /** How many rows are waiting, delivered and given up: for tests and for a health look. */
  async counts(): Promise<{ pending: number; delivered: number; failed: number }> {
    const row = await this.db
      .selectFrom('outbox')
      .select((eb) => [
        eb.fn.count<string>('id').filterWhere('delivered_at', 'is', null).filterWhere('failed_at', 'is', null).as('pending'),
        eb.fn.count<string>('id').filterWhere('delivered_at', 'is not', null).as('delivered'),
        eb.fn.count<string>('id').filterWhere('failed_at', 'is not', null).as('failed'),
      ])
      .executeTakeFirstOrThrow();
    return { pending: Number(row.pending), delivered: Number(row.delivered), failed: Number(row.failed) };
  }
}
