/**
 * The worker as buildApp wires it: a real app with SMTP_URL pointing at a real SMTP server.
 * Register, and the verification mail arrives by itself, with a link that works.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { register, startTestApp, type TestApp } from '../helpers/app.js';
import { startMailbox, type Mailbox } from '../helpers/mailbox.js';

describe('the app delivers its outbox', () => {
  let mailbox: Mailbox;
  let t: TestApp;

  beforeAll(async () => {
    mailbox = await startMailbox();
    t = await startTestApp('pglite', { SMTP_URL: mailbox.url, APP_URL: 'https://app.example.com', APP_NAME: 'Acme' });
  });
  afterAll(async () => {
    await t?.close();
    await mailbox?.stop();
  });

  it('register sends the verification mail within 5 s, and its link verifies the address', async () => {
    const started = Date.now();
    const { email, body } = await register(t.app);
    const mail = await mailbox.waitFor((m) => m.subject === 'Confirm your email address for Acme', 5_000);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(mail.to && !Array.isArray(mail.to) ? mail.to.value[0]?.address : undefined).toBe(email);
    expect(mail.text).toContain('https://app.example.com/verify-email#token=');

    const verified = await t.app.inject({ method: 'POST', url: '/auth/email/verify', payload: { token: mailbox.linkToken(mail) } });
    expect(verified.statusCode, verified.body).toBe(204);
    const me = await t.app.inject({ method: 'GET', url: '/auth/me', headers: { authorization: `Bearer ${body.accessToken}` } });
    expect(me.json().user).toMatchObject({ email, emailVerified: true });
  });
});
