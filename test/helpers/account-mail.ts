/**
 * What the SPEC §7 suites share (account recovery, email change, notices, own account): an app
 * whose mails go to a real SMTP server (test/helpers/mailbox.ts), a reader of the mails one
 * address received, bounded waits on the outbox, and the database rows the tests assert on.
 */
import type { LightMyRequestResponse } from 'fastify';
import { expect } from 'vitest';
import type { Config } from '../../src/core/config.js';
import { LinkTokenCodec, type LinkPurpose } from '../../src/core/link-token.js';
import type { App } from '../../src/server/context.js';
import { startTestApp, TEST_SECRET, type TestApp, type TestAppOptions, type TokenBody } from './app.js';
import type { Backend } from './backends.js';
import type { Mailbox, ParsedMail } from './mailbox.js';

export const APP_NAME = 'Acme';
export const APP_URL = 'https://app.example.com';

/** The subjects of SPEC §7's mails with APP_NAME = Acme (src/delivery/mail-templates.ts). */
export const SUBJECTS = {
  verify: `Confirm your email address for ${APP_NAME}`,
  reset: `Reset your ${APP_NAME} password`,
  changeLink: `Confirm your new email address for ${APP_NAME}`,
  changeRequested: `The email address of your ${APP_NAME} account is about to change`,
  emailChanged: `The email address of your ${APP_NAME} account was changed`,
  newDevice: `New sign-in to your ${APP_NAME} account`,
  reused: `A session of your ${APP_NAME} account was ended`,
  passwordChanged: `Your ${APP_NAME} password was changed`,
  passwordReset: `Your ${APP_NAME} password was reset`,
} as const;

/** The app with SMTP_URL at `mailbox`, APP_NAME and APP_URL set; room for many sign-ups from one IP. */
export function startMailApp(
  backend: Backend, mailbox: Mailbox, env: Record<string, string> = {}, rateLimits?: Partial<Config['rateLimits']>, options?: TestAppOptions,
): Promise<TestApp> {
  return startTestApp(
    backend,
    { SMTP_URL: mailbox.url, APP_NAME, APP_URL, ...env },
    { registerPerIp: 100_000, loginAttemptsPerIp: 100_000, forgotPasswordPerIp: 100_000, ...rateLimits },
    options,
  );
}

/** The one address a mail was sent to (every mail of Tessera has exactly one). */
export function recipients(mail: ParsedMail): string[] {
  const to = mail.to === undefined ? [] : Array.isArray(mail.to) ? mail.to : [mail.to];
  return to.flatMap((a) => a.value.map((v) => v.address ?? ''));
}

/**
 * Reads a mailbox address by address: `next` waits for the next mail to an address (with a
 * subject, if given) that no earlier call returned.
 */
export class Inbox {
  readonly #taken = new Set<ParsedMail>();
  constructor(readonly mailbox: Mailbox) {}

  /** Every mail that arrived for `email` so far (optionally with this subject). */
  all(email: string, subject?: string): ParsedMail[] {
    return this.mailbox.messages.filter((m) => recipients(m).includes(email.toLowerCase()) && (subject === undefined || m.subject === subject));
  }

  async next(email: string, subject?: string, timeoutMs = 10_000): Promise<ParsedMail> {
    const mail = await this.mailbox.waitFor(
      (m) => !this.#taken.has(m) && recipients(m).includes(email.toLowerCase()) && (subject === undefined || m.subject === subject),
      timeoutMs,
    );
    this.#taken.add(mail);
    return mail;
  }

  /** The token of the next mail to `email` with `subject`. */
  async token(email: string, subject: string): Promise<string> {
    return this.mailbox.linkToken(await this.next(email, subject));
  }
}

