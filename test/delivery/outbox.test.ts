/**
 * The outbox delivered for real: a real SMTP server (test/helpers/mailbox.ts), a real HTTP
 * receiver on loopback, and the outbox table on every backend. The worker's clock is moved by
 * hand for retries and giving up; only "within 5 s" runs on the real clock.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig, type Config } from '../../src/core/config.js';
import { LinkTokenCodec } from '../../src/core/link-token.js';
import type { MailMessage, OutboxMessage, WebhookEvent } from '../../src/core/outbox-message.js';
import { deliveryFor, startOutboxWorker } from '../../src/delivery/deliver-message.js';
import { OutboxWorker, type OutboxWorkerOptions } from '../../src/delivery/outbox-worker.js';
import { enqueue } from '../../src/store/event-log.js';
import { OutboxStore } from '../../src/store/outbox-store.js';
import type { Kysely } from 'kysely';
import type { Database } from '../../src/store/schema.js';
import { FEATURE_BACKENDS, openTestStore, type TestStore } from '../helpers/backends.js';
import { startMailbox, type Mailbox } from '../helpers/mailbox.js';
import { freePort } from '../faults/helpers/free-port.js';
import { eventually, HandClock, MemoryLogger, startWebhookReceiver, type WebhookReceiver } from './helpers.js';

const SECRET = 'delivery-test-secret-that-is-at-least-32-bytes!';
const WEBHOOK_SECRET = `whsec_${randomBytes(32).toString('base64')}`;
const APP_URL = 'https://app.example.com';
const links = new LinkTokenCodec(SECRET);

function configWith(env: Record<string, string>): Config {
  const result = loadConfig({ TESSERA_SECRET: SECRET, APP_NAME: 'Acme', APP_URL, ...env });
  if (!result.ok) throw new Error(result.errors.join('\n'));
  return result.config;
}

function linkMail(template: 'verify_email' | 'reset_password', userId: string, to: string, now: Date): MailMessage {
  return {
    kind: 'mail', template, to, name: 'Ada',
    link: { purpose: template, userId, requestId: randomUUID(), email: to, expiresAt: new Date(now.getTime() + 3600_000).toISOString() },
  };
}

function notice(to: string, now: Date, extra: Partial<MailMessage> = {}): MailMessage {
  return {
    kind: 'mail', template: 'new_device', to, name: 'Ada',
    event: { type: 'new_device', at: now.toISOString(), ip: '203.0.113.9', userAgent: 'Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0' },
    ...extra,
  };
}

// The outbox is not a user-partitioned table: the partitioned PostgreSQL adds nothing here.
for (const backend of FEATURE_BACKENDS) {
  describe(`the outbox on ${backend}`, () => {
    let ts: TestStore;
    let db: Kysely<Database>;
    let outbox: OutboxStore;
    const cleanup: (() => Promise<unknown> | unknown)[] = [];

    beforeAll(async () => {
      ts = await openTestStore(backend);
      db = ts.store.db;
      outbox = new OutboxStore(db);
    });
    afterEach(async () => {
      for (const step of cleanup.splice(0).reverse()) await step();
      await db.deleteFrom('outbox').execute();
    });
    afterAll(async () => {
      await ts?.close();
    });

    /** Enqueues as the use cases do, and returns the row's keys. */
    async function put(message: OutboxMessage, now: Date, userId = randomUUID()) {
      await enqueue(db, userId, message, now);
      const { id } = await db.selectFrom('outbox').select('id').where('user_id', '=', userId).executeTakeFirstOrThrow();
      return { userId, id };
    }
    const stateOf = (row: { userId: string; id: string }) => outbox.state(row.userId, row.id);

    function worker(config: Config, logger: MemoryLogger, options: Partial<OutboxWorkerOptions> = {}): OutboxWorker {
      const w = new OutboxWorker({ outbox, deliverer: deliveryFor(config, SECRET, logger)!, logger, random: () => 1, ...options }).start();
      cleanup.push(() => w.stop());
      return w;
    }
    async function mailbox(options: { port?: number } = {}): Promise<Mailbox> {
      const m = await startMailbox(options);
      cleanup.push(() => m.stop());
      return m;
    }
    async function receiver(answers: number[]): Promise<WebhookReceiver> {
      const r = await startWebhookReceiver(answers);
      cleanup.push(() => r.close());
      return r;
    }

    it('claim leases due rows once, oldest first, until the lease passes; outcomes and purge', async () => {
      const now = new Date();
      const at = (seconds: number) => new Date(now.getTime() + seconds * 1000);
      const first = await put(notice('a@example.com', now), at(-2));
      const second = await put(notice('b@example.com', now), at(-1));
      const later = await put(notice('c@example.com', now), at(60));

      const claimed = await outbox.claim(now, 10, 120);
      expect(claimed.map((r) => [r.id, r.attempts])).toEqual([[first.id, 1], [second.id, 1]]);
      expect(claimed[0]!.message).toMatchObject({ kind: 'mail', to: 'a@example.com' });
      expect(await outbox.claim(now, 10, 120), 'leased rows are not taken again').toEqual([]);
      expect(await outbox.claim(at(119), 10, 120, ['mail']), 'nor later within the lease').toHaveLength(1); // only `later`, due at +60
      expect(await outbox.claim(at(121), 10, 120, ['webhook']), 'kinds limit the claim').toEqual([]);
      const again = await outbox.claim(at(121), 10, 120);
      expect(again.map((r) => [r.id, r.attempts])).toEqual([[first.id, 2], [second.id, 2]]);

      await outbox.delivered(first.userId, first.id, at(122));
      await outbox.retryLater(second.userId, second.id, at(500), 'connection refused');
      await outbox.failed(later.userId, later.id, at(123), 'gave up');
      expect(await stateOf(first)).toMatchObject({ deliveredAt: at(122), claimedUntil: null, failedAt: null });
      expect(await stateOf(second)).toMatchObject({ deliverAfter: at(500), claimedUntil: null, lastError: 'connection refused', attempts: 2 });
      expect(await stateOf(later)).toMatchObject({ failedAt: at(123), lastError: 'gave up' });
      // A worker whose lease had passed cannot undo another's delivery.
      await outbox.failed(first.userId, first.id, at(124), 'late');
      expect(await stateOf(first)).toMatchObject({ failedAt: null });
      expect(await outbox.counts()).toEqual({ pending: 1, delivered: 1, failed: 1 });

      expect(await outbox.purge(at(0))).toBe(0);
      expect(await outbox.purge(at(7 * 86400))).toBe(2);
      expect(await outbox.counts()).toEqual({ pending: 1, delivered: 0, failed: 0 });
    });

    it('delivers a mail within 5 s, its link token derived at sending', async () => {
      const box = await mailbox();
      const logger = new MemoryLogger();
      const w = startOutboxWorker({ config: configWith({ SMTP_URL: box.url }), db, secret: SECRET, logger })!;
      cleanup.push(() => w.stop());
      const userId = randomUUID();
      const message = linkMail('verify_email', userId, 'ada@example.com', new Date());
      const started = Date.now();
      const row = await put(message, new Date(), userId);

      const mail = await box.waitFor((m) => m.subject === 'Confirm your email address for Acme', 5_000);
      expect(Date.now() - started).toBeLessThan(5_000);
      const token = links.make(message.link!);
      expect(box.linkToken(mail)).toBe(token);
      expect(mail.text).toContain(`${APP_URL}/verify-email#token=${token}`);
      expect(mail.html).toContain(`href="${APP_URL}/verify-email#token=${token}"`);
      expect(mail.to && !Array.isArray(mail.to) ? mail.to.value : []).toEqual([{ address: 'ada@example.com', name: '' }]);
      expect(mail.headers.get('auto-submitted')).toBe('auto-generated');
      await eventually(async () => (await stateOf(row))?.deliveredAt, 5_000, 'delivered_at');
      // The outbox never held the token: it is derived when the mail is sent.
      const stored = await db.selectFrom('outbox').select('payload').where('user_id', '=', userId).executeTakeFirstOrThrow();
      expect(JSON.stringify(stored.payload)).not.toContain(token);
    });

    it('SMTP down, then refusing, then up: the mail arrives later and nothing fails', async () => {
      const port = await freePort();
      const logger = new MemoryLogger();
      const clock = new HandClock();
      const w = worker(configWith({ SMTP_URL: `smtp://127.0.0.1:${port}` }), logger, { clock: clock.now });
      const userId = randomUUID();
      const message = linkMail('reset_password', userId, 'ada@example.com', clock.now());
      const row = await put(message, clock.now(), userId);
      w.kick();

      const down = await eventually(async () => {
        const s = await stateOf(row);
        return s?.attempts === 1 && s.claimedUntil === null && s.lastError ? s : undefined;
      }, 15_000, 'the first attempt');
      expect(down.lastError).toMatch(/connection refused/);
      expect(down.deliverAfter.getTime() - clock.time).toBeLessThanOrEqual(30_000);
      expect(logger.at('warn')[0]?.message).toMatch(/could not deliver mail reset_password \(attempt 1\): .*connection refused.*next try in 10 s/);

      const box = await mailbox({ port });
      box.refuse(true);
      clock.advance(30);
      w.kick();
      const refused = await eventually(async () => {
        const s = await stateOf(row);
        return s?.attempts === 2 && s.claimedUntil === null ? s : undefined;
      }, 15_000, 'the second attempt');
      expect(refused.lastError).toMatch(/451/);

      box.refuse(false);
      clock.advance(60);
      w.kick();
      const mail = await box.waitFor(undefined, 15_000);
      expect(box.linkToken(mail)).toBe(links.make(message.link!));
      expect(mail.text).toContain(`${APP_URL}/reset-password#token=`);
      expect(await eventually(async () => (await stateOf(row))?.deliveredAt)).toBeTruthy();
      expect(await stateOf(row)).toMatchObject({ failedAt: null, attempts: 3 });
      expect(logger.at('error')).toEqual([]);
      // A failed attempt is logged in words, never with the token or the mail's body.
      const token = links.make(message.link!);
      expect(logger.text()).not.toContain(token);
      expect(logger.text()).not.toContain('Hello');
    });

    it('a webhook answered 500 then 200 is retried within 30 s, signed anew under the same webhook-id', async () => {
      const hooks = await receiver([500]);
      const logger = new MemoryLogger();
      const clock = new HandClock();
      const w = worker(configWith({ WEBHOOK_URL: hooks.url, WEBHOOK_SECRET }), logger, { clock: clock.now, random: Math.random });
      const userId = randomUUID();
      const event: WebhookEvent = {
        id: '42', type: 'password_changed', createdAt: clock.now().toISOString(), userId, sessionId: randomUUID(),
        ip: '198.51.100.7', userAgent: 'curl/8.5.0', sequence: 42,
      };
      const row = await put({ kind: 'webhook', event }, clock.now(), userId);
      const firstAttempt = clock.time;
      w.kick();

      await hooks.waitFor(1);
      const waiting = await eventually(async () => {
        const s = await stateOf(row);
        return s?.claimedUntil === null && s.lastError ? s : undefined;
      }, 10_000, 'the retry');
      expect(waiting.lastError).toBe('the webhook receiver answered 500');
      const retryIn = waiting.deliverAfter.getTime() - firstAttempt;
      expect(retryIn).toBeGreaterThan(0);
      expect(retryIn).toBeLessThanOrEqual(30_000);

      clock.advance(30);
      w.kick();
      await hooks.waitFor(2);
      await eventually(async () => (await stateOf(row))?.deliveredAt, 10_000, 'delivered_at');

      const verifier = new Webhook(WEBHOOK_SECRET);
      for (const hook of hooks.received) {
        const headers = Object.fromEntries(['webhook-id', 'webhook-timestamp', 'webhook-signature'].map((h) => [h, String(hook.headers[h])]));
        expect(verifier.verify(hook.body, headers)).toEqual(event);
        expect(hook.headers['content-type']).toBe('application/json');
      }
      const [a, b] = hooks.received;
      expect(a!.headers['webhook-id']).toBe(`msg_${row.id}`);
      expect(b!.headers['webhook-id']).toBe(a!.headers['webhook-id']);
      expect(Number(b!.headers['webhook-timestamp']) - Number(a!.headers['webhook-timestamp'])).toBe(30);
      expect(b!.headers['webhook-signature']).not.toBe(a!.headers['webhook-signature']);
      expect(logger.text()).not.toContain(hooks.url.split('/hooks')[1]!);
    });

    it('two workers on one database deliver 50 mails, each exactly once', async () => {
      const box = await mailbox();
      const config = configWith({ SMTP_URL: box.url });
      const logger = new MemoryLogger();
      const workers = [worker(config, logger, { concurrency: 4 }), worker(config, logger, { concurrency: 4 })];
      const now = new Date();
      const rows = [];
      for (let i = 0; i < 50; i++) rows.push(await put(notice(`user${i}@example.com`, now), now));
      for (const w of workers) w.kick();

      await eventually(() => box.messages.length >= 50, 30_000, '50 mails');
      await eventually(async () => (await outbox.counts()).delivered === 50, 10_000, '50 rows delivered');
      await Promise.all(workers.map((w) => w.stop()));
      const recipients = box.messages.map((m) => (m.to && !Array.isArray(m.to) ? m.to.value[0]!.address : ''));
      expect(recipients).toHaveLength(50);
      expect(new Set(recipients).size).toBe(50);
      expect(logger.at('warn')).toEqual([]);
    });

    it('gives up 24 h after the row was created: failed, with one error line', async () => {
      const box = await mailbox();
      box.refuse(550);
      const logger = new MemoryLogger();
      const clock = new HandClock();
      const w = worker(configWith({ SMTP_URL: box.url }), logger, { clock: clock.now });
      const created = clock.time;
      const row = await put(notice('ada@example.com', clock.now()), clock.now());
      w.kick();
      await eventually(async () => (await stateOf(row))?.lastError, 10_000, 'the first attempt');

      // The last try comes at the give-up time, not past it.
      clock.time = created + 86_400_000 - 5_000;
      w.kick();
      const last = await eventually(async () => {
        const s = await stateOf(row);
        return s?.attempts === 2 && s.claimedUntil === null ? s : undefined;
      }, 10_000, 'the second attempt');
      expect(last.deliverAfter.getTime()).toBe(created + 86_400_000);
      expect(last.failedAt).toBeNull();

      clock.time = created + 86_400_000;
      w.kick();
      const failed = await eventually(async () => {
        const s = await stateOf(row);
        return s?.failedAt ? s : undefined;
      }, 10_000, 'failed_at');
      expect(failed.lastError).toMatch(/550/);
      const errors = logger.at('error');
      expect(errors).toHaveLength(1);
      expect(errors[0]!.message).toMatch(/mail new_device failed \(gave up after 24 h, attempt 3\): .*550/);
      expect(box.messages).toEqual([]);
    });

    it('never sends to an address with a line break; a line break in a name or agent adds no header', async () => {
      const box = await mailbox();
      const logger = new MemoryLogger();
      worker(configWith({ SMTP_URL: box.url }), logger);
      const now = new Date();
      const bad = await put(notice('victim@example.com\r\nBcc: attacker@example.com', now), now);
      const injected = 'Eve\r\nBcc: attacker@example.com\r\nX-Injected: yes';
      await put(notice('eve@example.com', now, {
        template: 'email_change_requested', name: injected, newEmail: 'new@example.com\r\nX-Injected: yes',
        event: { type: 'email_change_requested', at: now.toISOString(), ip: '203.0.113.9', userAgent: 'Firefox/1\r\nX-Injected: ua' },
      }), now);

      const mail = await box.waitFor();
      expect(mail.headers.has('x-injected')).toBe(false);
      expect(mail.headers.has('bcc')).toBe(false);
      expect(mail.headerLines.filter((h) => /injected|attacker/i.test(h.line))).toEqual([]);
      expect(mail.subject).toBe('The email address of your Acme account is about to change');
      expect(mail.text).toContain('Hello Eve Bcc: attacker@example.com X-Injected: yes,');
      expect(mail.text).not.toMatch(/^X-Injected/m);

      const failed = await eventually(async () => {
        const s = await stateOf(bad);
        return s?.failedAt ? s : undefined;
      }, 10_000, 'the bad address given up');
      expect(failed.lastError).toBe('the recipient is not a valid address');
      expect(failed.attempts).toBe(1);
      expect(box.messages).toHaveLength(1);
    });

    it('in development without SMTP_URL, each mail is written to the log with its link', async () => {
      const config = configWith({});
      expect(config.mail).toBe('log');
      const logger = new MemoryLogger();
      const w = startOutboxWorker({ config, db, secret: SECRET, logger })!;
      cleanup.push(() => w.stop());
      const userId = randomUUID();
      const message = linkMail('reset_password', userId, 'ada@example.com', new Date());
      const row = await put(message, new Date(), userId);
      w.kick();

      await eventually(async () => (await stateOf(row))?.deliveredAt, 5_000, 'delivered_at');
      const link = `${APP_URL}/reset-password#token=${links.make(message.link!)}`;
      const line = logger.at('info').find((l) => l.message.includes(link));
      expect(line?.message).toMatch(/^mail to ada@example\.com \(not sent: no SMTP_URL in development\): Reset your Acme password/);
      expect(line?.details).toEqual({ mail: { to: 'ada@example.com', subject: 'Reset your Acme password', link } });
    });

    it('stop() waits for a delivery in flight, which records its outcome', async () => {
      const box = await mailbox();
      box.hold(true);
      const logger = new MemoryLogger();
      const w = worker(configWith({ SMTP_URL: box.url }), logger);
      const row = await put(notice('ada@example.com', new Date()), new Date());
      w.kick();
      await box.waitForHeld(1);

      let stopped = false;
      const stopping = w.stop().then(() => (stopped = true));
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(stopped).toBe(false);
      box.hold(false);
      await stopping;
      expect((await stateOf(row))?.deliveredAt).toBeTruthy();
      expect(box.messages).toHaveLength(1);
    });
  });
}

describe('the outbox worker without its database', () => {
  it('logs an outage once, waits it out, and says when it reads again', async () => {
    const logger = new MemoryLogger();
    let calls = 0;
    const outbox = {
      claim: async () => {
        calls++;
        if (calls <= 3) throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
        return [];
      },
      delivered: async () => {},
      retryLater: async () => {},
      failed: async () => {},
    };
    const deliverer = { kinds: ['mail'] as const, deliver: async () => {}, close: () => {} };
    const w = new OutboxWorker({ outbox, deliverer, logger, pollMs: 10 }).start();
    try {
      await eventually(() => calls >= 6, 5_000, 'six polls');
    } finally {
      await w.stop();
    }
    expect(logger.at('warn').map((l) => l.message)).toEqual(['outbox: cannot read the outbox; trying again every second']);
    expect(logger.at('warn')[0]!.details).toEqual({ err: { message: 'connection refused (connect ECONNREFUSED 127.0.0.1:5432)' } });
    expect(logger.at('info').map((l) => l.message)).toEqual(['outbox: reading the outbox again']);
  });
});
