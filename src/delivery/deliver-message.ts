import type { Kysely } from 'kysely';
import type { Config } from '../core/config.js';
import { LinkTokenCodec } from '../core/link-token.js';
import type { MailMessage, OutboxMessage } from '../core/outbox-message.js';
import { parseEmail } from '../core/user-fields.js';
import { OutboxStore, type ClaimedMessage } from '../store/outbox-store.js';
import type { Database } from '../store/schema.js';
import { DeliveryFailure } from './delivery-failure.js';
import { renderMail, type MailSite } from './mail-templates.js';
import { logTransport, smtpTransport, type MailTransport } from './mail-transport.js';
import { OutboxWorker, type DeliveryLogger } from './outbox-worker.js';
import { WebhookSender } from './webhook-sender.js';

/** What the worker hands each leased row to. */
export interface Deliverer {
  /** the kinds of message it can deliver: the worker leases no others */
  readonly kinds: readonly OutboxMessage['kind'][];
  /** Resolves once delivered; throws (ideally a DeliveryFailure) otherwise. `now`: this attempt's time. */
  deliver(row: ClaimedMessage, now: Date, signal: AbortSignal): Promise<void>;
  close(): void;
}

export interface MessageDeliveryOptions {
  mail?: { transport: MailTransport; site: MailSite; links: Pick<LinkTokenCodec, 'make'> };
  webhooks?: Pick<WebhookSender, 'send'>;
}

/**
 * Delivers an outbox row: a mail (its link's token derived now, rendered, sent to the
 * validated address) or a webhook (signed and POSTed).
 *
 * @example
 * const delivery = new MessageDelivery({ webhooks: new WebhookSender(url, secret) });
 * await delivery.deliver(row, clock(), AbortSignal.timeout(60_000));
 */
export class MessageDelivery implements Deliverer {
  readonly kinds: readonly OutboxMessage['kind'][];

  constructor(private readonly options: MessageDeliveryOptions) {
    this.kinds = [...(options.mail ? (['mail'] as const) : []), ...(options.webhooks ? (['webhook'] as const) : [])];
  }

  async deliver(row: ClaimedMessage, now: Date, signal: AbortSignal): Promise<void> {
    const message = row.message;
    if (message.kind === 'mail' && this.options.mail) return this.#mail(message, now, signal, this.options.mail);
    if (message.kind === 'webhook' && this.options.webhooks) return this.options.webhooks.send(row.id, message.event, now, signal);
    throw new DeliveryFailure(`this node does not deliver ${JSON.stringify(String((message as { kind?: unknown }).kind))} messages`);
  }

  async #mail(message: MailMessage, now: Date, signal: AbortSignal, mail: NonNullable<MessageDeliveryOptions['mail']>): Promise<void> {
    const to = parseEmail(message.to);
    if (!to.ok) throw new DeliveryFailure('the recipient is not a valid address', true);
    let token: string | undefined;
    if (message.link) {
      // A link that expired while the mail waited would only fail when opened: say so here instead.
      if (!(Date.parse(message.link.expiresAt) > now.getTime())) throw new DeliveryFailure('its link expired before it could be sent', true);
      try {
        token = mail.links.make(message.link);
      } catch {
        throw new DeliveryFailure('its link cannot be made (malformed ids)', true);
      }
    }
    const rendered = renderMail(message, mail.site, token);
    await mail.transport.send({ to: to.value, ...rendered }, signal);
  }

  close(): void {
    this.options.mail?.transport.close();
  }
}

/**
 * The delivery this configuration asks for: mails by SMTP (SMTP_URL) or to the log
 * (`mail: 'log'`, development only), webhooks when WEBHOOK_URL is set; undefined when neither.
 * `secret`: TESSERA_SECRET, from which links' tokens are derived.
 */
export function deliveryFor(config: Config, secret: string, logger: DeliveryLogger): MessageDelivery | undefined {
  const transport = config.mail === 'smtp' && config.smtpUrl ? smtpTransport(config.smtpUrl, config.mailFrom)
    : config.mail === 'log' ? logTransport(logger)
    : undefined;
  const webhooks = config.webhookUrl && config.webhookSecret ? new WebhookSender(config.webhookUrl, config.webhookSecret) : undefined;
  if (!transport && !webhooks) return undefined;
  return new MessageDelivery({
    ...(transport ? { mail: { transport, site: { appName: config.appName, appUrl: config.appUrl }, links: new LinkTokenCodec(secret) } } : {}),
    ...(webhooks ? { webhooks } : {}),
  });
}

/**
 * The outbox worker of this node, started, when the configuration delivers anything (mail not
 * `off`, or WEBHOOK_URL set); otherwise undefined. buildApp starts it and stops it on close.
 *
 * @example
 * const worker = startOutboxWorker({ config, db: store.db, secret, logger: app.log, clock });
 * // on close, before the database: await worker?.stop();
 */
export function startOutboxWorker(options: {
  config: Config; db: Kysely<Database>; secret: string; logger: DeliveryLogger; clock?: () => Date;
}): OutboxWorker | undefined {
  const deliverer = deliveryFor(options.config, options.secret, options.logger);
  if (!deliverer) return undefined;
  return new OutboxWorker({ outbox: new OutboxStore(options.db), deliverer, logger: options.logger, clock: options.clock }).start();
}
