/**
 * A worker process killed with SIGKILL while the SMTP server holds its mail mid-DATA (the
 * whole message sent, no answer yet): no shutdown hook runs and the row stays leased. Nothing
 * may take it before the lease has passed, and once it has, another worker delivers it: the
 * outbox delivers at least once, and a crash never loses a mail (SPEC §7).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { LinkTokenCodec } from '../../src/core/link-token.js';
import type { MailMessage } from '../../src/core/outbox-message.js';
import { openDatabase } from '../../src/store/database.js';
import { enqueue } from '../../src/store/event-log.js';
import { OutboxStore } from '../../src/store/outbox-store.js';
import type { Database } from '../../src/store/schema.js';
import { startMailbox, type Mailbox } from '../helpers/mailbox.js';
import { describeFaults, freshSchema, TEST_DATABASE_URL, type FreshSchema } from './helpers/pg-schema.js';
import { CHILD_SECRET, ROOT } from './helpers/server-process.js';

const LEASE_SECONDS = 60;

interface WorkerProcess {
  child: ChildProcess;
  logs(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** test/faults/fixtures/outbox-worker.ts in a process of its own; resolves once it polls. */
async function startWorker(env: Record<string, string>): Promise<WorkerProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/faults/fixtures/outbox-worker.ts'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? ROOT, TESSERA_SECRET: CHILD_SECRET, LEASE_SECONDS: String(LEASE_SECONDS), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  let output = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => {
      running.delete(child);
      resolve({ code, signal });
    }),
  );
  const deadline = Date.now() + 45_000;
  while (!output.includes('outbox worker ready')) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`the worker did not start:\n${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return { child, logs: () => output, exited };
}

describeFaults('SIGKILL of an outbox worker mid-delivery', () => {
  let schema: FreshSchema;
  let db: Kysely<Database>;
  let mailbox: Mailbox;

  beforeAll(async () => {
    schema = await freshSchema({ migrated: true });
    db = (await openDatabase({ url: TEST_DATABASE_URL, dataDir: '', schema: schema.name, poolSize: 2 })).db;
    mailbox = await startMailbox();
  }, 60_000);

  afterAll(async () => {
    for (const child of running) child.kill('SIGKILL');
    await mailbox?.stop();
    await db?.destroy();
    await schema?.drop();
  });

  it('the mail stays leased, then another worker delivers it after the lease', async () => {
    const outbox = new OutboxStore(db);
    const userId = randomUUID();
    const message: MailMessage = {
      kind: 'mail', template: 'verify_email', to: 'ada@example.com', name: 'Ada',
      link: { purpose: 'verify_email', userId, requestId: randomUUID(), email: 'ada@example.com', expiresAt: new Date(Date.now() + 86_400_000).toISOString() },
    };
    await enqueue(db, userId, message, new Date());
    const { id } = await db.selectFrom('outbox').select('id').where('user_id', '=', userId).executeTakeFirstOrThrow();

    mailbox.hold(true);
    const first = await startWorker({ ...schema.env, SMTP_URL: mailbox.url });
    await mailbox.waitForHeld(1, 30_000);
    first.child.kill('SIGKILL');
    expect((await first.exited).signal).toBe('SIGKILL');
    // The server never answered the interrupted delivery: it refuses it now, to a connection that is gone.
    mailbox.refuse(true);
    mailbox.hold(false);
    mailbox.refuse(false);
    expect(mailbox.messages).toHaveLength(0);

    const leased = await outbox.state(userId, id);
    expect(leased).toMatchObject({ attempts: 1, deliveredAt: null, failedAt: null });
    expect(leased!.claimedUntil!.getTime()).toBeGreaterThan(Date.now());
    // No worker may take it while the lease lasts.
    expect(await outbox.claim(new Date(), 10, LEASE_SECONDS)).toEqual([]);

    // A worker whose clock is past the lease: as if it had waited the lease out.
    const second = await startWorker({ ...schema.env, SMTP_URL: mailbox.url, CLOCK_OFFSET_MS: String((LEASE_SECONDS + 5) * 1000) });
    const mail = await mailbox.waitFor(undefined, 30_000);
    expect(mailbox.linkToken(mail)).toBe(new LinkTokenCodec(CHILD_SECRET).make(message.link!));
    const deadline = Date.now() + 10_000;
    let state = await outbox.state(userId, id);
    while (!state?.deliveredAt && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      state = await outbox.state(userId, id);
    }
    expect(state).toMatchObject({ attempts: 2, failedAt: null });
    expect(state!.deliveredAt).toBeInstanceOf(Date);

    second.child.kill('SIGTERM');
    expect((await second.exited).code, second.logs()).toBe(0);
    expect(mailbox.messages).toHaveLength(1);
  }, 120_000);
});