/** Resolves with `check()`'s first truthy value, polled every 20 ms; rejects after `timeoutMs`. */
export async function eventually<T>(check: () => Promise<T | undefined | false | null> | T | undefined | false | null, timeoutMs = 10_000, what = 'the condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

export interface OutboxMail {
  template: string;
  to: string;
  delivered: boolean;
}

/** The mails in the outbox for a user, oldest first. */
export async function outboxMails(t: TestApp, userId: string): Promise<OutboxMail[]> {
  const rows = await t.db.store.db
    .selectFrom('outbox')
    .select(['payload', 'delivered_at', 'created_at'])
    .where('user_id', '=', userId)
    .where('kind', '=', 'mail')
    .orderBy('created_at')
    .execute();
  return rows.map((r) => {
    const payload = (typeof r.payload === 'string' ? JSON.parse(r.payload) : r.payload) as { template: string; to: string };
    return { template: payload.template, to: payload.to, delivered: r.delivered_at !== null };
  });
}

/**
 * Waits until every row of the outbox is delivered or failed (bounded): after it, every mail
 * written so far is in the mailbox (the SMTP server stores a mail before it says 250).
 */
export async function outboxDrained(t: TestApp, timeoutMs = 10_000): Promise<void> {
  await eventually(async () => {
    const row = await t.db.store.db
      .selectFrom('outbox')
      .select((eb) => eb.fn.countAll<string>().as('n'))
      .where('delivered_at', 'is', null)
      .where('failed_at', 'is', null)
      .executeTakeFirstOrThrow();
    return Number(row.n) === 0;
  }, timeoutMs, 'the outbox draining');
}

/** The security events of a user, oldest first, as stored. */
export function eventRows(t: TestApp, userId: string) {
  return t.db.store.db
    .selectFrom('security_events')
    .select(['id', 'type', 'session_id', 'ip', 'user_agent', 'created_at'])
    .where('user_id', '=', userId)
    .orderBy('id')
    .execute();
}

export const eventTypes = async (t: TestApp, userId: string) => (await eventRows(t, userId)).map((e) => e.type);

/**
 * The token of a user's outstanding link, derived from its row as the delivery worker does (for
 * races that must not wait for mail); undefined if there is none.
 */
export async function outstandingLinkToken(t: TestApp, userId: string, purpose: LinkPurpose): Promise<string | undefined> {
  const row = await t.db.store.db
    .selectFrom('account_tokens')
    .select(['request_id', 'email'])
    .where('user_id', '=', userId)
    .where('purpose', '=', purpose)
    .executeTakeFirst();
  return row && new LinkTokenCodec(TEST_SECRET).make({ purpose, userId, requestId: row.request_id, email: row.email });
}

export function claimsOf(accessToken: string): { sub: string; sid: string; iat: number; exp: number } & Record<string, unknown> {
  return JSON.parse(Buffer.from(accessToken.split('.')[1]!, 'base64url').toString('utf8'));
}

export const bearer = (accessToken: string) => ({ authorization: `Bearer ${accessToken}` });

export function tokensOf(res: LightMyRequestResponse, status = 200): TokenBody & { refreshToken: string } {
  expect(res.statusCode, res.body).toBe(status);
  return res.json() as TokenBody & { refreshToken: string };
}

/** The user as GET /auth/me returns it, or the failed response. */
export async function me(app: App, accessToken: string) {
  return app.inject({ method: 'GET', url: '/auth/me', headers: bearer(accessToken) });
}

export const forgot = (app: App, email: string, remoteAddress?: string) =>
  app.inject({ method: 'POST', url: '/auth/password/forgot', payload: { email }, ...(remoteAddress ? { remoteAddress } : {}) });

export const resetWith = (app: App, token: string, newPassword: string) =>
  app.inject({ method: 'POST', url: '/auth/password/reset', payload: { token, newPassword } });

export const verifyWith = (app: App, token: string) => app.inject({ method: 'POST', url: '/auth/email/verify', payload: { token } });

export const changeEmail = (app: App, accessToken: string, newEmail: string, currentPassword: string) =>
  app.inject({ method: 'POST', url: '/auth/email', headers: bearer(accessToken), payload: { newEmail, currentPassword } });

/** 202 with nothing in the body (empty, or JSON `null`): the answer of every "a mail is on its way, or not" route. */
export function expectAccepted(res: LightMyRequestResponse) {
  expect(res.statusCode, res.body).toBe(202);
  expect(['', 'null']).toContain(res.body);
}
