import type { Browser, BrowserContext, ConsoleMessage, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  authState, BROWSER_BACKEND, HAS_CHROMIUM, hintCookieOf, launchChromium, newEmail, PASSWORD, refreshCookieOf, requireChromiumOnCi,
  SESSION_HINT_COOKIE, SKIP_REASON, sleep, startLiveServer, type LiveServer,
} from './helpers.js';

/**
 * SPEC §10, issue #10 item 8: a first visit to the demo page with no session makes no
 * request that fails and logs nothing to the console. The hint cookie, set and cleared with
 * the refresh cookie, tells the page whether there is a session to restore; a hint with no
 * refresh cookie behind it costs one 401 and then nothing more.
 */

requireChromiumOnCi();

/** Long enough for a late request (a refresh on load, a retry) to have shown itself. */
const SETTLE_MS = 1_000;

describe.skipIf(!HAS_CHROMIUM)(`the first visit and the session hint in Chromium, on ${BROWSER_BACKEND}${SKIP_REASON}`, () => {
  let server: LiveServer;
  let browser: Browser;

  beforeAll(async () => {
    [server, browser] = await Promise.all([startLiveServer({ ACCESS_TOKEN_TTL: '60s' }), launchChromium()]);
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  /** Everything a page does that a user could see in devtools: requests, failed answers, console lines. */
  function watch(page: Page) {
    const requests: string[] = [];
    const failures: string[] = [];
    const consoleLines: string[] = [];
    page.on('request', (r) => requests.push(`${r.method()} ${new URL(r.url()).pathname}`));
    page.on('requestfailed', (r) => failures.push(`${r.method()} ${new URL(r.url()).pathname}: ${r.failure()?.errorText}`));
    page.on('response', (r) => {
      if (r.status() >= 400) failures.push(`${r.request().method()} ${new URL(r.url()).pathname}: ${r.status()}`);
    });
    page.on('console', (m: ConsoleMessage) => {
      if (m.type() === 'error' || m.type() === 'warning') consoleLines.push(`${m.type()}: ${m.text()}`);
    });
    page.on('pageerror', (e) => consoleLines.push(`pageerror: ${e.message}`));
    return { requests, failures, consoleLines, auth: () => requests.filter((r) => r.includes(' /auth/')) };
  }

  async function settled(page: Page, view: 'signed-in' | 'signed-out') {
    await page.waitForFunction(() => (window as any).tessera?.state?.status !== 'unknown');
    await page.locator(`#${view}`).waitFor({ state: 'visible', timeout: 10_000 });
    await sleep(SETTLE_MS);
  }

  it('a first visit with no session: no request to /auth/refresh, nothing failing, nothing in the console', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    const seen = watch(page);
    await page.goto(`${server.url}/`);
    await settled(page, 'signed-out');
    expect(seen.auth()).toEqual([]);
    expect(seen.failures).toEqual([]);
    expect(seen.consoleLines).toEqual([]);
    expect(await authState(page)).toEqual({ status: 'signed_out', userId: null, reason: null });
    expect(await page.locator('#notice').isHidden()).toBe(true);
    expect(await hintCookieOf(context)).toBeUndefined();
    await context.close();
  });

  it('after signing in, a reload restores the session with one refresh; signing out removes both cookies', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${server.url}/`);
    await settled(page, 'signed-out');

    const email = newEmail('hint');
    await page.click('#tab-sign-up');
    const form = page.locator('#sign-up-form');
    await form.locator('input[name=email]').fill(email);
    await form.locator('input[name=password]').fill(PASSWORD);
    await form.locator('button[type=submit]').click();
    await page.locator('#signed-in').waitFor({ state: 'visible' });

    // The hint: readable by the page, on every path, with the refresh cookie's lifetime and SameSite; no token in it.
    const refresh = (await refreshCookieOf(context))!;
    const hint = (await hintCookieOf(context))!;
    expect(hint).toMatchObject({ name: SESSION_HINT_COOKIE, value: '1', httpOnly: false, path: '/', sameSite: refresh.sameSite, secure: refresh.secure });
    expect(Math.abs(hint.expires - refresh.expires)).toBeLessThanOrEqual(2);
    const visible = await page.evaluate(() => document.cookie);
    expect(visible).toContain(`${SESSION_HINT_COOKIE}=1`);
    expect(visible).not.toContain('tsr_');

    const seen = watch(page);
    await page.reload();
    await settled(page, 'signed-in');
    expect(await page.textContent('#user-email')).toBe(email);
    expect(seen.requests.filter((r) => r === 'POST /auth/refresh')).toEqual(['POST /auth/refresh']);
    expect(seen.failures).toEqual([]);
    expect(seen.consoleLines).toEqual([]);

    await page.click('#sign-out');
    await page.locator('#signed-out').waitFor({ state: 'visible' });
    expect(await refreshCookieOf(context)).toBeUndefined();
    expect(await hintCookieOf(context)).toBeUndefined();

    // And the next visit is a quiet first visit again.
    const after = watch(page);
    await page.reload();
    await settled(page, 'signed-out');
    expect(after.auth()).toEqual([]);
    expect(after.consoleLines).toEqual([]);
    await context.close();
  });

  it('a hint with no refresh cookie behind it: one refresh, one 401, signed out quietly, the hint cleared, no further request', async () => {
    const context = await browser.newContext();
    await context.addCookies([{ name: SESSION_HINT_COOKIE, value: '1', url: `${server.url}/`, sameSite: 'Strict' }]);
    const page = await context.newPage();
    const seen = watch(page);
    await page.goto(`${server.url}/`);
    await settled(page, 'signed-out');

    expect(seen.auth()).toEqual(['POST /auth/refresh']);
    expect(seen.failures).toEqual(['POST /auth/refresh: 401']);
    // The browser itself reports the 401 once; the page adds nothing of its own.
    expect(seen.consoleLines.filter((l) => !/401/.test(l))).toEqual([]);
    expect(seen.consoleLines.length).toBeLessThanOrEqual(1);
    expect(await authState(page)).toEqual({ status: 'signed_out', userId: null, reason: null });
    expect(await page.locator('#notice').isHidden()).toBe(true);
    expect(await hintCookieOf(context)).toBeUndefined();

    // Nothing more, then or on the next visit.
    await sleep(SETTLE_MS);
    expect(seen.auth()).toEqual(['POST /auth/refresh']);
    await page.reload();
    await settled(page, 'signed-out');
    expect(seen.auth()).toEqual(['POST /auth/refresh']);
    await context.close();
  });
});
