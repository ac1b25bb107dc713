import { randomUUID } from 'node:crypto';
import type { Config } from '../core/config.js';
import { noticeFor, type MailMessage, type NoticeName, type OutboxMessage } from '../core/outbox-message.js';
import type { RequestMeta, SecurityEventType } from '../core/vocabulary.js';
import type { Executor } from './transaction.js';

/** What recording an event also writes to the outbox. */
export interface OutboxPolicy {
  /** WEBHOOK_URL is set: every event becomes a webhook. */
  webhooks: boolean;
  /** Email features are on: events of the `notify` notices mail the user. */
  mail: boolean;
  notify: readonly NoticeName[];
}

export const NO_OUTBOX: OutboxPolicy = Object.freeze({ webhooks: false, mail: false, notify: [] });

/** The policy a configuration asks for. */
export function outboxPolicy(config: Pick<Config, 'webhookUrl' | 'mail' | 'notify'>): OutboxPolicy {
  return Object.freeze({ webhooks: config.webhookUrl !== undefined, mail: config.mail !== 'off', notify: config.notify });
}

/** The user id of events about no user (an operator rotating keys): the nil UUID, never a user's. */
export const NO_USER_ID = '00000000-0000-0000-0000-000000000000';

/**
 * The security log, and what each event sends: its webhook and the notice it mails the user,
 * written with it, so either all of them are there or none. A caller passes its
 * transaction when the event belongs to a change (the change, its event and its mails commit
 * together); `writesMore` says when a lone event needs one.
 */
export class EventLog {
  readonly #notify: ReadonlySet<NoticeName>;

  constructor(readonly policy: OutboxPolicy = NO_OUTBOX) {
    this.#notify = new Set(policy.mail ? policy.notify : []);
  }

  /** Does recording `type` write more than its row (a webhook, a notice)? */
  writesMore(type: SecurityEventType): boolean {
    return this.policy.webhooks || noticeFor(type, this.#notify) !== undefined;
  }

  async record(
    db: Executor, userId: string, sessionId: string | null, type: SecurityEventType, meta: RequestMeta, now: Date,
    detail?: Record<string, unknown>,
    /** What the notice mail says beyond the event (an email change's new address); never stored with the event. */
    notice?: Pick<MailMessage, 'newEmail'>,
  ): Promise<void> {
    const row = {
      user_id: userId, session_id: sessionId, type, ip: meta.ip, user_agent: meta.userAgent, created_at: now,
      ...(detail ? { detail: JSON.stringify(detail) } : {}),
    };
    const template = noticeFor(type, this.#notify);
    if (!this.policy.webhooks && !template) {
      await db.insertInto('security_events').values(row).execute();
      return;
    }
    const { id } = await db.insertInto('security_events').values(row).returning('id').executeTakeFirstOrThrow();
    if (this.policy.webhooks) {
      await enqueue(db, userId, {
        kind: 'webhook',
        event: {
          id: String(id), type, createdAt: now.toISOString(), userId: userId === NO_USER_ID ? null : userId, sessionId,
          ip: meta.ip, userAgent: meta.userAgent, sequence: Number(id), ...(detail ? { detail } : {}),
        },
      }, now);
    }
    if (template) {
      const event = { type, at: now.toISOString(), ip: meta.ip, userAgent: meta.userAgent };
      await this.#mailNotice(db, userId, { template, event, ...notice }, now);
    }
  }

  async #mailNotice(db: Executor, userId: string, mail: Pick<MailMessage, 'template' | 'event' | 'newEmail'>, now: Date) {
    const user = await db.selectFrom('users').select(['email', 'name']).where('id', '=', userId).executeTakeFirst();
    if (user) await enqueue(db, userId, { kind: 'mail', ...mail, to: user.email, name: user.name }, now);
  }
}

/** Puts a message in the outbox, to be delivered as soon as a worker picks it up. */
export async function enqueue(db: Executor, userId: string, message: OutboxMessage, now: Date): Promise<void> {
  await db
    .insertInto('outbox')
    .values({ user_id: userId, id: randomUUID(), kind: message.kind, payload: JSON.stringify(message), created_at: now, deliver_after: now })
    .execute();
}
