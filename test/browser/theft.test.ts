import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  authState, BROWSER_BACKEND, eventsOf, fetchInPage, HAS_CHROMIUM, hintCookieOf, launchChromium, newEmail, openDemo, parseRefreshToken, PASSWORD,
  refreshCookieOf, poll, registerInPage, requireChromiumOnCi, screenshot, sessionRow, SKIP_REASON, sleep, startLiveServer, type LiveServer,
} from './helpers.js';

/**
 * Ending sessions, in Chromium (issue #5): a stolen refresh cookie replayed from another
 * browser ends the session in both; signing out in one tab signs out the others; revoking a
 * session from one browser signs the other out at its next request.
 *
 * The access token lives 60 s here, so no background refresh runs during a test: every
 * refresh below is one the test caused.
 */

requireChromiumOnCi();

const GRACE_MS = 1000;

describe.skipIf(!HAS_CHROMIUM)(`ending sessions in Chromium, REFRESH_REUSE_GRACE=1s, on ${BROWSER_BACKEND}${SKIP_REASON}`, () => {
  let server: LiveServer;
  let browser: Browser;

  beforeAll(async () => {
    [server, browser] = await Promise.all([startLiveServer({ ACCESS_TOKEN_TTL: '60s', REFRESH_REUSE_GRACE: '1s' }), launchChromium()]);
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  const refreshInPage = (page: Page): Promise<boolean> => page.evaluate(() => (window as any).tessera.refresh());

  async function expectSignedOutWith(page: Page, reason: string) {
    await page.locator('#signed-out').waitFor({ state: 'visible', timeout: 5_000 });
    await poll(() => page.getAttribute('#notice', 'data-reason')).toBe(reason);
    expect(await page.locator('#notice').isVisible()).toBe(true);
    expect(await authState(page)).toEqual({ status: 'signed_out', userId: null, reason });
    expect(await page.locator('#signed-in').isHidden()).toBe(true);
    // The header's name and "Sign out" go away too.
    expect.soft(await page.locator('#whoami').isVisible(), '#whoami (name and "Sign out") is displayed while signed out').toBe(false);
  }

  /** Logs in the same user with the body transport straight at the server: a session on another device. */
  async function otherDevice(email: string): Promise<string> {
    const res = await server.app.inject({ method: 'POST', url: '/auth/login', payload: { email, password: PASSWORD, transport: 'body' } });
    expect(res.statusCode, res.body).toBe(200);
    return res.json().refreshToken;
  }

  async function stillRefreshes(token: string): Promise<number> {
    const res = await server.app.inject({ method: 'POST', url: '/auth/refresh', payload: { refreshToken: token } });
    return res.statusCode;
  }

  it('a refresh cookie copied out of the jar and replayed by another browser after the grace window ends the session in both', async () => {
    const victimContext = await browser.newContext();
    const victim = await openDemo(victimContext, server.url, 'signed-out');
    const { email, userId } = await registerInPage(victim);
    const laptop = await otherDevice(email);

    const stolen = (await refreshCookieOf(victimContext))!;
    // The session hint goes with it: no secret, but it tells the thief's page there is a session to restore.
    const hint = (await hintCookieOf(victimContext))!;
    const { sessionId } = parseRefreshToken(server, stolen.value);

    // The victim refreshes; the stolen cookie is now the parent token.
    expect(await refreshInPage(victim)).toBe(true);
    expect((await refreshCookieOf(victimContext))!.value).not.toBe(stolen.value);
    await sleep(GRACE_MS + 300);

    // The thief, in a browser of their own, replays it.
    const thiefContext = await browser.newContext();
    await thiefContext.addCookies([stolen, hint]);
    const thief = await openDemo(thiefContext, server.url);
    // Past the grace window the parent token reads as a lost response (SPEC §3 rule 3): the thief gets in, for now.
    expect((await authState(thief)).status).toBe('signed_in');
    expect(await eventsOf(server, userId, 'reuse_detected')).toEqual([]);

    // The victim's next refresh (or request) ends the session, and the page says why.
    await refreshInPage(victim);
    expect(await fetchInPage(victim)).toBe(401);
    await expectSignedOutWith(victim, 'refresh_token_reused');
    await screenshot(victim, 'demo-token-reused-victim');

    // The thief's next request fails the same way.
    expect(await fetchInPage(thief)).toBe(401);
    await expectSignedOutWith(thief, 'refresh_token_reused');

    const row = await sessionRow(server, sessionId);
    expect(row.revoked_at).not.toBeNull();
    expect(row.revoked_reason).toBe('reuse');
    const reuse = await eventsOf(server, userId, 'reuse_detected');
    expect(reuse).toHaveLength(1);
    expect(reuse[0]!.session_id).toBe(sessionId);
    // Both browsers were told to drop the cookie.
    expect(await refreshCookieOf(victimContext)).toBeUndefined();
    expect(await refreshCookieOf(thiefContext)).toBeUndefined();
    // A reload does not bring the session back.
    await victim.reload();
    await victim.locator('#signed-out').waitFor({ state: 'visible' });
    // The user's other sessions are untouched.
    expect(await stillRefreshes(laptop)).toBe(200);

    await victimContext.close();
    await thiefContext.close();
  });

  it('an older stolen cookie (two rotations behind) is refused at once, and the victim learns it at its next refresh', async () => {
    const victimContext = await browser.newContext();
    const victim = await openDemo(victimContext, server.url, 'signed-out');
    const { userId } = await registerInPage(victim);
    const stolen = (await refreshCookieOf(victimContext))!;
    const hint = (await hintCookieOf(victimContext))!;
    expect(await refreshInPage(victim)).toBe(true);
    expect(await refreshInPage(victim)).toBe(true);

    const thiefContext = await browser.newContext();
    await thiefContext.addCookies([stolen, hint]);
    const thief = await openDemo(thiefContext, server.url, 'signed-out');
    // Refused at the first try, with the reason shown even though the thief was never signed in here.
    expect(await thief.getAttribute('#notice', 'data-reason')).toBe('refresh_token_reused');
    expect(await eventsOf(server, userId, 'reuse_detected')).toHaveLength(1);

    // The victim's access token still works until its next refresh, which ends it.
    expect(await refreshInPage(victim)).toBe(false);
    await expectSignedOutWith(victim, 'refresh_token_reused');
    await victimContext.close();
    await thiefContext.close();
  });

  it('signing out in one tab signs out the other tabs at once (BroadcastChannel)', async () => {
    const context = await browser.newContext();
    const first = await openDemo(context, server.url, 'signed-out');
    const { userId } = await registerInPage(first);
    const second = await openDemo(context, server.url, 'signed-in');
    const third = await openDemo(context, server.url, 'signed-in');
    const cookie = (await refreshCookieOf(context))!;

    const requestsFromOthers: string[] = [];
    for (const page of [second, third]) page.on('request', (r) => requestsFromOthers.push(r.url()));

    await first.click('#sign-out');
    await expectSignedOutWith(first, 'logout');
    // The other tabs learn it from the first, not from a failed request of their own.
    await expectSignedOutWith(second, 'logout');
    await expectSignedOutWith(third, 'logout');
    expect(requestsFromOthers).toEqual([]);

    expect(await refreshCookieOf(context)).toBeUndefined();
    const row = await sessionRow(server, parseRefreshToken(server, cookie.value).sessionId);
    expect(row.revoked_reason).toBe('logout');
    expect(await eventsOf(server, userId, 'reuse_detected')).toEqual([]);
    await context.close();
  });

  it('revoking a session from one browser signs the other browser out at its next request', async () => {
    const homeContext = await browser.newContext();
    const home = await openDemo(homeContext, server.url, 'signed-out');
    const { email, userId } = await registerInPage(home);

    // A second browser signs in through the form.
    const workContext = await browser.newContext();
    const work = await openDemo(workContext, server.url, 'signed-out');
    const form = work.locator('#sign-in-form');
    await form.locator('input[name=email]').fill(email);
    await form.locator('input[name=password]').fill(PASSWORD);
    await form.locator('button[type=submit]').click();
    await work.locator('#signed-in').waitFor({ state: 'visible' });
    const workSession = parseRefreshToken(server, (await refreshCookieOf(workContext))!.value).sessionId;

    // Home sees both sessions and revokes the other one.
    await home.reload();
    await home.locator('#signed-in').waitFor({ state: 'visible' });
    await poll(() => home.locator('#sessions tr').count()).toBe(2);
    expect(await home.locator('#sign-out-others').isEnabled()).toBe(true);
    const row = home.locator(`#sessions tr[data-session-id="${workSession}"]`);
    home.once('dialog', (dialog) => void dialog.accept()); // the page asks before revoking
    await row.locator('button', { hasText: 'Revoke' }).click();
    await poll(() => home.locator('#sessions tr').count()).toBe(1);
    await poll(async () => (await home.locator('#events li').allTextContents()).join('|')).toContain('A session was revoked');
    expect((await sessionRow(server, workSession)).revoked_reason).toBe('revoked');

    // The work browser's access token has not expired, but its next request finds the session gone.
    expect((await authState(work)).status).toBe('signed_in');
    expect(await fetchInPage(work, '/auth/me')).toBe(401);
    await expectSignedOutWith(work, 'invalid_refresh_token');
    expect(await refreshCookieOf(workContext)).toBeUndefined();

    // Home is unaffected.
    expect(await fetchInPage(home, '/auth/me')).toBe(200);
    expect((await authState(home)).status).toBe('signed_in');
    expect(await eventsOf(server, userId, 'reuse_detected')).toEqual([]);
    await screenshot(home, 'demo-after-revoking-other-session');
    await homeContext.close();
    await workContext.close();
  });

  it('"sign out all other sessions" signs the other browser out at its next request', async () => {
    const aContext = await browser.newContext();
    const a = await openDemo(aContext, server.url, 'signed-out');
    const { email } = await registerInPage(a);
    const bContext = await browser.newContext();
    const b = await openDemo(bContext, server.url, 'signed-out');
    await b.evaluate(([email, password]) => (window as any).tessera.login({ email, password }), [email, PASSWORD] as const);
    await b.locator('#signed-in').waitFor({ state: 'visible' });

    await a.reload();
    await poll(() => a.locator('#sessions tr').count()).toBe(2);
    await a.click('#sign-out-others');
    await poll(() => a.locator('#sessions tr').count()).toBe(1);
    expect((await authState(a)).status).toBe('signed_in');

    expect(await fetchInPage(b)).toBe(401);
    await expectSignedOutWith(b, 'invalid_refresh_token');
    await aContext.close();
    await bContext.close();
  });
});
