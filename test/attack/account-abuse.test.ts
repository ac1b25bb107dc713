/**
 * Attacks on account recovery and email (SPEC §7, §10, §11): link tokens that are expired, used,
 * forged, malformed, of another purpose, of another user or replaced; huge and malformed bodies;
 * header injection through names and addresses (checked in the mail the SMTP server received);
 * limits that trip silently; secrets kept out of the log; email features switched off; and
 * REQUIRE_VERIFIED_EMAIL. Real SMTP server; PostgreSQL when TEST_DATABASE_URL is set, else
 * PGlite; frozen clock.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import type { LightMyRequestResponse } from 'fastify';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LinkTokenCodec } from '../../src/core/link-token.js';
import { LOG_REDACT_PATHS } from '../../src/core/vocabulary.js';
import { expectProblem, login, newEmail, PASSWORD, refresh, register, startTestApp, type TestApp, type TokenBody } from '../helpers/app.js';
import { startMailbox, type Mailbox, type ParsedMail } from '../helpers/mailbox.js';
import {
  Inbox, SUBJECTS, bearer, changeEmail, claimsOf, eventTypes, eventually, expectAccepted, forgot, me, outboxDrained, outboxMails,
  outstandingLinkToken, recipients, resetWith, startMailApp, tokensOf, verifyWith,
} from '../helpers/account-mail.js';
import { ATTACK_BACKEND } from './helpers/live-app.js';

const NEW_PASSWORD = 'the passphrase the owner chose';
const ATTACKER_PASSWORD = 'the passphrase the attacker wanted';

let mailbox: Mailbox;
let inbox: Inbox;
beforeAll(async () => {
  mailbox = await startMailbox();
  inbox = new Inbox(mailbox);
});
afterAll(() => mailbox?.stop());

const userIdOf = (body: TokenBody) => claimsOf(body.accessToken).sub;

/** A token's bytes with one part replaced: its layout is purpose (1) ‖ user id (16) ‖ request id (16) ‖ MAC (32). */
function rewrite(token: string, edit: (bytes: Buffer) => void): string {
  const bytes = Buffer.from(token, 'base64url');
  edit(bytes);
  return bytes.toString('base64url');
}
const uuidBytes = (uuid: string) => Buffer.from(uuid.replaceAll('-', ''), 'hex');

/** Never a 5xx: every bad input is a 4xx with a stable code. */
function expect4xx(res: LightMyRequestResponse, status: number, code: string) {
  expect(res.statusCode, res.body).toBeLessThan(500);
  expectProblem(res, status, code);
}

