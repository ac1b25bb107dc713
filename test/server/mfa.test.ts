/**
 * Second factors through the real app (SPEC §8): enrolment of an authenticator app with its
 * recovery codes, sign-in answered `mfa_required` and finished at /auth/mfa/verify on both
 * transports, the mfaToken's limits, replays and races decided by the database, the account's
 * budget of wrong codes, recent authentication and re-authentication, no downgrade, and what
 * operators and account recovery do to factors. Real argon2, frozen clock, every backend.
 */
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { base32Decode, totpCode, totpStep } from '../../src/core/totp.js';
import { FEATURE_BACKENDS } from '../helpers/backends.js';
import { expectProblem, login, PASSWORD, refresh, refreshCookie, register, startTestApp, type TestApp, type TokenBody } from '../helpers/app.js';
import { bearer, claimsOf, eventTypes, outboxMails, outstandingLinkToken, verifyWith } from '../helpers/account-mail.js';

const ADMIN_KEY = 'an-admin-key-of-at-least-32-bytes-for-tests';
const NEW_PASSWORD = 'the owner chose this passphrase';
/** Room for the many sign-ups and sign-ins of this file from one IP; the code budget keeps its default (20 a day). */
const ROOMY = { registerPerIp: 100_000, loginAttemptsPerIp: 100_000, loginFailuresPerAccountIp: 100_000 };

interface Account {
  email: string;
  userId: string;
  /** the registration session's tokens (amr pwd, auth_time at sign-up) */
  tokens: TokenBody & { refreshToken: string };
}

interface Enrolled extends Account {
  secret: Buffer;
  recoveryCodes: string[];
}

