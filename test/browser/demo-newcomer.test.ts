import type { Browser, BrowserContext, Page, Request } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deviceName } from '../../src/client/index.js';
import {
  axeViolations, BROWSER_BACKEND, HAS_CHROMIUM, launchChromium, newEmail, openDemo, PASSWORD, poll, registerInPage,
  requireChromiumOnCi, SCREENSHOTS, sessionRow, SKIP_REASON, sleep, startLiveServer, type LiveServer,
} from './helpers.js';

/**
 * What a newcomer does in the first hour with the demo page (issue "first hour"): no email or
 * password is left in the page after signing in or out (here or from another device); a common
 * password is refused with the server's reason; the tabs follow the WAI-ARIA pattern; revoking a
 * session asks first; the security events name the device. Real server, real Chromium.
 */

requireChromiumOnCi();

const FIREFOX_WINDOWS = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0';

describe.skipIf(!HAS_CHROMIUM)(`the demo page for a newcomer, on ${BROWSER_BACKEND}${SKIP_REASON}`, () => {
  let server: LiveServer;
  let browser: Browser;

  beforeAll(async () => {
    [server, browser] = await Promise.all([startLiveServer({ ACCESS_TOKEN_TTL: '60s' }), launchChromium()]);
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  /** axe-core is injected as a script, which the page's CSP would refuse. */
  const newContext = (options: Parameters<Browser['newContext']>[0] = {}): Promise<BrowserContext> => browser.newContext({ bypassCSP: true, ...options });

  /** Every field of the page that is not empty, as "form › name = value": what a credential could be left in. */
  function filledFields(page: Page): Promise<string[]> {
    return page.evaluate(() =>
      [...document.querySelectorAll('input')].filter((i) => i.value !== '').map((i) => `${i.form?.id ?? '?'} › ${i.name} = ${i.value}`),
    );
  }

  async function signInThroughForm(page: Page, email: string) {
    await page.click('#tab-sign-in');
    const form = page.locator('#sign-in-form');
    await form.locator('input[name=email]').fill(email);
    await form.locator('input[name=password]').fill(PASSWORD);
    await form.locator('button[type=submit]').click();
    await page.locator('#signed-in').waitFor({ state: 'visible' });
  }

  /** The id of the session a signed-in page is using, from its sessions list. */
  async function currentSessionId(page: Page): Promise<string> {
    const row = page.locator('#sessions tr', { has: page.locator('.badge') });
    await row.waitFor();
    return (await row.getAttribute('data-session-id'))!;
  }

  it('no email or password stays in the page after signing up, signing out, or signing in', async () => {
    const context = await newContext();
    const page = await openDemo(context, server.url, 'signed-out');
    const email = newEmail('clear');
    await page.click('#tab-sign-up');
    const form = page.locator('#sign-up-form');
    await form.locator('input[name=name]').fill('Grace Hopper');
    await form.locator('input[name=email]').fill(email);
    await form.locator('input[name=password]').fill(PASSWORD);
    await form.locator('button[type=submit]').click();
    await page.locator('#signed-in').waitFor({ state: 'visible' });
    expect(await filledFields(page), 'signed in after signing up').toEqual([]);

    // Something typed into the change-password form, then the user walks away and signs out.
    await page.locator('#password-form input[name=currentPassword]').fill(PASSWORD);
    await page.click('#sign-out');
    await page.locator('#signed-out').waitFor({ state: 'visible' });
    expect(await filledFields(page), 'signed out').toEqual([]);
    expect(await page.evaluate(() => document.body.textContent), 'the page after sign-out').not.toContain(email);
    expect(await page.getAttribute('#tab-sign-in', 'aria-selected')).toBe('true');

    await signInThroughForm(page, email);
    expect(await filledFields(page), 'signed in through the sign-in form').toEqual([]);
    await page.click('#sign-out');
    await page.locator('#signed-out').waitFor({ state: 'visible' });
    expect(await filledFields(page), 'signed out the second time').toEqual([]);
    await context.close();
  });

  it('signed out from another device: the page clears its fields when it notices, and says why', async () => {
    const context = await newContext();
    const page = await openDemo(context, server.url, 'signed-out');
    const { email } = await registerInPage(page, newEmail('remote'));
    const sessionId = await currentSessionId(page);
    await page.locator('#password-form input[name=currentPassword]').fill(PASSWORD);
    await page.locator('#password-form input[name=newPassword]').fill('a new and longer passphrase');

    const other = await newContext();
    const otherPage = await openDemo(other, server.url, 'signed-out');
    await otherPage.evaluate(([email, password]) => (window as any).tessera.login({ email, password }), [email, PASSWORD] as const);
    await otherPage.evaluate((id) => (window as any).tessera.revokeSession(id), sessionId);
    expect((await sessionRow(server, sessionId)).revoked_at).not.toBeNull();

    // The page learns it at its next refresh (not a reload, which would empty the fields anyway).
    expect(await page.evaluate(() => (window as any).tessera.refresh())).toBe(false);
    await page.locator('#signed-out').waitFor({ state: 'visible' });
    expect(await page.locator('#notice').getAttribute('data-reason')).toBe('invalid_refresh_token');
    expect(await filledFields(page), 'signed out remotely').toEqual([]);
    expect(await page.evaluate(() => document.body.textContent), 'the page after remote sign-out').not.toContain(email);
    expect(await axeViolations(page), 'axe-core, signed out remotely').toEqual([]);
    for (const [size, viewport] of [['phone', { width: 390, height: 844 }], ['desktop', { width: 1280, height: 800 }]] as const) {
      await page.setViewportSize(viewport);
      await page.screenshot({ path: `${SCREENSHOTS}signed-out-remotely-${size}.png`, fullPage: true });
    }
    await Promise.all([context.close(), other.close()]);
  });

  it("a common password is refused with the server's reason, when signing up and when changing the password", async () => {
    const context = await newContext();
    const page = await openDemo(context, server.url, 'signed-out');
    await page.click('#tab-sign-up');
    const form = page.locator('#sign-up-form');
    await form.locator('input[name=email]').fill(newEmail('weak'));
    await form.locator('input[name=password]').fill('password');
    const answer = page.waitForResponse((r) => r.url().endsWith('/auth/register'));
    await form.locator('button[type=submit]').click();
    const response = await answer;
    const problem = (await response.json()) as { code: string; detail: string };
    expect(response.status()).toBe(400);
    expect(problem).toMatchObject({ code: 'weak_password', detail: expect.stringContaining('most commonly used') });
    const error = form.locator('[data-error]');
    await error.waitFor({ state: 'visible' });
    expect(await error.textContent()).toBe(`${problem.detail}.`);
    expect(await error.textContent()).not.toContain('characters');
    expect(await axeViolations(page), 'axe-core, sign-up refused').toEqual([]);

    await registerInPage(page, newEmail('weak'));
    const passwordForm = page.locator('#password-form');
    await passwordForm.locator('input[name=currentPassword]').fill(PASSWORD);
    await passwordForm.locator('input[name=newPassword]').fill('12345678');
    await passwordForm.locator('button[type=submit]').click();
    await passwordForm.locator('[data-error]').waitFor({ state: 'visible' });
    expect(await passwordForm.locator('[data-error]').textContent()).toContain('one of the most commonly used');
    expect(await axeViolations(page), 'axe-core, password change refused').toEqual([]);
    await context.close();
  });

  it('the sign-in and sign-up tabs follow the WAI-ARIA tabs pattern: arrows, Home, End, one tab stop', async () => {
    const context = await newContext();
    const page = await openDemo(context, server.url, 'signed-out');
    const state = () => page.evaluate(() => ({
      focused: document.activeElement?.id,
      tabs: [...document.querySelectorAll('[role=tablist] [role=tab]')].map((t) => {
        const panel = document.getElementById(t.getAttribute('aria-controls')!)!;
        return {
          id: t.id, selected: t.getAttribute('aria-selected'), tabIndex: (t as HTMLElement).tabIndex,
          panel: { role: panel.getAttribute('role'), labelledBy: panel.getAttribute('aria-labelledby'), hidden: panel.hidden },
        };
      }),
    }));
    const expectSelected = async (id: 'tab-sign-in' | 'tab-sign-up', key: string) => {
      expect(await state(), `after ${key}`).toEqual({
        focused: id,
        tabs: ['tab-sign-in', 'tab-sign-up'].map((t) => ({
          id: t, selected: String(t === id), tabIndex: t === id ? 0 : -1,
          panel: { role: 'tabpanel', labelledBy: t, hidden: t !== id },
        })),
      });
    };

    await page.focus('#tab-sign-in');
    for (const [key, selected] of [
      ['ArrowRight', 'tab-sign-up'], ['ArrowRight', 'tab-sign-in'], ['ArrowLeft', 'tab-sign-up'], ['Home', 'tab-sign-in'], ['End', 'tab-sign-up'],
    ] as const) {
      await page.keyboard.press(key);
      await expectSelected(selected, key);
    }
    expect(await page.locator('#sign-up-form').isVisible()).toBe(true);
    // Tab leaves the tab list for the panel: the unselected tab is not a tab stop.
    await page.keyboard.press('Tab');
    expect(await page.evaluate(() => (document.activeElement as HTMLInputElement).name)).toBe('name');
    await page.keyboard.press('Shift+Tab');
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('tab-sign-up');
    await page.keyboard.press('Shift+Tab');
    expect(await page.evaluate(() => document.activeElement?.id), 'Shift+Tab from the selected tab skips the other tab').not.toBe('tab-sign-in');
    await context.close();
  });

  it('revoking a session asks first (Cancel keeps it, OK revokes it), and the events name each device', async () => {
    const context = await newContext();
    const page = await openDemo(context, server.url, 'signed-out');
    const { email } = await registerInPage(page, newEmail('revoke'));
    const firefox = await newContext({ userAgent: FIREFOX_WINDOWS });
    const firefoxPage = await openDemo(firefox, server.url, 'signed-out');
    await firefoxPage.evaluate(([email, password]) => (window as any).tessera.login({ email, password }), [email, PASSWORD] as const);
    const firefoxSession = await firefoxPage.evaluate(async () => ((await (window as any).tessera.sessions()) as { id: string; current: boolean }[]).find((s) => s.current)!.id);
    await page.reload();
    await page.locator('#signed-in').waitFor({ state: 'visible' });
    await poll(() => page.locator('#sessions tr').count()).toBe(2);

    const deletes: string[] = [];
    page.on('request', (r: Request) => {
      if (r.method() === 'DELETE') deletes.push(new URL(r.url()).pathname);
    });
    const revoke = page.locator(`#sessions tr[data-session-id="${firefoxSession}"] button`, { hasText: 'Revoke' });
    let question = '';
    page.once('dialog', (dialog) => {
      question = `${dialog.type()}: ${dialog.message()}`;
      void dialog.dismiss();
    });
    await revoke.click();
    await sleep(300);
    expect(question).toMatch(/^confirm: Revoke the session on Firefox on Windows/);
    expect(deletes, 'requests after Cancel').toEqual([]);
    expect(await page.locator('#sessions tr').count()).toBe(2);
    expect((await sessionRow(server, firefoxSession)).revoked_at).toBeNull();

    page.once('dialog', (dialog) => void dialog.accept());
    await revoke.click();
    await poll(() => page.locator('#sessions tr').count()).toBe(1);
    expect(deletes).toEqual([`/auth/sessions/${firefoxSession}`]);
    expect((await sessionRow(server, firefoxSession)).revoked_at).not.toBeNull();

    // "Signed in" twice means something once each says from where.
    await poll(async () => (await page.locator('#events li').allTextContents()).join('|')).toContain('A session was revoked');
    const here = deviceName(await page.evaluate(() => navigator.userAgent));
    expect(here).toBe('Chrome on Linux');
    const events = await page.locator('#events li').evaluateAll((lis) => lis.map((li) => [...li.children].map((c) => c.textContent).join(' | ')));
    expect(events).toEqual([
      'A session was revoked | Chrome on Linux · 127.0.0.1 · just now',
      'Signed in | Firefox on Windows · 127.0.0.1 · just now',
      'Account created | Chrome on Linux · 127.0.0.1 · just now',
    ]);

    // Alone now: "Sign out all other sessions" says why it is unavailable and does nothing.
    const posts: string[] = [];
    page.on('request', (r: Request) => {
      if (r.method() === 'POST') posts.push(new URL(r.url()).pathname);
    });
    expect(await page.getAttribute('#sign-out-others', 'aria-disabled')).toBe('true');
    // Still a tab stop (aria-disabled, not disabled), and Enter on it sends nothing.
    await page.focus('#sign-out-others');
    await page.keyboard.press('Enter');
    await page.locator('#sign-out-others').click({ force: true });
    await sleep(300);
    expect(posts).toEqual([]);
    expect(await page.locator('#signed-in').isVisible()).toBe(true);
    expect(await axeViolations(page), 'axe-core, signed in alone').toEqual([]);
    await Promise.all([context.close(), firefox.close()]);
  });
});