describe('link tokens', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startMailApp(ATTACK_BACKEND, mailbox);
  });
  afterAll(() => t?.close());

  /** A new account with its verification token and a reset token, both outstanding. */
  async function account() {
    const { email, body } = await register(t.app);
    const verify = await inbox.token(email, SUBJECTS.verify);
    expectAccepted(await forgot(t.app, email));
    const reset = await inbox.token(email, SUBJECTS.reset);
    return { email, body, userId: userIdOf(body), verify, reset };
  }
  const passwordHash = async (userId: string) =>
    (await t.db.store.db.selectFrom('users').select('password_hash').where('id', '=', userId).executeTakeFirstOrThrow()).password_hash;

  it('forged, tampered and malformed tokens are 400 invalid_token and change nothing; the real ones still work', async () => {
    const a = await account();
    const hash = await passwordHash(a.userId);
    const request = await t.db.store.db.selectFrom('account_tokens').select(['request_id', 'email']).where('user_id', '=', a.userId)
      .where('purpose', '=', 'reset_password').executeTakeFirstOrThrow();
    const otherSecret = new LinkTokenCodec('another secret that is at least 32 bytes long, not ours');
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const last = a.reset.at(-1)!;

    const forged = {
      'signed with another secret': otherSecret.make({ purpose: 'reset_password', userId: a.userId, requestId: request.request_id, email: request.email }),
      'a random token of the right length': randomBytes(65).toString('base64url'),
      'one bit of the MAC flipped': rewrite(a.reset, (b) => (b[64]! ^= 1)),
      'another request id': rewrite(a.reset, (b) => uuidBytes(randomUUID()).copy(b, 17)),
      'an unknown user': rewrite(a.reset, (b) => uuidBytes(randomUUID()).copy(b, 1)),
      'an unknown purpose': rewrite(a.reset, (b) => (b[0] = 9)),
      'unused trailing bits set (not canonical)': a.reset.slice(0, -1) + alphabet[alphabet.indexOf(last) | 1],
      'padded': `${a.reset}=`,
      'one character short': a.reset.slice(0, -1),
      'one character more': `${a.reset}A`,
      'standard base64 alphabet': a.reset.replaceAll('-', '+').replaceAll('_', '/') + (a.reset.includes('-') || a.reset.includes('_') ? '' : '+'),
      'empty': '',
      'spaces around': ` ${a.reset} `,
      'garbage': '../../etc/passwd',
      '512 characters': 'A'.repeat(512),
      'a refresh token': a.body.refreshToken!,
      'an access token': a.body.accessToken.slice(0, 512),
    };
    for (const [what, token] of Object.entries(forged)) {
      const reset = await resetWith(t.app, token, ATTACKER_PASSWORD);
      expect(reset.statusCode, `${what}: ${reset.body}`).toBe(400);
      expect(reset.json().code, what).toBe('invalid_token');
      const verify = await verifyWith(t.app, token);
      expect(verify.json().code, what).toBe('invalid_token');
    }
    // a string longer than any token, or no string at all: the schema refuses it
    for (const token of ['A'.repeat(513), 42, null, { token: a.reset }, [a.reset]]) {
      expect4xx(await t.app.inject({ method: 'POST', url: '/auth/password/reset', payload: { token, newPassword: ATTACKER_PASSWORD } }), 400, 'invalid_request');
      expect4xx(await t.app.inject({ method: 'POST', url: '/auth/email/verify', payload: { token } }), 400, 'invalid_request');
    }

    // nothing moved: same password, session alive, not verified; the genuine links still work
    expect(await passwordHash(a.userId)).toBe(hash);
    expect((await me(t.app, a.body.accessToken)).json().user.emailVerified).toBe(false);
    expect(await eventTypes(t, a.userId)).not.toContain('password_reset');
    expect((await verifyWith(t.app, a.verify)).statusCode).toBe(204);
    expect((await resetWith(t.app, a.reset, NEW_PASSWORD)).statusCode).toBe(204);
  });

  it('a used or expired token is 400 invalid_token', async () => {
    const a = await account();
    expect((await resetWith(t.app, a.reset, NEW_PASSWORD)).statusCode).toBe(204);
    expect4xx(await resetWith(t.app, a.reset, ATTACKER_PASSWORD), 400, 'invalid_token');

    expectAccepted(await forgot(t.app, a.email));
    const late = await inbox.token(a.email, SUBJECTS.reset);
    t.clock.advance(30 * 60 + 1);
    expect4xx(await resetWith(t.app, late, ATTACKER_PASSWORD), 400, 'invalid_token');
    tokensOf(await login(t.app, a.email, { password: NEW_PASSWORD }));
  });

  it('a reset token is no verification token, and the other way round; relabelling the purpose breaks the MAC', async () => {
    const a = await account();
    expect4xx(await verifyWith(t.app, a.reset), 400, 'invalid_token');
    expect4xx(await resetWith(t.app, a.verify, ATTACKER_PASSWORD), 400, 'invalid_token');
    // purpose byte: verify_email 0, reset_password 1, change_email 2
    expect4xx(await verifyWith(t.app, rewrite(a.reset, (b) => (b[0] = 0))), 400, 'invalid_token');
    expect4xx(await verifyWith(t.app, rewrite(a.reset, (b) => (b[0] = 2))), 400, 'invalid_token');
    expect4xx(await resetWith(t.app, rewrite(a.verify, (b) => (b[0] = 1)), ATTACKER_PASSWORD), 400, 'invalid_token');

    // an email change's link is no reset link either
    const fresh = newEmail();
    expectAccepted(await changeEmail(t.app, a.body.accessToken, fresh, PASSWORD));
    const change = await inbox.token(fresh, SUBJECTS.changeLink);
    expect4xx(await resetWith(t.app, change, ATTACKER_PASSWORD), 400, 'invalid_token');

    // the misuse used nothing up
    expect((await me(t.app, a.body.accessToken)).json().user.emailVerified).toBe(false);
    expect((await verifyWith(t.app, a.verify)).statusCode).toBe(204);
    expect((await resetWith(t.app, a.reset, NEW_PASSWORD)).statusCode).toBe(204);
    tokensOf(await login(t.app, a.email, { password: NEW_PASSWORD }));
  });

  it('a token of one user does nothing to another, even with its user id rewritten', async () => {
    const a = await account();
    const b = await account();
    const bHash = await passwordHash(b.userId);
    const aAsB = rewrite(a.reset, (bytes) => uuidBytes(b.userId).copy(bytes, 1));
    expect4xx(await resetWith(t.app, aAsB, ATTACKER_PASSWORD), 400, 'invalid_token');
    expect4xx(await verifyWith(t.app, rewrite(a.verify, (bytes) => uuidBytes(b.userId).copy(bytes, 1))), 400, 'invalid_token');

    expect((await resetWith(t.app, a.reset, NEW_PASSWORD)).statusCode).toBe(204);
    expect(await passwordHash(b.userId)).toBe(bHash);
    expect((await me(t.app, b.body.accessToken)).statusCode).toBe(200);
    tokensOf(await login(t.app, b.email));
  });

  it('a link stops working after a newer request, a password change, an email change, or a reset', async () => {
    // a newer request
    const a = await account();
    expectAccepted(await forgot(t.app, a.email));
    const newer = await inbox.token(a.email, SUBJECTS.reset);
    expect4xx(await resetWith(t.app, a.reset, ATTACKER_PASSWORD), 400, 'invalid_token');
    expect((await resetWith(t.app, newer, NEW_PASSWORD)).statusCode).toBe(204);

    // a password change
    const b = await account();
    const changed = await t.app.inject({
      method: 'POST', url: '/auth/password', headers: bearer(b.body.accessToken), payload: { currentPassword: PASSWORD, newPassword: NEW_PASSWORD },
    });
    expect(changed.statusCode, changed.body).toBe(204);
    expect4xx(await resetWith(t.app, b.reset, ATTACKER_PASSWORD), 400, 'invalid_token');
    tokensOf(await login(t.app, b.email, { password: NEW_PASSWORD }));

    // an email change: the reset link and the verification link sent to the old address both end
    const c = await account();
    const fresh = newEmail();
    expectAccepted(await changeEmail(t.app, c.body.accessToken, fresh, PASSWORD));
    expect((await verifyWith(t.app, await inbox.token(fresh, SUBJECTS.changeLink))).statusCode).toBe(204);
    expect4xx(await resetWith(t.app, c.reset, ATTACKER_PASSWORD), 400, 'invalid_token');
    expect4xx(await verifyWith(t.app, c.verify), 400, 'invalid_token');
    tokensOf(await login(t.app, fresh));

    // a reset ends a pending email change's link
    const d = await account();
    const elsewhere = newEmail();
    expectAccepted(await changeEmail(t.app, d.body.accessToken, elsewhere, PASSWORD));
    const change = await inbox.token(elsewhere, SUBJECTS.changeLink);
    expect((await resetWith(t.app, d.reset, NEW_PASSWORD)).statusCode).toBe(204);
    expect4xx(await verifyWith(t.app, change), 400, 'invalid_token');
    tokensOf(await login(t.app, d.email, { password: NEW_PASSWORD }));
  });
});

