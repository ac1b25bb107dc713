import { mkdirSync } from 'node:fs';
import type { Browser, ConsoleMessage, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { base32Decode, totpCode, totpStep } from '../../src/core/totp.js';
import { startLiveServer as startLiveServerOn } from '../helpers/live-issuer.js';
import {
  axeViolations, BROWSER_BACKEND, HAS_CHROMIUM, launchChromium, newEmail, openDemo, PASSWORD,
  requireChromiumOnCi, SCREENSHOTS, SKIP_REASON, startLiveServer, type LiveServer,
} from './helpers.js';

/**
 * Two-step sign-in through the demo page in Chromium (SPEC §8): sign up, turn on an
 * authenticator app (the key read from the page, the code computed here), the recovery codes
 * shown once, sign in with password + code, then with a recovery code; the sessions list says
 * how each session signed in. axe-core on each new view, 360 px fit, screenshots phone/desktop.
 */

requireChromiumOnCi();

const SIZES = { phone: { width: 360, height: 800 }, desktop: { width: 1280, height: 800 } } as const;

describe.skipIf(!HAS_CHROMIUM)(`two-step sign-in in the demo page, on ${BROWSER_BACKEND}${SKIP_REASON}`, () => {
  let server: LiveServer;
  let browser: Browser;

  beforeAll(async () => {
    [server, browser] = await Promise.all([startLiveServer({ EMAIL: 'off' }), launchChromium()]);
    mkdirSync(SCREENSHOTS, { recursive: true });
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  /** axe clean, no sideways scrolling at 360 px, and a screenshot at each size. */
  async function checkView(page: Page, name: string) {
    for (const [size, viewport] of Object.entries(SIZES)) {
      await page.setViewportSize(viewport);
      expect(await axeViolations(page), `axe on ${name} (${size})`).toEqual([]);
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      expect(overflow, `${name} fits ${viewport.width}px`).toBeLessThanOrEqual(0);
      await page.screenshot({ path: `${SCREENSHOTS}mfa-${name}-${size}.png`, fullPage: true });
    }
  }

  async function signIn(page: Page, email: string) {
    const form = page.locator('#sign-in-form');
    await form.locator('input[name=email]').fill(email);
    await form.locator('input[name=password]').fill(PASSWORD);
    await form.locator('button[type=submit]').click();
    await page.locator('#mfa-form').waitFor({ state: 'visible' });
  }

  async function signOut(page: Page) {
    await page.click('#sign-out');
    await page.locator('#signed-out').waitFor({ state: 'visible' });
  }

  /** The "Signed in with" cell of this device's session. */
  async function currentSessionHow(page: Page): Promise<string> {
    const cell = page.locator('#sessions tr', { has: page.locator('.badge') }).locator('td[data-label="Signed in with"]');
    await cell.waitFor();
    return (await cell.textContent())!;
  }

  it('turn on an authenticator app, sign in with password + code, then with a recovery code', async () => {
    const context = await browser.newContext({ bypassCSP: true });
    const page = await openDemo(context, server.url, 'signed-out');
    const problems: string[] = [];
    page.on('console', (m: ConsoleMessage) => {
      if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) problems.push(m.text());
    });
    page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));

    // Sign up through the form.
    const email = newEmail('mfa');
    await page.click('#tab-sign-up');
    const signUp = page.locator('#sign-up-form');
    await signUp.locator('input[name=email]').fill(email);
    await signUp.locator('input[name=password]').fill(PASSWORD);
    await signUp.locator('button[type=submit]').click();
    await page.locator('#signed-in').waitFor({ state: 'visible' });
    await page.locator('#totp-off').waitFor({ state: 'visible' });
    expect(await currentSessionHow(page)).toBe('password');

    // Turn on: a QR code and the key as text.
    await page.click('#totp-start');
    await page.locator('#totp-setup').waitFor({ state: 'visible' });
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('totp-setup-title');
    const secret = (await page.textContent('#totp-secret'))!.trim();
    expect(secret).toMatch(/^[A-Z2-7]{16,}$/);
    expect(await page.getAttribute('#totp-qr', 'src')).toMatch(/^data:image\/png;base64,/);
    expect(await page.evaluate(() => (document.getElementById('totp-qr') as HTMLImageElement).naturalWidth)).toBeGreaterThan(0);
    await checkView(page, 'totp-setup');

    const key = base32Decode(secret)!;
    const step = totpStep(new Date());
    await page.fill('#totp-confirm-form input[name=code]', totpCode(key, step));
    await page.click('#totp-confirm-form button[type=submit]');
    await page.locator('#totp-codes').waitFor({ state: 'visible' });
    const codes = await page.locator('#recovery-codes li').allTextContents();
    expect(codes).toHaveLength(10);
    await checkView(page, 'recovery-codes');
    await page.click('#codes-done');
    await page.locator('#totp-on').waitFor({ state: 'visible' });
    expect(await page.locator('#recovery-codes li').count(), 'the codes are shown once').toBe(0);

    // Sign in with password + code: a wrong code first.
    await signOut(page);
    await signIn(page, email);
    await checkView(page, 'code-step');
    expect(await page.evaluate(() => document.activeElement?.getAttribute('name'))).toBe('code');
    const right = totpCode(key, step + 1);
    await page.fill('#mfa-form input[name=code]', right === '000000' ? '111111' : '000000');
    await page.click('#mfa-form button[type=submit]');
    await expect.poll(() => page.locator('#mfa-form [data-error]').textContent()).toMatch(/not right/);
    await page.fill('#mfa-form input[name=code]', right);
    await page.click('#mfa-form button[type=submit]');
    await page.locator('#signed-in').waitFor({ state: 'visible' });
    expect(await currentSessionHow(page)).toBe('password + app code');
    await page.locator('#totp-on').waitFor({ state: 'visible' });

    // Sign in with a recovery code.
    await signOut(page);
    await signIn(page, email);
    await page.click('#mfa-switch');
    expect(await page.textContent('#mfa-label')).toBe('Recovery code');
    await page.fill('#mfa-form input[name=code]', codes[0]!);
    await page.click('#mfa-form button[type=submit]');
    await page.locator('#signed-in').waitFor({ state: 'visible' });
    expect(await currentSessionHow(page)).toMatch(/^password \+ /);
    expect(await page.evaluate(() => [...document.querySelectorAll('input')].filter((i) => i.value !== '').map((i) => i.name))).toEqual([]);

    // New recovery codes, then turn it off (this sign-in used a second factor: no need to confirm again).
    page.once('dialog', (d) => void d.accept());
    await page.click('#codes-regenerate');
    await page.locator('#totp-codes').waitFor({ state: 'visible' });
    const fresh = await page.locator('#recovery-codes li').allTextContents();
    expect(fresh).toHaveLength(10);
    expect(fresh).not.toContain(codes[1]);
    await page.click('#codes-done');
    page.once('dialog', (d) => void d.accept());
    await page.click('#totp-disable');
    await page.locator('#totp-off').waitFor({ state: 'visible' });
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('totp-start');

    expect(problems).toEqual([]);
    await context.close();
  }, 90_000);

  it('passkeys in the demo: add one (after confirming it is you), sign in with it, see how, remove it', async () => {
    // localhost: a browser refuses an IP address as relying party. A short REAUTH_WINDOW shows "Confirm it's you".
    const local = await startLiveServerOn(BROWSER_BACKEND, (port) => ({
      PUBLIC_URL: `http://localhost:${port}`, EMAIL: 'off', RATE_LIMITS: 'off', REAUTH_WINDOW: '4s',
    }));
    const context = await browser.newContext({ bypassCSP: true });
    try {
      const page = await context.newPage();
      const problems: string[] = [];
      page.on('console', (m: ConsoleMessage) => {
        if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) problems.push(m.text());
      });
      page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
      const cdp = await context.newCDPSession(page);
      await cdp.send('WebAuthn.enable');
      await cdp.send('WebAuthn.addVirtualAuthenticator', {
        options: { protocol: 'ctap2', transport: 'internal', hasResidentKey: true, hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true },
      });
      await page.goto(`${local.config.publicUrl}/`);
      await page.locator('#signed-out').waitFor({ state: 'visible' });
      expect(await page.isVisible('#passkey-sign-in')).toBe(true);

      const email = newEmail('passkey');
      await page.click('#tab-sign-up');
      await page.fill('#sign-up-form input[name=email]', email);
      await page.fill('#sign-up-form input[name=password]', PASSWORD);
      await page.click('#sign-up-form button[type=submit]');
      await page.locator('#passkeys-card').waitFor({ state: 'visible' });

      // The sign-in is older than REAUTH_WINDOW: adding asks for the password, then goes on.
      await new Promise((r) => setTimeout(r, 4_500));
      await page.fill('#passkey-form input[name=name]', 'Test key');
      await page.click('#passkey-form button[type=submit]');
      await page.locator('#reauth').waitFor({ state: 'visible' });
      expect(await page.evaluate(() => document.activeElement?.getAttribute('name'))).toBe('secret');
      await checkView(page, 'reauth');
      await page.fill('#reauth-form input[name=secret]', PASSWORD);
      await page.click('#reauth-form button[type=submit]');
      await page.locator('#passkeys li', { hasText: 'Test key' }).waitFor();
      expect(await page.textContent('#passkeys li')).toContain('not used yet');
      expect(await page.isVisible('#reauth')).toBe(false);
      await checkView(page, 'passkeys');

      await signOut(page);
      await page.click('#passkey-sign-in');
      await page.locator('#signed-in').waitFor({ state: 'visible' });
      expect(await currentSessionHow(page)).toBe('passkey');
      await page.locator('#passkeys li', { hasText: 'last used' }).waitFor();

      page.once('dialog', (d) => void d.accept());
      await page.click('#passkeys li button');
      await expect.poll(() => page.locator('#passkeys li').count()).toBe(0);
      expect(problems).toEqual([]);
    } finally {
      await context.close();
      await local.close();
    }
  }, 90_000);
});
