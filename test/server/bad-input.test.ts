import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import fc from 'fast-check';
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BACKENDS, type Backend } from '../helpers/backends.js';
import { newEmail, PASSWORD, startTestApp, type TestApp, type TokenBody } from '../helpers/app.js';

/**
 * SPEC §4 Errors and Limits: bad input of any shape gets a 4xx problem+json with a
 * stable code, never a 500, never a crash, and never a stack, SQL or secret.
 */

const POST_ENDPOINTS = ['/auth/register', '/auth/login', '/auth/refresh', '/auth/logout', '/auth/password'] as const;

/** Secrets submitted during the run that must never be echoed back. */
const secrets = new Set<string>([PASSWORD]);

/** The body never carries a stack, SQL text or a submitted password or token. */
function expectNoLeak(res: LightMyRequestResponse, extra: string[] = []) {
  const body = res.body;
  expect(body).not.toMatch(/\bstack\b/i);
  expect(body).not.toMatch(/\bSELECT\b|\bINSERT INTO\b|\bUPDATE\s+"?\w+"?\s+SET\b/i);
  // stack frames: "    at fn (file.js:1:2)" or "at file:///x.ts:3:4"
  expect(body).not.toMatch(/\bat\s+(?:async\s+)?[\w.$<>[\]]+\s+\(|\bat\s+(?:file|node):|\.(?:[cm]?js|ts):\d+:\d+/);
  expect(body).not.toMatch(/node_modules|\/work\/|\bsrc\//);
  for (const secret of [...secrets, ...extra]) {
    if (secret.length >= 8) expect(body, 'a submitted secret is echoed').not.toContain(secret);
  }
}

function expectProblem(res: LightMyRequestResponse, status: number | number[], code?: string | string[]) {
  const statuses = [status].flat();
  expect(statuses, `${res.statusCode} ${res.body}`).toContain(res.statusCode);
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
  const body = res.json() as { type: string; title: string; status: number; code: string };
  expect(body.status).toBe(res.statusCode);
  expect(body.type).toEqual(expect.any(String));
  expect(body.title).toEqual(expect.any(String));
  if (code !== undefined) expect([code].flat()).toContain(body.code);
  expectNoLeak(res);
  return body;
}

function postRaw(t: TestApp, url: string, payload: string, headers: Record<string, string> = {}) {
  return t.app.inject({ method: 'POST', url, payload, headers: { 'content-type': 'application/json', ...headers } });
}

function sessionIdOfAccessToken(accessToken: string): string {
  return (JSON.parse(Buffer.from(accessToken.split('.')[1]!, 'base64url').toString('utf8')) as { sid: string }).sid;
}

/** A raw HTTP/1.1 exchange over TCP: the Node HTTP parser sees exactly these bytes. */
function rawRequest(port: number, request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let data = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk) => {
      data += chunk;
    });
    socket.on('end', () => resolve(data));
    socket.on('close', () => resolve(data));
    socket.on('error', (err: NodeJS.ErrnoException) => (err.code === 'ECONNRESET' && data ? resolve(data) : reject(err)));
    socket.setTimeout(10_000, () => {
      socket.destroy();
      resolve(data);
    });
    socket.write(request);
  });
}