describe('bodies', () => {
  let t: TestApp;
  let user: TokenBody;
  beforeAll(async () => {
    t = await startMailApp(ATTACK_BACKEND, mailbox);
    user = (await register(t.app)).body;
  });
  afterAll(() => t?.close());

  const routes = () => [
    { method: 'POST' as const, url: '/auth/password/forgot', headers: {}, good: { email: newEmail() } },
    { method: 'POST' as const, url: '/auth/password/reset', headers: {}, good: { token: 'A'.repeat(87), newPassword: NEW_PASSWORD } },
    { method: 'POST' as const, url: '/auth/email/verify', headers: {}, good: { token: 'A'.repeat(87) } },
    { method: 'POST' as const, url: '/auth/email/verify/resend', headers: {}, good: { email: newEmail() } },
    { method: 'POST' as const, url: '/auth/email', headers: bearer(user.accessToken), good: { newEmail: newEmail(), currentPassword: 'wrong password' } },
    { method: 'PATCH' as const, url: '/auth/me', headers: bearer(user.accessToken), good: { name: 'Ada' } },
    { method: 'DELETE' as const, url: '/auth/me', headers: bearer(user.accessToken), good: { currentPassword: 'wrong password' } },
  ];

  it('over 16 KiB: 413 payload_too_large; not JSON: 415; broken or wrongly shaped JSON: 400 invalid_request — never a 5xx', async () => {
    for (const route of routes()) {
      const send = (payload: string, contentType = 'application/json') =>
        t.app.inject({ method: route.method, url: route.url, headers: { ...route.headers, 'content-type': contentType }, payload });
      const key = Object.keys(route.good)[0]!;
      const huge = JSON.stringify({ ...route.good, [key]: 'x'.repeat(17 * 1024) });
      expect4xx(await send(huge), 413, 'payload_too_large');
      expect4xx(await send(JSON.stringify(route.good), 'text/plain'), 415, 'unsupported_media_type');
      expect4xx(await send(JSON.stringify(route.good), 'application/x-www-form-urlencoded'), 415, 'unsupported_media_type');
      for (const bad of [
        '{"email":', '[]', '"a string"', '42', 'null', '{"__proto__":{"admin":true}}',
        JSON.stringify({ ...route.good, unexpected: true }),
        JSON.stringify({ [key]: 'x\u0000y' }),
        `{"${key}":"\\ud800"}`,
        JSON.stringify({ [key]: { $ne: null } }),
        JSON.stringify({ [key]: ['a', 'b'] }),
      ]) {
        const res = await send(bad);
        expect(res.statusCode, `${route.method} ${route.url} ${bad}: ${res.body}`).toBe(400);
        expect(res.json().code, `${route.method} ${route.url} ${bad}`).toBe('invalid_request');
      }
      // not valid UTF-8
      const res = await t.app.inject({
        method: route.method, url: route.url, headers: { ...route.headers, 'content-type': 'application/json' },
        payload: Buffer.concat([Buffer.from(`{"${key}":"`), Buffer.from([0xff, 0xfe]), Buffer.from('"}')]),
      });
      expect4xx(res, 400, 'invalid_request');
    }
    // the account used above is untouched
    expect((await me(t.app, user.accessToken)).json().user.name).toBe('');
  });

  it('an address too long or not an address, and a password over 1024 characters: 400 before any work', async () => {
    for (const email of ['a'.repeat(250) + '@example.com', 'no-at-sign', 'two@@example.com', '@example.com', 'a@']) {
      expect4xx(await forgot(t.app, email), 400, 'invalid_request');
      expect4xx(await t.app.inject({ method: 'POST', url: '/auth/email/verify/resend', payload: { email } }), 400, 'invalid_request');
    }
    expectAccepted(await forgot(t.app, newEmail()));
    // the token is checked first: a bad one with a huge password is refused before any hashing
    expect4xx(await resetWith(t.app, 'A'.repeat(87), 'x'.repeat(5000)), 400, 'invalid_token');
  });
});

