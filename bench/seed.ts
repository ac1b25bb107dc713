import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { sql, type Kysely, type RawBuilder } from 'kysely';
import { migrateToLatest, openDatabase } from '../src/store/database.js';
import type { Database } from '../src/store/schema.js';

/**
 * Rows written with SQL, never through the API: the users the workers sign in as,
 * extra sessions for them (sessions per user), and filler users and sessions that
 * only make the tables big. The same statements run on PostgreSQL and PGlite.
 */

/**
 * Where the rows go: the database and its two tables, named in the run's schema. Raw SQL is
 * not qualified by Kysely's schema plugin, so the names are spelt out here.
 */
export interface SeedTarget {
  db: Kysely<Database>;
  users: RawBuilder<unknown>;
  userEmails: RawBuilder<unknown>;
  sessions: RawBuilder<unknown>;
}

export function seedTarget(db: Kysely<Database>, schema: string | undefined): SeedTarget {
  const table = (name: string) => sql.table(schema ? `${schema}.${name}` : name);
  return { db, users: table('users'), userEmails: table('user_emails'), sessions: table('sessions') };
}

/** Filler users get this many sessions each; the last user of a batch may get fewer. */
const FILLER_SESSIONS_PER_USER = 10;
/** Sessions per INSERT: bounded, so PGlite's memory stays small while 10^6 rows go in. */
const BATCH = 50_000;
/** A browser's user agent: rows as wide as real ones. */
const USER_AGENT = 'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15';

export function workerEmail(group: string, i: number): string {
  return `bench-${group}-${i}@bench.invalid`;
}

/** Users the load workers sign in as (through the API, so their sessions are real ones). */
export async function seedWorkerUsers({ db, users, userEmails }: SeedTarget, group: string, count: number, passwordHash: string): Promise<string[]> {
  const emails = Array.from({ length: count }, (_, i) => workerEmail(group, i));
  // An email belongs to the account its user_emails row names: that row first, the user only if it was new.
  await sql`
    with claimed as (
      insert into ${userEmails} (email, user_id)
      select e, gen_random_uuid() from unnest(${emails}::text[]) as e
      on conflict (email) do nothing
      returning email, user_id
    )
    insert into ${users} (id, email, name, password_hash, created_at)
    select user_id, email, 'Bench ' || email, ${passwordHash}, now() - interval '10 days' from claimed`.execute(db);
  return emails;
}

/** `perUser` more active sessions for each of these users, as other devices of theirs would have. */
export async function seedExtraSessions({ db, users, sessions }: SeedTarget, emails: string[], perUser: number): Promise<void> {
  if (perUser <= 0) return;
  await sql`
    insert into ${sessions} (id, user_id, salt, generation, parent_generation, rotated_at, created_at, last_used_at,
                          expires_at, absolute_expires_at, revoked_at, revoked_reason, ip, user_agent)
    select gen_random_uuid(), u.id, decode(md5(random()::text || n::text || u.id::text), 'hex'), 3, 2,
           now() - interval '1 hour', now() - interval '2 days', now() - interval '1 hour',
           now() + interval '6 days', now() + interval '28 days', null, null, '198.51.100.7', ${USER_AGENT}
    from ${users} u cross join generate_series(1, ${perUser}::int) n
    where u.email = any(${emails}::text[])`.execute(db);
}

export async function countSessions({ db, sessions }: SeedTarget): Promise<number> {
  const { rows } = await sql<{ n: string | number }>`select count(*) as n from ${sessions}`.execute(db);
  return Number(rows[0]?.n ?? 0);
}

/**
 * Adds filler users and sessions until the sessions table holds `count` rows: random
 * ids (so the primary-key index is as scattered as a real one), one in ten revoked,
 * ages spread over a month. Returns the number of rows added.
 */
