/**
 * Password reset (SPEC §7): `POST /auth/password/forgot` → 202 and a mail, `POST
 * /auth/password/reset` → 204, every session of the account ended atomically, the link working
 * once and for PASSWORD_RESET_TTL from its request. Against a real SMTP server and each backend;
 * the clock is frozen and moved by hand.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { login, PASSWORD, refresh, register, expectProblem, type TestApp, type TokenBody } from '../helpers/app.js';
import { FEATURE_BACKENDS } from '../helpers/backends.js';
import { startMailbox, type Mailbox } from '../helpers/mailbox.js';
import {
  APP_URL, Inbox, SUBJECTS, claimsOf, eventTypes, eventually, expectAccepted, forgot, me, outboxDrained, outboxMails, outstandingLinkToken,
  resetWith, startMailApp, tokensOf,
} from '../helpers/account-mail.js';

const NEW_PASSWORD = 'a brand new passphrase for the account';

let mailbox: Mailbox;
let inbox: Inbox;
beforeAll(async () => {
  mailbox = await startMailbox();
  inbox = new Inbox(mailbox);
});
afterAll(() => mailbox?.stop());

describe.each(FEATURE_BACKENDS)('password reset on %s', (backend) => {
  let t: TestApp;
  beforeAll(async () => {
    // Races below refresh one session many times at once: the refresh limits are not what they test.
    t = await startMailApp(backend, mailbox, {}, { refreshPerSession: 100_000, refreshPerIp: 100_000 });
  });
  afterAll(() => t?.close());

  const userIdOf = (body: TokenBody) => claimsOf(body.accessToken).sub;

  it('forgot → 202 and a mail linking to APP_URL/reset-password; the link sets the password, verifies the address and ends every session', async () => {
    const { email, body: first } = await register(t.app);
    const second = tokensOf(await login(t.app, email));
    const userId = userIdOf(first);
    expect((await me(t.app, first.accessToken)).json().user.emailVerified).toBe(false);

    expectAccepted(await forgot(t.app, email));
    const mail = await inbox.next(email, SUBJECTS.reset);
    expect(mail.text).toContain(`${APP_URL}/reset-password#token=`);
    expect(mail.html).toContain(`${APP_URL}/reset-password#token=`);
    const token = mailbox.linkToken(mail);
    // the outbox and the link's row hold its inputs, never the token itself
    const stored = JSON.stringify([
      await t.db.store.db.selectFrom('outbox').selectAll().where('user_id', '=', userId).execute(),
      await t.db.store.db.selectFrom('account_tokens').selectAll().where('user_id', '=', userId).execute(),
    ]);
    expect(stored).toContain('reset_password');
    expect(stored).not.toContain(token);
    expect(stored).not.toContain(token.slice(-43));

    const reset = await resetWith(t.app, token, NEW_PASSWORD);
    expect(reset.statusCode, reset.body).toBe(204);

    // every session of the account is over: refresh tokens and access tokens alike
    for (const session of [first, second]) {
      expectProblem(await refresh(t.app, session.refreshToken!), 401, 'invalid_refresh_token');
      expectProblem(await me(t.app, session.accessToken), 401, 'unauthorized');
    }
    const sessions = await t.db.store.db.selectFrom('sessions').select(['revoked_at', 'revoked_reason']).where('user_id', '=', userId).execute();
    expect(sessions).toHaveLength(2);
    for (const s of sessions) expect(s).toMatchObject({ revoked_at: expect.any(Date), revoked_reason: 'password_reset' });

    expectProblem(await login(t.app, email), 401, 'invalid_credentials');
    const after = tokensOf(await login(t.app, email, { password: NEW_PASSWORD }));
    expect((await me(t.app, after.accessToken)).json().user).toMatchObject({ email, emailVerified: true });

    const types = await eventTypes(t, userId);
    expect(types).toContain('password_reset_requested');
    expect(types.indexOf('password_reset')).toBeGreaterThan(types.indexOf('password_reset_requested'));

    // the link worked once
    expectProblem(await resetWith(t.app, token, `${NEW_PASSWORD} again`), 400, 'invalid_token');
    // and the owner is told
    await inbox.next(email, SUBJECTS.passwordReset);
  });

  it('an unknown address and a disabled account get the same 202, and nothing is sent or written', async () => {
    const { email: known } = await register(t.app);
    const { email: disabled, body: d } = await register(t.app);
    await t.db.store.setUserDisabled(disabled, true, t.clock.now());
    const unknown = `nobody-${Math.random().toString(36).slice(2)}@example.com`;

    const answers = [await forgot(t.app, unknown), await forgot(t.app, disabled), await forgot(t.app, known)];
    const shape = (res: (typeof answers)[number]) => {
      const { date: _date, ...headers } = res.headers;
      return { status: res.statusCode, headers, body: res.body };
    };
    for (const res of answers) {
      expectAccepted(res);
      expect(shape(res)).toEqual(shape(answers[2]!));
    }

    await inbox.next(known, SUBJECTS.reset);
    await outboxDrained(t);
    expect(inbox.all(unknown)).toEqual([]);
    expect(inbox.all(disabled, SUBJECTS.reset)).toEqual([]);
    expect((await outboxMails(t, userIdOf(d))).map((m) => m.template)).toEqual(['verify_email']);
    expect(await eventTypes(t, userIdOf(d))).not.toContain('password_reset_requested');
    expect(await outstandingLinkToken(t, userIdOf(d), 'reset_password')).toBeUndefined();
  });

  it('an SMTP outage never fails the request: 202 at once, and the mail arrives once the server is back', async () => {
    const { email } = await register(t.app);
    await inbox.next(email, SUBJECTS.verify);
    mailbox.refuse(true);
    try {
      expectAccepted(await forgot(t.app, email));
      const userId = (await t.db.store.db.selectFrom('user_emails').select('user_id').where('email', '=', email).executeTakeFirstOrThrow()).user_id;
      await eventually(async () => {
        const rows = await t.db.store.db.selectFrom('outbox').select('last_error').where('user_id', '=', userId).where('kind', '=', 'mail').execute();
        return rows.some((r) => r.last_error !== null);
      }, 10_000, 'a refused delivery');
    } finally {
      mailbox.refuse(false);
    }
    // the first retry comes within 30 s
    t.clock.advance(30);
    const token = await inbox.token(email, SUBJECTS.reset);
    expect((await resetWith(t.app, token, NEW_PASSWORD)).statusCode).toBe(204);
  });

  it('finds the account as sign-in does: any case, surrounding spaces', async () => {
    const { email } = await register(t.app);
    expectAccepted(await forgot(t.app, `  ${email.toUpperCase()} `));
    const token = await inbox.token(email, SUBJECTS.reset);
    expect((await resetWith(t.app, token, NEW_PASSWORD)).statusCode).toBe(204);
    tokensOf(await login(t.app, email, { password: NEW_PASSWORD }));
  });

  it('a link works until PASSWORD_RESET_TTL (30 min) after the request that created it, not after', async () => {
    const { email } = await register(t.app);
    expectAccepted(await forgot(t.app, email));
    const inTime = await inbox.token(email, SUBJECTS.reset);
    t.clock.advance(30 * 60 - 1);
    expect((await resetWith(t.app, inTime, NEW_PASSWORD)).statusCode).toBe(204);

    expectAccepted(await forgot(t.app, email));
    const late = await inbox.token(email, SUBJECTS.reset);
    t.clock.advance(30 * 60);
    expectProblem(await resetWith(t.app, late, `${NEW_PASSWORD} 2`), 400, 'invalid_token');
    // the password is the one the link in time set
    tokensOf(await login(t.app, email, { password: NEW_PASSWORD }));
  });

  it('a new password outside the policy is 400 weak_password and does not use up the link', async () => {
    const { email, body } = await register(t.app);
    expectAccepted(await forgot(t.app, email));
    const token = await inbox.token(email, SUBJECTS.reset);
    expectProblem(await resetWith(t.app, token, 'short'), 400, 'weak_password');
    expectProblem(await resetWith(t.app, token, 'x'.repeat(1025)), 400, 'weak_password');
    // nothing happened yet
    expect((await me(t.app, body.accessToken)).statusCode).toBe(200);
    expect((await resetWith(t.app, token, NEW_PASSWORD)).statusCode).toBe(204);
  });

  it('a password change, and a successful reset, end the outstanding link', async () => {
    const { email, body } = await register(t.app);
    expectAccepted(await forgot(t.app, email));
    const beforeChange = await inbox.token(email, SUBJECTS.reset);
    const changed = await t.app.inject({
      method: 'POST', url: '/auth/password', headers: { authorization: `Bearer ${body.accessToken}` },
      payload: { currentPassword: PASSWORD, newPassword: NEW_PASSWORD },
    });
    expect(changed.statusCode, changed.body).toBe(204);
    expectProblem(await resetWith(t.app, beforeChange, 'what the attacker wanted'), 400, 'invalid_token');
    tokensOf(await login(t.app, email, { password: NEW_PASSWORD }));
  });

  it('two uses of one link at once: exactly one 204, the others invalid_token, and its password is the one set', async () => {
    for (let round = 0; round < 3; round++) {
      const { email, body } = await register(t.app);
      expectAccepted(await forgot(t.app, email));
      const token = await eventually(() => outstandingLinkToken(t, userIdOf(body), 'reset_password'), 10_000, 'the reset request');
      const passwords = ['first racer passphrase', 'second racer passphrase', 'third racer passphrase'];
      const answers = await Promise.all(passwords.map((p) => resetWith(t.app, token, p)));
      const winners = answers.flatMap((res, i) => (res.statusCode === 204 ? [passwords[i]!] : []));
      expect(winners, answers.map((a) => `${a.statusCode} ${a.body}`).join('\n')).toHaveLength(1);
      for (const res of answers) if (res.statusCode !== 204) expectProblem(res, 400, 'invalid_token');
      for (const p of passwords) expect((await login(t.app, email, { password: p })).statusCode).toBe(p === winners[0] ? 200 : 401);
      expect((await eventTypes(t, userIdOf(body))).filter((e) => e === 'password_reset')).toHaveLength(1);
    }
  });

  it('a reset racing with refreshes of every session leaves no usable session, round after round', async () => {
    for (let round = 0; round < 5; round++) {
      const { email, body: first } = await register(t.app);
      const userId = userIdOf(first);
      const sessions: TokenBody[] = [first];
      for (let i = 0; i < 3; i++) sessions.push(tokensOf(await login(t.app, email)));
      expectAccepted(await forgot(t.app, email));
      const token = await eventually(() => outstandingLinkToken(t, userId, 'reset_password'), 10_000, 'the reset request');

      // Every session, as a busy client would, refreshed again and again with what comes back (each
      // time twice at once: a rotation and a replay) until the reset has answered, and twice more:
      // refreshes land before, during and after the reset's transaction.
      const refreshTokens = new Set(sessions.map((s) => s.refreshToken!));
      const accessTokens = new Set(sessions.map((s) => s.accessToken));
      const keep = (res: Awaited<ReturnType<typeof refresh>>) => {
        if (res.statusCode !== 200) {
          expect(res.statusCode, res.body).toBe(401);
          return undefined;
        }
        const next = res.json() as TokenBody;
        refreshTokens.add(next.refreshToken!);
        accessTokens.add(next.accessToken);
        return next.refreshToken!;
      };
      let resetAnswered = false;
      const busyClient = async (start: TokenBody) => {
        let current = start.refreshToken!;
        for (let i = 0, after = 0; after < 2 && i < 1000; i++) {
          if (resetAnswered) after++;
          const [a, b] = (await Promise.all([refresh(t.app, current), refresh(t.app, current)])).map(keep);
          const next = a ?? b;
          if (next === undefined) return;
          current = next;
        }
      };
      const clients = sessions.map(busyClient);
      const reset = await resetWith(t.app, token, NEW_PASSWORD).finally(() => (resetAnswered = true));
      await Promise.all(clients);
      expect(reset.statusCode, reset.body).toBe(204);

      // afterwards nothing of the account works: no refresh token, no access token's session
      for (const rt of refreshTokens) expect((await refresh(t.app, rt)).statusCode, `round ${round}: a refresh token still works`).toBe(401);
      for (const at of accessTokens) expectProblem(await me(t.app, at), 401, 'unauthorized');
      const live = await t.db.store.db.selectFrom('sessions').select('id').where('user_id', '=', userId).where('revoked_at', 'is', null).execute();
      expect(live, `round ${round}`).toEqual([]);
      tokensOf(await login(t.app, email, { password: NEW_PASSWORD }));
    }
  }, 120_000);
});