describe('header injection', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startMailApp(ATTACK_BACKEND, mailbox);
  });
  afterAll(() => t?.close());

  const INJECTED = 'attacker@evil.example';
  /** The headers a mail of Tessera has, and nothing that could add a recipient. */
  function expectCleanHeaders(mail: ParsedMail, to: string, subject: string) {
    const keys = mail.headerLines.map((h) => h.key);
    for (const key of ['bcc', 'cc', 'reply-to', 'sender', 'resent-to']) expect(keys, mail.headerLines.map((h) => h.line).join('\n')).not.toContain(key);
    expect(recipients(mail)).toEqual([to]);
    expect(mail.subject).toBe(subject);
    for (const h of mail.headerLines) expect(h.line.toLowerCase(), `header ${h.key}`).not.toContain('evil.example');
  }

  it('CR and LF in a name or an address are refused: 400 invalid_request, no account, no mail', async () => {
    const email = newEmail();
    for (const payload of [
      { email, password: PASSWORD, name: `Ada\r\nBcc: ${INJECTED}`, transport: 'body' },
      { email, password: PASSWORD, name: `Ada\nSubject: you won`, transport: 'body' },
      { email: `${email}\r\nBcc: ${INJECTED}`, password: PASSWORD, transport: 'body' },
      { email: `${email}\nBcc:${INJECTED}`, password: PASSWORD, transport: 'body' },
    ]) {
      expect4xx(await t.app.inject({ method: 'POST', url: '/auth/register', payload }), 400, 'invalid_request');
    }
    expect(await t.db.store.db.selectFrom('user_emails').select('email').where('email', 'like', `${email.split('@')[0]}%`).execute()).toEqual([]);

    const { body } = await register(t.app, { email });
    await inbox.next(email, SUBJECTS.verify);
    expect4xx(await forgot(t.app, `${email}\r\nBcc: ${INJECTED}`), 400, 'invalid_request');
    expect4xx(await t.app.inject({ method: 'POST', url: '/auth/email/verify/resend', payload: { email: `${email}\r\nBcc: ${INJECTED}` } }), 400, 'invalid_request');
    expect4xx(await changeEmail(t.app, body.accessToken, `${newEmail()}\r\nBcc: ${INJECTED}`, PASSWORD), 400, 'invalid_request');
    expect4xx(await t.app.inject({ method: 'PATCH', url: '/auth/me', headers: bearer(body.accessToken), payload: { name: `x\r\nBcc: ${INJECTED}` } }), 400, 'invalid_request');
    await outboxDrained(t);
    expect(mailbox.messages.filter((m) => JSON.stringify(m.headerLines).includes('evil.example'))).toEqual([]);
    expect((await outboxMails(t, userIdOf(body))).map((m) => m.template)).toEqual(['verify_email']);
  });

  it('names with other line breaks and header-like text stay in the body; the mail has one recipient and its own headers', async () => {
    const email = newEmail();
    const marker = randomBytes(6).toString('hex');
    const name = `Ada ${marker}\u2028Bcc: ${INJECTED}\u0085Subject: pwned\u2029To: ${INJECTED}`;
    const res = await t.app.inject({ method: 'POST', url: '/auth/register', payload: { email, password: PASSWORD, name, transport: 'body' } });
    expect(res.statusCode, res.body).toBe(201);
    const mail = await inbox.next(email, SUBJECTS.verify);
    expectCleanHeaders(mail, email, SUBJECTS.verify);
    expect(mail.text).toContain(marker);
    // no line of the text starts with what the name tried to smuggle in
    expect(mail.text!.split(/\r?\n/).filter((line) => /^(Bcc|To|Subject):/i.test(line))).toEqual([]);

    // the same name in a notice (password changed) and a reset mail
    const body = res.json() as TokenBody;
    const changed = await t.app.inject({
      method: 'POST', url: '/auth/password', headers: bearer(body.accessToken), payload: { currentPassword: PASSWORD, newPassword: NEW_PASSWORD },
    });
    expect(changed.statusCode).toBe(204);
    expectCleanHeaders(await inbox.next(email, SUBJECTS.passwordChanged), email, SUBJECTS.passwordChanged);
    expectAccepted(await forgot(t.app, email));
    expectCleanHeaders(await inbox.next(email, SUBJECTS.reset), email, SUBJECTS.reset);
  });

  it('an address the schema lets through with a comma, quotes or angle brackets reaches one mailbox at most, and nobody else', async () => {
    const sent: { email: string; userId: string; marker: string }[] = [];
    for (const local of ['ada,attacker', 'ada"attacker', 'ada<attacker>', 'ada;attacker', 'ada attacker']) {
      const email = `${local}${randomBytes(3).toString('hex')}@example.com`;
      const marker = randomBytes(6).toString('hex');
      const res = await t.app.inject({ method: 'POST', url: '/auth/register', payload: { email, password: PASSWORD, name: marker, transport: 'body' } });
      if (res.statusCode === 400) {
        expectProblem(res, 400, 'invalid_request');
        continue;
      }
      expect(res.statusCode, res.body).toBe(201);
      sent.push({ email, userId: userIdOf(res.json()), marker });
    }
    // every verification mail has been tried once: delivered, or refused by the SMTP server
    await eventually(async () => {
      const rows = await t.db.store.db.selectFrom('outbox').select(['attempts', 'claimed_until', 'delivered_at', 'last_error'])
        .where('user_id', 'in', sent.map((s) => s.userId)).execute();
      return rows.length === sent.length && rows.every((r) => r.delivered_at !== null || r.last_error !== null);
    }, 15_000, 'a first delivery attempt of each mail');
    for (const { email, marker } of sent) {
      const mails = mailbox.messages.filter((m) => m.text?.includes(marker));
      expect(mails.length, email).toBeLessThanOrEqual(1);
      for (const mail of mails) {
        const to = recipients(mail);
        expect(to, `${email}: ${mail.headerLines.find((h) => h.key === 'to')?.line}`).toHaveLength(1);
        for (const key of ['bcc', 'cc']) expect(mail.headerLines.map((h) => h.key)).not.toContain(key);
        expect(to[0]).not.toBe('attacker@example.com');
      }
    }
  });
});

