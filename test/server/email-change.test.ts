/**
 * Email change (SPEC §7, §11): `POST /auth/email {newEmail, currentPassword}` (Bearer) → 202, a
 * link to the new address and a notice to the old one; the change happens when the link is used
 * (`POST /auth/email/verify`), 409 `email_taken` if the address was taken meanwhile; sessions
 * stay; the old address is told. Real SMTP server, each backend, frozen clock.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectProblem, login, newEmail, PASSWORD, refresh, register, type TestApp } from '../helpers/app.js';
import { FEATURE_BACKENDS } from '../helpers/backends.js';
import { startMailbox, type Mailbox } from '../helpers/mailbox.js';
import {
  APP_URL, Inbox, SUBJECTS, changeEmail, claimsOf, eventTypes, expectAccepted, me, outboxMails, startMailApp, tokensOf, verifyWith,
} from '../helpers/account-mail.js';

let mailbox: Mailbox;
let inbox: Inbox;
beforeAll(async () => {
  mailbox = await startMailbox();
  inbox = new Inbox(mailbox);
});
afterAll(() => mailbox?.stop());

describe.each(FEATURE_BACKENDS)('email change on %s', (backend) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startMailApp(backend, mailbox);
  });
  afterAll(() => t?.close());

  const owner = async (email: string) =>
    (await t.db.store.db.selectFrom('user_emails').select('user_id').where('email', '=', email).executeTakeFirst())?.user_id;

  it('202: a link to the new address, a notice naming it to the old one; nothing changes until the link is used', async () => {
    const { email: old, body } = await register(t.app);
    const userId = claimsOf(body.accessToken).sub;
    const fresh = newEmail();
    expectAccepted(await changeEmail(t.app, body.accessToken, fresh, PASSWORD));

    const link = await inbox.next(fresh, SUBJECTS.changeLink);
    expect(link.text).toContain(`${APP_URL}/verify-email#token=`);
    const notice = await inbox.next(old, SUBJECTS.changeRequested);
    expect(notice.text).toContain(fresh);
    expect(await eventTypes(t, userId)).toContain('email_change_requested');

    // not yet
    expect((await me(t.app, body.accessToken)).json().user.email).toBe(old);
    tokensOf(await login(t.app, old));
    expectProblem(await login(t.app, fresh), 401, 'invalid_credentials');
    expect(await owner(fresh)).toBeUndefined();
  });

  it('the link moves the account to the new address, verified; sessions stay; the old address is released and told', async () => {
    const { email: old, body } = await register(t.app);
    const userId = claimsOf(body.accessToken).sub;
    const fresh = newEmail();
    expectAccepted(await changeEmail(t.app, body.accessToken, fresh, PASSWORD));
    const token = await inbox.token(fresh, SUBJECTS.changeLink);

    const res = await verifyWith(t.app, token);
    expect(res.statusCode, res.body).toBe(204);

    // the same session goes on, now with the new address
    expect((await me(t.app, body.accessToken)).json().user).toMatchObject({ id: userId, email: fresh, emailVerified: true });
    expect((await refresh(t.app, body.refreshToken!)).statusCode).toBe(200);

    tokensOf(await login(t.app, fresh));
    expectProblem(await login(t.app, old), 401, 'invalid_credentials');
    expect(await owner(fresh)).toBe(userId);
    expect(await owner(old)).toBeUndefined();
    expect(await eventTypes(t, userId)).toContain('email_changed');

    // the old address can sign up again; the link worked once
    await register(t.app, { email: old });
    expectProblem(await verifyWith(t.app, token), 400, 'invalid_token');

    // the old address is told, and learns where the account went (not "to this address")
    const told = await inbox.next(old, SUBJECTS.emailChanged);
    expect(inbox.all(fresh, SUBJECTS.emailChanged)).toEqual([]);
    expect(told.text).not.toContain('changed to this address');
    expect(told.text).toContain(fresh);
  });

  it('a wrong currentPassword is 403 invalid_credentials, and nothing is sent', async () => {
    const { body } = await register(t.app);
    const fresh = newEmail();
    expectProblem(await changeEmail(t.app, body.accessToken, fresh, 'not the password at all'), 403, 'invalid_credentials');
    expect((await outboxMails(t, claimsOf(body.accessToken).sub)).map((m) => m.template)).toEqual(['verify_email']);
    expect(await eventTypes(t, claimsOf(body.accessToken).sub)).not.toContain('email_change_requested');
  });

  it('an address that has an account is 409 email_taken, whatever its case', async () => {
    const { email: taken } = await register(t.app);
    const { body } = await register(t.app);
    expectProblem(await changeEmail(t.app, body.accessToken, taken, PASSWORD), 409, 'email_taken');
    expectProblem(await changeEmail(t.app, body.accessToken, taken.toUpperCase(), PASSWORD), 409, 'email_taken');
  });

  it('the current address, a malformed one, or no Bearer token: 400 invalid_request, 400, 401', async () => {
    const { email, body } = await register(t.app);
    expectProblem(await changeEmail(t.app, body.accessToken, email.toUpperCase(), PASSWORD), 400, 'invalid_request');
    expectProblem(await changeEmail(t.app, body.accessToken, 'not an address', PASSWORD), 400, 'invalid_request');
    expectProblem(
      await t.app.inject({ method: 'POST', url: '/auth/email', payload: { newEmail: newEmail(), currentPassword: PASSWORD } }),
      401, 'unauthorized',
    );
  });

  it('an address taken between the request and the link: 409 email_taken, and the account stays as it was', async () => {
    const { email: old, body } = await register(t.app);
    const fresh = newEmail();
    expectAccepted(await changeEmail(t.app, body.accessToken, fresh, PASSWORD));
    const token = await inbox.token(fresh, SUBJECTS.changeLink);
    const { body: other } = await register(t.app, { email: fresh });

    expectProblem(await verifyWith(t.app, token), 409, 'email_taken');
    expect((await me(t.app, body.accessToken)).json().user.email).toBe(old);
    tokensOf(await login(t.app, old));
    expect(await owner(fresh)).toBe(claimsOf(other.accessToken).sub);
    expect(await owner(old)).toBe(claimsOf(body.accessToken).sub);
  });

  it('a newer request replaces the earlier link; a link expires after EMAIL_VERIFICATION_TTL', async () => {
    const { body } = await register(t.app);
    const first = newEmail();
    const second = newEmail();
    expectAccepted(await changeEmail(t.app, body.accessToken, first, PASSWORD));
    const firstToken = await inbox.token(first, SUBJECTS.changeLink);
    expectAccepted(await changeEmail(t.app, body.accessToken, second, PASSWORD));
    const secondToken = await inbox.token(second, SUBJECTS.changeLink);
    expectProblem(await verifyWith(t.app, firstToken), 400, 'invalid_token');

    t.clock.advance(24 * 60 * 60);
    expectProblem(await verifyWith(t.app, secondToken), 400, 'invalid_token');
    expect(await owner(first)).toBeUndefined();
    expect(await owner(second)).toBeUndefined();
  });
});
