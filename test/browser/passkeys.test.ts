/**
 * Passkeys end to end in Debian's Chromium with a virtual authenticator (Chrome DevTools
 * Protocol `WebAuthn.addVirtualAuthenticator`: CTAP2, internal, resident keys, user
 * verification). Tessera listens with PUBLIC_URL on `http://localhost:PORT` (browsers refuse an
 * IP address as relying party); the page, served on that origin, loads the browser client
 * (src/client, bundled here with esbuild as the demo build does) and calls `registerPasskey` and
 * `signInWithPasskey`. Covers: register, list, sign in with the passkey alone (no email) and its
 * `amr`, a cloned authenticator whose counter is behind, a challenge replayed, an expired
 * challenge, a password sign-in finished by the passkey, removal. Wrong origins are refused by
 * the browser itself here; the server's own check is in test/server/passkeys.test.ts.
 */
import { build } from 'esbuild';
import type { BrowserContext, CDPSession, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deriveKeys } from '../../src/core/derive-key.js';
import { WebAuthnChallengeCodec } from '../../src/core/webauthn-challenge.js';
import { TEST_SECRET } from '../helpers/app.js';
import { startLiveServer, type LiveServer } from '../helpers/live-issuer.js';
import { BROWSER_BACKEND, HAS_CHROMIUM, launchChromium, newEmail, PASSWORD, requireChromiumOnCi, ROOT, SKIP_REASON } from './helpers.js';

requireChromiumOnCi();

const PAGE = '/passkey-test.html';
const SCRIPT = '/passkey-test.js';

