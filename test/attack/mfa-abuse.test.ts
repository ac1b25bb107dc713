/**
 * Attacks on second factors (SPEC §8, §10): malformed, oversized and mistyped codes and
 * mfaTokens, each a 4xx with a stable code and nothing half-written; brute force of 6-digit
 * codes in parallel, held to the account's budget; and no secret, code, recovery code or
 * mfaToken in any log line, at trace level, through every flow. Real HTTP to a listening
 * server; PostgreSQL when TEST_DATABASE_URL is set, else PGlite; frozen clock.
 */
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { base32Decode, totpCode, totpStep } from '../../src/core/totp.js';
import { LOG_REDACT_PATHS } from '../../src/core/vocabulary.js';
import { client, codeOf, type HttpResponse } from '../faults/helpers/http.js';
import { outstandingLinkToken } from '../helpers/account-mail.js';
import { newEmail, PASSWORD, startTestApp, type TestApp, type TestAppOptions } from '../helpers/app.js';
import { ATTACK_BACKEND, claimsOf } from './helpers/live-app.js';

const ROOMY = { registerPerIp: 100_000, loginAttemptsPerIp: 100_000, loginFailuresPerAccountIp: 100_000 };

type Http = ReturnType<typeof client>;

async function listening(options: TestAppOptions = {}): Promise<{ t: TestApp; http: Http }> {
  const t = await startTestApp(ATTACK_BACKEND, {}, ROOMY, options);
  await t.app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = t.app.server.address() as AddressInfo;
  return { t, http: client(`http://127.0.0.1:${port}`) };
}

function expectProblem(res: HttpResponse, status: number, code: string) {
  expect(res.status, res.text.slice(0, 300)).toBe(status);
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(codeOf(res)).toBe(code);
}

const auth = (accessToken: string) => ({ headers: { authorization: `Bearer ${accessToken}` } });

/** A verified account with a confirmed authenticator app, over HTTP. */
async function enrolled(t: TestApp, http: Http) {
  const email = newEmail();
  const registered = await http.post('/auth/register', { email, password: PASSWORD, transport: 'body' });
  expect(registered.status, registered.text).toBe(201);
  const { accessToken } = registered.json<{ accessToken: string }>();
  const userId = claimsOf(accessToken).sub;
  const link = await outstandingLinkToken(t, userId, 'verify_email');
  expect((await http.post('/auth/email/verify', { token: link })).status).toBe(204);
  const started = await http.post('/auth/mfa/totp/setup', {}, auth(accessToken));
  expect(started.status, started.text).toBe(200);
  const { secret: encoded, otpauthUri } = started.json<{ secret: string; otpauthUri: string }>();
  const secret = base32Decode(encoded)!;
  t.clock.advance(30);
  const confirmCode = totpCode(secret, totpStep(t.clock.now()));
  const confirmed = await http.post('/auth/mfa/totp/confirm', { code: confirmCode }, auth(accessToken));
  expect(confirmed.status, confirmed.text).toBe(200);
  const { recoveryCodes } = confirmed.json<{ recoveryCodes: string[] }>();
  return { email, userId, accessToken, secret, encoded, otpauthUri, confirmCode, recoveryCodes };
}

async function mfaToken(http: Http, email: string): Promise<string> {
  const res = await http.post('/auth/login', { email, password: PASSWORD, transport: 'body' });
  expectProblem(res, 403, 'mfa_required');
  return res.json<{ mfaToken: string }>().mfaToken;
}

