/**
 * Email verification (SPEC §7): register sends a link; `POST /auth/email/verify {token}` → 204
 * sets `emailVerified`; `POST /auth/email/verify/resend` with a Bearer token or with `{email}`
 * → 202 always, limited per recipient (silently). Real SMTP server, each backend, frozen clock.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectProblem, register, type TestApp } from '../helpers/app.js';
import { FEATURE_BACKENDS } from '../helpers/backends.js';
import { startMailbox, type Mailbox } from '../helpers/mailbox.js';
import {
  APP_NAME, APP_URL, Inbox, SUBJECTS, bearer, claimsOf, eventTypes, expectAccepted, me, outboxDrained, outboxMails, startMailApp, verifyWith,
} from '../helpers/account-mail.js';

const MAIL_FROM = 'Acme Accounts <accounts@example.com>';

let mailbox: Mailbox;
let inbox: Inbox;
beforeAll(async () => {
  mailbox = await startMailbox();
  inbox = new Inbox(mailbox);
});
afterAll(() => mailbox?.stop());

describe.each(FEATURE_BACKENDS)('email verification on %s', (backend) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startMailApp(backend, mailbox, { MAIL_FROM });
  });
  afterAll(() => t?.close());

  const resendAs = (accessToken: string) =>
    t.app.inject({ method: 'POST', url: '/auth/email/verify/resend', headers: bearer(accessToken) });
  const resendFor = (email: string) => t.app.inject({ method: 'POST', url: '/auth/email/verify/resend', payload: { email } });
  const verified = async (accessToken: string) => (await me(t.app, accessToken)).json().user.emailVerified as boolean;
  /** From the database: access tokens do not outlive the clock moves below. */
  const verifiedInDb = async (accessToken: string) =>
    (await t.db.store.db.selectFrom('users').select('email_verified_at').where('id', '=', claimsOf(accessToken).sub).executeTakeFirstOrThrow())
      .email_verified_at !== null;

  it('register mails a link to APP_URL/verify-email from MAIL_FROM; the link verifies the address once', async () => {
    const { email, body } = await register(t.app);
    expect(await verified(body.accessToken)).toBe(false);

    const mail = await inbox.next(email, SUBJECTS.verify);
    expect(mail.from?.value).toEqual([{ name: 'Acme Accounts', address: 'accounts@example.com' }]);
    expect(mail.text).toContain(`${APP_URL}/verify-email#token=`);
    expect(mail.text).toContain(APP_NAME);
    expect(mail.html).toContain(`${APP_URL}/verify-email#token=`);
    const token = mailbox.linkToken(mail);

    const res = await verifyWith(t.app, token);
    expect(res.statusCode, res.body).toBe(204);
    expect(await verified(body.accessToken)).toBe(true);
    expect(await eventTypes(t, claimsOf(body.accessToken).sub)).toContain('email_verified');

    expectProblem(await verifyWith(t.app, token), 400, 'invalid_token');
    expect(await verified(body.accessToken)).toBe(true);
  });

  it('resend with a Bearer token → 202 and a new link; the earlier link stops working', async () => {
    const { email, body } = await register(t.app);
    const first = await inbox.token(email, SUBJECTS.verify);
    expectAccepted(await resendAs(body.accessToken));
    const second = await inbox.token(email, SUBJECTS.verify);
    expect(second).not.toBe(first);

    expectProblem(await verifyWith(t.app, first), 400, 'invalid_token');
    expect(await verified(body.accessToken)).toBe(false);
    expect((await verifyWith(t.app, second)).statusCode).toBe(204);
    expect(await verified(body.accessToken)).toBe(true);
  });

  it('resend with {email} and no token → 202, the same for an unknown or verified address, which get nothing', async () => {
    const { email: pending, body } = await register(t.app);
    const { email: done, body: doneBody } = await register(t.app);
    expect((await verifyWith(t.app, await inbox.token(done, SUBJECTS.verify))).statusCode).toBe(204);
    await inbox.next(pending, SUBJECTS.verify);
    const unknown = `nobody-${Math.random().toString(36).slice(2)}@example.com`;

    const answers = [await resendFor(unknown), await resendFor(done), await resendFor(` ${pending.toUpperCase()}`)];
    const shape = (res: (typeof answers)[number]) => {
      const { date: _date, ...headers } = res.headers;
      return { status: res.statusCode, headers, body: res.body };
    };
    for (const res of answers) {
      expectAccepted(res);
      expect(shape(res)).toEqual(shape(answers[0]!));
    }

    const token = await inbox.token(pending, SUBJECTS.verify);
    await outboxDrained(t);
    expect(inbox.all(unknown)).toEqual([]);
    expect(inbox.all(done, SUBJECTS.verify)).toHaveLength(1);
    expect((await outboxMails(t, claimsOf(doneBody.accessToken).sub)).map((m) => m.template)).toEqual(['verify_email']);
    expect((await verifyWith(t.app, token)).statusCode).toBe(204);
    expect(await verified(body.accessToken)).toBe(true);
  });

  it('resend with a token that is not a valid access token is 401 unauthorized', async () => {
    expectProblem(await resendAs('not-a-token'), 401, 'unauthorized');
  });

  it('a link expires EMAIL_VERIFICATION_TTL (24 h) after it was asked for; a resend gives one that works', async () => {
    const { email, body } = await register(t.app);
    const old = await inbox.token(email, SUBJECTS.verify);
    t.clock.advance(24 * 60 * 60);
    expectProblem(await verifyWith(t.app, old), 400, 'invalid_token');
    expect(await verifiedInDb(body.accessToken)).toBe(false);

    expectAccepted(await resendFor(email));
    expect((await verifyWith(t.app, await inbox.token(email, SUBJECTS.verify))).statusCode).toBe(204);
    expect(await verifiedInDb(body.accessToken)).toBe(true);
  });

  it('at most 5 resent links per recipient per hour; past that still 202, and silently no mail', async () => {
    const { email, body } = await register(t.app);
    await inbox.next(email, SUBJECTS.verify);
    for (let i = 0; i < 5; i++) {
      expectAccepted(await (i % 2 === 0 ? resendAs(body.accessToken) : resendFor(email)));
      await inbox.next(email, SUBJECTS.verify);
    }
    expectAccepted(await resendAs(body.accessToken));
    expectAccepted(await resendFor(email));
    await outboxDrained(t);
    expect(inbox.all(email, SUBJECTS.verify)).toHaveLength(6);
    expect(await outboxMails(t, claimsOf(body.accessToken).sub)).toHaveLength(6);

    // the window passes: links can be asked for again
    t.clock.advance(60 * 60);
    expectAccepted(await resendFor(email));
    expect((await verifyWith(t.app, await inbox.token(email, SUBJECTS.verify))).statusCode).toBe(204);
  });
});
