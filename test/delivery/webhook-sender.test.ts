import { createHmac, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import ts from 'typescript';
import { Webhook } from 'standardwebhooks';
import { afterEach, describe, expect, it } from 'vitest';
import { webhookSecretBytes } from '../../src/core/config.js';
import type { WebhookEvent } from '../../src/core/outbox-message.js';
import { DeliveryFailure, describeFailure } from '../../src/delivery/delivery-failure.js';
import { retryDelaySeconds } from '../../src/delivery/outbox-worker.js';
import { signWebhook, WebhookSender } from '../../src/delivery/webhook-sender.js';
import { freePort } from '../faults/helpers/free-port.js';
import { startWebhookReceiver, type WebhookReceiver } from './helpers.js';

const SECRET = `whsec_${randomBytes(32).toString('base64')}`;
const EVENT: WebhookEvent = {
  id: '7', type: 'login_succeeded', createdAt: '2026-11-22T12:00:00.000Z', userId: '11111111-1111-4111-8111-111111111111',
  sessionId: null, ip: '203.0.113.9', userAgent: 'curl/8.5.0', sequence: 7,
};

describe('webhook signatures (Standard Webhooks)', () => {
  it('match the official library, for a whsec_ secret', () => {
    const body = JSON.stringify(EVENT);
    const at = new Date('2026-11-22T12:00:05Z');
    const ours = signWebhook(webhookSecretBytes(SECRET), 'msg_abc', Math.floor(at.getTime() / 1000), body);
    expect(ours['webhook-signature']).toBe(new Webhook(SECRET).sign('msg_abc', at, body));
    expect(ours['webhook-timestamp']).toBe(String(at.getTime() / 1000));
  });

  it('use a secret without the prefix as its raw bytes', () => {
    const raw = 'a-raw-secret-of-at-least-twenty-four-bytes';
    const ours = signWebhook(webhookSecretBytes(raw), 'msg_1', 1_800_000_000, '{}');
    const expected = createHmac('sha256', Buffer.from(raw)).update('msg_1.1800000000.{}').digest('base64');
    expect(ours['webhook-signature']).toBe(`v1,${expected}`);
    expect(new Webhook(Buffer.from(raw), { format: 'raw' }).sign('msg_1', new Date(1_800_000_000_000), '{}')).toBe(`v1,${expected}`);
  });
});

describe('docs/webhooks.md', () => {
  it('its node:crypto verifier accepts Tessera\'s signatures and nothing else', async () => {
    const markdown = readFileSync(new URL('../../docs/webhooks.md', import.meta.url), 'utf8');
    const block = [...markdown.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!).find((code) => code.includes('function verifyTesseraWebhook'));
    expect(block, 'the node:crypto example').toBeDefined();
    const js = ts.transpileModule(block!, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } }).outputText;
    const dir = mkdtempSync(join(tmpdir(), 'tessera-docs-'));
    try {
      writeFileSync(join(dir, 'verify.mjs'), js);
      const { verifyTesseraWebhook } = (await import(pathToFileURL(join(dir, 'verify.mjs')).href)) as {
        verifyTesseraWebhook: (secret: string, headers: Record<string, string>, body: string) => boolean;
      };
      const body = JSON.stringify(EVENT);
      const now = Math.floor(Date.now() / 1000);
      const headers = { ...signWebhook(webhookSecretBytes(SECRET), 'msg_1', now, body) };
      expect(verifyTesseraWebhook(SECRET, headers, body)).toBe(true);
      expect(verifyTesseraWebhook(SECRET, { ...headers, 'webhook-signature': `v1,bm9wZQ== ${headers['webhook-signature']}` }, body)).toBe(true);
      expect(verifyTesseraWebhook(SECRET, headers, body.replace('203.0.113.9', '203.0.113.8'))).toBe(false);
      expect(verifyTesseraWebhook(`whsec_${randomBytes(32).toString('base64')}`, headers, body)).toBe(false);
      const old = signWebhook(webhookSecretBytes(SECRET), 'msg_1', now - 600, body);
      expect(verifyTesseraWebhook(SECRET, { ...old }, body)).toBe(false);
      const raw = 'a-raw-secret-of-at-least-twenty-four-bytes';
      expect(verifyTesseraWebhook(raw, { ...signWebhook(webhookSecretBytes(raw), 'msg_2', now, body) }, body)).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('WebhookSender', () => {
  let receiver: WebhookReceiver | undefined;
  afterEach(async () => {
    await receiver?.close();
    receiver = undefined;
  });

  it('POSTs the event as JSON, verifiable with the official library', async () => {
    receiver = await startWebhookReceiver([204]);
    await new WebhookSender(receiver.url, SECRET).send('0b1c', EVENT, new Date(), AbortSignal.timeout(5_000));
    const [hook] = receiver.received;
    expect(hook!.headers['webhook-id']).toBe('msg_0b1c');
    const headers = { 'webhook-id': String(hook!.headers['webhook-id']), 'webhook-timestamp': String(hook!.headers['webhook-timestamp']), 'webhook-signature': String(hook!.headers['webhook-signature']) };
    expect(new Webhook(SECRET).verify(hook!.body, headers)).toEqual(EVENT);
  });

  it.each([[301], [404], [500]])('an answer %i is not a delivery', async (status) => {
    receiver = await startWebhookReceiver([status]);
    const sending = new WebhookSender(receiver.url, SECRET).send('x', EVENT, new Date(), AbortSignal.timeout(5_000));
    await expect(sending).rejects.toThrow(new DeliveryFailure(`the webhook receiver answered ${status}`));
  });

  it('a receiver that is not there is a failure in words', async () => {
    const port = await freePort();
    const error = await new WebhookSender(`http://127.0.0.1:${port}/`, SECRET).send('x', EVENT, new Date(), AbortSignal.timeout(5_000)).catch((e: unknown) => e);
    expect(describeFailure(error)).toMatch(/^connection refused/);
  });

  it('gives up on a receiver that does not answer in time', async () => {
    const { createServer } = await import('node:http');
    const silent = createServer(() => {});
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const { port } = silent.address() as { port: number };
    try {
      const started = Date.now();
      const error = await new WebhookSender(`http://127.0.0.1:${port}/`, SECRET, 300).send('x', EVENT, new Date(), new AbortController().signal).catch((e: unknown) => e);
      expect(describeFailure(error)).toBe('no answer in time');
      expect(Date.now() - started).toBeLessThan(5_000);
    } finally {
      silent.closeAllConnections();
      silent.close();
    }
  });
});

describe('retries', () => {
  it('the first comes within 30 s; then they double, jittered in the upper half, up to an hour', () => {
    expect(retryDelaySeconds(1, () => 0)).toBe(5);
    expect(retryDelaySeconds(1, () => 0.999999)).toBeLessThanOrEqual(10);
    expect([1, 2, 3, 4, 5].map((n) => retryDelaySeconds(n, () => 1))).toEqual([10, 20, 40, 80, 160]);
    expect(retryDelaySeconds(30, () => 1)).toBe(3600);
    expect(retryDelaySeconds(30, () => 0)).toBe(1800);
    expect(retryDelaySeconds(5000, () => 1)).toBe(3600);
  });

  it('failures are told in words, never with the credentials of a URL', () => {
    expect(describeFailure(Object.assign(new Error('Invalid login'), { code: 'EAUTH', responseCode: 535, response: '535 5.7.8 Authentication failed' })))
      .toBe('the SMTP server refused the login: 535 5.7.8 Authentication failed');
    expect(describeFailure(new Error('could not reach smtp://user:hunter2@mail.example.com:587'))).toBe('failed (could not reach smtp://mail.example.com:587)');
    expect(describeFailure(new TypeError('fetch failed', { cause: Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9'), { code: 'ECONNREFUSED' }) })))
      .toBe('connection refused (connect ECONNREFUSED 127.0.0.1:9)');
    expect(describeFailure(new DOMException('The operation was aborted due to timeout', 'TimeoutError'))).toBe('no answer in time');
    expect(describeFailure('a string')).toBe('failed (a string)');
  });
});
