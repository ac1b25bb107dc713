import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { takeLinkToken, TesseraClient, TesseraClientError, type AuthState } from '../../src/client/index.js';
import { FEATURE_BACKENDS } from '../helpers/backends.js';
import { newEmail, PASSWORD } from '../helpers/app.js';
import { startLiveServer, type LiveServer } from '../helpers/live-issuer.js';
import { startMailbox, type Mailbox, type ParsedMail } from '../helpers/mailbox.js';

/**
 * The client's account calls of SPEC §7 (reset, verification, email change, profile, export,
 * deletion), in Node with the body transport, against a real listening server whose mails go
 * to a real SMTP server on loopback; and `takeLinkToken` on a stubbed page.
 */

const NEW_PASSWORD = 'a completely different passphrase';
const SUBJECTS = {
  verify: 'Confirm your email address for Tessera',
  reset: 'Reset your Tessera password',
  change: 'Confirm your new email address for Tessera',
} as const;

const recipient = (mail: ParsedMail) => (mail.to && !Array.isArray(mail.to) ? mail.to.value[0]?.address : undefined);

async function expectClientError(promise: Promise<unknown>, code: string, status: number): Promise<TesseraClientError> {
  const error = await promise.then(
    () => expect.fail(`expected a TesseraClientError ${code}`),
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(TesseraClientError);
  expect(error).toMatchObject({ name: 'TesseraClientError', code, status });
  return error as TesseraClientError;
}

describe.each(FEATURE_BACKENDS)('TesseraClient account recovery and the account itself, on %s', (backend) => {
  let mailbox: Mailbox;
  let server: LiveServer;
  const clients: TesseraClient[] = [];

  beforeAll(async () => {
    mailbox = await startMailbox();
    server = await startLiveServer(backend, { SMTP_URL: mailbox.url, RATE_LIMITS: 'off' });
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    await server?.close();
    await mailbox?.stop();
  });

  /** A body-transport client recording its paths, refresh tokens and states. */
  function newClient() {
    const paths: { method: string; path: string; authorization: string | null }[] = [];
    const tokens: (string | null)[] = [];
    const states: AuthState[] = [];
    const client = new TesseraClient({
      baseUrl: server.url,
      crossTab: false,
      onRefreshToken: (token) => tokens.push(token),
      fetch: async (input, init) => {
        const request = new Request(input, init);
        paths.push({ method: request.method, path: new URL(request.url).pathname, authorization: request.headers.get('authorization') });
        return globalThis.fetch(request);
      },
    });
    client.onChange((s) => states.push(s));
    clients.push(client);
    return { client, paths, tokens, states };
  }

  /** The `n`th mail (1-based) to `to` with `subject`, already here or still to come. */
  function mail(to: string, subject: string, n = 1): Promise<ParsedMail> {
    const matches = (m: ParsedMail) => recipient(m) === to.toLowerCase() && m.subject === subject;
    return mailbox.waitFor((m) => matches(m) && mailbox.messages.filter(matches).indexOf(m) === n - 1);
  }

  it('verifyEmail: the sign-up link verifies, state.user follows at once; the link works once', async () => {
    const { client, states } = newClient();
    const email = newEmail();
    const user = await client.register({ email, password: PASSWORD });
    expect(user.emailVerified).toBe(false);
    const token = mailbox.linkToken(await mail(email, SUBJECTS.verify));

    const result = await client.verifyEmail(token);
    expect(result).toEqual({ emailChanged: false, user: { ...user, emailVerified: true } });
    expect(client.state).toEqual({ status: 'signed_in', user: { ...user, emailVerified: true } });
    // Listeners hear of the change in the user's details (a banner to take down), once.
    expect(states.map((s) => [s.status, s.user?.emailVerified])).toEqual([['signed_in', false], ['signed_in', true]]);

    await expectClientError(client.verifyEmail(token), 'invalid_token', 400);
    await expectClientError(client.verifyEmail('not-a-token'), 'invalid_token', 400);
    expect(client.state.status).toBe('signed_in');
  });

  it('verifyEmail without a session: verified, and nothing to say about a user', async () => {
    const email = newEmail();
    await newClient().client.register({ email, password: PASSWORD });
    const { client, paths } = newClient();
    expect(await client.verifyEmail(mailbox.linkToken(await mail(email, SUBJECTS.verify)))).toEqual({ emailChanged: false, user: null });
    expect(paths.map((p) => `${p.method} ${p.path} ${p.authorization}`)).toEqual(['POST /auth/email/verify null']);
    expect((await client.login({ email, password: PASSWORD })).emailVerified).toBe(true);
  });

  it('resendVerification: to the signed-in user with its Bearer, or to an address with no credential', async () => {
    const { client, paths } = newClient();
    const email = newEmail();
    await client.register({ email, password: PASSWORD });
    await mail(email, SUBJECTS.verify);

    await client.resendVerification();
    const second = await mail(email, SUBJECTS.verify, 2);
    expect(paths.at(-1)).toEqual({ method: 'POST', path: '/auth/email/verify/resend', authorization: expect.stringMatching(/^Bearer /) });

    const stranger = newClient();
    await stranger.client.resendVerification(email);
    const third = await mail(email, SUBJECTS.verify, 3);
    expect(stranger.paths).toEqual([{ method: 'POST', path: '/auth/email/verify/resend', authorization: null }]);

    // Each resend replaces the previous link: only the newest works.
    await expectClientError(client.verifyEmail(mailbox.linkToken(second)), 'invalid_token', 400);
    await client.verifyEmail(mailbox.linkToken(third));
    expect(client.state.user?.emailVerified).toBe(true);
  });

  it('forgotPassword and resetPassword: every session ends, the resetting client signs out, the new password works', async () => {
    const email = newEmail();
    const other = newClient();
    await other.client.register({ email, password: PASSWORD });
    const resetter = newClient();
    await resetter.client.login({ email, password: PASSWORD });

    // The same answer for an address with no account.
    await resetter.client.forgotPassword(newEmail());
    await resetter.client.forgotPassword(email.toUpperCase());
    const token = mailbox.linkToken(await mail(email, SUBJECTS.reset));

    await expectClientError(resetter.client.resetPassword(token, 'short'), 'weak_password', 400);
    await expectClientError(resetter.client.resetPassword('x'.repeat(20), NEW_PASSWORD), 'invalid_token', 400);
    expect(resetter.client.state.status).toBe('signed_in');

    await resetter.client.resetPassword(token, NEW_PASSWORD);
    // This client's session ended with the others: it signed out (and told onRefreshToken).
    expect(resetter.client.state).toEqual({ status: 'signed_out', user: null, reason: 'logout' });
    expect(resetter.tokens.at(-1)).toBeNull();
    expect(resetter.paths.at(-1)).toMatchObject({ method: 'POST', path: '/auth/logout' });
    // The other session learns it at its next refresh.
    expect(await other.client.refresh()).toBe(false);
    expect(other.client.state).toMatchObject({ status: 'signed_out', reason: 'invalid_refresh_token' });

    await expectClientError(resetter.client.resetPassword(token, NEW_PASSWORD), 'invalid_token', 400);
    const fresh = newClient().client;
    await expectClientError(fresh.login({ email, password: PASSWORD }), 'invalid_credentials', 401);
    const user = await fresh.login({ email, password: NEW_PASSWORD });
    // A reset proves the address too.
    expect(user.emailVerified).toBe(true);
  });

  it('resetPassword from a client that is not signed in makes no other request', async () => {
    const email = newEmail();
    await newClient().client.register({ email, password: PASSWORD });
    const { client, paths } = newClient();
    await client.forgotPassword(email);
    await client.resetPassword(mailbox.linkToken(await mail(email, SUBJECTS.reset)), NEW_PASSWORD);
    expect(paths.map((p) => p.path)).toEqual(['/auth/password/forgot', '/auth/password/reset']);
    expect(paths.every((p) => p.authorization === null)).toBe(true);
  });

  it('changeEmail: a wrong password is 403; the link to the new address moves the account, and says so', async () => {
    const { client, paths, states } = newClient();
    const email = newEmail();
    const next = newEmail();
    const user = await client.register({ email, password: PASSWORD });

    await expectClientError(client.changeEmail(next, 'not the password'), 'invalid_credentials', 403);
    expect(paths.some((p) => p.path === '/auth/refresh')).toBe(false);
    await client.changeEmail(next, PASSWORD);
    const token = mailbox.linkToken(await mail(next, SUBJECTS.change));
    // Nothing changes until the link is used.
    expect((await client.me()).email).toBe(email);

    const result = await client.verifyEmail(token);
    expect(result).toEqual({ emailChanged: true, user: { ...user, email: next, emailVerified: true } });
    expect(client.state.user).toEqual(result.user);
    expect(states.at(-1)?.user?.email).toBe(next);
    // An email change keeps the sessions.
    expect(client.state.status).toBe('signed_in');
    expect((await newClient().client.login({ email: next, password: PASSWORD })).id).toBe(user.id);
  });

  it('changeEmail: the link of an address taken meanwhile is email_taken; a client without a session still tells a change link', async () => {
    const { client } = newClient();
    const wanted = newEmail();
    await client.register({ email: newEmail(), password: PASSWORD });
    await client.changeEmail(wanted, PASSWORD);
    const token = mailbox.linkToken(await mail(wanted, SUBJECTS.change));
    await newClient().client.register({ email: wanted, password: PASSWORD });
    await expectClientError(newClient().client.verifyEmail(token), 'email_taken', 409);

    const next = newEmail();
    await client.changeEmail(next, PASSWORD);
    const elsewhere = newClient().client;
    expect(await elsewhere.verifyEmail(mailbox.linkToken(await mail(next, SUBJECTS.change)))).toEqual({ emailChanged: true, user: null });
  });

  it('updateProfile, exportAccount', async () => {
    const { client, states } = newClient();
    const email = newEmail();
    const user = await client.register({ email, password: PASSWORD, name: 'Ada' });

    expect(await client.updateProfile({ name: 'Ada Lovelace' })).toEqual({ ...user, name: 'Ada Lovelace' });
    expect(client.state.user?.name).toBe('Ada Lovelace');
    expect(states.at(-1)?.user?.name).toBe('Ada Lovelace');
    await expectClientError(client.updateProfile({ name: 'x'.repeat(10_000) }), 'invalid_request', 400);

    const data = await client.exportAccount();
    expect(data.user).toMatchObject({ id: user.id, email, name: 'Ada Lovelace' });
    expect(data.sessions).toHaveLength(1);
    expect(data.events.length).toBeGreaterThan(0);
    expect(JSON.stringify(data)).not.toMatch(/\$argon2|tsr_/);
  });

  it('deleteAccount: a wrong password changes nothing; the right one deletes and signs out', async () => {
    const { client, tokens } = newClient();
    const email = newEmail();
    await client.register({ email, password: PASSWORD });
    const other = newClient();
    await other.client.login({ email, password: PASSWORD });

    await expectClientError(client.deleteAccount('not the password'), 'invalid_credentials', 403);
    expect(client.state.status).toBe('signed_in');

    await client.deleteAccount(PASSWORD);
    expect(client.state).toEqual({ status: 'signed_out', user: null, reason: 'logout' });
    expect(tokens.at(-1)).toBeNull();
    expect(await other.client.refresh()).toBe(false);
    expect(other.client.state.status).toBe('signed_out');
    await expectClientError(newClient().client.login({ email, password: PASSWORD }), 'invalid_credentials', 401);
  });
});

describe('with email features off', () => {
  let server: LiveServer;
  beforeAll(async () => {
    server = await startLiveServer('pglite', { EMAIL: 'off' });
  });
  afterAll(async () => {
    await server?.close();
  });

  it('the mail-sending calls are not_found; the account calls still work', async () => {
    const client = new TesseraClient({ baseUrl: server.url, crossTab: false });
    await expectClientError(client.forgotPassword(newEmail()), 'not_found', 404);
    await expectClientError(client.verifyEmail('x'.repeat(20)), 'not_found', 404);
    await client.register({ email: newEmail(), password: PASSWORD, name: 'Ada' });
    expect((await client.updateProfile({ name: 'Grace' })).name).toBe('Grace');
    await client.deleteAccount(PASSWORD);
    expect(client.state.status).toBe('signed_out');
    client.close();
  });
});

describe('takeLinkToken', () => {
  afterEach(() => {
    vi.unstubAllGlobals();
  });

  /** A page at `url`: location, and a history whose replaceState moves it. */
  function stubPage(url: string) {
    const current = new URL(url);
    const replaced: string[] = [];
    vi.stubGlobal('location', {
      get hash() { return current.hash; },
      get pathname() { return current.pathname; },
      get search() { return current.search; },
    });
    vi.stubGlobal('history', {
      state: { kept: true },
      replaceState(state: unknown, _title: string, next: string) {
        expect(state).toEqual({ kept: true });
        replaced.push(next);
        const moved = new URL(next, current);
        current.hash = moved.hash;
        current.pathname = moved.pathname;
        current.search = moved.search;
      },
    });
    return { replaced, href: () => current.href };
  }

  it('reads the token and takes it out of the address', () => {
    const page = stubPage('https://app.example.com/reset-password#token=AbC-_123');
    expect(takeLinkToken()).toBe('AbC-_123');
    expect(page.replaced).toEqual(['/reset-password']);
    expect(page.href()).toBe('https://app.example.com/reset-password');
    // Once: the second call finds nothing.
    expect(takeLinkToken()).toBeNull();
  });

  it('keeps the query and the other fragment parameters', () => {
    const page = stubPage('https://app.example.com/verify-email?from=mail#lang=en&token=t0k&x=1');
    expect(takeLinkToken()).toBe('t0k');
    expect(page.href()).toBe('https://app.example.com/verify-email?from=mail#lang=en&x=1');
  });

  it('null, and the address untouched, without a token', () => {
    const page = stubPage('https://app.example.com/reset-password#section');
    expect(takeLinkToken()).toBeNull();
    expect(page.replaced).toEqual([]);
    const empty = stubPage('https://app.example.com/reset-password#token=');
    expect(takeLinkToken()).toBeNull();
    expect(empty.replaced).toEqual(['/reset-password']);
  });

  it('null outside a browser', () => {
    expect(takeLinkToken()).toBeNull();
  });
});
