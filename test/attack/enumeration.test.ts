/**
 * Account enumeration and password guessing (SPEC §2 "Passwords", ASVS 5.0 V6): a login
 * for an unknown email and a login with a wrong password must look the same — status,
 * headers, body, and time. Real HTTP requests to a listening server.
 *
 * Timing is judged with statistics, not with a threshold on one request: the two kinds of
 * login are interleaved in random order, and the suite prints medians, Mann–Whitney U and
 * Kolmogorov–Smirnov for the run. What it asserts is an effect-size bound that only a real
 * leak can break (a skipped password hash is ~50 ms against ~0 ms; see the control), so it
 * does not flake on a busy machine. The p-values are printed for the reader, not asserted.
 *
 * Brute-force limits (per account and IP, per account from everywhere, per IP) are proven
 * in test/server/rate-limits.test.ts, including that unknown emails count like known ones.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { codeOf, type HttpResponse } from '../faults/helpers/http.js';
import { describeSamples, mannWhitney, median } from './helpers/stats.js';
import { registerAccount, snapshot, startLiveApp, type Account, type LiveApp } from './helpers/live-app.js';

let t: LiveApp;
let known: Account;
let disabled: Account;

beforeAll(async () => {
  t = await startLiveApp({ RATE_LIMITS: 'off' });
  known = await registerAccount(t.http);
  disabled = await registerAccount(t.http);
  await t.db.store.setUserDisabled(disabled.email, true, t.clock.now());
});
afterAll(() => t?.close());

const login = (email: string, password: string) => t.http.post('/auth/login', { email, password, transport: 'body' });
const unknownEmail = () => `nobody-${Math.random().toString(36).slice(2)}@example.com`;

/** Status, every header but Date, and the body bytes. */
function fingerprint(res: HttpResponse) {
  const { date: _date, ...headers } = res.headers;
  return { status: res.status, headers, body: res.text };
}

describe('identical answers', () => {
  it('unknown email, wrong password, and a disabled account with a wrong password get byte-identical answers', async () => {
    const answers = {
      unknown: await login(unknownEmail(), 'a wrong password 1'),
      unknownLookalike: await login(known.email.replace('@', '+x@'), known.password),
      wrongPassword: await login(known.email, 'a wrong password 1'),
      wrongPasswordUpperCaseEmail: await login(known.email.toUpperCase(), 'a wrong password 1'),
      disabledWrongPassword: await login(disabled.email, 'a wrong password 1'),
    };
    const reference = fingerprint(answers.wrongPassword);
    expect(reference.status).toBe(401);
    expect(codeOf(answers.wrongPassword)).toBe('invalid_credentials');
    for (const [name, res] of Object.entries(answers)) expect(fingerprint(res), name).toEqual(reference);
    // nothing in the answer repeats what was sent
    expect(reference.body).not.toContain(known.email);
    expect(reference.body).not.toContain('a wrong password 1');
  });

  it('a failed login creates no session, for an unknown email or a wrong password', async () => {
    const before = await snapshot(t);
    await login(unknownEmail(), 'a wrong password 2');
    await login(known.email, 'a wrong password 2');
    const after = await snapshot(t);
    expect(after.sessions).toEqual(before.sessions);
    expect(after.users).toEqual(before.users);
  });

  it('account_disabled is only said after the right password', async () => {
    const res = await login(disabled.email, disabled.password);
    expect(res.status).toBe(403);
    expect(codeOf(res)).toBe('account_disabled');
  });
});

describe('timing', () => {
  async function time(email: () => string, password: string, expected: number): Promise<number> {
    const res = await login(email(), password);
    expect(res.status, res.text).toBe(expected);
    return res.ms;
  }

  /** Runs the two kinds of request in a random interleaving, `n` of each, after a warm-up. */
  async function sample(n: number, a: () => Promise<number>, b: () => Promise<number>) {
    for (let i = 0; i < 5; i++) {
      await a();
      await b();
    }
    const order: (0 | 1)[] = [...Array<0>(n).fill(0), ...Array<1>(n).fill(1)];
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    const values: [number[], number[]] = [[], []];
    for (const which of order) values[which].push(await (which === 0 ? a() : b()));
    return values;
  }

  it('unknown email and wrong password are statistically indistinguishable (numbers printed below)', async () => {
    const [unknown, wrong] = await sample(
      100,
      () => time(unknownEmail, 'a wrong password 3', 401),
      () => time(() => known.email, 'a wrong password 3', 401),
    );
    console.info(describeSamples('login: unknown email vs wrong password', { name: 'unknown email', values: unknown }, { name: 'wrong password', values: wrong }));

    // Effect size, not significance: a leak (no hash for unknown emails) gives P ≈ 0 and a median gap of ~100 %.
    const { superiority } = mannWhitney(unknown, wrong);
    expect(superiority).toBeGreaterThan(0.2);
    expect(superiority).toBeLessThan(0.8);
    expect(Math.abs(median(unknown) - median(wrong)) / median(wrong)).toBeLessThan(0.3);
  }, 60_000);

  it('control: the same statistics plainly see a request that skips the hash (a too-short password)', async () => {
    const [skipped, hashed] = await sample(
      30,
      () => time(unknownEmail, 'short', 400),
      () => time(() => known.email, 'a wrong password 4', 401),
    );
    console.info(describeSamples('control: no hash (weak_password) vs wrong password', { name: 'no hash (weak_password)', values: skipped }, { name: 'wrong password', values: hashed }));
    expect(mannWhitney(skipped, hashed).superiority).toBeLessThan(0.2);
  }, 60_000);
});