describe('limits that trip are silent', () => {
  let t: TestApp;
  beforeAll(async () => {
    // Default limits: 5 reset mails per account per hour, 20 forgot requests per IP per hour.
    t = await startMailApp(ATTACK_BACKEND, mailbox, {}, { forgotPasswordPerIp: 20 });
  });
  afterAll(() => t?.close());

  const fingerprint = (res: LightMyRequestResponse) => {
    const { date: _date, ...headers } = res.headers;
    return { status: res.statusCode, headers, body: res.body };
  };

  it('the 6th reset request for an account within an hour, from any IP: the same 202, no mail, no link', async () => {
    const { email, body } = await register(t.app);
    const userId = userIdOf(body);
    const first = await forgot(t.app, email, '192.0.2.1');
    expectAccepted(first);
    const tokens = [await inbox.token(email, SUBJECTS.reset)];
    for (let i = 2; i <= 5; i++) {
      expectAccepted(await forgot(t.app, email, `192.0.2.${i}`));
      tokens.push(await inbox.token(email, SUBJECTS.reset));
    }
    const outstanding = await outstandingLinkToken(t, userId, 'reset_password');
    expect(outstanding).toBe(tokens.at(-1));

    const limited = await forgot(t.app, email, '192.0.2.6');
    expect(fingerprint(limited)).toEqual(fingerprint(first));
    expectAccepted(await forgot(t.app, email.toUpperCase(), '192.0.2.7'));
    await outboxDrained(t);
    expect(inbox.all(email, SUBJECTS.reset)).toHaveLength(5);
    expect((await outboxMails(t, userId)).filter((m) => m.template === 'reset_password')).toHaveLength(5);
    // nothing replaced the last link sent: it still works
    expect(await outstandingLinkToken(t, userId, 'reset_password')).toBe(outstanding);
    expect((await eventTypes(t, userId)).filter((e) => e === 'password_reset_requested')).toHaveLength(5);

    // an hour later, mails go out again
    t.clock.advance(60 * 60);
    expectAccepted(await forgot(t.app, email, '192.0.2.8'));
    await inbox.next(email, SUBJECTS.reset);
  });

  it('the 21st forgot request from one IP within an hour: the same 202 and no mail; another IP is not affected', async () => {
    const { email, body } = await register(t.app);
    const ip = '198.51.100.50';
    const answers: LightMyRequestResponse[] = [];
    for (let i = 0; i < 20; i++) answers.push(await forgot(t.app, `nobody-${i}-${randomBytes(3).toString('hex')}@example.com`, ip));
    const limited = await forgot(t.app, email, ip);
    for (const res of [...answers, limited]) expect(fingerprint(res)).toEqual(fingerprint(answers[0]!));

    // the same account from elsewhere gets its mail; that mail is the only one
    expectAccepted(await forgot(t.app, email, '198.51.100.51'));
    await inbox.next(email, SUBJECTS.reset);
    await outboxDrained(t);
    expect(inbox.all(email, SUBJECTS.reset)).toHaveLength(1);
    expect((await outboxMails(t, userIdOf(body))).filter((m) => m.template === 'reset_password')).toHaveLength(1);
  });

  it('email change links per new address: past 5 an hour, still 202 and no mail', async () => {
    const target = newEmail();
    const { body } = await register(t.app);
    for (let i = 0; i < 5; i++) expectAccepted(await changeEmail(t.app, body.accessToken, target, PASSWORD));
    expectAccepted(await changeEmail(t.app, body.accessToken, target, PASSWORD));
    expect((await outboxMails(t, userIdOf(body))).filter((m) => m.template === 'change_email')).toHaveLength(5);
  });
});