describe('bad input', () => {
  let t: TestApp;
  let http: Http;
  beforeAll(async () => {
    ({ t, http } = await listening());
  });
  afterAll(() => t?.close());

  const failures = async (userId: string) =>
    (await t.db.store.db.selectFrom('security_events').select('type').where('user_id', '=', userId).where('type', '=', 'mfa_failed').execute()).length;

  it('codes of the wrong type or over their bound: 400 invalid_request, nothing read, counted or written', async () => {
    const user = await enrolled(t, http);
    const token = await mfaToken(http, user.email);
    const bad: unknown[] = [
      123456, 1.5, null, true, [], ['123456'], { code: '123456' }, '1'.repeat(33), ' '.repeat(33), '9'.repeat(10_000),
    ];
    for (const code of bad) expectProblem(await http.post('/auth/mfa/verify', { mfaToken: token, code, transport: 'body' }), 400, 'invalid_request');
    for (const recoveryCode of [42, 'a'.repeat(65), ['x']]) {
      expectProblem(await http.post('/auth/mfa/verify', { mfaToken: token, recoveryCode, transport: 'body' }), 400, 'invalid_request');
    }
    for (const mfa of [42, null, 'x'.repeat(513), { a: 1 }]) {
      expectProblem(await http.post('/auth/mfa/verify', { mfaToken: mfa, code: '123456', transport: 'body' }), 400, 'invalid_request');
    }
    expectProblem(await http.post('/auth/mfa/verify', { mfaToken: token, code: '123456', transport: 'pigeon' }), 400, 'invalid_request');
    expectProblem(await http.post('/auth/mfa/verify', { mfaToken: token, code: '123456', transport: 'body', extra: 1 }), 400, 'invalid_request');
    expectProblem(await http.post('/auth/mfa/totp/confirm', { code: 123456 }, auth(user.accessToken)), 400, 'invalid_request');
    expectProblem(await http.post('/auth/reauthenticate', { code: '1'.repeat(33) }, auth(user.accessToken)), 400, 'invalid_request');
    expect(await failures(user.userId)).toBe(0);
    // the token is untouched: the right code still finishes the sign-in
    t.clock.advance(30);
    expect((await http.post('/auth/mfa/verify', { mfaToken: token, code: totpCode(user.secret, totpStep(t.clock.now())), transport: 'body' })).status).toBe(200);
  });

  it('malformed codes within the bound: 400 invalid_code, counted as wrong codes', async () => {
    const user = await enrolled(t, http);
    const token = await mfaToken(http, user.email);
    const malformed = ['', '12345', '1234567', 'abcdef', '１２３４５６', '12345\u0000', '١٢٣٤٥٦'];
    for (const code of malformed.slice(0, 4)) expectProblem(await http.post('/auth/mfa/verify', { mfaToken: token, code, transport: 'body' }), 400, 'invalid_code');
    expect(await failures(user.userId)).toBe(4);
    const again = await mfaToken(http, user.email);
    for (const code of malformed.slice(4)) {
      const res = await http.post('/auth/mfa/verify', { mfaToken: again, code, transport: 'body' });
      expect(res.status, res.text).toBe(400);
      expect(['invalid_code', 'invalid_request']).toContain(codeOf(res));
    }
    const third = await mfaToken(http, user.email);
    for (const recoveryCode of ['', 'not-a-code', '00000-0000u', 'ééééé-ééééé']) {
      expectProblem(await http.post('/auth/mfa/verify', { mfaToken: third, recoveryCode, transport: 'body' }), 400, 'invalid_code');
    }
  });

  it('forged, truncated and altered mfaTokens: 400 invalid_token, nothing counted against the account', async () => {
    const user = await enrolled(t, http);
    const token = await mfaToken(http, user.email);
    const bytes = Buffer.from(token, 'base64url');
    const flip = (i: number) => {
      const copy = Buffer.from(bytes);
      copy[i]! ^= 1;
      return copy.toString('base64url');
    };
    const forged = ['', 'x', token.slice(0, -1), `${token}A`, flip(0), flip(3), flip(20), flip(40), flip(64), 'A'.repeat(87), token.toUpperCase()];
    for (const mfa of forged) expectProblem(await http.post('/auth/mfa/verify', { mfaToken: mfa, code: '123456', transport: 'body' }), 400, 'invalid_token');
    expect(await failures(user.userId)).toBe(0);
  });

  it('brute force: 60 wrong guesses in parallel from 12 sign-ins get at most 20 checked; then even the right code is 429; never a 5xx', async () => {
    const user = await enrolled(t, http);
    const tokens: string[] = [];
    for (let i = 0; i < 12; i++) tokens.push(await mfaToken(http, user.email));
    t.clock.advance(30);
    const right = totpCode(user.secret, totpStep(t.clock.now()));
    const guesses = Array.from({ length: 60 }, (_, i) => String((i * 7919) % 1_000_000).padStart(6, '0')).filter((g) => g !== right);
    const answers = await Promise.all(guesses.map((code, i) => http.post('/auth/mfa/verify', { mfaToken: tokens[i % 12], code, transport: 'body' })));
    for (const res of answers) expect(res.status, res.text).toBeLessThan(500);
    const checked = answers.filter((r) => codeOf(r) === 'invalid_code');
    expect(checked.length).toBeLessThanOrEqual(20);
    expect(answers.every((r) => ['invalid_code', 'rate_limited', 'invalid_token'].includes(codeOf(r)!))).toBe(true);
    const last = await mfaToken(http, user.email);
    expectProblem(await http.post('/auth/mfa/verify', { mfaToken: last, code: right, transport: 'body' }), 429, 'rate_limited');
    // one lock mail, however many were refused
    const mails = await t.db.store.db.selectFrom('outbox').select('payload').where('user_id', '=', user.userId).where('kind', '=', 'mail').execute();
    const locked = mails.filter((m) => (typeof m.payload === 'string' ? JSON.parse(m.payload) : m.payload).template === 'mfa_locked');
    expect(locked).toHaveLength(1);
  });

  it('removing the factor without recent authentication, or with the password alone: 403, nothing removed', async () => {
    const user = await enrolled(t, http);
    expectProblem(await http.delete('/auth/mfa/totp', auth(user.accessToken)), 403, 'reauthentication_required');
    const byPassword = await http.post('/auth/reauthenticate', { password: PASSWORD }, auth(user.accessToken));
    expect(byPassword.status).toBe(200);
    expectProblem(await http.delete('/auth/mfa/totp', auth(byPassword.json<{ accessToken: string }>().accessToken)), 403, 'reauthentication_required');
    const row = await t.db.store.db.selectFrom('totp_factors').select('confirmed_at').where('user_id', '=', user.userId).executeTakeFirst();
    expect(row?.confirmed_at).not.toBeNull();
  });
});

