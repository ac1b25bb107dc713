import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newSessionSalt } from '../../src/core/refresh-token.js';
import type { NewSession } from '../../src/store/store.js';
import { BACKENDS, openTestStore, type TestStore } from '../helpers/backends.js';

/**
 * Distributed engines answer a conflict with an error where one PostgreSQL would have
 * waited: 40001 (serialization failure) or 40P01 (deadlock). The store runs such a
 * transaction again, a bounded number of times, and a body that ran twice leaves one result.
 * The conflict is real: a trigger makes the engine itself raise it on the first N inserts
 * (counted by a sequence, which a rollback does not undo).
 */
describe.each(BACKENDS)('transactions retried after a conflict, on %s', (backend) => {
  let db: TestStore;
  const T0 = new Date('2026-11-30T12:00:00Z');
  const meta = { ip: '203.0.113.5', userAgent: 'retries/1.0' };
  // raw SQL is not qualified by the store's schema plugin: name the schema here
  const q = (name: string) => sql.raw(db.schema ? `"${db.schema}"."${name}"` : `"${name}"`);

  beforeAll(async () => {
    db = await openTestStore(backend);
    const k = db.store.db;
    await sql`create table ${q('conflicts')} (code text not null, fail_first int not null)`.execute(k);
    await sql`create sequence ${q('attempts')}`.execute(k);
    await sql`
      create function ${q('raise_conflict')}() returns trigger language plpgsql as $$
      declare c text; n int;
      begin
        select code, fail_first into c, n from ${q('conflicts')};
        if c is not null and nextval('${q('attempts')}') <= n then
          raise exception 'conflict for the test' using errcode = c;
        end if;
        return new;
      end $$`.execute(k);
    await sql`create trigger conflict before insert on ${q('security_events')} for each row execute function ${q('raise_conflict')}()`.execute(k);
  });
  afterAll(() => db?.close());

  async function conflicts(code: string, times: number) {
    await sql`delete from ${q('conflicts')}`.execute(db.store.db);
    await sql`insert into ${q('conflicts')} values (${code}, ${times})`.execute(db.store.db);
    await sql`alter sequence ${q('attempts')} restart`.execute(db.store.db);
  }

  async function newUser() {
    const id = randomUUID();
    const session: NewSession = {
      id: randomUUID(), userId: id, salt: newSessionSalt(), now: T0,
      expiresAt: new Date(T0.getTime() + 3_600_000), absoluteExpiresAt: new Date(T0.getTime() + 86_400_000),
    };
    await conflicts('40001', 0);
    await db.store.createUserWithSession({ id, email: `${id}@example.com`, name: '', passwordHash: 'x' }, session, meta);
    return id;
  }

  async function state(userId: string) {
    const sessions = await db.store.db.selectFrom('sessions').select('id').where('user_id', '=', userId).execute();
    const events = await db.store.db.selectFrom('security_events').select('type').where('user_id', '=', userId).orderBy('id').execute();
    const seq = await sql<{ last_value: string; is_called: boolean }>`select last_value, is_called from ${q('attempts')}`.execute(db.store.db);
    const attempts = seq.rows[0]!.is_called ? Number(seq.rows[0]!.last_value) : 0;
    return { sessions: sessions.length, events: events.map((e) => e.type), attempts };
  }

  it.each(['40001', '40P01'])('a transaction that fails with %s twice is run again and commits once', async (code) => {
    const userId = await newUser();
    await conflicts(code, 2);
    const session: NewSession = {
      id: randomUUID(), userId, salt: newSessionSalt(), now: T0,
      expiresAt: new Date(T0.getTime() + 3_600_000), absoluteExpiresAt: new Date(T0.getTime() + 86_400_000),
    };
    await db.store.createSession(session, meta);
    // two refused attempts left nothing behind; the third wrote the session and its event once
    expect(await state(userId)).toEqual({ sessions: 2, events: ['registered', 'login_succeeded'], attempts: 3 });
  });

  it('gives up after a bounded number of attempts, with the engine’s code and nothing half-written', async () => {
    const userId = await newUser();
    await conflicts('40001', 100);
    const session: NewSession = {
      id: randomUUID(), userId, salt: newSessionSalt(), now: T0,
      expiresAt: new Date(T0.getTime() + 3_600_000), absoluteExpiresAt: new Date(T0.getTime() + 86_400_000),
    };
    await expect(db.store.createSession(session, meta)).rejects.toMatchObject({ code: '40001' });
    expect(await state(userId)).toEqual({ sessions: 1, events: ['registered'], attempts: 5 });
  });

  it('other errors are not retried', async () => {
    const userId = await newUser();
    await conflicts('23514', 100);
    await expect(db.store.revokeUserSessions(userId, null, 'logout_global', null, T0, meta)).rejects.toMatchObject({ code: '23514' });
    expect((await state(userId)).attempts).toBe(1);
  });
});