describe('the log', () => {
  it('holds no link token, password, refresh or access token, at trace level, through every §7 flow', async () => {
    const lines: string[] = [];
    const stream = new Writable({
      write(chunk, _encoding, callback) {
        lines.push(String(chunk));
        callback();
      },
    });
    const logger = pino({ level: 'trace', redact: [...LOG_REDACT_PATHS] }, stream);
    const t = await startMailApp(ATTACK_BACKEND, mailbox, {}, undefined, { logger });
    const secrets: string[] = [PASSWORD, NEW_PASSWORD, ATTACKER_PASSWORD];
    try {
      const email = newEmail();
      const { body } = await register(t.app, { email });
      secrets.push(body.refreshToken!, body.accessToken);
      const verify = await inbox.token(email, SUBJECTS.verify);
      secrets.push(verify);
      expect((await verifyWith(t.app, verify)).statusCode).toBe(204);
      expect4xx(await verifyWith(t.app, verify), 400, 'invalid_token');

      expectAccepted(await forgot(t.app, email));
      const reset = await inbox.token(email, SUBJECTS.reset);
      secrets.push(reset);
      expect4xx(await resetWith(t.app, reset, 'short'), 400, 'weak_password');
      expect((await resetWith(t.app, reset, NEW_PASSWORD)).statusCode).toBe(204);
      expect4xx(await resetWith(t.app, reset, ATTACKER_PASSWORD), 400, 'invalid_token');
      expect4xx(await login(t.app, email, { password: ATTACKER_PASSWORD }), 401, 'invalid_credentials');

      const signedIn = tokensOf(await login(t.app, email, { password: NEW_PASSWORD }));
      secrets.push(signedIn.refreshToken, signedIn.accessToken);
      const rotated = tokensOf(await refresh(t.app, signedIn.refreshToken));
      secrets.push(rotated.refreshToken, rotated.accessToken);
      const fresh = newEmail();
      expect4xx(await changeEmail(t.app, rotated.accessToken, fresh, ATTACKER_PASSWORD), 403, 'invalid_credentials');
      expectAccepted(await changeEmail(t.app, rotated.accessToken, fresh, NEW_PASSWORD));
      const change = await inbox.token(fresh, SUBJECTS.changeLink);
      secrets.push(change);
      expect((await verifyWith(t.app, change)).statusCode).toBe(204);
      expect4xx(
        await t.app.inject({ method: 'DELETE', url: '/auth/me', headers: bearer(rotated.accessToken), payload: { currentPassword: ATTACKER_PASSWORD } }),
        403, 'invalid_credentials',
      );
      await t.app.inject({ method: 'DELETE', url: '/auth/me', headers: bearer(rotated.accessToken), payload: { currentPassword: NEW_PASSWORD } });
      await outboxDrained(t);
    } finally {
      await t.close();
    }
    const log = lines.join('');
    expect(log).toContain('/auth/password/reset');
    for (const secret of secrets) {
      expect(log).not.toContain(secret);
      // nor a telling piece of it
      if (secret.length > 40) expect(log).not.toContain(secret.slice(10, 40));
    }
  });
});