export async function growSessionsTo(target: SeedTarget, count: number, passwordHash: string): Promise<number> {
  const { db, users: usersTable, userEmails, sessions: sessionsTable } = target;
  let missing = count - (await countSessions(target));
  const added = Math.max(0, missing);
  let batchNo = 0;
  while (missing > 0) {
    const sessions = Math.min(BATCH, missing);
    const users = Math.ceil(sessions / FILLER_SESSIONS_PER_USER);
    const tag = `${Date.now().toString(36)}-${batchNo++}`;
    await sql`
      with u as (
        insert into ${usersTable} (id, email, name, password_hash, created_at)
        select gen_random_uuid(), 'filler-' || ${tag} || '-' || g || '@bench.invalid', 'Filler ' || g, ${passwordHash},
               now() - interval '90 days' + random() * interval '60 days'
        from generate_series(1, ${users}::int) g
        returning id, email, created_at
      ),
      -- data-modifying: runs although nothing reads it
      e as (insert into ${userEmails} (email, user_id) select email, id from u),
      s as (
        select u.id as user_id, n,
               now() - random() * interval '29 days' as created_at,
               1 + floor(random() * 40)::int as generation,
               random() < 0.1 as revoked
        from u cross join generate_series(1, ${FILLER_SESSIONS_PER_USER}::int) n
        limit ${sessions}::int
      )
      insert into ${sessionsTable} (id, user_id, salt, generation, parent_generation, rotated_at, created_at, last_used_at,
                            expires_at, absolute_expires_at, revoked_at, revoked_reason, ip, user_agent)
      select gen_random_uuid(), s.user_id, decode(md5(random()::text || s.n::text || s.user_id::text), 'hex'),
             s.generation, nullif(s.generation - 1, 0),
             case when s.generation > 1 then s.created_at + interval '1 hour' end,
             s.created_at, s.created_at + interval '1 hour',
             s.created_at + interval '7 days', s.created_at + interval '30 days',
             case when s.revoked then s.created_at + interval '2 hours' end,
             case when s.revoked then 'logout' end,
             '203.0.113.' || (1 + floor(random() * 250)::int)::text, ${USER_AGENT}
      from s`.execute(db);
    missing -= sessions;
  }
  return added;
}

/** Fresh statistics and a visibility map after a bulk load, as autovacuum would leave them. */
export async function vacuumAnalyze({ db, users, sessions }: SeedTarget): Promise<void> {
  await sql`vacuum analyze ${users}`.execute(db);
  await sql`vacuum analyze ${sessions}`.execute(db);
}

/**
 * `node --import tsx bench/seed.ts …`: one seeding step in its own process, because an
 * embedded PGlite can be opened by one process at a time (the server's, once it starts)
 * and a bulk load should not leave its memory in the load generator. Prints
 * `{"sessions": N, "added": N, "ms": N}`.
 *
 *   --url URL --schema S   PostgreSQL, in schema S     --data-dir DIR   PGlite in DIR/pgdata
 *   --migrate              apply the migrations first
 *   --workers GROUP:COUNT  worker users (password hash from --password-hash)
 *   --extra GROUP:COUNT:N  N more sessions for each of those users
 *   --grow N               filler until the sessions table has N rows
 *   --vacuum               vacuum analyze afterwards
 */
async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      url: { type: 'string' },
      schema: { type: 'string' },
      'data-dir': { type: 'string' },
      migrate: { type: 'boolean', default: false },
      workers: { type: 'string', multiple: true, default: [] },
      extra: { type: 'string', multiple: true, default: [] },
      grow: { type: 'string' },
      'password-hash': { type: 'string', default: 'x' },
      vacuum: { type: 'boolean', default: false },
    },
  });
  const started = performance.now();
  const { db } = values.url
    ? await openDatabase({ url: values.url, dataDir: '', ...(values.schema ? { schema: values.schema } : {}), poolSize: 2 })
    : await openDatabase({ url: undefined, dataDir: values['data-dir'] ?? '' });
  try {
    if (values.migrate) await migrateToLatest(db, values.schema);
    const target = seedTarget(db, values.schema);
    const hash = values['password-hash'];
    for (const spec of values.workers) {
      const [group = '', count = '0'] = spec.split(':');
      await seedWorkerUsers(target, group, Number(count), hash);
    }
    for (const spec of values.extra) {
      const [group = '', count = '0', perUser = '0'] = spec.split(':');
      await seedExtraSessions(target, Array.from({ length: Number(count) }, (_, i) => workerEmail(group, i)), Number(perUser));
    }
    const added = values.grow ? await growSessionsTo(target, Number(values.grow), hash) : 0;
    if (values.vacuum) await vacuumAnalyze(target);
    const sessions = await countSessions(target);
    process.stdout.write(`${JSON.stringify({ sessions, added, ms: Math.round(performance.now() - started) })}\n`);
  } finally {
    await db.destroy();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main().catch((error) => {
    process.stderr.write(`seed: ${(error as Error).stack ?? error}\n`);
    process.exit(1);
  });
}
