import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BACKENDS, type Backend } from '../helpers/backends.js';
import { newEmail, PASSWORD, startTestApp, type TestApp, type TokenBody } from '../helpers/app.js';

/**
 * SPEC §10: a JSON body must be valid UTF-8, and no string in it (nor any key) may hold a
 * lone surrogate or NUL. Each is 400 `invalid_request` on every endpoint that takes a body,
 * and nothing reaches the database: no user, no session, no rotation, no security event.
 */

/** JSON text with `\u` escapes kept as written: JSON.stringify would not let us send a lone half. */
const LONE = {
  high: '\\ud800',
  low: '\\udc00',
  highAtEnd: '\\udbff',
  lowFirst: '\\udfff\\ud800',
  twoHighs: '\\ud800\\ud83d\\udd11',
  nul: '\\u0000',
} as const;

/** Bytes no UTF-8 decoder may accept. */
const INVALID_UTF8: [string, number[]][] = [
  ['0xff', [0xff]],
  ['0xfe', [0xfe]],
  ['overlong "/" (0xc0 0xaf)', [0xc0, 0xaf]],
  ['overlong NUL (0xc0 0x80)', [0xc0, 0x80]],
  ['a truncated 3-byte sequence (0xe2 0x82)', [0xe2, 0x82]],
  ['a truncated 4-byte sequence (0xf0 0x9f 0x94)', [0xf0, 0x9f, 0x94]],
  ['a lone continuation byte (0x80)', [0x80]],
  ['a surrogate encoded as UTF-8 (0xed 0xa0 0x80)', [0xed, 0xa0, 0x80]],
  ['above U+10FFFF (0xf4 0x90 0x80 0x80)', [0xf4, 0x90, 0x80, 0x80]],
];

/** A JSON body whose `field` value is `before`, the raw bytes, then `after`. */
function withBytes(fields: Record<string, string>, field: string, bytes: number[]): Buffer {
  const [head, tail] = JSON.stringify({ ...fields, [field]: '\u0001SPLIT\u0001' }).split('\\u0001SPLIT\\u0001') as [string, string];
  return Buffer.concat([Buffer.from(head), Buffer.from(fields[field] ?? ''), Buffer.from(bytes), Buffer.from(tail)]);
}

/** A JSON body whose `field` value is its valid value with `escape` (raw JSON escape text) added. */
function withEscape(fields: Record<string, string>, field: string, escape: string): string {
  const [head, tail] = JSON.stringify({ ...fields, [field]: '\u0001SPLIT\u0001' }).split('\\u0001SPLIT\\u0001') as [string, string];
  return `${head}${JSON.stringify(fields[field] ?? '').slice(1, -1)}${escape}${tail}`;
}

/** A JSON body with an extra key holding `escape`. */
function withKey(fields: Record<string, string>, escape: string): string {
  return `${JSON.stringify(fields).slice(0, -1)},"k${escape}":1}`;
}

function expectInvalidRequest(res: LightMyRequestResponse, what: string) {
  expect(res.statusCode, `${what}: ${res.body}`).toBe(400);
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect((res.json() as { code: string }).code, what).toBe('invalid_request');
}