describe('email features off', () => {
  const EMAIL_ROUTES = ['/auth/password/forgot', '/auth/password/reset', '/auth/email/verify', '/auth/email/verify/resend', '/auth/email'];

  it.each([
    ['a public PUBLIC_URL without SMTP_URL', { PUBLIC_URL: 'https://auth.example.com' }],
    ['EMAIL=off, even with SMTP_URL', { EMAIL: 'off', SMTP_URL: 'smtp://127.0.0.1:1' }],
    ['NODE_ENV=production without SMTP_URL', { NODE_ENV: 'production', PUBLIC_URL: 'https://auth.example.com' }],
  ])('%s: every email route is 404 not_found; register, a new device and a password change send nothing', async (_label, env) => {
    const t = await startTestApp(ATTACK_BACKEND, { ...env, REQUIRE_VERIFIED_EMAIL: 'on', WEBHOOK_URL: 'http://127.0.0.1:9/hooks', WEBHOOK_SECRET: `whsec_${randomBytes(32).toString('base64')}` });
    try {
      expect(t.config.mail).toBe('off');
      const email = newEmail();
      const { body } = await register(t.app, { email });
      for (const url of EMAIL_ROUTES) {
        const payload = url === '/auth/email' ? { newEmail: newEmail(), currentPassword: PASSWORD } : { email, token: 'A'.repeat(87), newPassword: NEW_PASSWORD };
        expect4xx(await t.app.inject({ method: 'POST', url, headers: bearer(body.accessToken), payload }), 404, 'not_found');
      }
      // with nothing to verify with, REQUIRE_VERIFIED_EMAIL cannot lock anyone out
      const other = tokensOf(await login(t.app, email, { headers: { 'user-agent': 'curl/8.5.0' } }));
      const changed = await t.app.inject({
        method: 'POST', url: '/auth/password', headers: bearer(other.accessToken), payload: { currentPassword: PASSWORD, newPassword: NEW_PASSWORD },
      });
      expect(changed.statusCode, changed.body).toBe(204);
      expect(await outboxMails(t, userIdOf(body))).toEqual([]);
      expect(await t.db.store.db.selectFrom('account_tokens').select('purpose').where('user_id', '=', userIdOf(body)).execute()).toEqual([]);
      // the events are there, and webhooks do not depend on mail
      expect(await eventTypes(t, userIdOf(body))).toEqual(expect.arrayContaining(['registered', 'new_device', 'password_changed']));
      const hooks = await t.db.store.db.selectFrom('outbox').select('kind').where('user_id', '=', userIdOf(body)).execute();
      expect(hooks.length).toBeGreaterThan(0);
      expect(new Set(hooks.map((h) => h.kind))).toEqual(new Set(['webhook']));
    } finally {
      await t.close();
    }
  });

  it('EMAIL=off with a working SMTP server: the server receives nothing', async () => {
    const t = await startTestApp(ATTACK_BACKEND, { EMAIL: 'off', SMTP_URL: mailbox.url });
    try {
      const email = newEmail();
      await register(t.app, { email });
      expect4xx(await forgot(t.app, email), 404, 'not_found');
      // a control app with email on, on the same SMTP server: its mail arrives, the other did not
      const on = await startMailApp(ATTACK_BACKEND, mailbox);
      try {
        const control = newEmail();
        await register(on.app, { email: control });
        await inbox.next(control, SUBJECTS.verify);
      } finally {
        await on.close();
      }
      expect(inbox.all(email)).toEqual([]);
    } finally {
      await t.close();
    }
  });
});

