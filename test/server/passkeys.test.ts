/**
 * Passkeys through the real app (SPEC §8), with a software authenticator (ES256, "none"
 * attestation): registration behind recent authentication, sign-in with a passkey alone
 * (discoverable: no email), finishing a password sign-in's mfaToken, and every refusal — a
 * replayed, expired, forged or foreign challenge, a wrong origin or RP ID, no user verification,
 * an unknown or removed credential, a sign counter that goes backwards, malformed responses,
 * another user's mfaToken. Frozen clock, every backend.
 */
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/core/config.js';
import { deriveKeys } from '../../src/core/derive-key.js';
import { WebAuthnChallengeCodec } from '../../src/core/webauthn-challenge.js';
import { bearer, claimsOf, eventTypes } from '../helpers/account-mail.js';
import { FEATURE_BACKENDS } from '../helpers/backends.js';
import { expectProblem, login, register, startTestApp, TEST_SECRET, type TestApp } from '../helpers/app.js';
import { SoftAuthenticator } from '../helpers/soft-authenticator.js';

const ADMIN_KEY = 'an-admin-key-of-at-least-32-bytes-for-tests';
const ROOMY = { registerPerIp: 100_000, loginAttemptsPerIp: 100_000, loginFailuresPerAccountIp: 100_000 };

