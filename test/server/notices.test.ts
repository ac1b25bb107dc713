/**
 * Notifications and webhooks (SPEC §7). Notices mailed to the user (each can be turned off with
 * NOTIFY): a sign-in from a new device (a browser is its `tessera_device` cookie, an app its
 * device name and network), a session ended for reuse, password changed or reset, email changed.
 * Webhooks: every security event POSTed to WEBHOOK_URL, signed as Standard Webhooks says (checked
 * here with the `standardwebhooks` package), with a `sequence` that grows per user.
 *
 * A real SMTP server and a real HTTP receiver. The frozen clock starts at the real time, so
 * the receiver's signature check (5 minutes of tolerance) accepts the timestamps.
 */
import { randomBytes } from 'node:crypto';
import type { LightMyRequestResponse } from 'fastify';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WebhookEvent } from '../../src/core/outbox-message.js';
import { expectProblem, login, newEmail, PASSWORD, refresh, register, type TestApp, type TokenBody } from '../helpers/app.js';
import { FEATURE_BACKENDS } from '../helpers/backends.js';
import { startMailbox, type Mailbox } from '../helpers/mailbox.js';
import { startWebhookReceiver, type ReceivedHook, type WebhookReceiver } from '../delivery/helpers.js';
import {
  Inbox, SUBJECTS, bearer, changeEmail, claimsOf, eventRows, eventTypes, eventually, expectAccepted, forgot, outboxMails, outstandingLinkToken,
  resetWith, startMailApp, tokensOf, verifyWith,
} from '../helpers/account-mail.js';

const FIREFOX_WINDOWS = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0';
const SAFARI_IOS = 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1';
/** The same browser on the same system, a later version: the same device name. */
const SAFARI_IOS_NEWER = 'Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1';
const NEW_PASSWORD = 'another passphrase entirely';
const WEBHOOK_SECRET = `whsec_${randomBytes(32).toString('base64')}`;

let mailbox: Mailbox;
let inbox: Inbox;
let hooks: WebhookReceiver;
beforeAll(async () => {
  mailbox = await startMailbox();
  inbox = new Inbox(mailbox);
  hooks = await startWebhookReceiver();
});
afterAll(async () => {
  await hooks?.close();
  await mailbox?.stop();
});

const deviceCookieOf = (res: LightMyRequestResponse) => res.cookies.find((c) => c.name === 'tessera_device');
const noticesOf = async (t: TestApp, userId: string, template: string) => (await outboxMails(t, userId)).filter((m) => m.template === template);
const userIdOf = (body: TokenBody) => claimsOf(body.accessToken).sub;

/** Login with a refresh token of a session gone stale: rotates twice, then presents the first token again. */
async function reuse(t: TestApp, body: TokenBody) {
  const second = tokensOf(await refresh(t.app, body.refreshToken!));
  tokensOf(await refresh(t.app, second.refreshToken));
  expectProblem(await refresh(t.app, body.refreshToken!), 401, 'refresh_token_reused');
}

async function changePassword(t: TestApp, body: TokenBody) {
  const res = await t.app.inject({
    method: 'POST', url: '/auth/password', headers: bearer(body.accessToken), payload: { currentPassword: PASSWORD, newPassword: NEW_PASSWORD },
  });
  expect(res.statusCode, res.body).toBe(204);
}