describe.each(BACKENDS)('input hygiene on %s', (backend: Backend) => {
  let t: TestApp;
  let user: { email: string; tokens: TokenBody; bearer: Record<string, string> };

  beforeAll(async () => {
    t = await startTestApp(backend, { RATE_LIMITS: 'off' });
    const email = newEmail();
    const res = await t.app.inject({ method: 'POST', url: '/auth/register', payload: { email, password: PASSWORD, transport: 'body' } });
    expect(res.statusCode, res.body).toBe(201);
    const tokens = res.json() as TokenBody;
    user = { email, tokens, bearer: { authorization: `Bearer ${tokens.accessToken}` } };
  });
  afterAll(() => t.close());

  /** Every row of the tables a request could write to. */
  async function databaseState() {
    const db = t.db.store.db;
    // login_failed is recorded once the response is sent: let such a write land before reading.
    await new Promise((resolve) => setTimeout(resolve, 50));
    return {
      users: await db.selectFrom('users').selectAll().orderBy('id').execute(),
      sessions: await db.selectFrom('sessions').selectAll().orderBy('id').execute(),
      events: await db.selectFrom('security_events').selectAll().orderBy('id').execute(),
      emails: await db.selectFrom('user_emails').selectAll().orderBy('email').execute(),
    };
  }

  /**
   * Each endpoint with a body that would succeed (or, for a wrong password, be recorded) if
   * its text were taken as it is: every mistake below would write something.
   */
  function endpoints(): { url: string; fields: Record<string, string>; headers: Record<string, string> }[] {
    return [
      { url: '/auth/register', fields: { email: newEmail(), password: PASSWORD, name: 'Ada Lovelace' }, headers: {} },
      { url: '/auth/login', fields: { email: user.email, password: 'not the password 1' }, headers: {} },
      { url: '/auth/refresh', fields: { refreshToken: user.tokens.refreshToken! }, headers: {} },
      { url: '/auth/logout', fields: { refreshToken: user.tokens.refreshToken!, scope: 'global' }, headers: {} },
      { url: '/auth/password', fields: { currentPassword: PASSWORD, newPassword: 'another password 42' }, headers: user.bearer },
    ];
  }

  const post = (url: string, payload: string | Buffer, headers: Record<string, string>) =>
    t.app.inject({ method: 'POST', url, payload, headers: { 'content-type': 'application/json', ...headers } });

  it('controls: paired surrogates, other escapes and valid multi-byte UTF-8 are accepted', async () => {
    const email = newEmail();
    const name = `Ada \\ud83d\\udd11 L\\u00f6velace \u00e9\u20ac\u{1f511}`;
    const res = await post('/auth/register', `{"email":"${email}","password":"${PASSWORD}","name":"${name}","transport":"body"}`, {});
    expect(res.statusCode, res.body).toBe(201);
    expect((res.json() as TokenBody).user!.name).toBe('Ada \u{1f511} L\u00f6velace \u00e9\u20ac\u{1f511}');
    // A leading byte-order mark is allowed (RFC 8259 §8.1).
    const bom = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(JSON.stringify({ email: newEmail(), password: PASSWORD, transport: 'body' }))]);
    expect((await post('/auth/register', bom, {})).statusCode).toBe(201);
    // Each endpoint's body, as built below, works when clean (checked without changing anything that matters).
    expect((await post('/auth/login', JSON.stringify({ email: user.email, password: PASSWORD, transport: 'body' }), {})).statusCode).toBe(200);
  });

  it('a lone surrogate or NUL in any string → 400 invalid_request on every endpoint; nothing is written', async () => {
    const before = await databaseState();
    for (const { url, fields, headers } of endpoints()) {
      for (const field of Object.keys(fields).filter((f) => f !== 'scope')) {
        for (const [name, escape] of Object.entries(LONE)) {
          expectInvalidRequest(await post(url, withEscape(fields, field, escape), headers), `${url} ${field} + ${name}`);
        }
      }
    }
    // The reported case, exactly.
    const reported = await post('/auth/register', `{"email":"\\ud800@example.com","password":"${PASSWORD}"}`, {});
    expectInvalidRequest(reported, 'register with "\\ud800@example.com"');
    expect(await databaseState()).toEqual(before);
  });

  it('a lone surrogate or NUL in a key, at any depth → 400 invalid_request; nothing is written', async () => {
    const before = await databaseState();
    for (const { url, fields, headers } of endpoints()) {
      for (const [name, escape] of Object.entries(LONE)) {
        expectInvalidRequest(await post(url, withKey(fields, escape), headers), `${url} key + ${name}`);
        const nested = `${JSON.stringify(fields).slice(0, -1)},"extra":[{"a":{"${escape}":true}}]}`;
        expectInvalidRequest(await post(url, nested, headers), `${url} nested key + ${name}`);
        const inArray = `${JSON.stringify(fields).slice(0, -1)},"extra":[1,[2,["x${escape}"]]]}`;
        expectInvalidRequest(await post(url, inArray, headers), `${url} nested string + ${name}`);
      }
    }
    expect(await databaseState()).toEqual(before);
  });

  it('invalid UTF-8 bytes in any string → 400 invalid_request on every endpoint, never read as U+FFFD; nothing is written', async () => {
    const before = await databaseState();
    for (const { url, fields, headers } of endpoints()) {
      for (const field of Object.keys(fields)) {
        for (const [name, bytes] of INVALID_UTF8) {
          expectInvalidRequest(await post(url, withBytes(fields, field, bytes), headers), `${url} ${field} + ${name}`);
        }
      }
      // Outside any string, and cut off at the very end of the body.
      for (const [name, bytes] of INVALID_UTF8) {
        const body = Buffer.from(JSON.stringify(fields));
        expectInvalidRequest(await post(url, Buffer.concat([body.subarray(0, -1), Buffer.from(bytes), Buffer.from('}')]), headers), `${url} between members + ${name}`);
        expectInvalidRequest(await post(url, Buffer.concat([body, Buffer.from(bytes)]), headers), `${url} after the body + ${name}`);
      }
    }
    expect(await databaseState()).toEqual(before);
  });

  it('the reported case: a login with 0xff in the password is 400, not invalid_credentials, and records no login_failed', async () => {
    const before = await databaseState();
    const res = await post('/auth/login', withBytes({ email: user.email, password: PASSWORD }, 'password', [0xff]), {});
    expectInvalidRequest(res, 'login with 0xff');
    expect(await databaseState()).toEqual(before);
  });

  it('the limits around the parser are unchanged: 413 before decoding, empty body, 415, a POST with no body', async () => {
    // Over 16 KiB and not UTF-8: the size is what is refused.
    const big = Buffer.concat([Buffer.from('{"a":"'), Buffer.alloc(16 * 1024, 0xff), Buffer.from('"}')]);
    const tooLarge = await post('/auth/login', big, {});
    expect(tooLarge.statusCode).toBe(413);
    expect((tooLarge.json() as { code: string }).code).toBe('payload_too_large');
    expectInvalidRequest(await post('/auth/login', '', {}), 'empty body');
    const text = await t.app.inject({ method: 'POST', url: '/auth/login', payload: Buffer.from([0xff]), headers: { 'content-type': 'text/plain' } });
    expect(text.statusCode).toBe(415);
    // No body and no content type: read as {} (and refused for what is missing, not for its encoding).
    const none = await t.app.inject({ method: 'POST', url: '/auth/refresh' });
    expect(none.statusCode).toBe(401);
    // The sender's charset label changes nothing: the bytes must be UTF-8.
    expectInvalidRequest(
      await post('/auth/login', withBytes({ email: user.email, password: PASSWORD }, 'password', [0xe9]), { 'content-type': 'application/json; charset=latin1' }),
      'charset=latin1 with a latin-1 byte',
    );
  });

  it('the user, the session and the password are untouched after all of the above', async () => {
    const login = await post('/auth/login', JSON.stringify({ email: user.email, password: PASSWORD, transport: 'body' }), {});
    expect(login.statusCode, login.body).toBe(200);
    const refresh = await post('/auth/refresh', JSON.stringify({ refreshToken: user.tokens.refreshToken }), {});
    expect(refresh.statusCode, refresh.body).toBe(200);
  });
});