describe('the log', () => {
  it('holds no TOTP secret, code, recovery code or mfaToken, at trace level, through every second-factor flow', async () => {
    const lines: string[] = [];
    const stream = new Writable({
      write(chunk, _encoding, callback) {
        lines.push(String(chunk));
        callback();
      },
    });
    const logger = pino({ level: 'trace', redact: [...LOG_REDACT_PATHS] }, stream);
    const { t, http } = await listening({ logger });
    const secrets: string[] = [PASSWORD];
    const codes: string[] = [];
    try {
      const user = await enrolled(t, http);
      secrets.push(user.encoded, user.otpauthUri, user.accessToken, ...user.recoveryCodes, ...user.recoveryCodes.map((c) => c.replace('-', '')));
      codes.push(user.confirmCode);
      const now = () => totpCode(user.secret, totpStep(t.clock.now()));

      const first = await mfaToken(http, user.email);
      secrets.push(first);
      t.clock.advance(30);
      const step = totpStep(t.clock.now());
      const valid = [step - 1, step, step + 1].map((s) => totpCode(user.secret, s));
      const wrong = ['000000', '000001', '000002', '000003'].find((c) => !valid.includes(c))!;
      expectProblem(await http.post('/auth/mfa/verify', { mfaToken: first, code: wrong, transport: 'body' }), 400, 'invalid_code');
      const code = now();
      codes.push(code);
      const signedIn = await http.post('/auth/mfa/verify', { mfaToken: first, code, transport: 'body' });
      expect(signedIn.status).toBe(200);
      const session = signedIn.json<{ accessToken: string; refreshToken: string }>();
      secrets.push(session.accessToken, session.refreshToken);
      expectProblem(await http.post('/auth/mfa/verify', { mfaToken: first, code, transport: 'body' }), 400, 'invalid_token');

      const second = await mfaToken(http, user.email);
      secrets.push(second);
      expect((await http.post('/auth/mfa/verify', { mfaToken: second, recoveryCode: user.recoveryCodes[0], transport: 'cookie' })).status).toBe(400);
      expect((await http.post('/auth/mfa/verify', { mfaToken: second, recoveryCode: user.recoveryCodes[0], transport: 'body' })).status).toBe(200);

      t.clock.advance(30);
      const reauthCode = now();
      codes.push(reauthCode);
      const fresh = await http.post('/auth/reauthenticate', { code: reauthCode }, auth(session.accessToken));
      expect(fresh.status, fresh.text).toBe(200);
      const freshToken = fresh.json<{ accessToken: string }>().accessToken;
      secrets.push(freshToken);
      const regenerated = await http.post('/auth/mfa/recovery-codes', {}, auth(freshToken));
      expect(regenerated.status).toBe(200);
      secrets.push(...regenerated.json<{ recoveryCodes: string[] }>().recoveryCodes);
      expect((await http.post('/auth/reauthenticate', { recoveryCode: regenerated.json<{ recoveryCodes: string[] }>().recoveryCodes[1] }, auth(freshToken))).status).toBe(200);
      expect((await http.delete('/auth/mfa/totp', auth(freshToken))).status).toBe(204);
    } finally {
      await t.close();
    }
    const log = lines.join('');
    expect(log).toContain('/auth/mfa/verify');
    for (const secret of secrets) {
      expect(log).not.toContain(secret);
      if (secret.length > 40) expect(log).not.toContain(secret.slice(10, 40));
    }
    // six digits could appear inside any number: look for them as a JSON string, as a body would carry them
    for (const code of codes) expect(log).not.toContain(`"${code}"`);
  });
});