describe.skipIf(!HAS_CHROMIUM)(`passkeys in Chromium with a virtual authenticator${SKIP_REASON}`, () => {
  let server: LiveServer;
  let base: string;
  let bundle: string;
  let browser: Awaited<ReturnType<typeof launchChromium>>;

  beforeAll(async () => {
    server = await startLiveServer(BROWSER_BACKEND, (port) => ({ PUBLIC_URL: `http://localhost:${port}`, EMAIL: 'off', RATE_LIMITS: 'off' }));
    base = server.config.publicUrl;
    const built = await build({
      stdin: {
        contents: `import * as client from './src/client/index.ts'; window.tesseraClient = client;`,
        resolveDir: ROOT, loader: 'ts',
      },
      bundle: true, format: 'esm', target: 'es2022', write: false, logLevel: 'warning',
    });
    bundle = built.outputFiles[0]!.text;
    browser = await launchChromium();
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  interface Session {
    context: BrowserContext;
    page: Page;
    cdp: CDPSession;
    authenticatorId: string;
  }

  /** A fresh browser profile with one virtual authenticator, on the test page of Tessera's origin. */
  async function open(): Promise<Session> {
    const context = await browser.newContext();
    await context.route(`${base}${PAGE}`, (route) =>
      route.fulfill({ contentType: 'text/html', body: `<!doctype html><title>passkeys</title><script type="module" src="${SCRIPT}"></script>` }));
    await context.route(`${base}${SCRIPT}`, (route) => route.fulfill({ contentType: 'text/javascript', body: bundle }));
    const page = await context.newPage();
    const cdp = await context.newCDPSession(page);
    await cdp.send('WebAuthn.enable');
    const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
      options: { protocol: 'ctap2', transport: 'internal', hasResidentKey: true, hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true },
    });
    await page.goto(`${base}${PAGE}`);
    await page.waitForFunction(() => (window as any).tesseraClient !== undefined);
    await page.evaluate(() => {
      const w = window as any;
      w.auth = new w.tesseraClient.TesseraClient();
    });
    return { context, page, cdp, authenticatorId };
  }

  /** Runs `fn` in the page with the client module (`c`) and client (`auth`); a thrown client error comes back as `{ error: code }`. */
  function inPage<T>(page: Page, fn: string, arg?: unknown): Promise<T | { error: string }> {
    return page.evaluate(async ([source, value]) => {
      const w = window as any;
      try {
        return await new Function('c', 'auth', 'arg', `return (${source})(c, auth, arg);`)(w.tesseraClient, w.auth, value);
      } catch (error) {
        return { error: (error as { code?: string; name?: string }).code ?? (error as Error).name ?? String(error) };
      }
    }, [fn, arg] as const);
  }

  const claims = (token: string) => JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString());
  const accessToken = async (page: Page) => (await inPage<string>(page, 'async (c, auth) => auth.getAccessToken()')) as string;

  /** A user signed in with the password, with one passkey registered through the page. */
  async function withPasskey(): Promise<Session & { email: string; passkeyId: string }> {
    const session = await open();
    const email = newEmail('passkey');
    const registered = await fetch(`${base}/auth/register`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email, password: PASSWORD, transport: 'body' }),
    });
    expect(registered.status).toBe(201);
    expect(await inPage(session.page, 'async (c, auth, arg) => (await auth.login(arg)).email', { email, password: PASSWORD })).toBe(email);
    const added = await inPage<{ id: string; name: string }>(session.page, 'async (c, auth) => c.registerPasskey(auth, "Chromium")');
    expect(added).toMatchObject({ name: 'Chromium', id: expect.any(String) });
    return { ...session, email, passkeyId: (added as { id: string }).id };
  }

  const signIn = (page: Page, mfaToken?: string) =>
    inPage<{ id: string; email: string }>(page, 'async (c, auth, arg) => c.signInWithPasskey(auth, arg)', mfaToken ? { mfaToken } : {});
  const signOut = (page: Page) => inPage(page, 'async (c, auth) => auth.logout()');

  it('registers a passkey, lists it, and signs in with it alone (no email): amr ["hwk","user"]', async () => {
    const s = await withPasskey();
    try {
      const listed = await inPage<{ id: string; name: string; lastUsedAt: string | null }[]>(s.page, 'async (c, auth) => c.listPasskeys(auth)');
      expect(listed).toEqual([{ id: s.passkeyId, name: 'Chromium', createdAt: expect.any(String), lastUsedAt: null }]);
      const { credentials } = await s.cdp.send('WebAuthn.getCredentials', { authenticatorId: s.authenticatorId });
      expect(credentials).toHaveLength(1);
      expect(credentials[0]!.isResidentCredential).toBe(true);

      await signOut(s.page);
      expect(await inPage(s.page, 'async (c, auth) => auth.state.status')).toBe('signed_out');
      const user = await signIn(s.page);
      expect(user).toMatchObject({ email: s.email });
      const token = claims(await accessToken(s.page));
      expect(token.amr).toEqual(['hwk', 'user']);
      expect(Math.abs(token.auth_time - Date.now() / 1000)).toBeLessThan(30);
      const after = await inPage<{ lastUsedAt: string | null }[]>(s.page, 'async (c, auth) => c.listPasskeys(auth)');
      expect((after as { lastUsedAt: string | null }[])[0]!.lastUsedAt).not.toBeNull();
    } finally {
      await s.context.close();
    }
  });

  it('a password sign-in now asks for the second factor, and the passkey finishes it: amr ["pwd","hwk","user","mfa"]', async () => {
    const s = await withPasskey();
    try {
      await signOut(s.page);
      const res = await s.page.evaluate(async ([email, password]) => {
        const r = await fetch('/auth/login', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email, password }) });
        return { status: r.status, body: await r.json() };
      }, [s.email, PASSWORD] as const);
      expect(res.status).toBe(403);
      expect(res.body).toMatchObject({ code: 'mfa_required', methods: ['passkey'] });
      expect(await signIn(s.page, res.body.mfaToken)).toMatchObject({ email: s.email });
      expect(claims(await accessToken(s.page)).amr).toEqual(['pwd', 'hwk', 'user', 'mfa']);
    } finally {
      await s.context.close();
    }
  });

  it('a cloned authenticator, whose sign counter is behind, is refused', async () => {
    const s = await withPasskey();
    try {
      await signOut(s.page);
      expect(await signIn(s.page)).toMatchObject({ email: s.email });
      const [credential] = (await s.cdp.send('WebAuthn.getCredentials', { authenticatorId: s.authenticatorId })).credentials;
      expect(credential!.signCount).toBeGreaterThan(0);
      // The clone: the same key and id, on a counter that has not moved since registration.
      await s.cdp.send('WebAuthn.removeCredential', { authenticatorId: s.authenticatorId, credentialId: credential!.credentialId });
      await s.cdp.send('WebAuthn.addCredential', { authenticatorId: s.authenticatorId, credential: { ...credential!, signCount: 0 } });
      await signOut(s.page);
      expect(await signIn(s.page)).toEqual({ error: 'invalid_code' });
      // The genuine authenticator, ahead again, still works.
      await s.cdp.send('WebAuthn.removeCredential', { authenticatorId: s.authenticatorId, credentialId: credential!.credentialId });
      await s.cdp.send('WebAuthn.addCredential', { authenticatorId: s.authenticatorId, credential: { ...credential!, signCount: credential!.signCount + 10 } });
      expect(await signIn(s.page)).toMatchObject({ email: s.email });
    } finally {
      await s.context.close();
    }
  });

  it('an assertion replayed, or signed over an expired challenge, is refused', async () => {
    const s = await withPasskey();
    try {
      await signOut(s.page);
      let captured: string | undefined;
      await s.page.route(`${base}/auth/passkeys/login/verify`, async (route) => {
        captured = route.request().postData() ?? undefined;
        await route.continue();
      });
      expect(await signIn(s.page)).toMatchObject({ email: s.email });
      expect(captured).toBeDefined();
      const replay = await fetch(`${base}/auth/passkeys/login/verify`, {
        method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...JSON.parse(captured!), transport: 'body' }),
      });
      expect(replay.status).toBe(400);
      expect((await replay.json()).code).toBe('invalid_code');
      await s.page.unroute(`${base}/auth/passkeys/login/verify`);

      // Options whose challenge is genuine but expired (made 5 min + 1 s ago under the server's key): the browser signs it, the server refuses it.
      const codec = new WebAuthnChallengeCodec(deriveKeys(TEST_SECRET, undefined, 'webauthn-challenge'));
      const expired = Buffer.from(codec.make('login', undefined, new Date(Date.now() - 301_000))).toString('base64url');
      await s.page.route(`${base}/auth/passkeys/login/options`, async (route) => {
        const response = await route.fetch();
        await route.fulfill({ response, json: { ...(await response.json()), challenge: expired } });
      });
      await signOut(s.page);
      expect(await signIn(s.page)).toEqual({ error: 'invalid_code' });
      await s.page.unroute(`${base}/auth/passkeys/login/options`);
      expect(await signIn(s.page)).toMatchObject({ email: s.email });
    } finally {
      await s.context.close();
    }
  });

  it('removes the passkey (after a recent sign-in with it); it signs in no more', async () => {
    const s = await withPasskey();
    try {
      await signOut(s.page);
      expect(await signIn(s.page)).toMatchObject({ email: s.email });
      expect(await inPage(s.page, 'async (c, auth, id) => c.removePasskey(auth, id)', s.passkeyId)).toBeUndefined();
      expect(await inPage(s.page, 'async (c, auth) => c.listPasskeys(auth)')).toEqual([]);
      await signOut(s.page);
      expect(await signIn(s.page)).toEqual({ error: 'invalid_code' });
    } finally {
      await s.context.close();
    }
  });
});