describe.each(BACKENDS)('bad input on %s', (backend: Backend) => {
  let t: TestApp;
  let user: { email: string; tokens: TokenBody; bearer: Record<string, string> };

  beforeAll(async () => {
    t = await startTestApp(backend, { RATE_LIMITS: 'off' });
    const email = newEmail();
    const res = await t.app.inject({ method: 'POST', url: '/auth/register', payload: { email, password: PASSWORD, transport: 'body' } });
    expect(res.statusCode, res.body).toBe(201);
    const tokens = res.json() as TokenBody;
    secrets.add(tokens.accessToken);
    secrets.add(tokens.refreshToken!);
    user = { email, tokens, bearer: { authorization: `Bearer ${tokens.accessToken}` } };
  });
  afterAll(() => t.close());

  describe('malformed and mistyped JSON', () => {
    it('malformed JSON → 400 invalid_request on every POST endpoint', async () => {
      for (const url of POST_ENDPOINTS) {
        for (const payload of ['{"email":', '{', '}', '{"a":1,}', "{'a':1}", 'undefined', 'NaN', '{"a":1}{"b":2}', '\u0000', '[1,2', '"unterminated']) {
          expectProblem(await postRaw(t, url, payload, user.bearer), 400, 'invalid_request');
        }
      }
    });

    it('an empty body with a JSON content-type is {}: 400 invalid_request where fields are required (never 500)', async () => {
      for (const url of POST_ENDPOINTS.filter((u) => u !== '/auth/logout')) {
        const res = await postRaw(t, url, '', user.bearer);
        expect(res.statusCode, `${url}: ${res.body}`).toBeGreaterThanOrEqual(400);
        expect(res.statusCode).toBeLessThan(500);
      }
      // logout with {} and no credential: nothing to sign out, idempotent
      expect((await postRaw(t, '/auth/logout', '')).statusCode).toBe(204);
      // register and login require fields
      expectProblem(await postRaw(t, '/auth/login', ''), 400, 'invalid_request');
    });

    it('wrong types → 400 invalid_request', async () => {
      const email = newEmail();
      const cases: [string, unknown][] = [
        ['/auth/register', { email: 1, password: PASSWORD }],
        ['/auth/register', { email, password: [] }],
        ['/auth/register', { email, password: PASSWORD, transport: 'carrier pigeon' }],
        ['/auth/register', { email, password: PASSWORD, name: 42 }],
        ['/auth/register', { email, password: PASSWORD, name: 'x'.repeat(201) }],
        ['/auth/register', { email: 'not-an-email', password: PASSWORD }],
        ['/auth/register', { email: `${'a'.repeat(250)}@example.com`, password: PASSWORD }],
        ['/auth/register', { email: { $ne: '' }, password: PASSWORD }],
        ['/auth/register', { email: [email], password: PASSWORD }],
        ['/auth/register', { email, password: 12345678 }],
        ['/auth/register', { email, password: null }],
        ['/auth/register', { email, password: true }],
        ['/auth/register', [email, PASSWORD]],
        ['/auth/register', 'a string'],
        ['/auth/register', 42],
        ['/auth/register', null],
        ['/auth/login', { email: 1, password: PASSWORD }],
        ['/auth/login', { email: user.email, password: [] }],
        ['/auth/login', { email: user.email, password: { toString: 'x' } }],
        ['/auth/login', { email: user.email, password: PASSWORD, transport: 'carrier pigeon' }],
        ['/auth/login', { email: user.email, password: PASSWORD, transport: ['body'] }],
        ['/auth/refresh', { refreshToken: 1 }],
        ['/auth/refresh', { refreshToken: null }],
        ['/auth/refresh', { refreshToken: [user.tokens.refreshToken] }],
        ['/auth/refresh', []],
        ['/auth/logout', { scope: 'everything' }],
        ['/auth/logout', { scope: 1 }],
        ['/auth/logout', { refreshToken: {} }],
        ['/auth/password', { currentPassword: 1, newPassword: 'another password 1' }],
        ['/auth/password', { currentPassword: PASSWORD, newPassword: [] }],
      ];
      for (const [url, payload] of cases) {
        const res = await postRaw(t, url, JSON.stringify(payload), user.bearer);
        expect(res.statusCode, `${url} ${JSON.stringify(payload)}: ${res.body}`).toBe(400);
        expectProblem(res, 400, 'invalid_request');
      }
      // nothing was created by any of them
      const created = await t.db.store.db.selectFrom('users').select('email').where('email', '=', email).execute();
      expect(created).toEqual([]);
    });

    it('missing fields → 400 invalid_request', async () => {
      const cases: [string, unknown][] = [
        ['/auth/register', {}],
        ['/auth/register', { email: newEmail() }],
        ['/auth/register', { password: PASSWORD }],
        ['/auth/login', {}],
        ['/auth/login', { email: user.email }],
        ['/auth/login', { password: PASSWORD }],
        ['/auth/password', {}],
        ['/auth/password', { currentPassword: PASSWORD }],
        ['/auth/password', { newPassword: 'another password 2' }],
      ];
      for (const [url, payload] of cases) {
        expectProblem(await postRaw(t, url, JSON.stringify(payload), user.bearer), 400, 'invalid_request');
      }
    });

    it('passwords outside 8..1024 characters → 400 weak_password', async () => {
      for (const password of ['', 'short', '1234567', 'x'.repeat(1025), '🔑'.repeat(1025)]) {
        expectProblem(await postRaw(t, '/auth/register', JSON.stringify({ email: newEmail(), password })), 400, 'weak_password');
        expectProblem(await postRaw(t, '/auth/login', JSON.stringify({ email: user.email, password })), 400, 'weak_password');
      }
    });

    it('__proto__ and constructor.prototype payloads → 4xx, never 500, and nothing is polluted', async () => {
      const payloads = [
        `{"__proto__":{"admin":true},"email":"${newEmail()}","password":"${PASSWORD}"}`,
        `{"email":"${newEmail()}","password":"${PASSWORD}","__proto__":{"transport":"body"}}`,
        `{"constructor":{"prototype":{"admin":true}},"email":"${newEmail()}","password":"${PASSWORD}"}`,
        '{"__proto__":{"refreshToken":"tsr_x"}}',
        '{"constructor":{"prototype":{"polluted":true}}}',
        '{"a":{"__proto__":{"polluted":true}}}',
        '[{"__proto__":{"polluted":true}}]',
        '{"__proto__":null}',
        '{"\\u005f\\u005fproto\\u005f\\u005f":{"polluted":true}}',
      ];
      for (const url of POST_ENDPOINTS) {
        for (const payload of payloads) {
          const res = await postRaw(t, url, payload, user.bearer);
          expect(res.statusCode, `${url} ${payload}: ${res.body}`).toBeGreaterThanOrEqual(400);
          expect(res.statusCode).toBeLessThan(500);
          expectProblem(res, res.statusCode);
        }
      }
      expect(({} as Record<string, unknown>).admin).toBeUndefined();
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
      expect(({} as Record<string, unknown>).transport).toBeUndefined();
      // the app is still healthy
      expect((await t.app.inject('/healthz')).statusCode).toBe(200);
    });

    it('NUL bytes and lone surrogates in strings → 400 invalid_request (SPEC §10; more in input-hygiene.test.ts)', async () => {
      const cases: [string, unknown][] = [
        ['/auth/register', { email: `nul\u0000${newEmail()}`, password: PASSWORD }],
        ['/auth/register', { email: newEmail(), password: PASSWORD, name: 'Ada\u0000Lovelace' }],
        ['/auth/login', { email: `nul\u0000${user.email}`, password: PASSWORD }],
        ['/auth/login', { email: user.email, password: `${PASSWORD}\u0000` }],
        ['/auth/register', { email: `\ud800${newEmail()}`, password: PASSWORD }],
        ['/auth/refresh', { refreshToken: `tsr_\u0000` }],
        ['/auth/logout', { refreshToken: `tsr_\u0000` }],
      ];
      for (const [url, payload] of cases) {
        expectProblem(await postRaw(t, url, JSON.stringify(payload), user.bearer), 400, 'invalid_request');
      }
    });
  });

  describe('media types and sizes', () => {
    it('text/plain, form-urlencoded, multipart, xml and no content-type → 415 unsupported_media_type', async () => {
      const bodies: [string | undefined, string][] = [
        ['text/plain', JSON.stringify({ email: user.email, password: PASSWORD })],
        ['text/plain; charset=utf-8', '{}'],
        ['application/x-www-form-urlencoded', `email=${encodeURIComponent(user.email)}&password=${encodeURIComponent(PASSWORD)}`],
        ['multipart/form-data; boundary=x', '--x\r\nContent-Disposition: form-data; name="email"\r\n\r\na@b.c\r\n--x--\r\n'],
        ['application/xml', '<login/>'],
        ['text/html', '<p>'],
      ];
      for (const url of POST_ENDPOINTS) {
        for (const [type, payload] of bodies) {
          const headers: Record<string, string> = { ...user.bearer };
          if (type) headers['content-type'] = type;
          const res = await t.app.inject({ method: 'POST', url, payload, headers });
          expectProblem(res, 415, 'unsupported_media_type');
        }
      }
    });

    it('application/json with a charset is accepted', async () => {
      const res = await postRaw(t, '/auth/login', JSON.stringify({ email: user.email, password: PASSWORD, transport: 'body' }), {
        'content-type': 'application/json; charset=utf-8',
      });
      expect(res.statusCode, res.body).toBe(200);
      secrets.add((res.json() as TokenBody).refreshToken!);
      secrets.add((res.json() as TokenBody).accessToken);
    });

    it('a body over 16 KiB → 413 payload_too_large, before parsing', async () => {
      const big = JSON.stringify({ email: user.email, password: PASSWORD, name: 'x'.repeat(16 * 1024) });
      const invalid = '{'.repeat(16 * 1024 + 1);
      for (const url of POST_ENDPOINTS) {
        expectProblem(await postRaw(t, url, big, user.bearer), 413, 'payload_too_large');
        // not valid JSON, yet the size is what is refused: the parser never ran
        expectProblem(await postRaw(t, url, invalid, user.bearer), 413, 'payload_too_large');
      }
      // exactly at the limit is not too large: it is parsed (and then lacks the required fields)
      const atLimit = `{"a":"${'x'.repeat(16 * 1024 - 8)}"}`;
      expect(Buffer.byteLength(atLimit)).toBe(16 * 1024);
      expectProblem(await postRaw(t, '/auth/login', atLimit), 400, 'invalid_request');
    });

    it('a header over 16 KiB → 431 on a real listening server; a normal request still works', async () => {
      const server = await startTestApp(backend, { RATE_LIMITS: 'off' });
      try {
        await server.app.listen({ port: 0, host: '127.0.0.1' });
        const address = server.app.server.address();
        const port = typeof address === 'object' && address ? address.port : 0;
        expect(port).toBeGreaterThan(0);

        const ok = await rawRequest(port, 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
        expect(ok).toMatch(/^HTTP\/1\.1 200 /);

        const huge = 'x'.repeat(17 * 1024);
        const tooLarge = await rawRequest(port, `GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Filler: ${huge}\r\nConnection: close\r\n\r\n`);
        expect(tooLarge).toMatch(/^HTTP\/1\.1 431 /);
        expect(tooLarge).not.toMatch(/\bat\s+\S+\s+\(|\.js:\d+/);

        const manyHeaders = Array.from({ length: 300 }, (_, i) => `X-H${i}: ${'y'.repeat(60)}`).join('\r\n');
        const many = await rawRequest(port, `POST /auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\n${manyHeaders}\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}`);
        expect(many).toMatch(/^HTTP\/1\.1 431 /);

        const cookieBomb = await rawRequest(port, `POST /auth/refresh HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: tessera_refresh=${'z'.repeat(17 * 1024)}\r\nX-Tessera-CSRF: 1\r\nConnection: close\r\n\r\n`);
        expect(cookieBomb).toMatch(/^HTTP\/1\.1 431 /);

        // the server survived
        const after = await rawRequest(port, 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
        expect(after).toMatch(/^HTTP\/1\.1 200 /);
      } finally {
        await server.close();
      }
    });
  });

  describe('routes and methods', () => {
    it('an unknown route → 404 not_found', async () => {
      for (const [method, url] of [['GET', '/nope'], ['POST', '/auth/nope'], ['GET', '/auth'], ['GET', '/auth/me/extra'], ['DELETE', '/auth/sessions'], ['GET', '/%00'], ['GET', `/${'a'.repeat(4000)}`]] as const) {
        expectProblem(await t.app.inject({ method, url }), [404, 405], method === 'DELETE' ? undefined : 'not_found');
      }
      expectProblem(await t.app.inject({ method: 'GET', url: '/nope' }), 404, 'not_found');
      expectProblem(await t.app.inject({ method: 'GET', url: '/auth/nope?x=1' }), 404, 'not_found');
    });

    it('GET /auth/login → 405 method_not_allowed with Allow: POST', async () => {
      const res = await t.app.inject({ method: 'GET', url: '/auth/login' });
      expectProblem(res, 405, 'method_not_allowed');
      expect(String(res.headers.allow)).toMatch(/\bPOST\b/);
      expect(String(res.headers.allow)).not.toMatch(/\bGET\b/);
    });

    it('PUT /auth/me → 405 with Allow: GET, PATCH, DELETE; other wrong methods too', async () => {
      const me = await t.app.inject({ method: 'PUT', url: '/auth/me', headers: user.bearer });
      expectProblem(me, 405, 'method_not_allowed');
      expect(String(me.headers.allow)).toMatch(/\bGET\b/);
      expect(String(me.headers.allow)).toMatch(/\bPATCH\b/);
      expect(String(me.headers.allow)).toMatch(/\bDELETE\b/);
      for (const [method, url, allowed] of [
        ['PUT', '/auth/register', 'POST'],
        ['PATCH', '/auth/refresh', 'POST'],
        ['GET', '/auth/logout', 'POST'],
        ['POST', '/auth/me', 'GET'],
        ['POST', '/auth/sessions', 'GET'],
        ['GET', '/auth/sessions/00000000-0000-0000-0000-000000000000', 'DELETE'],
        ['POST', '/healthz', 'GET'],
        ['DELETE', '/.well-known/jwks.json', 'GET'],
      ] as const) {
        const res = await t.app.inject({ method, url, headers: user.bearer });
        expectProblem(res, 405, 'method_not_allowed');
        expect(String(res.headers.allow), `${method} ${url}`).toContain(allowed);
      }
    });

    it('a malformed session id → 404 not_found', async () => {
      for (const id of ['x', 'not-a-uuid', '1', `${'a'.repeat(64)}`, '00000000-0000-0000-0000-000000000000', "'; drop table users; --"]) {
        expectProblem(await t.app.inject({ method: 'DELETE', url: `/auth/sessions/${encodeURIComponent(id)}`, headers: user.bearer }), [400, 404], undefined);
      }
      expectProblem(await t.app.inject({ method: 'DELETE', url: '/auth/sessions/not-a-uuid', headers: user.bearer }), 404, 'not_found');
    });
  });

  describe('refresh tokens of bad shapes', () => {
    function badTokens(valid: string): string[] {
      const body = valid.slice(4);
      const bytes = Buffer.from(body, 'base64url');
      const flippedMac = Buffer.from(bytes);
      flippedMac[flippedMac.length - 1]! ^= 1;
      // version 2 layout: version ‖ user id ‖ session id ‖ generation (bytes 33–36) ‖ MAC
      const bumpedGeneration = Buffer.from(bytes);
      bumpedGeneration[36]! += 1;
      const otherSession = Buffer.from(bytes);
      otherSession[17]! ^= 0xff;
      const otherUser = Buffer.from(bytes);
      otherUser[1]! ^= 0xff;
      const otherVersion = Buffer.from(bytes);
      otherVersion[0] = 1;
      const candidates = [
        '',
        'tsr_',
        'tsr',
        ' ',
        'null',
        'undefined',
        valid.toUpperCase(),
        `${valid} `,
        ` ${valid}`,
        `${valid}=`,
        `${valid}A`,
        valid.slice(0, -1),
        `TSR_${body}`,
        `tsr-${body}`,
        `tsr_${Buffer.from(body, 'base64url').toString('base64')}`,
        `tsr_${flippedMac.toString('base64url')}`,
        `tsr_${bumpedGeneration.toString('base64url')}`,
        `tsr_${otherSession.toString('base64url')}`,
        `tsr_${otherUser.toString('base64url')}`,
        `tsr_${otherVersion.toString('base64url')}`,
        `tsr_${bytes.subarray(1 + 16).toString('base64url')}`,
        `tsr_${randomBytes(52).toString('base64url')}`,
        `tsr_${randomBytes(69).toString('base64url')}`,
        randomBytes(52).toString('base64url'),
        `tsr_${'A'.repeat(body.length)}`,
        `tsr_${'_'.repeat(body.length)}`,
        `tsr_${'.'.repeat(body.length)}`,
        `tsr_${'é'.repeat(body.length)}`,
        `tsr_${'\u0000'.repeat(body.length)}`,
        'tsr_' + 'A'.repeat(500),
        user.tokens.accessToken.slice(0, 512),
        "tsr_' OR 1=1 --",
        '../../etc/passwd',
      ];
      // A version 2 token has no padding, so its standard-base64 spelling is the same text when it holds no + or /.
      return candidates.filter((token) => token !== valid);
    }

    it('in the body → 401 invalid_refresh_token or 400 invalid_request; never 500; the session does not move', async () => {
      const valid = user.tokens.refreshToken!;
      const sid = sessionIdOfAccessToken(user.tokens.accessToken);
      const before = await t.db.store.db.selectFrom('sessions').selectAll().where('id', '=', sid).executeTakeFirstOrThrow();
      for (const token of badTokens(valid)) {
        const res = await postRaw(t, '/auth/refresh', JSON.stringify({ refreshToken: token }));
        const problem = expectProblem(res, [400, 401], ['invalid_refresh_token', 'invalid_request']);
        expect(problem.code, JSON.stringify(token)).toBe(res.statusCode === 401 ? 'invalid_refresh_token' : 'invalid_request');
        expectNoLeak(res, [token]);
      }
      // too long is malformed (SPEC §3 rule 5): 401
      for (const token of ['tsr_' + 'A'.repeat(509), 'x'.repeat(10_000)]) {
        const res = await postRaw(t, '/auth/refresh', JSON.stringify({ refreshToken: token }));
        expectProblem(res, 401, 'invalid_refresh_token');
      }
      // not a string at all: 400
      for (const token of [1, 0, -1, 1e309, true, false, null, {}, [], [valid], { token: valid }]) {
        const res = await postRaw(t, '/auth/refresh', JSON.stringify({ refreshToken: token }));
        expectProblem(res, 400, 'invalid_request');
      }
      const after = await t.db.store.db.selectFrom('sessions').selectAll().where('id', '=', sid).executeTakeFirstOrThrow();
      expect(after.generation).toBe(before.generation);
      expect(after.revoked_at).toBeNull();
      const events = await t.db.store.db.selectFrom('security_events').select('type').where('session_id', '=', sid).execute();
      expect(events.map((e) => e.type)).not.toContain('reuse_detected');
    });

    it('as the cookie → 401 invalid_refresh_token, never 500', async () => {
      for (const token of badTokens(user.tokens.refreshToken!).filter((x) => x.trim() !== '' && !/[\u0000-\u001f\u0080-\uffff]/.test(x))) {
        const res = await t.app.inject({ method: 'POST', url: '/auth/refresh', cookies: { tessera_refresh: token }, headers: { 'x-tessera-csrf': '1' } });
        expectProblem(res, [400, 401], ['invalid_refresh_token', 'invalid_request']);
      }
      const sid = sessionIdOfAccessToken(user.tokens.accessToken);
      const row = await t.db.store.db.selectFrom('sessions').selectAll().where('id', '=', sid).executeTakeFirstOrThrow();
      expect(row.revoked_at).toBeNull();
    });

    it('in a logout body → 204 (idempotent), 400 or 401; never 500; the session stays active', async () => {
      const sid = sessionIdOfAccessToken(user.tokens.accessToken);
      for (const token of badTokens(user.tokens.refreshToken!)) {
        for (const scope of ['local', 'others', 'global']) {
          const res = await postRaw(t, '/auth/logout', JSON.stringify({ refreshToken: token, scope }));
          if (res.statusCode === 204) {
            expect(scope).toBe('local');
            expect(res.body).toBe('');
          } else {
            expectProblem(res, [400, 401], ['invalid_refresh_token', 'invalid_request']);
          }
        }
      }
      const row = await t.db.store.db.selectFrom('sessions').selectAll().where('id', '=', sid).executeTakeFirstOrThrow();
      expect(row.revoked_at).toBeNull();
    });
  });

  describe('Bearer headers of bad shapes', () => {
    it('→ 401 unauthorized on every protected endpoint', async () => {
      const valid = user.tokens.accessToken;
      const [h, p, s] = valid.split('.') as [string, string, string];
      const header = JSON.parse(Buffer.from(h, 'base64url').toString()) as Record<string, unknown>;
      const payload = JSON.parse(Buffer.from(p, 'base64url').toString()) as Record<string, unknown>;
      const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
      const tampered = (claims: Record<string, unknown>) => `${h}.${b64({ ...payload, ...claims })}.${s}`;
      const withHeader = (hdr: Record<string, unknown>) => `${b64({ ...header, ...hdr })}.${p}.${s}`;
      const flipped = `${h}.${p}.${s.slice(0, -2)}${s.endsWith('AA') ? 'BB' : 'AA'}`;
      const authorizations = [
        '',
        'Bearer',
        'Bearer ',
        'Bearer  ',
        'bearer',
        'Basic dXNlcjpwYXNz',
        `Basic ${valid}`,
        `Token ${valid}`,
        `${valid}`,
        `Bearer ${valid}x`,
        `Bearer ${valid} extra`,
        `Bearer ${valid.slice(0, -1)}`,
        `Bearer ${flipped}`,
        `Bearer ${h}.${p}.`,
        `Bearer ${h}.${p}`,
        `Bearer ${b64({ alg: 'none', typ: 'at+jwt' })}.${p}.`,
        `Bearer ${withHeader({ alg: 'HS256' })}`,
        `Bearer ${withHeader({ alg: 'none' })}`,
        `Bearer ${withHeader({ typ: 'JWT' })}`,
        `Bearer ${withHeader({ kid: 'unknown' })}`,
        `Bearer ${withHeader({ kid: "' or 1=1 --" })}`,
        `Bearer ${withHeader({ kid: 42 })}`,
        `Bearer ${withHeader({ crit: ['exp'] })}`,
        `Bearer ${withHeader({ jku: 'https://evil.example/jwks.json' })}`,
        `Bearer ${tampered({ sub: '00000000-0000-0000-0000-000000000000' })}`,
        `Bearer ${tampered({ sid: 'not-a-uuid' })}`,
        `Bearer ${tampered({ exp: 9999999999 })}`,
        `Bearer ${user.tokens.refreshToken}`,
        `Bearer a.b.c`,
        `Bearer ...`,
        `Bearer ${'a'.repeat(5000)}`,
        `Bearer ${'a.'.repeat(2000)}a`,
        `Bearer ${b64('string')}.${b64([1, 2])}.${s}`,
        `Bearer ${b64(null)}.${b64(null)}.${s}`,
        'Bearer %00',
        'Bearer é',
      ];
      for (const authorization of authorizations) {
        for (const [method, url] of [['GET', '/auth/me'], ['GET', '/auth/sessions'], ['GET', '/auth/events']] as const) {
          const res = await t.app.inject({ method, url, headers: { authorization } });
          expectProblem(res, 401, 'unauthorized');
          expectNoLeak(res, [valid]);
        }
      }
      // the protected POST and DELETE too
      for (const authorization of authorizations.slice(0, 12)) {
        expectProblem(
          await postRaw(t, '/auth/password', JSON.stringify({ currentPassword: PASSWORD, newPassword: 'another password 3' }), { authorization }),
          401,
          'unauthorized',
        );
        expectProblem(await t.app.inject({ method: 'DELETE', url: `/auth/sessions/${sessionIdOfAccessToken(valid)}`, headers: { authorization } }), 401, 'unauthorized');
      }
      // the real token still works
      expect((await t.app.inject({ method: 'GET', url: '/auth/me', headers: user.bearer })).statusCode).toBe(200);
    });

    it('logout with only a bad Bearer: scope=others/global → 401 unauthorized, never 500', async () => {
      for (const authorization of ['Bearer ', 'Bearer a.b.c', `Bearer ${'x'.repeat(5000)}`]) {
        for (const scope of ['others', 'global']) {
          const res = await postRaw(t, '/auth/logout', JSON.stringify({ scope }), { authorization });
          expectProblem(res, 401, 'unauthorized');
        }
        const local = await postRaw(t, '/auth/logout', '{}', { authorization });
        expect(local.statusCode).toBeLessThan(500);
      }
    });
  });

  describe('property: random JSON never causes a 5xx', () => {
    const deep = (depth: number, open: string, close: string, leaf = '1') => open.repeat(depth) + leaf + close.repeat(depth);
    const field = fc.oneof(
      fc.jsonValue(),
      fc.string({ unit: 'binary' }),
      fc.string({ unit: 'binary', minLength: 8, maxLength: 40 }),
      fc.stringMatching(/^[^\s@]{1,20}@[^\s@]{1,20}$/),
      fc.constantFrom('tsr_', '\u0000', 'a\u0000b@example.com', '\ud800', 'local', 'others', 'global', 'cookie', 'body', PASSWORD),
      fc.anything().map((v) => JSON.parse(JSON.stringify(v) ?? 'null') as unknown),
    );
    const shaped = fc.record(
      {
        email: field,
        password: field,
        name: field,
        transport: field,
        refreshToken: field,
        scope: field,
        currentPassword: field,
        newPassword: field,
      },
      { requiredKeys: [] },
    );
    // Shaped like real credentials (a valid password, an email-ish string with odd characters), so
    // requests get past the schema and the password policy and reach the database.
    const credentials = fc.record({
      email: fc.oneof(
        fc.tuple(fc.string({ unit: 'binary', minLength: 1, maxLength: 12 }), fc.string({ unit: 'binary', minLength: 1, maxLength: 12 })).map(([a, b]) => `${a}@${b}`),
        fc.constantFrom('a\u0000b@example.com', 'ä@ß.example', '\ud800@example.com', "o'brien@example.com", 'x@y'),
      ),
      password: fc.oneof(fc.constant(PASSWORD), fc.string({ unit: 'binary', minLength: 8, maxLength: 30 })),
      name: fc.option(fc.string({ unit: 'binary', maxLength: 30 }), { nil: undefined }),
    });
    const payload = fc.oneof(
      credentials.map((v) => JSON.stringify(v)),
      fc.jsonValue().map((v) => JSON.stringify(v)),
      fc.anything().map((v) => JSON.stringify(v) ?? 'null'),
      shaped.map((v) => JSON.stringify(v)),
      fc.string({ unit: 'binary' }),
      fc.integer({ min: 1, max: 5000 }).map((d) => deep(d, '[', ']')),
      fc.integer({ min: 1, max: 2000 }).map((d) => deep(d, '{"email":', '}')),
      fc.integer({ min: 1, max: 1000 }).map((d) => `{"refreshToken":${deep(d, '{"a":', '}')}}`),
    );

    // logout last: a random body with a Bearer may sign that session out
    for (const url of ['/auth/register', '/auth/login', '/auth/refresh', '/auth/password', '/auth/logout'] as const) {
      it(`POST ${url}`, async () => {
        // a user of its own, so a random body that happens to be valid cannot disturb other tests
        const login = await postRaw(t, '/auth/register', JSON.stringify({ email: newEmail(), password: PASSWORD, transport: 'body' }));
        expect(login.statusCode, login.body).toBe(201);
        const tokens = login.json() as TokenBody;
        secrets.add(tokens.accessToken);
        secrets.add(tokens.refreshToken!);
        const bearer = { authorization: `Bearer ${tokens.accessToken}` };
        await fc.assert(
          fc.asyncProperty(payload, fc.boolean(), async (body, withBearer) => {
            const headers: Record<string, string> = withBearer ? { ...bearer } : {};
            const res = await postRaw(t, url, body, headers);
            if (res.statusCode >= 500) throw new Error(`${res.statusCode} ${res.body} for ${JSON.stringify(body).slice(0, 300)}`);
            if (res.statusCode >= 400) {
              expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
              expectNoLeak(res);
            }
          }),
          { numRuns: 100 },
        );
        // still alive and the user can still sign in
        expect((await t.app.inject('/healthz')).statusCode).toBe(200);
      }, 120_000);
    }
  });
});