describe.each(FEATURE_BACKENDS)('second factors on %s', (backend) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(backend, { ADMIN_API_KEY: ADMIN_KEY, APP_NAME: 'Acme & Co' }, ROOMY);
  });
  afterAll(() => t.close());

  // ---- helpers ---------------------------------------------------------------------

  const post = (url: string, payload: unknown, headers: Record<string, string> = {}) =>
    t.app.inject({ method: 'POST', url, payload: payload as Record<string, unknown>, headers });
  const setup = (accessToken: string) => post('/auth/mfa/totp/setup', {}, bearer(accessToken));
  const confirm = (accessToken: string, code: string) => post('/auth/mfa/totp/confirm', { code }, bearer(accessToken));
  const disable = (accessToken: string) => t.app.inject({ method: 'DELETE', url: '/auth/mfa/totp', headers: bearer(accessToken) });
  const newCodes = (accessToken: string) => post('/auth/mfa/recovery-codes', {}, bearer(accessToken));
  /** POST /auth/mfa/verify; on the body transport (as `mfaLogin` signs in) unless `transport` says otherwise. */
  const verify = (payload: Record<string, unknown>, headers: Record<string, string> = {}) =>
    post('/auth/mfa/verify', { transport: 'body', ...payload }, headers);
  const reauth = (accessToken: string, payload: Record<string, unknown>) => post('/auth/reauthenticate', payload, bearer(accessToken));

  /** The code of the current step, after moving the clock to the next step (a step is accepted once per user). */
  function nextCode(secret: Buffer): string {
    t.clock.advance(30);
    return totpCode(secret, totpStep(t.clock.now()));
  }
  const codeNow = (secret: Buffer) => totpCode(secret, totpStep(t.clock.now()));
  /** A well-formed code that is the code of no step in the window now. */
  function wrongCode(secret: Buffer): string {
    const step = totpStep(t.clock.now());
    const valid = new Set([step - 1, step, step + 1].map((s) => totpCode(secret, s)));
    for (let n = 0; ; n++) if (!valid.has(String(n).padStart(6, '0'))) return String(n).padStart(6, '0');
  }

  function tokensOf(res: LightMyRequestResponse): TokenBody & { refreshToken: string } {
    expect(res.statusCode, res.body).toBe(200);
    return res.json() as TokenBody & { refreshToken: string };
  }

  /** A new account whose address is verified, as enrolment needs while email features are on. */
  async function verifiedAccount(): Promise<Account> {
    const { email, body } = await register(t.app);
    const userId = claimsOf(body.accessToken).sub;
    const link = await outstandingLinkToken(t, userId, 'verify_email');
    expect((await verifyWith(t.app, link!)).statusCode).toBe(204);
    return { email, userId, tokens: body as Account['tokens'] };
  }

  /** A verified account with a confirmed authenticator app and its recovery codes. */
  async function enrolled(): Promise<Enrolled> {
    const account = await verifiedAccount();
    const started = await setup(account.tokens.accessToken);
    expect(started.statusCode, started.body).toBe(200);
    const secret = base32Decode(started.json().secret)!;
    const confirmed = await confirm(account.tokens.accessToken, nextCode(secret));
    expect(confirmed.statusCode, confirmed.body).toBe(200);
    return { ...account, secret, recoveryCodes: confirmed.json().recoveryCodes };
  }

  /** A password sign-in that must stop at the second factor: its mfaToken and methods. */
  async function mfaLogin(email: string, transport: 'body' | 'cookie' = 'body'): Promise<{ mfaToken: string; methods: string[]; res: LightMyRequestResponse }> {
    const res = await login(t.app, email, { transport });
    expectProblem(res, 403, 'mfa_required');
    const body = res.json() as { mfaToken: string; methods: string[] };
    return { ...body, res };
  }

  const sessionsOf = (userId: string) => t.db.store.db.selectFrom('sessions').selectAll().where('user_id', '=', userId).execute();
  const totpRow = (userId: string) => t.db.store.db.selectFrom('totp_factors').selectAll().where('user_id', '=', userId).executeTakeFirst();
  const recoveryRows = (userId: string) => t.db.store.db.selectFrom('recovery_codes').selectAll().where('user_id', '=', userId).execute();
  const count = (list: string[], item: string) => list.filter((x) => x === item).length;

  // ---- enrolment -------------------------------------------------------------------------

  describe('enrolment', () => {
    it('setup gives a secret and its otpauth URI; a code confirms it: ten recovery codes, shown once, stored as HMACs; mfa_enabled and its notice', async () => {
      const account = await verifiedAccount();
      const started = await setup(account.tokens.accessToken);
      expect(started.statusCode, started.body).toBe(200);
      const { secret, otpauthUri } = started.json() as { secret: string; otpauthUri: string };
      expect(secret).toMatch(/^[A-Z2-7]{32}$/);
      expect(otpauthUri).toBe(
        `otpauth://totp/Acme%20%26%20Co:${encodeURIComponent(account.email)}?secret=${secret}&issuer=Acme%20%26%20Co&algorithm=SHA1&digits=6&period=30`,
      );
      // sealed at rest: neither the base32 secret nor its bytes are in the row
      const row = await totpRow(account.userId);
      expect(row?.confirmed_at).toBeNull();
      expect(JSON.stringify(row)).not.toContain(secret);
      expect(row?.secret_sealed).not.toContain(base32Decode(secret)!.toString('base64url').slice(0, 20));

      // not a factor yet: password sign-in works alone
      tokensOf(await login(t.app, account.email));

      const key = base32Decode(secret)!;
      expectProblem(await confirm(account.tokens.accessToken, wrongCode(key)), 400, 'invalid_code');
      const res = await confirm(account.tokens.accessToken, nextCode(key));
      expect(res.statusCode, res.body).toBe(200);
      const { recoveryCodes } = res.json() as { recoveryCodes: string[] };
      expect(recoveryCodes).toHaveLength(10);
      expect(new Set(recoveryCodes).size).toBe(10);
      const stored = await recoveryRows(account.userId);
      expect(stored).toHaveLength(10);
      const dump = JSON.stringify(stored);
      for (const code of recoveryCodes) {
        expect(dump).not.toContain(code);
        expect(dump).not.toContain(code.replace('-', ''));
      }
      expect((await totpRow(account.userId))?.confirmed_at).toEqual(t.clock.now());
      const events = await eventTypes(t, account.userId);
      expect(count(events, 'mfa_enabled')).toBe(1);
      expect(count(events, 'mfa_failed')).toBe(1);
      expect((await outboxMails(t, account.userId)).map((m) => m.template)).toContain('factor_added');

      // confirmed: changing it needs the factor (the sign-up session proved a password only), and setup is then 409
      expectProblem(await setup(account.tokens.accessToken), 403, 'reauthentication_required');
      const fresh = tokensOf(await reauth(account.tokens.accessToken, { code: nextCode(key) }));
      expectProblem(await setup(fresh.accessToken), 409, 'totp_already_enabled');
      expectProblem(await confirm(fresh.accessToken, nextCode(key)), 409, 'totp_already_enabled');
    });

    it('setup again before confirming replaces the secret: the first one’s codes no longer confirm', async () => {
      const account = await verifiedAccount();
      const first = base32Decode((await setup(account.tokens.accessToken)).json().secret)!;
      const second = base32Decode((await setup(account.tokens.accessToken)).json().secret)!;
      expect(second.equals(first)).toBe(false);
      t.clock.advance(30);
      const oldCode = codeNow(first);
      if (oldCode !== codeNow(second)) expectProblem(await confirm(account.tokens.accessToken, oldCode), 400, 'invalid_code');
      expect((await confirm(account.tokens.accessToken, codeNow(second))).statusCode).toBe(200);
    });

    it('needs a verified email while email features are on: 403 email_not_verified, nothing stored', async () => {
      const { body } = await register(t.app);
      expectProblem(await setup(body.accessToken), 403, 'email_not_verified');
      expect(await totpRow(claimsOf(body.accessToken).sub)).toBeUndefined();
    });

    it('confirm without a setup is 400 invalid_request; every route needs a Bearer token', async () => {
      const account = await verifiedAccount();
      expectProblem(await confirm(account.tokens.accessToken, '123456'), 400, 'invalid_request');
      expectProblem(await setup(''), 401, 'unauthorized');
      expectProblem(await post('/auth/mfa/totp/setup', {}), 401, 'unauthorized');
      expectProblem(await post('/auth/mfa/totp/confirm', { code: '123456' }), 401, 'unauthorized');
      expectProblem(await post('/auth/mfa/recovery-codes', {}), 401, 'unauthorized');
      expectProblem(await t.app.inject({ method: 'DELETE', url: '/auth/mfa/totp' }), 401, 'unauthorized');
      expectProblem(await post('/auth/reauthenticate', { password: PASSWORD }), 401, 'unauthorized');
    });

    it('the confirmation code’s step is used: it cannot finish a sign-in', async () => {
      const account = await verifiedAccount();
      const secret = base32Decode((await setup(account.tokens.accessToken)).json().secret)!;
      const code = nextCode(secret);
      expect((await confirm(account.tokens.accessToken, code)).statusCode).toBe(200);
      const { mfaToken } = await mfaLogin(account.email);
      expectProblem(await verify({ mfaToken, code }), 400, 'invalid_code');
    });
  });

  // ---- sign-in ---------------------------------------------------------------------------

  describe('sign-in with a second factor', () => {
    for (const transport of ['body', 'cookie'] as const) {
      it(`${transport} transport: a correct password is 403 mfa_required with an mfaToken and methods, and no session; verify answers as login does`, async () => {
        const user = await enrolled();
        const before = await sessionsOf(user.userId);
        const eventsBefore = await eventTypes(t, user.userId);
        const { mfaToken, methods, res } = await mfaLogin(user.email, transport);
        expect(methods).toEqual(['totp', 'recovery_code']);
        expect(mfaToken).toMatch(/^[A-Za-z0-9_-]{87}$/);
        expect(res.json()).toMatchObject({ type: 'urn:tessera:error:mfa_required', status: 403, code: 'mfa_required' });
        expect(refreshCookie(res)).toBeUndefined();
        expect(res.json().refreshToken).toBeUndefined();
        expect(res.json().accessToken).toBeUndefined();
        expect(await sessionsOf(user.userId)).toHaveLength(before.length);
        expect(count(await eventTypes(t, user.userId), 'login_succeeded')).toBe(count(eventsBefore, 'login_succeeded'));

        const done = await verify({ mfaToken, code: nextCode(user.secret), transport });
        expect(done.statusCode, done.body).toBe(200);
        const body = done.json() as TokenBody;
        expect(body).toMatchObject({ tokenType: 'Bearer', expiresIn: 900, user: { id: user.userId, email: user.email } });
        const claims = claimsOf(body.accessToken);
        expect(claims.amr).toEqual(['pwd', 'otp', 'mfa']);
        expect(claims.auth_time).toBe(Math.floor(t.clock.now().getTime() / 1000));
        const session = (await sessionsOf(user.userId)).find((s) => s.id === claims.sid)!;
        expect(session.amr).toEqual(['pwd', 'otp', 'mfa']);
        expect(count(await eventTypes(t, user.userId), 'login_succeeded')).toBe(count(eventsBefore, 'login_succeeded') + 1);

        let refreshed: LightMyRequestResponse;
        if (transport === 'cookie') {
          expect(body.refreshToken).toBeUndefined();
          const cookie = refreshCookie(done);
          expect(cookie).toMatchObject({ httpOnly: true, path: '/auth' });
          t.clock.advance(60);
          refreshed = await t.app.inject({
            method: 'POST', url: '/auth/refresh', payload: {},
            headers: { cookie: `tessera_refresh=${cookie!.value}`, 'x-tessera-csrf': '1', origin: t.config.publicOrigin },
          });
        } else {
          expect(body.refreshToken).toMatch(/^tsr_/);
          expect(refreshCookie(done)).toBeUndefined();
          t.clock.advance(60);
          refreshed = await refresh(t.app, body.refreshToken!);
        }
        // refresh keeps how and when the user authenticated
        expect(refreshed.statusCode, refreshed.body).toBe(200);
        const again = claimsOf((refreshed.json() as TokenBody).accessToken);
        expect(again.amr).toEqual(['pwd', 'otp', 'mfa']);
        expect(again.auth_time).toBe(claims.auth_time);

        // single use
        expectProblem(await verify({ mfaToken, code: nextCode(user.secret), transport }), 400, 'invalid_token');
      });
    }

    it('a recovery code finishes a sign-in once; recovery_code_used is recorded; the same code again is invalid_code', async () => {
      const user = await enrolled();
      const [code] = user.recoveryCodes;
      const first = await mfaLogin(user.email);
      const done = await verify({ mfaToken: first.mfaToken, recoveryCode: ` ${code!.toUpperCase()} ` });
      expect(done.statusCode, done.body).toBe(200);
      expect(claimsOf(done.json().accessToken).amr).toEqual(['pwd', 'otp', 'mfa']);
      expect(count(await eventTypes(t, user.userId), 'recovery_code_used')).toBe(1);
      expect((await recoveryRows(user.userId)).filter((r) => r.used_at !== null)).toHaveLength(1);

      const second = await mfaLogin(user.email);
      expect(second.methods).toEqual(['totp', 'recovery_code']);
      expectProblem(await verify({ mfaToken: second.mfaToken, recoveryCode: code }), 400, 'invalid_code');
      expect(count(await eventTypes(t, user.userId), 'recovery_code_used')).toBe(1);
      // the token survived one wrong code: another recovery code still works
      expect((await verify({ mfaToken: second.mfaToken, recoveryCode: user.recoveryCodes[1] })).statusCode).toBe(200);
    });

    it('the mfaToken expires after 5 minutes', async () => {
      const user = await enrolled();
      const { mfaToken } = await mfaLogin(user.email);
      t.clock.advance(5 * 60);
      expectProblem(await verify({ mfaToken, code: codeNow(user.secret) }), 400, 'invalid_token');
      const fresh = await mfaLogin(user.email);
      t.clock.advance(4 * 60 + 30);
      expect((await verify({ mfaToken: fresh.mfaToken, code: codeNow(user.secret) })).statusCode).toBe(200);
    });

    it('five wrong codes spend the mfaToken: then even the right code is invalid_token', async () => {
      const user = await enrolled();
      const { mfaToken } = await mfaLogin(user.email);
      t.clock.advance(30);
      const right = codeNow(user.secret);
      const wrong = wrongCode(user.secret);
      for (let i = 0; i < 5; i++) expectProblem(await verify({ mfaToken, code: wrong }), 400, 'invalid_code');
      expectProblem(await verify({ mfaToken, code: right }), 400, 'invalid_token');
      expect(count(await eventTypes(t, user.userId), 'mfa_failed')).toBe(5);
      // a new sign-in is a new token
      const again = await mfaLogin(user.email);
      expect((await verify({ mfaToken: again.mfaToken, code: right })).statusCode).toBe(200);
    });

    it('the right code on the fifth attempt still works', async () => {
      const user = await enrolled();
      const { mfaToken } = await mfaLogin(user.email);
      const right = nextCode(user.secret);
      const wrong = wrongCode(user.secret);
      for (let i = 0; i < 4; i++) expectProblem(await verify({ mfaToken, code: wrong }), 400, 'invalid_code');
      expect((await verify({ mfaToken, code: right })).statusCode).toBe(200);
    });

    it('is bound to its transport: the other transport is invalid_token, and costs the token nothing', async () => {
      const user = await enrolled();
      const cookieLogin = await mfaLogin(user.email, 'cookie');
      const code = nextCode(user.secret);
      expectProblem(await verify({ mfaToken: cookieLogin.mfaToken, code, transport: 'body' }), 400, 'invalid_token');
      const done = await verify({ mfaToken: cookieLogin.mfaToken, code, transport: 'cookie' });
      expect(done.statusCode, done.body).toBe(200);
      expect(refreshCookie(done)).toBeDefined();
      // and a body sign-in's token is refused on the cookie transport
      const bodyLogin = await mfaLogin(user.email, 'body');
      expectProblem(await verify({ mfaToken: bodyLogin.mfaToken, code: nextCode(user.secret), transport: 'cookie' }), 400, 'invalid_token');
    });

    it('is bound to its user: another user’s code is wrong, and a token rewritten to name another user fails its MAC', async () => {
      const alice = await enrolled();
      const bob = await enrolled();
      const { mfaToken } = await mfaLogin(alice.email);
      t.clock.advance(30);
      const bobs = codeNow(bob.secret);
      if (bobs !== codeNow(alice.secret)) expectProblem(await verify({ mfaToken, code: bobs }), 400, 'invalid_code');
      const bytes = Buffer.from(mfaToken, 'base64url');
      Buffer.from(bob.userId.replaceAll('-', ''), 'hex').copy(bytes, 1);
      expectProblem(await verify({ mfaToken: bytes.toString('base64url'), code: bobs }), 400, 'invalid_token');
      // nothing happened to Bob's account
      expect(count(await eventTypes(t, bob.userId), 'mfa_failed')).toBe(0);
      expect((await verify({ mfaToken, code: codeNow(alice.secret) })).statusCode).toBe(200);
    });

    it('a code is accepted once: replayed in a later sign-in within its window, it is invalid_code', async () => {
      const user = await enrolled();
      const code = nextCode(user.secret);
      expect((await verify({ mfaToken: (await mfaLogin(user.email)).mfaToken, code })).statusCode).toBe(200);
      t.clock.advance(20); // still within ±1 step
      expectProblem(await verify({ mfaToken: (await mfaLogin(user.email)).mfaToken, code }), 400, 'invalid_code');
      // and an older step's code after a newer one was used
      t.clock.advance(30);
      const newer = codeNow(user.secret);
      const older = totpCode(user.secret, totpStep(t.clock.now()) - 1);
      expect((await verify({ mfaToken: (await mfaLogin(user.email)).mfaToken, code: newer })).statusCode).toBe(200);
      if (older !== newer) expectProblem(await verify({ mfaToken: (await mfaLogin(user.email)).mfaToken, code: older }), 400, 'invalid_code');
    });

    it('10 sign-ins racing with the same code: exactly one succeeds', async () => {
      const user = await enrolled();
      const tokens: string[] = [];
      for (let i = 0; i < 10; i++) tokens.push((await mfaLogin(user.email)).mfaToken);
      const code = nextCode(user.secret);
      const answers = await Promise.all(tokens.map((mfaToken) => verify({ mfaToken, code })));
      expect(answers.filter((r) => r.statusCode === 200)).toHaveLength(1);
      for (const r of answers.filter((r) => r.statusCode !== 200)) expectProblem(r, 400, 'invalid_code');
      expect(count(await eventTypes(t, user.userId), 'login_succeeded')).toBe(1);
    });

    it('10 requests racing with one mfaToken and the right code: exactly one session', async () => {
      const user = await enrolled();
      const { mfaToken } = await mfaLogin(user.email);
      const code = nextCode(user.secret);
      const before = (await sessionsOf(user.userId)).length;
      const answers = await Promise.all(Array.from({ length: 10 }, () => verify({ mfaToken, code })));
      expect(answers.filter((r) => r.statusCode === 200)).toHaveLength(1);
      for (const r of answers.filter((r) => r.statusCode !== 200)) {
        expect([400]).toContain(r.statusCode);
        expect(['invalid_code', 'invalid_token']).toContain(r.json().code);
      }
      expect(await sessionsOf(user.userId)).toHaveLength(before + 1);
    });

    it('two sign-ins racing with the same recovery code: exactly one succeeds, the code is used once', async () => {
      const user = await enrolled();
      const tokens: string[] = [];
      for (let i = 0; i < 4; i++) tokens.push((await mfaLogin(user.email)).mfaToken);
      const answers = await Promise.all(tokens.map((mfaToken) => verify({ mfaToken, recoveryCode: user.recoveryCodes[3] })));
      expect(answers.filter((r) => r.statusCode === 200)).toHaveLength(1);
      for (const r of answers.filter((r) => r.statusCode !== 200)) expectProblem(r, 400, 'invalid_code');
      expect(count(await eventTypes(t, user.userId), 'recovery_code_used')).toBe(1);
    });

    it('20 wrong codes a day per account, which a correct password never resets: then 429, mfa_failed, one mfa_locked mail; a day later it works', async () => {
      const user = await enrolled();
      t.clock.advance(30);
      const wrong = wrongCode(user.secret);
      // 4 sign-ins × 5 wrong codes, each sign-in after a correct password
      for (let i = 0; i < 4; i++) {
        const { mfaToken } = await mfaLogin(user.email);
        for (let j = 0; j < 5; j++) expectProblem(await verify({ mfaToken, code: wrong }), 400, 'invalid_code');
      }
      const { mfaToken } = await mfaLogin(user.email);
      const refused = await verify({ mfaToken, code: codeNow(user.secret) });
      expectProblem(refused, 429, 'rate_limited');
      expect(Number(refused.headers['retry-after'])).toBeGreaterThan(0);
      // more attempts, with recovery codes and after more correct passwords: still 429, no more mails
      const next = await mfaLogin(user.email);
      expectProblem(await verify({ mfaToken: next.mfaToken, recoveryCode: user.recoveryCodes[0] }), 429, 'rate_limited');
      expect((await recoveryRows(user.userId)).every((r) => r.used_at === null)).toBe(true);
      expect(count(await eventTypes(t, user.userId), 'mfa_failed')).toBe(21);
      expect((await outboxMails(t, user.userId)).filter((m) => m.template === 'mfa_locked')).toHaveLength(1);

      t.clock.advance(24 * 60 * 60);
      const later = await mfaLogin(user.email);
      expect((await verify({ mfaToken: later.mfaToken, code: codeNow(user.secret) })).statusCode).toBe(200);
    });

    it('a right code gives its attempt back: only wrong codes spend the budget', async () => {
      const user = await enrolled();
      for (let i = 0; i < 25; i++) {
        const { mfaToken } = await mfaLogin(user.email);
        expect((await verify({ mfaToken, code: nextCode(user.secret) })).statusCode).toBe(200);
      }
    });

    it('a user without a factor signs in with the password alone; /auth/mfa/verify with a forged token is invalid_token', async () => {
      const { email } = await register(t.app);
      const res = await login(t.app, email);
      expect(res.statusCode, res.body).toBe(200);
      expect(claimsOf(res.json().accessToken).amr).toEqual(['pwd']);
      expectProblem(await verify({ mfaToken: 'x'.repeat(87), code: '123456' }), 400, 'invalid_token');
    });

    it('a user disabled after the password step cannot finish it', async () => {
      const user = await enrolled();
      const { mfaToken } = await mfaLogin(user.email);
      await t.app.tessera.store.setUserDisabled(user.email, true, t.clock.now());
      expectProblem(await verify({ mfaToken, code: nextCode(user.secret) }), 403, 'account_disabled');
    });
  });

  // ---- recent authentication -------------------------------------------------------------

  describe('recent authentication and /auth/reauthenticate', () => {
    it('past REAUTH_WINDOW, changing factors is 403 reauthentication_required; a code re-authenticates; the factor can then be removed', async () => {
      const user = await enrolled();
      const signedIn = tokensOf(await verify({ mfaToken: (await mfaLogin(user.email)).mfaToken, code: nextCode(user.secret) }));
      t.clock.advance(10 * 60 + 1);
      expectProblem(await disable(signedIn.accessToken), 403, 'reauthentication_required');
      expectProblem(await newCodes(signedIn.accessToken), 403, 'reauthentication_required');

      const res = await reauth(signedIn.accessToken, { code: nextCode(user.secret) });
      const fresh = tokensOf(res);
      expect(fresh.refreshToken).toBeUndefined();
      expect(refreshCookie(res)).toBeUndefined();
      const claims = claimsOf(fresh.accessToken);
      expect(claims.auth_time).toBe(Math.floor(t.clock.now().getTime() / 1000));
      expect(claims.amr).toEqual(['pwd', 'otp', 'mfa']);
      expect(claims.sid).toBe(claimsOf(signedIn.accessToken).sid);
      const session = (await sessionsOf(user.userId)).find((s) => s.id === claims.sid)!;
      expect(session.auth_time).toEqual(t.clock.now());
      // the old access token is as old as it was
      expectProblem(await disable(signedIn.accessToken), 403, 'reauthentication_required');
      // the next refresh carries the new auth_time
      const refreshed = tokensOf(await refresh(t.app, signedIn.refreshToken!));
      expect(claimsOf(refreshed.accessToken).auth_time).toBe(claims.auth_time);

      const removed = await disable(fresh.accessToken);
      expect(removed.statusCode, removed.body).toBe(204);
      expect(await totpRow(user.userId)).toBeUndefined();
      expect(await recoveryRows(user.userId)).toEqual([]);
      expect(count(await eventTypes(t, user.userId), 'mfa_disabled')).toBe(1);
      expect((await outboxMails(t, user.userId)).map((m) => m.template)).toContain('factor_removed');
      expectProblem(await disable(fresh.accessToken), 404, 'not_found');
      // password alone again
      expect(claimsOf(tokensOf(await login(t.app, user.email)).accessToken).amr).toEqual(['pwd']);
    });

    it('no downgrade: with a factor, a recent password sign-in or password re-authentication cannot change factors', async () => {
      const user = await enrolled();
      // the sign-up session is recent, but its amr is ['pwd']
      expect(claimsOf(user.tokens.accessToken).amr).toEqual(['pwd']);
      expectProblem(await disable(user.tokens.accessToken), 403, 'reauthentication_required');
      expectProblem(await newCodes(user.tokens.accessToken), 403, 'reauthentication_required');

      const byPassword = tokensOf(await reauth(user.tokens.accessToken, { password: PASSWORD }));
      expect(claimsOf(byPassword.accessToken).amr).toEqual(['pwd']);
      expectProblem(await disable(byPassword.accessToken), 403, 'reauthentication_required');

      // a session signed in with the factor, re-authenticated by password: the password replaces its amr
      const signedIn = tokensOf(await verify({ mfaToken: (await mfaLogin(user.email)).mfaToken, code: nextCode(user.secret) }));
      const downgraded = tokensOf(await reauth(signedIn.accessToken, { password: PASSWORD }));
      expect(claimsOf(downgraded.accessToken).amr).toEqual(['pwd']);
      expectProblem(await disable(downgraded.accessToken), 403, 'reauthentication_required');

      const byCode = tokensOf(await reauth(user.tokens.accessToken, { code: nextCode(user.secret) }));
      expect(claimsOf(byCode.accessToken).amr).toEqual(['pwd', 'otp', 'mfa']);
      const res = await newCodes(byCode.accessToken);
      expect(res.statusCode, res.body).toBe(200);
      const { recoveryCodes } = res.json() as { recoveryCodes: string[] };
      expect(recoveryCodes).toHaveLength(10);
      // the old codes stopped working, the new ones work
      expectProblem(await verify({ mfaToken: (await mfaLogin(user.email)).mfaToken, recoveryCode: user.recoveryCodes[5] }), 400, 'invalid_code');
      expect((await verify({ mfaToken: (await mfaLogin(user.email)).mfaToken, recoveryCode: recoveryCodes[5] })).statusCode).toBe(200);
    });

    it('setup needs recent authentication; a password re-authentication is enough while there is no factor', async () => {
      const account = await verifiedAccount();
      t.clock.advance(10 * 60 + 1);
      expectProblem(await setup(account.tokens.accessToken), 403, 'reauthentication_required');
      expectProblem(await reauth(account.tokens.accessToken, { password: 'not the password' }), 403, 'invalid_credentials');
      const fresh = tokensOf(await reauth(account.tokens.accessToken, { password: PASSWORD }));
      expect((await setup(fresh.accessToken)).statusCode).toBe(200);
    });

    it('a recovery code re-authenticates too, once', async () => {
      const user = await enrolled();
      t.clock.advance(10 * 60 + 1);
      const fresh = tokensOf(await reauth(user.tokens.accessToken, { recoveryCode: user.recoveryCodes[9] }));
      expect(claimsOf(fresh.accessToken).amr).toEqual(['pwd', 'otp', 'mfa']);
      expect(count(await eventTypes(t, user.userId), 'recovery_code_used')).toBe(1);
      expectProblem(await reauth(user.tokens.accessToken, { recoveryCode: user.recoveryCodes[9] }), 400, 'invalid_code');
    });

    it('refuses anything but exactly one proof, wrong codes, and a user without a factor’s code', async () => {
      const user = await enrolled();
      expectProblem(await reauth(user.tokens.accessToken, {}), 400, 'invalid_request');
      expectProblem(await reauth(user.tokens.accessToken, { password: PASSWORD, code: '123456' }), 400, 'invalid_request');
      expectProblem(await reauth(user.tokens.accessToken, { code: '123456', recoveryCode: user.recoveryCodes[0] }), 400, 'invalid_request');
      t.clock.advance(30);
      expectProblem(await reauth(user.tokens.accessToken, { code: wrongCode(user.secret) }), 400, 'invalid_code');
      const plain = await register(t.app);
      expectProblem(await reauth(plain.body.accessToken, { code: '123456' }), 400, 'invalid_code');
    });

    it('a correct currentPassword in the request counts as recent: POST /auth/password works long after sign-in', async () => {
      const user = await enrolled();
      t.clock.advance(14 * 60); // past REAUTH_WINDOW, within the access token's 15 minutes
      const res = await post('/auth/password', { currentPassword: PASSWORD, newPassword: NEW_PASSWORD }, bearer(user.tokens.accessToken));
      expect(res.statusCode, res.body).toBe(204);
    });
  });

  // ---- sessions list, recovery, operators -----------------------------------------------------

  it('the sessions list shows how (amr) and when (authTime) each session authenticated', async () => {
    const user = await enrolled();
    const started = t.clock.now();
    const signedIn = tokensOf(await verify({ mfaToken: (await mfaLogin(user.email)).mfaToken, code: nextCode(user.secret) }));
    const res = await t.app.inject({ url: '/auth/sessions', headers: bearer(signedIn.accessToken) });
    expect(res.statusCode, res.body).toBe(200);
    const sessions = res.json().sessions as { id: string; amr: string[]; authTime: string; current: boolean }[];
    const current = sessions.find((s) => s.current)!;
    expect(current).toMatchObject({ id: claimsOf(signedIn.accessToken).sid, amr: ['pwd', 'otp', 'mfa'], authTime: t.clock.now().toISOString() });
    const signUp = sessions.find((s) => s.id === claimsOf(user.tokens.accessToken).sid)!;
    expect(signUp.amr).toEqual(['pwd']);
    expect(new Date(signUp.authTime).getTime()).toBeLessThan(started.getTime());
  });

  it('a reset of an account whose address was never verified removes its second factors', async () => {
    const user = await enrolled();
    // as if the factor had been added while email features were off: the address was never proven
    await t.db.store.db.updateTable('users').set({ email_verified_at: null }).where('id', '=', user.userId).execute();
    expect((await post('/auth/password/forgot', { email: user.email })).statusCode).toBe(202);
    const token = await waitFor(() => outstandingLinkToken(t, user.userId, 'reset_password'));
    expect((await post('/auth/password/reset', { token, newPassword: NEW_PASSWORD })).statusCode).toBe(204);
    expect(await totpRow(user.userId)).toBeUndefined();
    expect(await recoveryRows(user.userId)).toEqual([]);
    expect(count(await eventTypes(t, user.userId), 'mfa_disabled')).toBe(1);
    expect(claimsOf(tokensOf(await login(t.app, user.email, { password: NEW_PASSWORD })).accessToken).amr).toEqual(['pwd']);
  });

  it('a reset of a verified account keeps its second factors', async () => {
    const user = await enrolled();
    expect((await post('/auth/password/forgot', { email: user.email })).statusCode).toBe(202);
    const token = await waitFor(() => outstandingLinkToken(t, user.userId, 'reset_password'));
    expect((await post('/auth/password/reset', { token, newPassword: NEW_PASSWORD })).statusCode).toBe(204);
    expect((await totpRow(user.userId))?.confirmed_at).not.toBeNull();
    expectProblem(await login(t.app, user.email, { password: NEW_PASSWORD }), 403, 'mfa_required');
  });

  it('deleting the account deletes its sealed secret and recovery codes', async () => {
    const user = await enrolled();
    const res = await t.app.inject({ method: 'DELETE', url: '/auth/me', headers: bearer(user.tokens.accessToken), payload: { currentPassword: PASSWORD } });
    expect(res.statusCode, res.body).toBe(204);
    expect(await totpRow(user.userId)).toBeUndefined();
    expect(await recoveryRows(user.userId)).toEqual([]);
  });

  it('operators see the factors and reset them for a locked-out user', async () => {
    const user = await enrolled();
    const admin = (method: 'GET' | 'DELETE', url: string) => t.app.inject({ method, url, headers: { authorization: `Bearer ${ADMIN_KEY}` } });
    const shown = await admin('GET', `/admin/users/${user.userId}`);
    expect(shown.statusCode, shown.body).toBe(200);
    expect(shown.json().factors.map((f: { kind: string }) => f.kind)).toEqual(['totp', 'recovery_codes']);
    expect((await admin('DELETE', `/admin/users/${user.userId}/factors`)).statusCode).toBe(204);
    expect((await admin('GET', `/admin/users/${user.userId}`)).json().factors).toEqual([]);
    expect(await totpRow(user.userId)).toBeUndefined();
    expect(claimsOf(tokensOf(await login(t.app, user.email)).accessToken).amr).toEqual(['pwd']);
  });

  it('malformed and oversized input: 400 with a stable code, nothing counted for oversized codes', async () => {
    const user = await enrolled();
    const { mfaToken } = await mfaLogin(user.email);
    expectProblem(await verify({ mfaToken }), 400, 'invalid_request');
    expectProblem(await verify({ mfaToken, code: '123456', recoveryCode: user.recoveryCodes[0] }), 400, 'invalid_request');
    expectProblem(await verify({ mfaToken, code: '1'.repeat(33) }), 400, 'invalid_request');
    expectProblem(await verify({ mfaToken, recoveryCode: 'a'.repeat(65) }), 400, 'invalid_request');
    expectProblem(await verify({ mfaToken, code: 123456 }), 400, 'invalid_request');
    expectProblem(await verify({ mfaToken: 'x'.repeat(513), code: '123456' }), 400, 'invalid_request');
    expect(count(await eventTypes(t, user.userId), 'mfa_failed')).toBe(0);
    expect((await verify({ mfaToken, code: nextCode(user.secret) })).statusCode).toBe(200);
  });

  it('with email features off, enrolment needs no verified address', async () => {
    const off = await startTestApp(backend, { EMAIL: 'off' }, ROOMY);
    try {
      const { body } = await register(off.app);
      const res = await off.app.inject({ method: 'POST', url: '/auth/mfa/totp/setup', headers: bearer(body.accessToken) });
      expect(res.statusCode, res.body).toBe(200);
    } finally {
      await off.close();
    }
  });
});

async function waitFor<T>(read: () => Promise<T | undefined>): Promise<T> {
  for (let i = 0; i < 200; i++) {
    const value = await read();
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error('timed out');
}

