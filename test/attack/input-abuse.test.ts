/**
 * Input built to cost the server: megabyte passwords, lying Content-Length headers,
 * chunked bodies that never end in time, and login floods (SPEC §4 "Limits", ASVS 5.0
 * V6). Real HTTP requests to a listening server; the password hasher is watched, so
 * "refused before any hashing" is shown, not assumed.
 *
 * Malformed JSON, wrong types, NUL bytes, prototype pollution, 413 for a 16 KiB + 1 body
 * and 431 for oversized headers are in test/server/bad-input.test.ts.
 */
import { connect } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { bearer, call, codeOf, type HttpResponse } from '../faults/helpers/http.js';
import { registerAccount, snapshot, startLiveApp, type Account, type LiveApp } from './helpers/live-app.js';

let t: LiveApp;
let account: Account;

beforeAll(async () => {
  t = await startLiveApp({ RATE_LIMITS: 'off' });
  account = await registerAccount(t.http);
});
afterAll(() => t?.close());

function watchHasher(app: LiveApp) {
  return { hash: vi.spyOn(app.app.tessera.hasher, 'hash'), verify: vi.spyOn(app.app.tessera.hasher, 'verify') };
}
afterEach(() => {
  vi.restoreAllMocks();
});

function expectProblem(res: HttpResponse, status: number, code: string) {
  expect(res.status, res.text.slice(0, 300)).toBe(status);
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(codeOf(res)).toBe(code);
}

/** Writes raw bytes and resolves with whatever comes back before the server closes (or `ms`). */
function raw(port: number, chunks: string[], ms = 5_000): Promise<{ text: string; elapsed: number }> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const socket = connect(port, '127.0.0.1');
    let text = '';
    const finish = () => resolve({ text, elapsed: Date.now() - started });
    socket.setEncoding('utf8');
    socket.on('data', (d) => (text += d));
    socket.on('close', finish);
    socket.on('error', (e: NodeJS.ErrnoException) => (e.code === 'ECONNRESET' || e.code === 'EPIPE' ? finish() : reject(e)));
    setTimeout(() => {
      socket.destroy();
      finish();
    }, ms).unref();
    for (const chunk of chunks) socket.write(chunk);
  });
}

const port = () => Number(new URL(t.url).port);

