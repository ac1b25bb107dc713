import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeAmr, MfaRequiredError, TesseraClient, TesseraClientError } from '../../src/client/index.js';
import { base32Decode, totpCode, totpStep } from '../../src/core/totp.js';
import { FEATURE_BACKENDS } from '../helpers/backends.js';
import { newEmail, PASSWORD } from '../helpers/app.js';
import { startLiveServer, type LiveServer } from '../helpers/live-issuer.js';

/**
 * The client's second factors (SPEC §8) in Node with the body transport, against a real
 * listening server: login answered `mfa_required`, `verifyMfa` with an app code or a recovery
 * code, TOTP setup and removal, recovery codes, re-authentication, `adoptTokenResponse`.
 */

/** The app code of `offset` steps from now: each proof uses its own step, as a used step is refused again. */
function code(secret: string, offset: number): string {
  return totpCode(base32Decode(secret)!, totpStep(new Date()) + offset);
}

async function rejection(promise: Promise<unknown>): Promise<TesseraClientError> {
  const error = await promise.then(() => expect.fail('expected a rejection'), (e: unknown) => e);
  expect(error).toBeInstanceOf(TesseraClientError);
  return error as TesseraClientError;
}

describe.each(FEATURE_BACKENDS)('TesseraClient second factors, on %s', (backend) => {
  let server: LiveServer;
  const clients: TesseraClient[] = [];

  beforeAll(async () => {
    server = await startLiveServer(backend, { EMAIL: 'off', RATE_LIMITS: 'off' });
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    await server?.close();
  });

  function newClient(): TesseraClient {
    const client = new TesseraClient({ baseUrl: server.url, crossTab: false });
    clients.push(client);
    return client;
  }

  /** A user with an authenticator app: its secret and recovery codes. */
  async function userWithTotp() {
    const email = newEmail();
    const client = newClient();
    await client.register({ email, password: PASSWORD });
    const setup = await client.setupTotp();
    expect(setup.otpauthUri).toMatch(/^otpauth:\/\/totp\//);
    expect(setup.otpauthUri).toContain(`secret=${setup.secret}`);
    const recoveryCodes = await client.confirmTotp(code(setup.secret, -1));
    expect(recoveryCodes).toHaveLength(10);
    return { email, client, secret: setup.secret, recoveryCodes };
  }

  it('login answers mfaRequired with the methods; verifyMfa with an app code signs in', async () => {
    const { email, secret } = await userWithTotp();
    const client = newClient();
    const error = await rejection(client.login({ email, password: PASSWORD }));
    expect(error).toBeInstanceOf(MfaRequiredError);
    expect(error).toMatchObject({ code: 'mfa_required', status: 403, mfaRequired: true });
    expect((error as MfaRequiredError).methods).toEqual(expect.arrayContaining(['totp', 'recovery_code']));
    expect(typeof (error as MfaRequiredError).mfaToken).toBe('string');
    expect(client.state.status).not.toBe('signed_in');
    expect(client.mfaPending).toBe(true);

    const user = await client.verifyMfa({ code: code(secret, 0) });
    expect(user.email).toBe(email);
    expect(client.state).toMatchObject({ status: 'signed_in', user: { email } });
    expect(client.mfaPending).toBe(false);
    const sessions = await client.sessions();
    const current = sessions.find((s) => s.current)!;
    expect(current.amr).toEqual(expect.arrayContaining(['pwd', 'otp', 'mfa']));
    expect(describeAmr(current.amr)).toBe('password + app code');
    expect(typeof current.authTime).toBe('string');
  });

  it('a wrong code is invalid_code, and the sign-in still waits for the right one', async () => {
    const { email, secret } = await userWithTotp();
    const client = newClient();
    await rejection(client.login({ email, password: PASSWORD }));
    const wrong = code(secret, 0) === '000000' ? '111111' : '000000';
    expect(await rejection(client.verifyMfa({ code: wrong }))).toMatchObject({ code: 'invalid_code', status: 400 });
    expect(client.state.status).not.toBe('signed_in');
    expect((await client.verifyMfa({ code: code(secret, 0) })).email).toBe(email);
  });

  it('a recovery code finishes the sign-in once; regenerate replaces the codes', async () => {
    const { email, recoveryCodes } = await userWithTotp();
    const client = newClient();
    await rejection(client.login({ email, password: PASSWORD }));
    expect((await client.verifyMfa({ recoveryCode: recoveryCodes[0]! })).email).toBe(email);
    expect(client.state.status).toBe('signed_in');

    const other = newClient();
    await rejection(other.login({ email, password: PASSWORD }));
    expect(await rejection(other.verifyMfa({ recoveryCode: recoveryCodes[0]! }))).toMatchObject({ code: 'invalid_code' });

    const fresh = await client.regenerateRecoveryCodes();
    expect(fresh).toHaveLength(10);
    expect(fresh).not.toContain(recoveryCodes[1]);
    expect(await rejection(other.verifyMfa({ recoveryCode: recoveryCodes[1]! }))).toMatchObject({ code: 'invalid_code' });
    expect((await other.verifyMfa({ recoveryCode: fresh[0]! })).email).toBe(email);
  });

  it('verifyMfa without a pending sign-in is invalid_token; an explicit mfaToken works from another client', async () => {
    const { email, secret } = await userWithTotp();
    expect(await rejection(newClient().verifyMfa({ code: '123456' }))).toMatchObject({ code: 'invalid_token' });
    const error = (await rejection(newClient().login({ email, password: PASSWORD }))) as MfaRequiredError;
    const finisher = newClient();
    expect((await finisher.verifyMfa({ code: code(secret, 0), mfaToken: error.mfaToken })).email).toBe(email);
  });

  it('reauthenticate with a password or a code; disableTotp needs the factor; then login is plain again', async () => {
    const { email, client, secret } = await userWithTotp();
    // The confirming session's amr has no factor in it: removing the app needs one.
    expect(await rejection(client.disableTotp())).toMatchObject({ code: 'reauthentication_required', status: 403 });
    expect(await rejection(client.reauthenticate({ password: 'wrong password here' }))).toMatchObject({ code: 'invalid_credentials' });
    expect((await client.reauthenticate({ password: PASSWORD })).email).toBe(email);
    expect(await rejection(client.disableTotp())).toMatchObject({ code: 'reauthentication_required' });
    expect((await client.reauthenticate({ code: code(secret, 0) })).email).toBe(email);
    await client.disableTotp();
    const plain = newClient();
    expect((await plain.login({ email, password: PASSWORD })).email).toBe(email);
    expect(plain.mfaPending).toBe(false);
  });

  it('adoptTokenResponse takes up a token response from a route the client did not call', async () => {
    const email = newEmail();
    await newClient().register({ email, password: PASSWORD });
    const response = await fetch(`${server.url}/auth/login`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email, password: PASSWORD, transport: 'body' }),
    });
    const tokens = await response.json();
    const client = newClient();
    expect(client.adoptTokenResponse(tokens).email).toBe(email);
    expect(client.state.status).toBe('signed_in');
    expect((await client.me()).email).toBe(email);
    expect(() => client.adoptTokenResponse({} as never)).toThrow(TesseraClientError);
  });

  it('describeAmr words', () => {
    expect(describeAmr(['pwd'])).toBe('password');
    expect(describeAmr(['hwk', 'user'])).toBe('passkey');
    expect(describeAmr(['pwd', 'hwk', 'user', 'mfa'])).toBe('password + passkey');
    expect(describeAmr(undefined)).toBe('unknown');
  });
});