describe.each(FEATURE_BACKENDS)('notices and webhooks on %s', (backend) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startMailApp(backend, mailbox, { WEBHOOK_URL: hooks.url, WEBHOOK_SECRET }, undefined, { clockStart: Date.now() });
  });
  afterAll(() => t?.close());

  /** The frozen clock never runs behind real time by more than the webhook tolerance allows. */
  const catchUp = () => {
    t.clock.time = Math.max(t.clock.time, Date.now());
  };

  describe('sign-in from a new device', () => {
    it('a browser (cookie transport) is its tessera_device cookie: with it, known; without it, new — an event and a notice', async () => {
      catchUp();
      const email = newEmail();
      const registered = await t.app.inject({
        method: 'POST', url: '/auth/register', headers: { 'user-agent': FIREFOX_WINDOWS }, payload: { email, password: PASSWORD, transport: 'cookie' },
      });
      expect(registered.statusCode, registered.body).toBe(201);
      const userId = userIdOf(registered.json());
      const device = deviceCookieOf(registered);
      expect(device).toMatchObject({ httpOnly: true, path: '/auth', maxAge: 400 * 24 * 60 * 60 });

      // the same browser, signing in again: no news
      const sameBrowser = await t.app.inject({
        method: 'POST', url: '/auth/login', headers: { 'user-agent': FIREFOX_WINDOWS }, cookies: { tessera_device: device!.value },
        payload: { email, password: PASSWORD, transport: 'cookie' },
      });
      expect(sameBrowser.statusCode, sameBrowser.body).toBe(200);
      expect(deviceCookieOf(sameBrowser)).toBeUndefined();
      expect(await eventTypes(t, userId)).not.toContain('new_device');

      // another browser (same agent, no cookie): new
      const otherBrowser = await t.app.inject({
        method: 'POST', url: '/auth/login', headers: { 'user-agent': FIREFOX_WINDOWS }, remoteAddress: '203.0.113.9',
        payload: { email, password: PASSWORD, transport: 'cookie' },
      });
      expect(otherBrowser.statusCode, otherBrowser.body).toBe(200);
      const second = deviceCookieOf(otherBrowser);
      expect(second?.value).toBeTruthy();
      expect(second?.value).not.toBe(device!.value);
      expect((await eventTypes(t, userId)).filter((e) => e === 'new_device')).toHaveLength(1);

      const notice = await inbox.next(email, SUBJECTS.newDevice);
      expect(notice.text).toContain('Firefox on Windows');
      expect(notice.text).toContain('203.0.113.9');

      // and that browser is known from now on
      const again = await t.app.inject({
        method: 'POST', url: '/auth/login', headers: { 'user-agent': FIREFOX_WINDOWS }, cookies: { tessera_device: second!.value },
        payload: { email, password: PASSWORD, transport: 'cookie' },
      });
      expect(again.statusCode).toBe(200);
      expect(await noticesOf(t, userId, 'new_device')).toHaveLength(1);
    });

    it('an app (body transport) is its device name and network: a new name or another network is new', async () => {
      catchUp();
      const email = newEmail();
      const { body } = await register(t.app, { email, headers: { 'user-agent': SAFARI_IOS } });
      const userId = userIdOf(body);
      const signIn = async (userAgent: string, remoteAddress: string) => {
        const res = await t.app.inject({
          method: 'POST', url: '/auth/login', headers: { 'user-agent': userAgent }, remoteAddress, payload: { email, password: PASSWORD, transport: 'body' },
        });
        expect(res.statusCode, res.body).toBe(200);
        expect(deviceCookieOf(res)).toBeUndefined();
        return (await noticesOf(t, userId, 'new_device')).length;
      };
      // registered from 127.0.0.1 with Safari on iOS
      expect(await signIn(SAFARI_IOS, '127.0.0.1')).toBe(0);
      expect(await signIn(SAFARI_IOS_NEWER, '127.0.0.200')).toBe(0); // same name, same /24
      expect(await signIn(FIREFOX_WINDOWS, '127.0.0.1')).toBe(1); // another device name
      expect(await signIn(SAFARI_IOS, '198.51.100.20')).toBe(2); // another network
      expect(await signIn(SAFARI_IOS, '198.51.100.77')).toBe(2); // that network, now known
      expect((await eventTypes(t, userId)).filter((e) => e === 'new_device')).toHaveLength(2);
      await inbox.next(email, SUBJECTS.newDevice);
      await inbox.next(email, SUBJECTS.newDevice);
    });

    it('the first device of an account is no news', async () => {
      const { body } = await register(t.app);
      expect(await eventTypes(t, userIdOf(body))).not.toContain('new_device');
      expect(await noticesOf(t, userIdOf(body), 'new_device')).toEqual([]);
    });
  });

  it('a session ended because its refresh token was reused: the owner is told', async () => {
    catchUp();
    const { email, body } = await register(t.app);
    await reuse(t, body);
    expect(await eventTypes(t, userIdOf(body))).toContain('reuse_detected');
    const notice = await inbox.next(email, SUBJECTS.reused);
    expect(notice.text).toContain('127.0.0.1');
  });

  it('password changed, and password reset: the owner is told each', async () => {
    catchUp();
    const { email, body } = await register(t.app);
    await changePassword(t, body);
    await inbox.next(email, SUBJECTS.passwordChanged);

    expectAccepted(await forgot(t.app, email));
    const token = await eventually(() => outstandingLinkToken(t, userIdOf(body), 'reset_password'), 10_000, 'the reset request');
    expect((await resetWith(t.app, token, `${NEW_PASSWORD} 2`)).statusCode).toBe(204);
    await inbox.next(email, SUBJECTS.passwordReset);
    expect((await noticesOf(t, userIdOf(body), 'password_changed')).map((m) => m.to)).toEqual([email, email]);
  });

  it('email changed: the old address is told, not the new one', async () => {
    catchUp();
    const { email: old, body } = await register(t.app);
    const fresh = newEmail();
    expectAccepted(await changeEmail(t.app, body.accessToken, fresh, PASSWORD));
    expect((await verifyWith(t.app, await inbox.token(fresh, SUBJECTS.changeLink))).statusCode).toBe(204);
    await inbox.next(old, SUBJECTS.emailChanged);
    expect((await noticesOf(t, userIdOf(body), 'email_changed')).map((m) => m.to)).toEqual([old]);
  });

  describe('webhooks', () => {
    const verifier = new Webhook(WEBHOOK_SECRET);
    const hooksOf = (userId: string) => hooks.received.filter((h) => (JSON.parse(h.body) as WebhookEvent).userId === userId);
    const headersOf = (hook: ReceivedHook) =>
      Object.fromEntries(['webhook-id', 'webhook-timestamp', 'webhook-signature'].map((h) => [h, String(hook.headers[h])]));

    /** Waits for a webhook of every event the user has in the database, and checks each against its row. */
    async function expectEveryEventDelivered(userId: string, options: { erased?: boolean } = {}) {
      const events = await eventRows(t, userId);
      await eventually(() => new Set(hooksOf(userId).map((h) => JSON.parse(h.body).id)).size >= events.length, 15_000, `${events.length} webhooks`);
      const byId = new Map<string, WebhookEvent>();
      for (const hook of hooksOf(userId)) {
        // signature, id and timestamp as the Standard Webhooks specification says; throws if not
        const payload = verifier.verify(hook.body, headersOf(hook)) as WebhookEvent;
        expect(String(hook.headers['webhook-id'])).toMatch(/^msg_[A-Za-z0-9_-]+$/);
        expect(String(hook.headers['webhook-signature'])).toMatch(/^v1,[A-Za-z0-9+/]+=*$/);
        expect(hook.headers['content-type']).toMatch(/^application\/json/);
        byId.set(payload.id, payload);
      }
      const delivered = events.map((e) => byId.get(String(e.id)));
      delivered.forEach((payload, i) => {
        const e = events[i]!;
        expect(payload, `the webhook of ${e.type}`).toEqual({
          id: String(e.id), type: e.type, createdAt: e.created_at.toISOString(), userId, sessionId: e.session_id,
          // a deleted account's events lost their IP and agent after their webhooks went out
          ip: options.erased ? expect.toBeOneOf([null, expect.any(String)]) : e.ip,
          userAgent: options.erased ? expect.toBeOneOf([null, expect.any(String)]) : e.user_agent,
          sequence: expect.any(Number),
        });
      });
      // in the order the events happened, `sequence` only grows
      const sequences = delivered.map((p) => p!.sequence);
      for (let i = 1; i < sequences.length; i++) expect(sequences[i]).toBeGreaterThan(sequences[i - 1]!);
      return events.map((e) => e.type);
    }

    it('every security event of an account is POSTed, signed, with a sequence that grows', async () => {
      catchUp();
      const email = newEmail();
      const { body: first } = await register(t.app, { email, headers: { 'user-agent': SAFARI_IOS } });
      const userId = userIdOf(first);
      expect((await verifyWith(t.app, await inbox.token(email, SUBJECTS.verify))).statusCode).toBe(204);
      const second = tokensOf(await login(t.app, email, { headers: { 'user-agent': FIREFOX_WINDOWS } }));
      expectProblem(await login(t.app, email, { password: 'not the password at all' }), 401, 'invalid_credentials');
      expect((await t.app.inject({ method: 'PATCH', url: '/auth/me', headers: bearer(first.accessToken), payload: { name: 'Ada' } })).statusCode).toBe(200);
      const third = tokensOf(await login(t.app, email));
      expect((await t.app.inject({ method: 'DELETE', url: `/auth/sessions/${claimsOf(third.accessToken).sid}`, headers: bearer(first.accessToken) })).statusCode).toBe(204);
      expect((await t.app.inject({ method: 'POST', url: '/auth/logout', payload: { refreshToken: second.refreshToken } })).statusCode).toBe(204);
      const stolen = tokensOf(await login(t.app, email));
      await reuse(t, stolen);
      tokensOf(await login(t.app, email));
      expect((await t.app.inject({ method: 'POST', url: '/auth/logout', headers: bearer(first.accessToken), payload: { refreshToken: first.refreshToken, scope: 'others' } })).statusCode).toBe(204);
      await changePassword(t, first);
      const fresh = newEmail();
      expectAccepted(await changeEmail(t.app, first.accessToken, fresh, NEW_PASSWORD));
      expect((await verifyWith(t.app, await inbox.token(fresh, SUBJECTS.changeLink))).statusCode).toBe(204);
      expectAccepted(await forgot(t.app, fresh));
      expect((await resetWith(t.app, await inbox.token(fresh, SUBJECTS.reset), PASSWORD)).statusCode).toBe(204);

      const types = await expectEveryEventDelivered(userId);
      expect(new Set(types)).toEqual(new Set([
        'registered', 'email_verified', 'login_succeeded', 'new_device', 'login_failed', 'profile_updated', 'session_revoked', 'logout',
        'reuse_detected', 'sessions_revoked', 'password_changed', 'email_change_requested', 'email_changed', 'password_reset_requested',
        'password_reset',
      ]));
    }, 60_000);

    it('deleting an account is an event too: account_deleted is POSTed', async () => {
      catchUp();
      const { body } = await register(t.app);
      const res = await t.app.inject({ method: 'DELETE', url: '/auth/me', headers: bearer(body.accessToken), payload: { currentPassword: PASSWORD } });
      expect(res.statusCode, res.body).toBe(204);
      const types = await expectEveryEventDelivered(userIdOf(body), { erased: true });
      expect(types).toEqual(['registered', 'account_deleted']);
    });
  });
});

