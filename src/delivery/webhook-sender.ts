import { createHmac } from 'node:crypto';
import { webhookSecretBytes } from '../core/config.js';
import type { WebhookEvent } from '../core/outbox-message.js';
import { DeliveryFailure } from './delivery-failure.js';

/** How long a receiver gets to answer one delivery. */
export const WEBHOOK_TIMEOUT_MS = 10_000;

/** The headers of one delivery, as the Standard Webhooks specification names them. */
export interface WebhookHeaders {
  'webhook-id': string;
  'webhook-timestamp': string;
  'webhook-signature': string;
}

/**
 * The Standard Webhooks signature: `v1,` + base64(HMAC-SHA256(key, id + "." + timestamp + "." + body)).
 * `key`: the secret's bytes (`webhookSecretBytes`: `whsec_` + base64 decoded, else raw).
 *
 * @example
 * const headers = signWebhook(webhookSecretBytes(secret), 'msg_0b1c…', 1767225600, body);
 */
export function signWebhook(key: Buffer, id: string, timestamp: number, body: string): WebhookHeaders {
  const mac = createHmac('sha256', key).update(`${id}.${timestamp}.${body}`, 'utf8').digest('base64');
  return { 'webhook-id': id, 'webhook-timestamp': String(timestamp), 'webhook-signature': `v1,${mac}` };
}

/** The `webhook-id` of an outbox row: the same for every attempt, so a receiver can drop repeats. */
export const webhookId = (outboxId: string) => `msg_${outboxId}`;

/**
 * POSTs security events to WEBHOOK_URL as JSON, signed per Standard Webhooks. Each attempt is
 * signed anew (its own `webhook-timestamp`) under the same `webhook-id`. Any 2xx is delivered;
 * anything else, a redirect included (never followed), a timeout or a network error, throws
 * and the worker tries again later.
 *
 * @example
 * const sender = new WebhookSender(config.webhookUrl, config.webhookSecret);
 * await sender.send(row.id, event, clock(), AbortSignal.timeout(60_000));
 */
export class WebhookSender {
  readonly #key: Buffer;

  constructor(readonly url: string, secret: string, readonly timeoutMs = WEBHOOK_TIMEOUT_MS) {
    this.#key = webhookSecretBytes(secret);
  }

  async send(outboxId: string, event: WebhookEvent, now: Date, signal: AbortSignal): Promise<void> {
    const body = JSON.stringify(event);
    const headers = signWebhook(this.#key, webhookId(outboxId), Math.floor(now.getTime() / 1000), body);
    const response = await fetch(this.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'user-agent': 'Tessera-Webhooks', ...headers },
      body,
      redirect: 'manual',
      signal: AbortSignal.any([signal, AbortSignal.timeout(this.timeoutMs)]),
    });
    // The answer's body is not ours to read or keep: free the connection.
    await response.body?.cancel().catch(() => {});
    if (response.status < 200 || response.status > 299) {
      throw new DeliveryFailure(`the webhook receiver answered ${response.status}`);
    }
  }
}