describe.each(FEATURE_BACKENDS)('passkeys on %s', (backend) => {
  let t: TestApp;
  let origin: string;
  beforeAll(async () => {
    t = await startTestApp(backend, { ADMIN_API_KEY: ADMIN_KEY }, ROOMY);
    origin = t.config.publicOrigin;
  });
  afterAll(() => t.close());

  const post = (url: string, payload: unknown, headers: Record<string, string> = {}) =>
    t.app.inject({ method: 'POST', url, payload: payload as Record<string, unknown>, headers });
  const registerOptions = async (accessToken: string) => {
    const res = await post('/auth/passkeys/register/options', {}, bearer(accessToken));
    expect(res.statusCode, res.body).toBe(200);
    return res.json();
  };
  const loginOptions = async () => {
    const res = await post('/auth/passkeys/login/options', {});
    expect(res.statusCode, res.body).toBe(200);
    return res.json();
  };
  const loginVerify = (response: unknown, extra: Record<string, unknown> = {}) =>
    post('/auth/passkeys/login/verify', { response, transport: 'body', ...extra });
  const list = (accessToken: string) => t.app.inject({ method: 'GET', url: '/auth/passkeys', headers: bearer(accessToken) });
  const remove = (accessToken: string, id: string) => t.app.inject({ method: 'DELETE', url: `/auth/passkeys/${id}`, headers: bearer(accessToken) });

  /** A new account with a verified address (email features are on: enrolment needs one). */
  async function account() {
    const { email, body } = await register(t.app);
    const userId = claimsOf(body.accessToken).sub;
    await t.db.store.db.updateTable('users').set({ email_verified_at: t.clock.now() }).where('id', '=', userId).execute();
    return { email, userId, accessToken: body.accessToken };
  }

  /** An account with one passkey on `authenticator`. */
  async function withPasskey(authenticator = new SoftAuthenticator(origin), name = 'Laptop') {
    const user = await account();
    const options = await registerOptions(user.accessToken);
    const res = await post('/auth/passkeys/register/verify', { response: authenticator.create(options), name }, bearer(user.accessToken));
    expect(res.statusCode, res.body).toBe(200);
    return { ...user, authenticator, passkeyId: res.json().id as string };
  }

  function tokens(res: LightMyRequestResponse) {
    expect(res.statusCode, res.body).toBe(200);
    return res.json() as { accessToken: string; refreshToken: string; user: { id: string } };
  }

  it('registers a discoverable passkey whose user handle is the user id, lists it, records passkey_added', async () => {
    const user = await account();
    const options = await registerOptions(user.accessToken);
    expect(options.rp.id).toBe('localhost');
    expect(Buffer.from(options.user.id, 'base64url').toString('hex')).toBe(user.userId.replaceAll('-', ''));
    expect(options.authenticatorSelection).toMatchObject({ residentKey: 'required', userVerification: 'required' });
    expect(options.timeout).toBe(300_000);
    const authenticator = new SoftAuthenticator(origin);
    const res = await post('/auth/passkeys/register/verify', { response: authenticator.create(options), name: 'Phone' }, bearer(user.accessToken));
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toMatchObject({ name: 'Phone', lastUsedAt: null });
    const listed = await list(user.accessToken);
    expect(listed.json().passkeys).toEqual([{ id: res.json().id, name: 'Phone', createdAt: t.clock.now().toISOString(), lastUsedAt: null }]);
    expect(await eventTypes(t, user.userId)).toContain('passkey_added');
    // A second registration excludes the first credential.
    const again = await registerOptions((await passkeySignIn(authenticator)).accessToken);
    expect(again.excludeCredentials.map((c: { id: string }) => c.id)).toEqual([res.json().id]);
  });

  async function passkeySignIn(authenticator: SoftAuthenticator) {
    return tokens(await loginVerify(authenticator.get(await loginOptions())));
  }

  it('signs in with the passkey alone: no email, amr ["hwk","user"], auth_time now; lastUsedAt set', async () => {
    const user = await withPasskey();
    const options = await loginOptions();
    expect(options).toMatchObject({ rpId: 'localhost', userVerification: 'required', allowCredentials: [] });
    t.clock.advance(7);
    const body = tokens(await loginVerify(user.authenticator.get(options)));
    const claims = claimsOf(body.accessToken);
    expect(claims.sub).toBe(user.userId);
    expect(claims.amr).toEqual(['hwk', 'user']);
    expect(claims.auth_time).toBe(Math.floor(t.clock.now().getTime() / 1000));
    expect(body.refreshToken).toMatch(/^tsr_/);
    expect((await list(body.accessToken)).json().passkeys[0].lastUsedAt).toBe(t.clock.now().toISOString());
    expect(await eventTypes(t, user.userId)).toContain('login_succeeded');
  });

  it('the cookie transport answers as /auth/login does: the refresh token only in the cookie', async () => {
    const user = await withPasskey();
    const res = await post('/auth/passkeys/login/verify', { response: user.authenticator.get(await loginOptions()) });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json().refreshToken).toBeUndefined();
    expect(res.cookies.find((c) => c.name === 'tessera_refresh')?.value).toMatch(/^tsr_/);
  });

  it('a replayed assertion is refused, and so is a second assertion on a used challenge', async () => {
    const user = await withPasskey();
    const options = await loginOptions();
    const assertion = user.authenticator.get(options);
    tokens(await loginVerify(assertion));
    expectProblem(await loginVerify(assertion), 400, 'invalid_code');
    expectProblem(await loginVerify(user.authenticator.get(options)), 400, 'invalid_code');
  });

  it('an expired challenge is refused (5 minutes)', async () => {
    const user = await withPasskey();
    const options = await loginOptions();
    t.clock.advance(5 * 60 + 1);
    expectProblem(await loginVerify(user.authenticator.get(options)), 400, 'invalid_code');
    // Made with an old expiry straight through the codec: the same.
    const codec = new WebAuthnChallengeCodec(deriveKeys(TEST_SECRET, undefined, 'webauthn-challenge'));
    const old = Buffer.from(codec.make('login', undefined, new Date(t.clock.now().getTime() - 301_000))).toString('base64url');
    expectProblem(await loginVerify(user.authenticator.get({ ...options, challenge: old })), 400, 'invalid_code');
    tokens(await loginVerify(user.authenticator.get(await loginOptions())));
  });

  it('a forged challenge, a registration challenge, or one under another secret is refused', async () => {
    const user = await withPasskey();
    const options = await loginOptions();
    const bytes = Buffer.from(options.challenge, 'base64url');
    bytes[bytes.length - 1]! ^= 1;
    expectProblem(await loginVerify(user.authenticator.get({ ...options, challenge: bytes.toString('base64url') })), 400, 'invalid_code');
    const other = new WebAuthnChallengeCodec(deriveKeys('another-secret-that-is-at-least-32-bytes!!', undefined, 'webauthn-challenge'));
    const foreign = Buffer.from(other.make('login', undefined, t.clock.now())).toString('base64url');
    expectProblem(await loginVerify(user.authenticator.get({ ...options, challenge: foreign })), 400, 'invalid_code');
    const registration = await registerOptions((await passkeySignIn(user.authenticator)).accessToken);
    expectProblem(await loginVerify(user.authenticator.get({ ...options, challenge: registration.challenge })), 400, 'invalid_code');
  });

  it('a wrong origin or RP ID is refused', async () => {
    const user = await withPasskey();
    expectProblem(await loginVerify(user.authenticator.get(await loginOptions(), { origin: 'https://evil.example' })), 400, 'invalid_code');
    expectProblem(await loginVerify(user.authenticator.get(await loginOptions(), { rpId: 'evil.example' })), 400, 'invalid_code');
    const other = await account();
    const options = await registerOptions(other.accessToken);
    const res = await post('/auth/passkeys/register/verify', { response: new SoftAuthenticator('https://evil.example').create(options) }, bearer(other.accessToken));
    expectProblem(res, 400, 'invalid_code');
    expect((await list(other.accessToken)).json().passkeys).toEqual([]);
  });

  it('user verification is required, at registration and sign-in', async () => {
    const user = await withPasskey();
    expectProblem(await loginVerify(user.authenticator.get(await loginOptions(), { uv: false })), 400, 'invalid_code');
    const other = await account();
    const res = await post('/auth/passkeys/register/verify', { response: new SoftAuthenticator(origin).create(await registerOptions(other.accessToken), { uv: false }) }, bearer(other.accessToken));
    expectProblem(res, 400, 'invalid_code');
  });

  it('a cloned authenticator (a sign counter behind) is refused; a counter of 0 means "no counter"', async () => {
    const user = await withPasskey();
    const credential = user.authenticator.credentials[0]!;
    tokens(await loginVerify(user.authenticator.get(await loginOptions(), { counter: 5 })));
    expectProblem(await loginVerify(user.authenticator.get(await loginOptions(), { counter: 3 })), 400, 'invalid_code');
    expectProblem(await loginVerify(user.authenticator.get(await loginOptions(), { counter: 5 })), 400, 'invalid_code');
    expectProblem(await loginVerify(user.authenticator.get(await loginOptions(), { counter: 0 })), 400, 'invalid_code');
    tokens(await loginVerify(user.authenticator.get(await loginOptions(), { counter: 6, credential })));
    expect(await eventTypes(t, user.userId)).toContain('mfa_failed');

    const synced = await withPasskey(new SoftAuthenticator(origin, 0));
    tokens(await loginVerify(synced.authenticator.get(await loginOptions())));
    tokens(await loginVerify(synced.authenticator.get(await loginOptions())));
  });

  it('an unknown credential, a missing user handle or a user handle of someone else is refused', async () => {
    const user = await withPasskey();
    const stranger = new SoftAuthenticator(origin);
    const options = await registerOptions((await account()).accessToken);
    stranger.create(options); // made, never registered
    expectProblem(await loginVerify(stranger.get(await loginOptions())), 400, 'invalid_code');
    expectProblem(await loginVerify(user.authenticator.get(await loginOptions(), { userHandle: null })), 400, 'invalid_code');
    expectProblem(await loginVerify(user.authenticator.get(await loginOptions(), { userHandle: 'AAAA' })), 400, 'invalid_code');
    const other = await account();
    const theirs = Buffer.from(other.userId.replaceAll('-', ''), 'hex').toString('base64url');
    expectProblem(await loginVerify(user.authenticator.get(await loginOptions(), { userHandle: theirs })), 400, 'invalid_code');
  });

  it('malformed responses: 400 invalid_request for the shape, invalid_code for what it says', async () => {
    const user = await withPasskey();
    const good = user.authenticator.get(await loginOptions());
    expectProblem(await loginVerify({}), 400, 'invalid_request');
    expectProblem(await post('/auth/passkeys/login/verify', {}), 400, 'invalid_request');
    expectProblem(await loginVerify({ ...good, type: 'password' }), 400, 'invalid_request');
    expectProblem(await loginVerify({ ...good, response: { ...good.response, signature: 'not base64url!' } }), 400, 'invalid_request');
    expectProblem(await loginVerify({ ...good, response: { ...good.response, clientDataJSON: 'x'.repeat(5000) } }), 400, 'invalid_request');
    expectProblem(await loginVerify({ ...good, response: { ...good.response, clientDataJSON: 'bm90IGpzb24' } }), 400, 'invalid_code');
    expectProblem(await loginVerify({ ...good, response: { ...good.response, signature: good.response.authenticatorData } }), 400, 'invalid_code');
    expectProblem(await loginVerify({ ...good, response: { ...good.response, authenticatorData: 'AAAA' } }), 400, 'invalid_code');
    expectProblem(await loginVerify(good, { extra: 1 }), 400, 'invalid_request');
    // None of it spent the challenge: the genuine assertion still works once.
    tokens(await loginVerify(good));
  });

  it('registration needs a Bearer token, recent authentication and a verified email; its challenge is for this user, once', async () => {
    const user = await account();
    expectProblem(await post('/auth/passkeys/register/options', {}), 401, 'unauthorized');
    const options = await registerOptions(user.accessToken);
    const authenticator = new SoftAuthenticator(origin);
    const response = authenticator.create(options);
    // Another user cannot use this user's registration challenge.
    const other = await account();
    expectProblem(await post('/auth/passkeys/register/verify', { response }, bearer(other.accessToken)), 400, 'invalid_code');
    expect((await post('/auth/passkeys/register/verify', { response }, bearer(user.accessToken))).statusCode).toBe(200);
    // Replayed (by a session that may add factors now that there is one): refused.
    const withFactor = (await passkeySignIn(authenticator)).accessToken;
    expectProblem(await post('/auth/passkeys/register/verify', { response }, bearer(withFactor)), 400, 'invalid_code');
    expect((await list(withFactor)).json().passkeys).toHaveLength(1);

    t.clock.advance(t.config.reauthWindow + 1);
    const stale = await account();
    t.clock.advance(t.config.reauthWindow + 1);
    expectProblem(await post('/auth/passkeys/register/options', {}, bearer(stale.accessToken)), 403, 'reauthentication_required');

    const unverified = (await register(t.app)).body.accessToken;
    expectProblem(await post('/auth/passkeys/register/options', {}, bearer(unverified)), 403, 'email_not_verified');
  });

  it('once a passkey exists, adding another or removing one needs a factor, not the password alone', async () => {
    const user = await withPasskey();
    const password = tokens(await (async () => {
      const res = await login(t.app, user.email);
      expectProblem(res, 403, 'mfa_required');
      const { mfaToken } = res.json();
      return loginVerify(user.authenticator.get(await loginOptions()), { mfaToken });
    })());
    expect(claimsOf(password.accessToken).amr).toEqual(['pwd', 'hwk', 'user', 'mfa']);
    const reauthPwd = await post('/auth/reauthenticate', { password: 'correct horse battery staple' }, bearer(password.accessToken));
    expect(reauthPwd.statusCode, reauthPwd.body).toBe(200);
    const pwdOnly = reauthPwd.json().accessToken as string;
    expectProblem(await post('/auth/passkeys/register/options', {}, bearer(pwdOnly)), 403, 'reauthentication_required');
    expectProblem(await remove(pwdOnly, user.passkeyId), 403, 'reauthentication_required');
    const fresh = await passkeySignIn(user.authenticator);
    t.clock.advance(t.config.reauthWindow + 1);
    expectProblem(await remove(fresh.accessToken, user.passkeyId), 403, 'reauthentication_required');
    const now = await passkeySignIn(user.authenticator);
    expectProblem(await remove(now.accessToken, 'AAAA'), 404, 'not_found');
    expect((await remove(now.accessToken, user.passkeyId)).statusCode).toBe(204);
    expect(await eventTypes(t, user.userId)).toContain('passkey_removed');
    expect((await list(now.accessToken)).json().passkeys).toEqual([]);
    // A removed passkey signs in no more; the password alone does again.
    expectProblem(await loginVerify(user.authenticator.get(await loginOptions())), 400, 'invalid_code');
    expect((await login(t.app, user.email)).statusCode).toBe(200);
  });

  it("a password sign-in offers `passkey`, and the passkey finishes it: only the same user's, only once", async () => {
    const user = await withPasskey();
    const res = await login(t.app, user.email);
    expectProblem(res, 403, 'mfa_required');
    expect(res.json().methods).toEqual(['passkey']);
    const { mfaToken } = res.json();

    const other = await withPasskey();
    expectProblem(await loginVerify(other.authenticator.get(await loginOptions()), { mfaToken }), 400, 'invalid_code');
    expectProblem(await loginVerify(user.authenticator.get(await loginOptions()), { mfaToken, transport: 'cookie' }), 400, 'invalid_token');
    expectProblem(await loginVerify(user.authenticator.get(await loginOptions()), { mfaToken: 'garbage' }), 400, 'invalid_token');
    const body = tokens(await loginVerify(user.authenticator.get(await loginOptions()), { mfaToken }));
    expect(claimsOf(body.accessToken)).toMatchObject({ sub: user.userId, amr: ['pwd', 'hwk', 'user', 'mfa'] });
    expectProblem(await loginVerify(user.authenticator.get(await loginOptions()), { mfaToken }), 400, 'invalid_token');

    // Another user's mfaToken with this user's passkey: refused, and that token is not finished by it.
    const third = await withPasskey();
    const theirs = (await login(t.app, third.email)).json().mfaToken as string;
    expectProblem(await loginVerify(user.authenticator.get(await loginOptions()), { mfaToken: theirs }), 400, 'invalid_code');
    tokens(await loginVerify(third.authenticator.get(await loginOptions()), { mfaToken: theirs }));
  });

  it('operators see passkeys among the factors and remove them', async () => {
    const user = await withPasskey(undefined, 'Work laptop');
    const admin = (method: 'GET' | 'DELETE', url: string) => t.app.inject({ method, url, headers: { authorization: `Bearer ${ADMIN_KEY}` } });
    const shown = await admin('GET', `/admin/users/${user.userId}`);
    expect(shown.statusCode, shown.body).toBe(200);
    expect(shown.json().factors).toEqual([{ kind: 'passkey', id: user.passkeyId, name: 'Work laptop', createdAt: expect.any(String) }]);
    expect((await admin('DELETE', `/admin/users/${user.userId}/factors`)).statusCode).toBe(204);
    expect((await admin('GET', `/admin/users/${user.userId}`)).json().factors).toEqual([]);
    expectProblem(await loginVerify(user.authenticator.get(await loginOptions())), 400, 'invalid_code');
    expect((await login(t.app, user.email)).statusCode).toBe(200);
  });

  it('GET /auth/passkeys needs a Bearer token; used challenges are purged after expiry', async () => {
    expectProblem(await t.app.inject({ method: 'GET', url: '/auth/passkeys' }), 401, 'unauthorized');
    await withPasskey();
    const before = await t.db.store.db.selectFrom('used_challenges').select('id').execute();
    expect(before.length).toBeGreaterThan(0);
    const purged = await t.app.tessera.passkeys.purgeUsedChallenges(new Date(t.clock.now().getTime() + 301_000));
    expect(purged).toBeGreaterThanOrEqual(before.length);
  });
});

