import type { LinkPurpose } from './link-token.js';
import type { SecurityEventType } from './vocabulary.js';

/**
 * What the outbox holds: a mail to a user or a webhook to the operator, written in the
 * transaction of the change that caused it and delivered later by any node's worker.
 * Never a usable token: a mail with a link holds the link's inputs, and the worker derives
 * the token (src/core/link-token.ts) when it sends the mail.
 */
export type OutboxMessage = MailMessage | WebhookMessage;

export const MAIL_TEMPLATES = [
  /** sign-up: verify your address */
  'verify_email',
  /** forgot password: the reset link */
  'reset_password',
  /** email change: the link, to the new address */
  'change_email',
  /** email change requested: a notice to the old address */
  'email_change_requested',
  // notices (NOTIFY)
  'new_device',
  'session_reused',
  'password_changed',
  'email_changed',
  'factor_added',
  'factor_removed',
  /** too many wrong second-factor codes: verification is paused */
  'mfa_locked',
] as const;
export type MailTemplate = (typeof MAIL_TEMPLATES)[number];

/** What happened, as a notice tells it. Times are ISO strings (the payload is JSON). */
export interface NoticeEvent {
  type: SecurityEventType;
  at: string;
  ip: string | null;
  userAgent: string | null;
}

export interface MailMessage {
  kind: 'mail';
  template: MailTemplate;
  /** normalized address */
  to: string;
  /** the user's display name when the mail was written */
  name: string;
  /** a link's inputs (its token is derived at sending), and when it expires */
  link?: { purpose: LinkPurpose; userId: string; requestId: string; email: string; expiresAt: string };
  /** what the notice is about */
  event?: NoticeEvent;
  /** email change: the address it is changing to (told to the old address) */
  newEmail?: string;
}

/** A security event as webhooks carry it (SPEC §7): the body POSTed, signed per Standard Webhooks. */
export interface WebhookEvent {
  /** the security event's id, as a string */
  id: string;
  type: SecurityEventType;
  createdAt: string;
  /** null only for events about no user (an operator rotating keys) */
  userId: string | null;
  sessionId: string | null;
  ip: string | null;
  userAgent: string | null;
  /** grows with every event of a user, so a receiver can order them (the event's id) */
  sequence: number;
  /** admin actions only: who did what */
  detail?: Record<string, unknown>;
}

export interface WebhookMessage {
  kind: 'webhook';
  event: WebhookEvent;
}

/**
 * The notices a user can get by mail, by their NOTIFY name: the events that send one, and
 * its template. Register's verification and the links of forgot/reset/change are not
 * notices: NOTIFY cannot turn them off.
 */
export const NOTICES = {
  new_device: { new_device: 'new_device' },
  reuse: { reuse_detected: 'session_reused' },
  password: { password_changed: 'password_changed', password_reset: 'password_changed' },
  email: { email_changed: 'email_changed' },
  factors: { mfa_enabled: 'factor_added', passkey_added: 'factor_added', mfa_disabled: 'factor_removed', passkey_removed: 'factor_removed' },
} as const satisfies Record<string, Partial<Record<SecurityEventType, MailTemplate>>>;
export type NoticeName = keyof typeof NOTICES;
export const NOTICE_NAMES = Object.keys(NOTICES) as NoticeName[];

/** The notice template an event sends, if it sends one and its notice is on. */
export function noticeFor(type: SecurityEventType, on: ReadonlySet<NoticeName>): MailTemplate | undefined {
  for (const name of on) {
    const template = (NOTICES[name] as Partial<Record<SecurityEventType, MailTemplate>>)[type];
    if (template) return template;
  }
  return undefined;
}