describe('REQUIRE_VERIFIED_EMAIL=on', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startMailApp(ATTACK_BACKEND, mailbox, { REQUIRE_VERIFIED_EMAIL: 'on' });
  });
  afterAll(() => t?.close());

  const sessionCount = async (userId: string) =>
    (await t.db.store.db.selectFrom('sessions').select('id').where('user_id', '=', userId).execute()).length;

  it('an unverified account: a wrong password is 401 invalid_credentials, the right one 403 email_not_verified, and no session', async () => {
    const { email, body } = await register(t.app);
    const userId = userIdOf(body);
    const before = await sessionCount(userId);
    expect4xx(await login(t.app, email, { password: 'not the password at all' }), 401, 'invalid_credentials');
    expect4xx(await login(t.app, `nobody-${randomBytes(4).toString('hex')}@example.com`), 401, 'invalid_credentials');
    const refused = await login(t.app, email);
    expect4xx(refused, 403, 'email_not_verified');
    expect(refused.cookies.find((c) => c.name === 'tessera_refresh')).toBeUndefined();
    expect(await sessionCount(userId)).toBe(before);

    expect((await verifyWith(t.app, await inbox.token(email, SUBJECTS.verify))).statusCode).toBe(204);
    tokensOf(await login(t.app, email));
  });

  it('a password reset proves the address: the account can sign in afterwards', async () => {
    const { email } = await register(t.app);
    expect4xx(await login(t.app, email), 403, 'email_not_verified');
    expectAccepted(await forgot(t.app, email));
    expect((await resetWith(t.app, await inbox.token(email, SUBJECTS.reset), NEW_PASSWORD)).statusCode).toBe(204);
    tokensOf(await login(t.app, email, { password: NEW_PASSWORD }));
  });

  it('a disabled unverified account with the right password is account_disabled, as before', async () => {
    const { email } = await register(t.app);
    await t.db.store.setUserDisabled(email, true, t.clock.now());
    expect4xx(await login(t.app, email), 403, 'account_disabled');
  });
});
