import type { Browser, BrowserContext, Page, Response } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  authState, BROWSER_BACKEND, eventsOf, expectNoTokenInStorage, fetchInPage, HAS_CHROMIUM, launchChromium, newEmail, openDemo,
  parseRefreshToken, PASSWORD, REFRESH_COOKIE, refreshCookieOf, registerInPage, requireChromiumOnCi, screenshot, sessionRow,
  poll, SKIP_REASON, sleep, startLiveServer, type LiveServer,
} from './helpers.js';

/**
 * The demo account page in Chromium (issue #5): sign-up and sign-in through the page,
 * the HttpOnly refresh cookie, nothing in web storage, reloads, transparent refresh as the
 * (3-second) access token expires, many tabs at the moment of expiry, and a refresh
 * response lost on the way back. Real clock, real listening server.
 */

requireChromiumOnCi();

const TTL_SECONDS = 3;

describe.skipIf(!HAS_CHROMIUM)(`demo page in Chromium, ACCESS_TOKEN_TTL=${TTL_SECONDS}s, on ${BROWSER_BACKEND}${SKIP_REASON}`, () => {
  let server: LiveServer;
  let browser: Browser;
  const contexts: BrowserContext[] = [];

  beforeAll(async () => {
    [server, browser] = await Promise.all([startLiveServer({ ACCESS_TOKEN_TTL: `${TTL_SECONDS}s` }), launchChromium()]);
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  async function newContext(): Promise<BrowserContext> {
    const context = await browser.newContext();
    contexts.push(context);
    return context;
  }

  /**
   * Every response to /auth/* the page sees, with its body, to check that no refresh token
   * travels in one. The returned function stops watching and gives what was seen.
   */
  function watchAuthResponses(page: Page) {
    const seen: Promise<{ url: string; status: number; body: string; setCookie: string | null }>[] = [];
    const onResponse = (response: Response) => {
      if (!new URL(response.url()).pathname.startsWith('/auth/')) return;
      seen.push(
        (async () => ({
          url: response.url(),
          status: response.status(),
          body: response.status() === 204 ? '' : await response.text().catch(() => ''),
          setCookie: await response.headerValue('set-cookie').catch(() => null),
        }))(),
      );
    };
    page.on('response', onResponse);
    return () => {
      page.off('response', onResponse);
      return Promise.all(seen);
    };
  }

  describe('signing up, signing in, the refresh cookie and web storage', () => {
    let context: BrowserContext;
    let page: Page;
    let responses: ReturnType<typeof watchAuthResponses>;
    const email = newEmail('ada');

    it('signs up through the form', async () => {
      context = await newContext();
      page = await context.newPage();
      responses = watchAuthResponses(page);
      await page.goto(`${server.url}/`);
      await page.locator('#signed-out').waitFor({ state: 'visible' });
      expect(await page.locator('#notice').isHidden()).toBe(true);
      // Signed out: one form at a time, and no name or "Sign out" in the header.
      expect(await page.locator('#sign-in-form').isVisible()).toBe(true);
      expect.soft(await page.locator('#sign-up-form').isVisible(), 'the sign-up form is displayed before its tab is chosen').toBe(false);
      expect.soft(await page.locator('#whoami').isVisible(), '#whoami ("Sign out") is displayed while signed out').toBe(false);
      await screenshot(page, 'demo-signed-out');

      await page.click('#tab-sign-up');
      expect(await page.getAttribute('#tab-sign-up', 'aria-selected')).toBe('true');
      expect.soft(await page.locator('#sign-in-form').isVisible(), 'the sign-in form is still displayed on the sign-up tab').toBe(false);
      const form = page.locator('#sign-up-form');
      await form.locator('input[name=name]').fill('Ada Lovelace');
      await form.locator('input[name=email]').fill(email);
      await form.locator('input[name=password]').fill(PASSWORD);
      await form.locator('button[type=submit]').click();

      await page.locator('#signed-in').waitFor({ state: 'visible' });
      expect(await page.textContent('#user-name')).toBe('Ada Lovelace');
      expect(await page.textContent('#user-email')).toBe(email);
      expect(await page.textContent('#whoami-name')).toBe(email);
      expect(await page.textContent('#user-id')).toBe((await authState(page)).userId);
      await poll(() => page.locator('#sessions tr').count()).toBe(1);
      expect(await page.locator('#sessions tr .badge').textContent()).toBe('This device');
      await poll(() => page.locator('#events li').count()).toBeGreaterThan(0);
      expect(await page.locator('#events li').first().textContent()).toContain('Account created');
      await screenshot(page, 'demo-signed-in');
    });

    it('the refresh cookie is HttpOnly, Path=/auth, SameSite=Strict, and invisible to document.cookie', async () => {
      const cookie = await refreshCookieOf(context);
      expect(cookie).toMatchObject({ name: REFRESH_COOKIE, httpOnly: true, path: '/auth', sameSite: 'Strict', secure: false });
      expect(cookie!.value).toMatch(/^tsr_/);
      expect(await page.evaluate(() => document.cookie)).not.toContain('tsr_');
      // Scripts on a page under /auth (where a non-HttpOnly cookie of Path=/auth would be visible) cannot see it either.
      const underAuth = await context.newPage();
      await underAuth.goto(`${server.url}/auth/me`);
      const visible = await underAuth.evaluate(() => document.cookie);
      expect(visible).not.toContain(REFRESH_COOKIE);
      expect(visible).not.toContain('tsr_');
      await underAuth.close();
    });

    it('no token in localStorage, sessionStorage, the DOM, a response body or a URL', async () => {
      await expectNoTokenInStorage(page);
      const html = await page.content();
      expect(html).not.toContain('eyJ');
      expect(html).not.toContain('tsr_');
      for (const r of await responses()) {
        expect(r.url, r.url).not.toContain('tsr_');
        expect(r.body, `body of ${r.url}`).not.toContain('tsr_');
        if (r.setCookie?.includes(`${REFRESH_COOKIE}=tsr_`)) expect(r.setCookie).toMatch(/HttpOnly/i);
      }
    });

    it('signs out and back in through the form; a wrong password is shown, not thrown', async () => {
      await page.click('#sign-out');
      await page.locator('#signed-out').waitFor({ state: 'visible' });
      expect(await page.getAttribute('#notice', 'data-reason')).toBe('logout');
      expect(await refreshCookieOf(context)).toBeUndefined();
      expect.soft(await page.locator('#whoami').isVisible(), '#whoami (name and "Sign out") is displayed while signed out').toBe(false);

      await page.click('#tab-sign-in');
      const form = page.locator('#sign-in-form');
      await form.locator('input[name=email]').fill(email);
      await form.locator('input[name=password]').fill('not my password');
      await form.locator('button[type=submit]').click();
      const error = form.locator('[data-error]');
      await error.waitFor({ state: 'visible' });
      expect(await error.textContent()).toBe('Email or password is incorrect.');
      expect((await authState(page)).status).toBe('signed_out');

      await form.locator('input[name=password]').fill(PASSWORD);
      await form.locator('button[type=submit]').click();
      await page.locator('#signed-in').waitFor({ state: 'visible' });
      expect(await page.textContent('#user-email')).toBe(email);
      expect(await page.locator('#notice').isHidden()).toBe(true);
      expect((await refreshCookieOf(context))?.httpOnly).toBe(true);
      await expectNoTokenInStorage(page);
    });

    it('signing up with a taken email shows the error on the form', async () => {
      const other = await openDemo(await newContext(), server.url, 'signed-out');
      await other.click('#tab-sign-up');
      const form = other.locator('#sign-up-form');
      await form.locator('input[name=email]').fill(email);
      await form.locator('input[name=password]').fill(PASSWORD);
      await form.locator('button[type=submit]').click();
      const error = form.locator('[data-error]');
      await error.waitFor({ state: 'visible' });
      expect(await error.textContent()).toContain('already exists');
      expect((await authState(other)).status).toBe('signed_out');
    });

    it('a reload keeps the user signed in, from the cookie alone', async () => {
      const { userId } = await authState(page);
      await page.reload();
      await page.waitForFunction(() => (window as any).tessera?.state?.status !== 'unknown');
      await page.locator('#signed-in').waitFor({ state: 'visible' });
      expect(await authState(page)).toEqual({ status: 'signed_in', userId, reason: null });
      expect(await page.textContent('#user-email')).toBe(email);
      expect(await page.locator('#notice').isHidden()).toBe(true);
      await expectNoTokenInStorage(page);

      // A new tab of the same browser is signed in too.
      const second = await openDemo(context, server.url, 'signed-in');
      expect((await authState(second)).userId).toBe(userId);
      await second.close();
    });

    it('the access token expiring during use is refreshed transparently', async () => {
      const refreshes: number[] = [];
      const onResponse = (r: Response) => {
        if (r.url().endsWith('/auth/refresh')) refreshes.push(r.status());
      };
      page.on('response', onResponse);
      const firstToken = await page.evaluate(() => (window as any).tessera.getAccessToken());
      // Use the page for longer than one access-token lifetime.
      const statuses: number[] = [];
      const until = Date.now() + (TTL_SECONDS + 1.5) * 1000;
      while (Date.now() < until) {
        statuses.push(await fetchInPage(page, '/auth/me'));
        await sleep(400);
      }
      page.off('response', onResponse);
      expect(statuses.every((s) => s === 200), `statuses ${statuses}`).toBe(true);
      expect(refreshes.length).toBeGreaterThan(0);
      expect(refreshes.every((s) => s === 200), `refresh statuses ${refreshes}`).toBe(true);
      expect(await page.evaluate(() => (window as any).tessera.getAccessToken())).not.toBe(firstToken);
      expect((await authState(page)).status).toBe('signed_in');
      expect(await page.locator('#signed-in').isVisible()).toBe(true);
      expect(await page.locator('#notice').isHidden()).toBe(true);
      await expectNoTokenInStorage(page);
    });
  });

  /** The JWT's `exp`, in ms, of the token the page holds now. */
  async function accessTokenExpiry(page: Page): Promise<number> {
    const token: string = await page.evaluate(() => (window as any).tessera.getAccessToken());
    const payload = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8')) as { exp: number };
    return payload.exp * 1000;
  }

  /** Every page waits for the same instant `at` (ms since the epoch), then fires `n` requests at once. */
  function burst(pages: Page[], at: number, n: number): Promise<number[]> {
    return Promise.all(
      pages.map((page) =>
        page.evaluate(
          async ([at, n]) => {
            await new Promise((resolve) => setTimeout(resolve, Math.max(0, at - Date.now())));
            const tessera = (window as any).tessera;
            return Promise.all(Array.from({ length: n }, () => tessera.fetch('/auth/me').then((r: Response) => r.status)));
          },
          [at, n] as const,
        ),
      ),
    ).then((all) => all.flat());
  }

  it.each([2, 4])('%i tabs firing requests as the access token expires: nobody is signed out, no reuse recorded', async (tabs) => {
    const context = await newContext();
    const first = await openDemo(context, server.url, 'signed-out');
    const { userId } = await registerInPage(first);
    const pages = [first];
    for (let i = 1; i < tabs; i++) pages.push(await openDemo(context, server.url, 'signed-in'));

    const statuses: number[] = [];
    const expiry = await accessTokenExpiry(pages.at(-1)!);
    // Just before, at, and just after the moment the token expires (the proactive refresh may be racing too).
    statuses.push(...(await burst(pages, expiry - 150, 2)));
    statuses.push(...(await burst(pages, expiry, 3)));
    statuses.push(...(await burst(pages, Date.now() + 50, 2)));
    expect(statuses.filter((s) => s !== 200), `statuses ${statuses}`).toEqual([]);

    for (const page of pages) {
      expect(await authState(page)).toEqual({ status: 'signed_in', userId, reason: null });
      expect(await page.locator('#signed-in').isVisible()).toBe(true);
      expect(await page.locator('#notice').isHidden()).toBe(true);
    }
    const cookie = await refreshCookieOf(context);
    const { sessionId } = parseRefreshToken(server, cookie!.value);
    const row = await sessionRow(server, sessionId);
    expect(row.revoked_at).toBeNull();
    expect(row.revoked_reason).toBeNull();
    expect(await eventsOf(server, userId, 'reuse_detected')).toEqual([]);
    // The tabs share one session: the browser's.
    const sessions = await server.db.store.db.selectFrom('sessions').select('id').where('user_id', '=', userId).execute();
    expect(sessions.map((s) => s.id)).toEqual([sessionId]);
    if (tabs === 4) await screenshot(pages[3]!, 'demo-four-tabs-after-expiry');
    await context.close();
  });

  it('a refresh whose response is lost does not sign the user out: the retry gets the identical token', async () => {
    const context = await newContext();
    const page = await openDemo(context, server.url, 'signed-out');
    const { userId } = await registerInPage(page);
    // Let the page settle (its first render refreshes): then the jar holds the current token.
    await poll(() => page.locator('#events li').count()).toBeGreaterThan(0);

    let lost: { presented: string; status: number; issued: string } | undefined;
    const seen: string[] = [];
    await page.route('**/auth/refresh', async (route) => {
      const request = route.request();
      const headers = await request.allHeaders();
      seen.push(/tessera_refresh=([^;]+)/.exec(headers.cookie ?? '')?.[1] ?? '');
      if (lost) return route.continue();
      // The request reaches the server, which rotates; the browser never sees the answer. (Sent from Node:
      // playwright's route.fetch() would store the answer's Set-Cookie in the browser's jar, i.e. not lose it.)
      const response = await fetch(request.url(), { method: 'POST', headers, body: request.postData() ?? undefined });
      const issued = /tessera_refresh=([^;]+)/.exec(response.headers.get('set-cookie') ?? '')?.[1] ?? '';
      lost = { presented: seen.at(-1)!, status: response.status, issued };
      await route.abort('connectionreset');
    });

    const ok = await page.evaluate(() => (window as any).tessera.refresh());
    const jar = (await refreshCookieOf(context))?.value;
    await page.unroute('**/auth/refresh');

    expect(lost).toMatchObject({ status: 200, issued: expect.stringMatching(/^tsr_/) });
    expect(ok).toBe(true);
    // The retry presented the same (parent) token and got the very token the lost response carried.
    expect(seen.length).toBeGreaterThanOrEqual(2);
    expect(seen[1]).toBe(lost!.presented);
    expect(jar).toBe(lost!.issued);
    const presented = parseRefreshToken(server, lost!.presented);
    const issued = parseRefreshToken(server, lost!.issued);
    expect(issued.generation).toBe(presented.generation + 1);
    expect((await sessionRow(server, issued.sessionId)).revoked_at).toBeNull();
    expect(await eventsOf(server, userId, 'reuse_detected')).toEqual([]);

    expect(await authState(page)).toEqual({ status: 'signed_in', userId, reason: null });
    expect(await page.locator('#signed-in').isVisible()).toBe(true);
    expect(await page.locator('#notice').isHidden()).toBe(true);
    expect(await fetchInPage(page)).toBe(200);
    await context.close();
  });

  it('no reuse was detected anywhere in this suite', async () => {
    const rows = await server.db.store.db.selectFrom('security_events').select(['type', 'session_id']).where('type', '=', 'reuse_detected').execute();
    expect(rows).toEqual([]);
    const revokedForReuse = await server.db.store.db.selectFrom('sessions').select('id').where('revoked_reason', '=', 'reuse').execute();
    expect(revokedForReuse).toEqual([]);
  });
});