describe('NOTIFY chooses the notices', () => {
  // Which notices an event mails is decided where it is recorded, the same on every backend.
  const backend = FEATURE_BACKENDS.includes('postgres') ? 'postgres' : 'pglite';

  /** Runs every kind of notice for a new account; answers the notice templates it wrote and the mails' templates. */
  async function everyNotice(t: TestApp) {
    const email = newEmail();
    const { body } = await register(t.app, { email, headers: { 'user-agent': SAFARI_IOS } });
    const userId = userIdOf(body);
    tokensOf(await login(t.app, email, { headers: { 'user-agent': FIREFOX_WINDOWS } })); // new device
    await reuse(t, tokensOf(await login(t.app, email, { headers: { 'user-agent': SAFARI_IOS } })));
    await changePassword(t, body);
    expectAccepted(await forgot(t.app, email));
    const token = await eventually(() => outstandingLinkToken(t, userId, 'reset_password'), 10_000, 'the reset request');
    expect((await resetWith(t.app, token, PASSWORD)).statusCode).toBe(204);
    const fresh = newEmail();
    const signedIn = tokensOf(await login(t.app, email, { headers: { 'user-agent': SAFARI_IOS } }));
    expectAccepted(await changeEmail(t.app, signedIn.accessToken, fresh, PASSWORD));
    const change = await eventually(() => outstandingLinkToken(t, userId, 'change_email'), 10_000, 'the change request');
    expect((await verifyWith(t.app, change)).statusCode).toBe(204);
    // every event was recorded whatever NOTIFY says
    expect(new Set(await eventTypes(t, userId))).toEqual(new Set([
      'registered', 'login_succeeded', 'new_device', 'reuse_detected', 'password_changed', 'password_reset_requested', 'password_reset',
      'email_change_requested', 'email_changed',
    ]));
    return (await outboxMails(t, userId)).map((m) => m.template);
  }

  const LINKS = ['verify_email', 'reset_password', 'change_email', 'email_change_requested'];

  it.each([
    ['all', undefined, ['new_device', 'session_reused', 'password_changed', 'password_changed', 'email_changed']],
    ['password', 'password', ['password_changed', 'password_changed']],
    ['new_device,reuse', 'new_device,reuse', ['new_device', 'session_reused']],
    ['email', 'email', ['email_changed']],
    ['none', 'none', []],
  ])('NOTIFY=%s: only those notices; links are sent whatever it says', async (_label, notify, notices) => {
    const t = await startMailApp(backend, mailbox, notify === undefined ? {} : { NOTIFY: notify }, undefined, { outbox: false });
    try {
      const templates = await everyNotice(t);
      expect(templates.filter((m) => !LINKS.includes(m)).sort()).toEqual([...notices].sort());
      expect(templates.filter((m) => LINKS.includes(m)).sort()).toEqual([...LINKS].sort());
    } finally {
      await t.close();
    }
  }, 60_000);
});