describe('a 1 MB password is refused without hashing', () => {
  const huge = 'p'.repeat(1024 * 1024);

  it.each(['/auth/register', '/auth/login'])('POST %s with a 1 MB password → 413 payload_too_large, no hash, at once', async (path) => {
    const before = await snapshot(t);
    const hasher = watchHasher(t);
    const res = await t.http.post(path, { email: account.email, password: huge, transport: 'body' });
    expectProblem(res, 413, 'payload_too_large');
    expect(res.ms).toBeLessThan(3_000);
    expect(hasher.hash).not.toHaveBeenCalled();
    expect(hasher.verify).not.toHaveBeenCalled();
    expect(await snapshot(t)).toEqual(before);
  });

  it('a 1 MB chunked body (no Content-Length) is cut off with 413, not buffered whole', async () => {
    const hasher = watchHasher(t);
    const head = 'POST /auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n';
    const body = JSON.stringify({ email: account.email, password: huge });
    const chunks = [head];
    for (let i = 0; i < body.length; i += 64 * 1024) {
      const part = body.slice(i, i + 64 * 1024);
      chunks.push(`${Buffer.byteLength(part).toString(16)}\r\n${part}\r\n`);
    }
    chunks.push('0\r\n\r\n');
    const { text } = await raw(port(), chunks);
    expect(text).toMatch(/^HTTP\/1\.1 413 /);
    expect(text).toContain('"code":"payload_too_large"');
    expect(hasher.verify).not.toHaveBeenCalled();
  });

  it('a Content-Length of 1 MB is refused from the header alone, without waiting for the body', async () => {
    const { text, elapsed } = await raw(port(), [
      `POST /auth/register HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${1024 * 1024}\r\n\r\n{"email":"`,
    ]);
    expect(text).toMatch(/^HTTP\/1\.1 413 /);
    expect(elapsed).toBeLessThan(4_000);
  });

  it('passwords of 1025 to 15 000 characters (inside the body limit) → 400 weak_password, no hash, nothing written', async () => {
    const before = await snapshot(t);
    const hasher = watchHasher(t);
    for (const length of [1025, 4096, 15_000]) {
      const password = 'x'.repeat(length);
      expectProblem(await t.http.post('/auth/register', { email: `long-${length}@example.com`, password }), 400, 'weak_password');
      expectProblem(await t.http.post('/auth/login', { email: account.email, password }), 400, 'weak_password');
      expectProblem(
        await t.http.post('/auth/password', { currentPassword: account.password, newPassword: password }, { headers: bearer(account.tokens.accessToken) }),
        400,
        'weak_password',
      );
    }
    // 1025 characters of four UTF-8 bytes each: counted in characters, still too long
    expectProblem(await t.http.post('/auth/login', { email: account.email, password: '𝄞'.repeat(1025) }), 400, 'weak_password');
    expect(hasher.hash).not.toHaveBeenCalled();
    expect(hasher.verify).not.toHaveBeenCalled();
    expect(await snapshot(t)).toEqual(before);
  });

  it('a 15 000-character currentPassword (it can never be right) is refused without hashing', async () => {
    const hasher = watchHasher(t);
    const res = await t.http.post(
      '/auth/password',
      { currentPassword: 'x'.repeat(15_000), newPassword: 'a perfectly fine new password' },
      { headers: bearer(account.tokens.accessToken) },
    );
    expect([400, 403], res.text).toContain(res.status);
    expect(['weak_password', 'invalid_request', 'invalid_credentials']).toContain(codeOf(res));
    expect(hasher.verify).not.toHaveBeenCalled();
    expect(hasher.hash).not.toHaveBeenCalled();
  });
});

describe('a login flood', () => {
  it('with 1 hash at a time and 4 waiting, 100 concurrent logins get fast 503s with Retry-After, never a 500; the server then works', async () => {
    const flooded = await startLiveApp({ RATE_LIMITS: 'off', PASSWORD_HASH_CONCURRENCY: '1', PASSWORD_HASH_QUEUE: '4' });
    try {
      const victim = await registerAccount(flooded.http);
      const results = await Promise.all(
        Array.from({ length: 100 }, (_, i) =>
          call(flooded.url, 'POST', '/auth/login', { json: { email: i % 2 ? victim.email : `nobody${i}@example.com`, password: `wrong password ${i}` } }),
        ),
      );
      const byStatus = new Map<number, HttpResponse[]>();
      for (const r of results) byStatus.set(r.status, [...(byStatus.get(r.status) ?? []), r]);
      console.info(`[flood] ${[...byStatus].map(([s, rs]) => `${rs.length}× ${s}`).join(', ')}`);
      expect([...byStatus.keys()].sort()).toEqual([401, 503]);
      // only a few could be hashed (1 running, 4 waiting, as they drain); most were turned away at once
      expect(byStatus.get(503)!.length).toBeGreaterThanOrEqual(50);
      for (const r of byStatus.get(503)!) {
        expectProblem(r, 503, 'service_unavailable');
        expect(r.headers['retry-after']).toBe('1');
      }
      const slowest503 = Math.max(...byStatus.get(503)!.map((r) => r.ms));
      const slowest401 = Math.max(...byStatus.get(401)!.map((r) => r.ms));
      console.info(`[flood] slowest 503: ${slowest503.toFixed(0)} ms, slowest 401: ${slowest401.toFixed(0)} ms`);
      expect(slowest503).toBeLessThan(5_000);
      // and afterwards, the real user signs in
      const ok = await flooded.http.post('/auth/login', { email: victim.email, password: victim.password, transport: 'body' });
      expect(ok.status, ok.text).toBe(200);
    } finally {
      await flooded.close();
    }
  });
});
