/**
 * Account enumeration through password reset (SPEC §7): `POST /auth/password/forgot` answers
 * 202 whether or not the account exists, with the same body and statistically the same time.
 * Real HTTP requests to a listening server whose mails go to a real SMTP server.
 *
 * The approach of test/attack/enumeration.test.ts: the two kinds of request interleaved in a
 * random order, medians, Mann–Whitney U and Kolmogorov–Smirnov printed, and an effect-size bound
 * asserted that only a real leak breaks. The leak to fear here is the link and its mail being
 * written before the answer for existing accounts only (one more transaction); the control shows
 * the same statistics plainly see exactly that cost.
 *
 * One difference: the timed client runs in a process of its own, as an attacker does. In this
 * process the server's work after the answer (writing the link, which must come after it) holds
 * the event loop the client reads its answer on, and shows up as a gap of a few milliseconds that
 * no remote client can see.
 */
import { execFile } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newLinkRequest } from '../../src/auth/account-links.js';
import { codeOf, type HttpResponse } from '../faults/helpers/http.js';
import { eventually } from '../helpers/account-mail.js';
import { startMailbox, type Mailbox } from '../helpers/mailbox.js';
import { describeSamples, mannWhitney, median } from './helpers/stats.js';
import { registerAccount, startLiveApp, type Account, type LiveApp } from './helpers/live-app.js';

let mailbox: Mailbox;
let t: LiveApp;
let known: Account[];
let disabled: Account;

beforeAll(async () => {
  mailbox = await startMailbox();
  // RATE_LIMITS=off: hundreds of requests from one IP for a few accounts, to measure, not to be limited.
  t = await startLiveApp({ RATE_LIMITS: 'off', SMTP_URL: mailbox.url });
  known = [];
  for (let i = 0; i < 4; i++) known.push(await registerAccount(t.http));
  disabled = await registerAccount(t.http);
  await t.db.store.setUserDisabled(disabled.email, true, t.clock.now());
});
afterAll(async () => {
  await t?.close();
  await mailbox?.stop();
});

const forgot = (email: string) => t.http.post('/auth/password/forgot', { email });
const unknownEmail = () => `nobody-${Math.random().toString(36).slice(2)}@example.com`;
let turn = 0;
const knownEmail = () => known[turn++ % known.length]!.email;

/** Status, every header but Date, and the body bytes. */
function fingerprint(res: HttpResponse) {
  const { date: _date, ...headers } = res.headers;
  return { status: res.status, headers, body: res.text };
}

describe('identical answers', () => {
  it('an unknown address, an existing account (any case), a disabled one: byte-identical 202s', async () => {
    const answers = {
      unknown: await forgot(unknownEmail()),
      known: await forgot(known[0]!.email),
      knownUpperCase: await forgot(known[0]!.email.toUpperCase()),
      lookalike: await forgot(known[0]!.email.replace('@', '+x@')),
      disabled: await forgot(disabled.email),
    };
    const reference = fingerprint(answers.known);
    expect(reference.status).toBe(202);
    for (const [name, res] of Object.entries(answers)) expect(fingerprint(res), name).toEqual(reference);
    expect(reference.body).not.toContain(known[0]!.email);
    expect(codeOf(answers.unknown)).toBeUndefined();
  });
});

describe('timing', () => {
  async function time(email: () => string): Promise<number> {
    const res = await forgot(email());
    expect(res.status, res.text).toBe(202);
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

  /**
   * Times each forgot request of `plan` (in order) from a separate Node process over one keep-alive
   * connection; answers the milliseconds of each, from writing the request to the end of the answer.
   */
  async function timeFromOutside(plan: string[]): Promise<number[]> {
    const client = `
      const http = require('node:http');
      const [url, plan] = JSON.parse(process.argv[1]);
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      const post = (email) => new Promise((resolve, reject) => {
        const body = JSON.stringify({ email });
        const started = performance.now();
        const req = http.request(url + '/auth/password/forgot', {
          method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode === 202 ? performance.now() - started : -res.statusCode));
        });
        req.on('error', reject);
        req.end(body);
      });
      (async () => {
        const ms = [];
        for (const email of plan) ms.push(await post(email));
        process.stdout.write(JSON.stringify(ms));
        agent.destroy();
      })();`;
    const stdout = await new Promise<string>((resolve, reject) =>
      execFile(process.execPath, ['-e', client, JSON.stringify([t.url, plan])], { maxBuffer: 10_000_000, timeout: 100_000 }, (error, out) =>
        error ? reject(error) : resolve(out),
      ),
    );
    const ms = JSON.parse(stdout) as number[];
    expect(ms.filter((m) => m < 0), 'answers other than 202').toEqual([]);
    return ms;
  }

  it('an unknown address and an existing account are statistically indistinguishable (numbers printed below)', async () => {
    const n = 150;
    const warmUp = Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? unknownEmail() : knownEmail()));
    const order: (0 | 1)[] = [...Array<0>(n).fill(0), ...Array<1>(n).fill(1)];
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    const ms = (await timeFromOutside([...warmUp, ...order.map((which) => (which === 0 ? unknownEmail() : knownEmail()))])).slice(warmUp.length);
    const unknown = ms.filter((_, i) => order[i] === 0);
    const existing = ms.filter((_, i) => order[i] === 1);
    console.info(describeSamples('forgot password: unknown address vs existing account', { name: 'unknown address', values: unknown }, { name: 'existing account', values: existing }));

    // Effect size, not significance: writing the link before the answer gives P ≈ 0.1–0.2 (see the control).
    const { superiority } = mannWhitney(unknown, existing);
    expect(superiority).toBeGreaterThan(0.35);
    expect(superiority).toBeLessThan(0.65);
    expect(Math.abs(median(unknown) - median(existing)) / median(existing)).toBeLessThan(0.3);
    // the existing accounts did get their links
    const linked = () => t.db.store.db.selectFrom('account_tokens').select('user_id').where('purpose', '=', 'reset_password').execute();
    await eventually(async () => (await linked()).length === known.length, 10_000, 'a link for each existing account');
    expect(new Set((await linked()).map((l) => l.user_id))).toEqual(new Set(known.map((k) => k.sub)));
  }, 120_000);

  it('control: the same statistics plainly see a forgot that writes its link and mail before answering', async () => {
    const victim = known[1]!;
    const { accounts } = t.app.tessera;
    const meta = { ip: '127.0.0.1', userAgent: null };
    // what the leak would cost: the request, plus the transaction that writes the link, its mail and its event
    const leaky = async () => {
      const started = performance.now();
      const res = await forgot(unknownEmail());
      expect(res.status).toBe(202);
      const request = newLinkRequest('reset_password', victim.sub, victim.email, t.clock.now(), 1800);
      await accounts.requestLink(request, { template: 'reset_password', to: victim.email, name: '' }, 'password_reset_requested', meta);
      return performance.now() - started;
    };
    const [unknown, written] = await sample(60, () => time(unknownEmail), leaky);
    console.info(describeSamples('control: no write vs a write before the answer', { name: 'unknown address', values: unknown }, { name: 'link written before answering', values: written }));
    expect(mannWhitney(unknown, written).superiority).toBeLessThan(0.3);
  }, 120_000);
});
