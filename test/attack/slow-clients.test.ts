/**
 * Slow-loris (SPEC §4 "Limits": 10 s to send headers, 30 s for a whole request): many
 * connections that send nothing, or headers a line a second, or a body a byte a second,
 * are cut off on time, while an ordinary client keeps being served the whole while.
 * A client that is merely slow but finishes in time is served. Loopback only.
 *
 * The two cases run concurrently, so the file takes about 32 s of wall time, most of it
 * idle waiting for the server's own timeouts.
 */
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerAccount, startLiveApp, type Account, type LiveApp } from './helpers/live-app.js';

let t: LiveApp;
let account: Account;

beforeAll(async () => {
  t = await startLiveApp({ RATE_LIMITS: 'off' });
  account = await registerAccount(t.http);
});
afterAll(async () => {
  for (const socket of sockets) socket.destroy();
  await t?.close();
});

const sockets = new Set<Socket>();
/** The first line each cut-off connection received, for the last test. */
const cutOffAnswers: string[] = [];

interface Slow {
  /** ms after opening at which the server closed the connection; undefined while open */
  closedAfter: number | undefined;
  answer: string;
  closed: Promise<void>;
}

/** A connection that writes `first`, then `drip()` every second, until the server closes it. */
function slowConnection(port: number, first: string, drip: (i: number) => string | undefined): Slow {
  const socket = connect(port, '127.0.0.1');
  sockets.add(socket);
  const opened = Date.now();
  const slow: Slow = { closedAfter: undefined, answer: '', closed: Promise.resolve() };
  let timer: NodeJS.Timeout | undefined;
  slow.closed = new Promise<void>((resolve) => {
    socket.setEncoding('utf8');
    socket.on('data', (d) => (slow.answer += d));
    socket.on('error', () => {});
    socket.on('close', () => {
      clearInterval(timer);
      slow.closedAfter = Date.now() - opened;
      sockets.delete(socket);
      resolve();
    });
  });
  socket.on('connect', () => {
    if (first) socket.write(first);
    let i = 0;
    timer = setInterval(() => {
      const next = drip(i++);
      if (next !== undefined && socket.writable) socket.write(next);
    }, 1_000);
  });
  return slow;
}

/** An ordinary client that keeps making requests until `until` settles; returns every status and latency. */
async function ordinaryClient(until: Promise<unknown>): Promise<{ status: number; ms: number }[]> {
  let done = false;
  void until.finally(() => (done = true));
  const seen: { status: number; ms: number }[] = [];
  let i = 0;
  while (!done) {
    const res =
      i++ % 2 === 0
        ? await t.http.get('/healthz', { timeoutMs: 5_000 })
        : await t.http.post('/auth/login', { email: account.email, password: 'not the password' }, { timeoutMs: 5_000 });
    seen.push({ status: res.status, ms: res.ms });
    await new Promise((r) => setTimeout(r, 250));
  }
  return seen;
}

function expectServedThroughout(seen: { status: number; ms: number }[], minimum: number) {
  expect(seen.length).toBeGreaterThanOrEqual(minimum);
  expect(seen.every((s) => s.status === 200 || s.status === 401), JSON.stringify(seen)).toBe(true);
  expect(Math.max(...seen.map((s) => s.ms))).toBeLessThan(2_000);
}

const port = () => Number(new URL(t.url).port);

describe.concurrent('slow clients are cut off while others are served', () => {
  it('50 silent connections and 50 that send a header line a second are closed after ~10 s (headers timeout)', async () => {
    const started = Date.now();
    const silent = Array.from({ length: 50 }, () => slowConnection(port(), '', () => undefined));
    const dripping = Array.from({ length: 50 }, () =>
      slowConnection(port(), 'POST /auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\n', (i) => `X-Drip-${i}: ${'x'.repeat(10)}\r\n`),
    );
    // a client that is slow but sends its headers within 4 s is served, not cut off
    const patient = slowConnection(port(), 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n', (i) =>
      i < 3 ? `X-Slow-${i}: y\r\n` : i === 3 ? 'Connection: close\r\n\r\n' : undefined,
    );
    const all = Promise.all([...silent, ...dripping].map((s) => s.closed));
    const bounded = Promise.race([all, new Promise((r) => setTimeout(r, 20_000))]);
    const seen = await ordinaryClient(bounded);
    await patient.closed;

    const closedAfter = [...silent, ...dripping].map((s) => s.closedAfter);
    console.info(
      `[slow-loris] headers: ${closedAfter.filter((c) => c !== undefined).length}/100 closed, after ${Math.min(...(closedAfter as number[]))}–${Math.max(...(closedAfter as number[]))} ms; ` +
        `ordinary client: ${seen.length} requests, slowest ${Math.max(...seen.map((s) => s.ms)).toFixed(0)} ms; ` +
        `answer to a cut-off client: ${JSON.stringify(dripping[0]!.answer.split('\r\n')[0] ?? '')}`,
    );
    for (const c of closedAfter) {
      expect(c).toBeDefined();
      expect(c!).toBeGreaterThanOrEqual(9_500);
      expect(c!).toBeLessThan(16_000);
    }
    expect(patient.answer).toMatch(/^HTTP\/1\.1 200 /);
    cutOffAnswers.push(...dripping.map((s) => s.answer.split('\r\n')[0] ?? ''));
    expectServedThroughout(seen, 10);
    expect(Date.now() - started).toBeLessThan(20_000);
  }, 30_000);

  it('5 connections that send a body a byte a second are closed after ~30 s (request timeout)', async () => {
    const body = JSON.stringify({ email: account.email, password: 'not the password' });
    const head =
      `POST /auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${body.length + 1000}\r\n\r\n`;
    const slow = Array.from({ length: 5 }, () => slowConnection(port(), head, (i) => body[i % body.length]));
    const all = Promise.all(slow.map((s) => s.closed));
    const bounded = Promise.race([all, new Promise((r) => setTimeout(r, 40_000))]);
    const seen = await ordinaryClient(bounded);

    const closedAfter = slow.map((s) => s.closedAfter);
    console.info(
      `[slow-loris] body: closed after ${closedAfter.join(', ')} ms; answer: ${JSON.stringify(slow[0]!.answer.split('\r\n')[0] ?? '')}; ` +
        `ordinary client: ${seen.length} requests, slowest ${Math.max(...seen.map((s) => s.ms)).toFixed(0)} ms`,
    );
    for (const c of closedAfter) {
      expect(c).toBeDefined();
      expect(c!).toBeGreaterThanOrEqual(29_000);
      expect(c!).toBeLessThan(36_000);
    }
    expectServedThroughout(seen, 30);
    cutOffAnswers.push(...slow.map((s) => s.answer.split('\r\n')[0] ?? ''));
  }, 50_000);
});

it('a connection cut off for being too slow is told so: 408 Request Timeout (RFC 9110 §15.5.9), not 400 "not valid HTTP"', () => {
  expect(cutOffAnswers.length).toBe(55);
  for (const line of cutOffAnswers) expect(line).toMatch(/^HTTP\/1\.1 408 /);
});
