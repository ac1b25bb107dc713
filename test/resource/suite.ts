import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decode, eventually, expectRefused, forgeries, newKey, sign, startIssuer, type Issuer, type RunningApp } from './kit.js';

/**
 * What every resource-server helper must do, driven over real HTTP against an app that serves
 * `GET /health` (public), `GET /me` (the caller's AuthContext) and `GET /admin` (role `admin`),
 * in front of a live Tessera whose signing key the test holds.
 */
export function describeResourceServer(name: string, start: (issuer: string) => Promise<RunningApp>, timeout = 60_000) {
  describe(name, () => {
    let issuer: Issuer;
    let app: RunningApp;

    beforeAll(async () => {
      issuer = await startIssuer();
      app = await start(issuer.url);
    }, timeout);

    afterAll(async () => {
      await app?.stop();
      await issuer?.close();
    });

    const get = (path: string, token?: string, scheme = 'Bearer') =>
      fetch(app.url + path, { headers: token === undefined ? {} : { authorization: `${scheme} ${token}` } });

    it('serves a public route without a token', async () => {
      expect((await get('/health')).status).toBe(200);
    });

    it('accepts a genuine token and hands the route its caller', async () => {
      const user = await issuer.signUp();
      const res = await get('/me', user.accessToken);
      expect(res.status).toBe(200);
      expect(res.headers.get('www-authenticate')).toBeNull();
      const auth = await res.json();
      expect(auth).toMatchObject({ userId: user.userId, sessionId: user.sessionId, roles: [], claims: { iss: issuer.url, sub: user.userId } });
      expect(Array.isArray(auth.amr)).toBe(true);
    });

    it('answers a request without a Bearer token 401 with a bare challenge', async () => {
      for (const res of [await get('/me'), await get('/me', 'dXNlcjpwYXNz', 'Basic')]) {
        const { challenge } = await expectRefused(res, 401, 'unauthorized', 'An Authorization: Bearer access token is required');
        expect(challenge).toBe('Bearer');
      }
    });

    it('refuses forged tokens: tampered payload or signature, alg none, HS256 keyed with the public key', async () => {
      const { accessToken } = await issuer.signUp();
      const publicJwk = ((await (await fetch(`${issuer.url}/.well-known/jwks.json`)).json()) as { keys: Record<string, unknown>[] }).keys[0]!;
      for (const [forgery, token] of Object.entries(await forgeries(accessToken, publicJwk))) {
        const res = await get('/me', token);
        const { challenge } = await expectRefused(res, 401, 'unauthorized', 'The access token is not valid');
        expect(challenge, forgery).toBe('Bearer error="invalid_token", error_description="The access token is not valid"');
      }
    });

    it("refuses a token for another issuer or audience, of another issuer's key, of another type or without sid", async () => {
      const stranger = await newKey();
      const tokens = {
        'another issuer': await issuer.forge({ iss: 'https://elsewhere.example.com' }),
        'another audience': await issuer.forge({ aud: 'https://api.elsewhere.example.com' }),
        "another issuer's key": await sign(stranger, { iss: issuer.url, aud: issuer.url }),
        'typ JWT': await issuer.forge({}, { typ: 'JWT' }),
        'no typ': await issuer.forge({}, { typ: undefined }),
        'no kid': await issuer.forge({}, { kid: undefined }),
        'no sid': await issuer.forge({ sid: undefined }),
        'roles not a list': await issuer.forge({ roles: 'admin' }),
      };
      for (const [why, token] of Object.entries(tokens)) {
        const res = await get('/me', token);
        expect(res.status, why).toBe(401);
        await expectRefused(res, 401, 'unauthorized', 'The access token is not valid');
      }
      // The control: the same forge with nothing wrong passes.
      expect((await get('/me', await issuer.forge())).status).toBe(200);
    });

    it('refuses an expired token, allowing 60 s of clock skew', async () => {
      const now = Math.floor(Date.now() / 1000);
      const expired = await issuer.forge({ iat: now - 1000, exp: now - 90 });
      await expectRefused(await get('/me', expired), 401, 'unauthorized', 'The access token has expired');
      expect((await get('/me', await issuer.forge({ iat: now - 1000, exp: now - 30 }))).status).toBe(200);
    });

    it('answers 403 insufficient_role without the role, 200 with it', async () => {
      const { accessToken } = await issuer.signUp();
      await expectRefused(await get('/admin', accessToken), 403, 'insufficient_role', 'The caller has none of the roles this route requires');
      await expectRefused(await get('/admin', await issuer.forge({ roles: ['editor'] })), 403, 'insufficient_role');
      expect((await get('/admin', await issuer.forge({ roles: ['editor', 'admin'] }))).status).toBe(200);
      await expectRefused(await get('/admin'), 401, 'unauthorized');
    });

    it("reads the roles Tessera puts in a user's tokens (after `users roles` and a refresh)", async () => {
      const user = await issuer.signUp();
      await issuer.setRoles(user.email, ['admin']);
      const { accessToken } = await issuer.refresh(user.refreshToken);
      expect(decode(accessToken.split('.')[1]!).roles).toEqual(['admin']);
      const res = await get('/admin', accessToken);
      expect(res.status).toBe(200);
      expect((await (await get('/me', accessToken)).json()).roles).toEqual(['admin']);
    });

    it('refuses the tokens of a signed-out session within 2 s, following the revocation feed', async () => {
      const user = await issuer.signUp();
      expect((await get('/me', user.accessToken)).status).toBe(200);
      // The app has been polling the feed since it started: a 404 or an outage shows here first.
      expect(app.output(), 'the app could not read the revocation feed').not.toMatch(/revocation feed .* is unreachable/);
      await issuer.logout(user.refreshToken);
      const elapsed = await eventually(async () => (await get('/me', user.accessToken)).status === 401, 3000, 50);
      expect(elapsed).toBeLessThanOrEqual(2000);
      await expectRefused(await get('/me', user.accessToken), 401, 'unauthorized', 'The session has ended');
      // Another user's session is untouched.
      const other = await issuer.signUp();
      expect((await get('/me', other.accessToken)).status).toBe(200);
    });

    it('never answers a refusal with a 5xx or a stack, whatever the header', async () => {
      for (const header of ['Bearer', 'Bearer ', `Bearer ${'a'.repeat(10_000)}`, 'Bearer a.b.c', `Bearer ${randomUUID()}`, 'bearer x.y.z']) {
        const res = await fetch(`${app.url}/me`, { headers: { authorization: header } });
        expect(res.status, header.slice(0, 20)).toBe(401);
        expect(await res.text()).not.toMatch(/at .*\.js|stack/i);
      }
    });
  });
}