describe('passkeys off', () => {
  it('on an IP-address PUBLIC_URL: a warning reason in the config, and the routes are 404', async () => {
    const result = loadConfig({ TESSERA_SECRET: TEST_SECRET, PUBLIC_URL: 'http://127.0.0.1:3000' });
    expect(result.ok && result.config.webauthnRpId).toBe(undefined);
    expect(result.ok && result.config.webauthnOffReason).toMatch(/IP address 127\.0\.0\.1/);
    const t = await startTestApp('pglite', { PUBLIC_URL: 'http://127.0.0.1:3000' });
    try {
      expectProblem(await t.app.inject({ method: 'POST', url: '/auth/passkeys/login/options', payload: {} }), 404, 'not_found');
    } finally {
      await t.close();
    }
  });

  it('WEBAUTHN_RP_ID and WEBAUTHN_ORIGINS are checked: an IP, or an origin outside the RP ID, is an error', () => {
    const base = { TESSERA_SECRET: TEST_SECRET, PUBLIC_URL: 'https://auth.example.com' };
    const ok = loadConfig({ ...base, WEBAUTHN_RP_ID: 'example.com', WEBAUTHN_ORIGINS: 'https://app.example.com,https://example.com' });
    expect(ok.ok && [ok.config.webauthnRpId, ok.config.webauthnOrigins]).toEqual(['example.com', ['https://app.example.com', 'https://example.com']]);
    const defaults = loadConfig(base);
    expect(defaults.ok && [defaults.config.webauthnRpId, defaults.config.webauthnOrigins]).toEqual(['auth.example.com', ['https://auth.example.com']]);
    expect(loadConfig({ ...base, WEBAUTHN_RP_ID: '10.0.0.1' }).ok).toBe(false);
    expect(loadConfig({ ...base, WEBAUTHN_ORIGINS: 'https://evil.example' }).ok).toBe(false);
    expect(loadConfig({ ...base, WEBAUTHN_ORIGINS: 'https://auth.example.com/path' }).ok).toBe(false);
  });
});
