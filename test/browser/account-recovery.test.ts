import { mkdirSync, readFileSync } from 'node:fs';
import type { Browser, BrowserContext, ConsoleMessage, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMailbox, type Mailbox, type ParsedMail } from '../helpers/mailbox.js';
import {
  authState, axeViolations, BROWSER_BACKEND, HAS_CHROMIUM, launchChromium, newEmail, openDemo, PASSWORD, poll, registerInPage,
  requireChromiumOnCi, SCREENSHOTS, SKIP_REASON, sleep, startLiveServer, type LiveServer,
} from './helpers.js';

/**
 * SPEC §7 in the demo page, end to end: a real Tessera whose mails go to a real SMTP server on
 * loopback, and Chromium opening the links those mails carry. Sign-up's verification, a
 * forgotten password, an email change, the name, the data download and deleting the account;
 * axe-core on every new view, which also fits a 360 px phone; screenshots of each, phone and
 * desktop, in test-artifacts/screenshots/.
 */

requireChromiumOnCi();

const NEW_PASSWORD = 'a completely different passphrase';
const SUBJECTS = {
  verify: 'Confirm your email address for Tessera',
  reset: 'Reset your Tessera password',
  change: 'Confirm your new email address for Tessera',
} as const;
const SIZES = [['phone', { width: 390, height: 844 }], ['desktop', { width: 1280, height: 800 }]] as const;

const recipient = (mail: ParsedMail) => (mail.to && !Array.isArray(mail.to) ? mail.to.value[0]?.address : undefined);

describe.skipIf(!HAS_CHROMIUM)(`account recovery in the demo page, with mail, on ${BROWSER_BACKEND}${SKIP_REASON}`, () => {
  let mailbox: Mailbox;
  let server: LiveServer;
  let browser: Browser;

  beforeAll(async () => {
    mkdirSync(SCREENSHOTS, { recursive: true });
    mailbox = await startMailbox();
    [server, browser] = await Promise.all([startLiveServer({ SMTP_URL: mailbox.url, ACCESS_TOKEN_TTL: '60s' }), launchChromium()]);
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
    await mailbox?.stop();
  });

  /** axe-core is injected as a script, which the page's CSP would refuse. */
  const newContext = (): Promise<BrowserContext> => browser.newContext({ bypassCSP: true });

  /** The `n`th mail (1-based) to `to` with `subject`, already here or still to come. */
  function mail(to: string, subject: string, n = 1): Promise<ParsedMail> {
    const matches = (m: ParsedMail) => recipient(m) === to.toLowerCase() && m.subject === subject;
    return mailbox.waitFor((m) => matches(m) && mailbox.messages.filter(matches).indexOf(m) === n - 1);
  }

  /**
   * What a user could see go wrong in devtools: answers of 400 and up, and console errors and
   * warnings other than Chrome's own line for such an answer (those are in `failures` already).
   */
  function watch(page: Page) {
    const failures: string[] = [];
    const consoleLines: string[] = [];
    page.on('response', (r) => {
      if (r.status() >= 400) failures.push(`${r.request().method()} ${new URL(r.url()).pathname}: ${r.status()}`);
    });
    page.on('requestfailed', (r) => failures.push(`${r.method()} ${new URL(r.url()).pathname}: ${r.failure()?.errorText}`));
    page.on('console', (m: ConsoleMessage) => {
      if ((m.type() === 'error' || m.type() === 'warning') && !m.text().startsWith('Failed to load resource')) consoleLines.push(`${m.type()}: ${m.text()}`);
    });
    page.on('pageerror', (e) => consoleLines.push(`pageerror: ${e.message}`));
    return { failures, consoleLines };
  }

  /** The view as it is: axe-core finds nothing, it fits 360 px, and a screenshot for phone and desktop. */
  async function checkView(page: Page, name: string) {
    expect.soft(await axeViolations(page), `axe-core, ${name}`).toEqual([]);
    await page.setViewportSize({ width: 360, height: 800 });
    const widths = await page.evaluate(() => ({ page: document.documentElement.scrollWidth, window: innerWidth }));
    expect.soft(widths.page, `${name}: the page's width in a 360 px window`).toBeLessThanOrEqual(widths.window);
    for (const [size, viewport] of SIZES) {
      await page.setViewportSize(viewport);
      await page.screenshot({ path: `${SCREENSHOTS}${name}-${size}.png`, fullPage: true });
    }
  }

  /** The address bar, and the page's own idea of it: neither may hold a link's token. */
  async function expectNoTokenInAddress(page: Page, path: string) {
    expect(page.url()).toBe(`${server.url}${path}`);
    expect(await page.evaluate(() => location.href)).not.toContain('token');
  }

  async function signInThroughForm(page: Page, email: string, password: string) {
    const form = page.locator('#sign-in-form');
    await form.locator('input[name=email]').fill(email);
    await form.locator('input[name=password]').fill(password);
    await form.locator('button[type=submit]').click();
  }

  it('sign-up: the banner asks to verify, Resend sends a new link, an old link says so, the new one verifies', async () => {
    const context = await newContext();
    const page = await openDemo(context, server.url, 'signed-out');
    const seen = watch(page);
    const email = newEmail('verify');
    await page.click('#tab-sign-up');
    const form = page.locator('#sign-up-form');
    await form.locator('input[name=email]').fill(email);
    await form.locator('input[name=password]').fill(PASSWORD);
    await form.locator('button[type=submit]').click();
    await page.locator('#signed-in').waitFor({ state: 'visible' });

    const banner = page.locator('#verify-banner');
    await banner.waitFor({ state: 'visible' });
    expect(await banner.getAttribute('role')).toBe('region');
    expect(await page.textContent('#verify-banner-title')).toBe('Verify your email');
    expect(await page.textContent('#verify-banner-email')).toBe(email);
    const first = await mail(email, SUBJECTS.verify);
    await checkView(page, 'verify-banner');

    await page.click('#verify-resend');
    await poll(() => page.textContent('#verify-banner-status')).toContain(`A new link is on its way to ${email}`);
    const second = await mail(email, SUBJECTS.verify, 2);

    // Each link opened from the mail, in a tab of its own. The first was replaced by the second:
    // the page says so, and offers a new one.
    const stale = await context.newPage();
    const staleSeen = watch(stale);
    await stale.goto(`${server.url}/verify-email#token=${mailbox.linkToken(first)}`);
    await poll(() => stale.textContent('#verify-title')).toBe('This link does not work');
    await expectNoTokenInAddress(stale, '/verify-email');
    expect(await stale.textContent('#verify-text')).toBe('It was used already, has expired, or a newer one was sent. We can send you a new one.');
    expect(await stale.locator('#verify-resend-form').isVisible()).toBe(true);
    // Signed in: the new link goes to the account's address, nothing to type.
    expect(await stale.locator('#verify-resend-form input[name=email]').isVisible()).toBe(false);
    expect(await stale.evaluate(() => document.activeElement?.id)).toBe('verify-title');
    await checkView(stale, 'verify-email-invalid');
    await stale.close();

    const link = await context.newPage();
    const linkSeen = watch(link);
    await link.goto(`${server.url}/verify-email#token=${mailbox.linkToken(second)}`);
    await poll(() => link.textContent('#verify-title')).toBe('Email address confirmed');
    await expectNoTokenInAddress(link, '/verify-email');
    expect(await link.textContent('#verify-text')).toBe(`Thank you: ${email} is confirmed.`);
    expect(await link.title()).toBe('Confirm your email address — Tessera');
    await checkView(link, 'verify-email-done');

    // The tab that showed the banner hears of it at once.
    await poll(() => banner.isVisible()).toBe(false);
    await link.click('#verify-continue');
    await link.locator('#signed-in').waitFor({ state: 'visible' });
    expect(link.url()).toBe(`${server.url}/`);
    expect(await link.locator('#verify-banner').isVisible()).toBe(false);
    expect(await link.evaluate(() => (window as any).tessera.state.user.emailVerified)).toBe(true);
    await poll(async () => (await link.locator('#events li').allTextContents()).join('|')).toContain('Email verified');

    expect(staleSeen.failures, 'failed answers: only the replaced link').toEqual(['POST /auth/email/verify: 400']);
    expect([...seen.failures, ...linkSeen.failures]).toEqual([]);
    expect([...seen.consoleLines, ...staleSeen.consoleLines, ...linkSeen.consoleLines]).toEqual([]);
    await context.close();
  });

  it('forgot password: the same words for any address; the link sets a new password, every session ends, the new one signs in', async () => {
    // The account, signed in on two browsers.
    const first = await newContext();
    const firstPage = await openDemo(first, server.url, 'signed-out');
    const { email, userId } = await registerInPage(firstPage, newEmail('forgot'));
    const second = await newContext();
    const secondPage = await openDemo(second, server.url, 'signed-out');
    await secondPage.evaluate(([email, password]) => (window as any).tessera.login({ email, password }), [email, PASSWORD] as const);
    await secondPage.locator('#signed-in').waitFor({ state: 'visible' });

    // Someone who forgot it, on a third browser.
    const context = await newContext();
    const page = await openDemo(context, server.url, 'signed-out');
    const seen = watch(page);
    await page.locator('#sign-in-form input[name=email]').fill(email);
    await page.click('#forgot-open');
    await page.locator('#forgot').waitFor({ state: 'visible' });
    expect(await page.evaluate(() => document.activeElement?.id), 'focus on the new view').toBe('forgot-title');
    expect(await page.inputValue('#forgot-form input[name=email]'), 'the address typed at sign-in').toBe(email);
    await checkView(page, 'forgot-password');

    const sent = 'If an account exists for this address, a link is on its way.';
    const forgotForm = page.locator('#forgot-form');
    // An address with no account: the same answer, the same words.
    await forgotForm.locator('input[name=email]').fill(newEmail('nobody'));
    const unknown = page.waitForResponse((r) => r.url().endsWith('/auth/password/forgot'));
    await forgotForm.locator('button[type=submit]').click();
    expect((await unknown).status()).toBe(202);
    await poll(() => forgotForm.locator('[data-status]').textContent()).toContain(sent);
    const unknownWords = await forgotForm.locator('[data-status]').textContent();

    await forgotForm.locator('input[name=email]').fill(email);
    const known = page.waitForResponse((r) => r.url().endsWith('/auth/password/forgot'));
    await forgotForm.locator('button[type=submit]').click();
    expect((await known).status()).toBe(202);
    await poll(() => forgotForm.locator('[data-status]').textContent()).toBe(unknownWords);
    expect(await forgotForm.locator('[data-status]').getAttribute('role')).toBe('status');
    await checkView(page, 'forgot-password-sent');

    const token = mailbox.linkToken(await mail(email, SUBJECTS.reset));
    await page.goto(`${server.url}/reset-password#token=${token}`);
    await page.locator('#reset-form').waitFor({ state: 'visible' });
    await expectNoTokenInAddress(page, '/reset-password');
    expect(await page.title()).toBe('Choose a new password — Tessera');
    await checkView(page, 'reset-password');

    const resetForm = page.locator('#reset-form');
    const error = resetForm.locator('[data-error]');
    await resetForm.locator('input[name=newPassword]').fill(NEW_PASSWORD);
    await resetForm.locator('input[name=confirmPassword]').fill(`${NEW_PASSWORD}!`);
    await resetForm.locator('button[type=submit]').click();
    await poll(() => error.textContent()).toBe('The two passwords are not the same. Please type the new password twice.');
    await resetForm.locator('input[name=newPassword]').fill('password');
    await resetForm.locator('input[name=confirmPassword]').fill('password');
    await resetForm.locator('button[type=submit]').click();
    await poll(() => error.textContent()).toContain('most commonly used');
    await checkView(page, 'reset-password-refused');

    await resetForm.locator('input[name=newPassword]').fill(NEW_PASSWORD);
    await resetForm.locator('input[name=confirmPassword]').fill(NEW_PASSWORD);
    await resetForm.locator('button[type=submit]').click();
    await page.locator('#signed-out').waitFor({ state: 'visible' });
    expect(page.url()).toBe(`${server.url}/`);
    expect(await page.textContent('#notice')).toMatch(/^Password changed — sign in with your new password/);
    expect(await page.evaluate(() => (document.activeElement as HTMLInputElement).name), 'focus on the sign-in form').toBe('email');
    expect(await page.evaluate(() => [...document.querySelectorAll('input')].filter((i) => i.value !== '').length), 'no password left in the page').toBe(0);
    await checkView(page, 'password-reset-done');

    // Every session ended: the two browsers learn it at their next refresh.
    for (const other of [firstPage, secondPage]) {
      expect(await other.evaluate(() => (window as any).tessera.refresh())).toBe(false);
      await other.locator('#signed-out').waitFor({ state: 'visible' });
      expect(await authState(other)).toMatchObject({ status: 'signed_out', reason: 'invalid_refresh_token' });
    }
    const active = await server.db.store.db.selectFrom('sessions').select('id').where('user_id', '=', userId).where('revoked_at', 'is', null).execute();
    expect(active).toEqual([]);

    // The old password no longer works; the new one does.
    await signInThroughForm(page, email, PASSWORD);
    await poll(() => page.locator('#sign-in-form [data-error]').textContent()).toBe('Email or password is incorrect.');
    await signInThroughForm(page, email, NEW_PASSWORD);
    await page.locator('#signed-in').waitFor({ state: 'visible' });
    // A reset proves the address as well.
    expect(await page.locator('#verify-banner').isVisible()).toBe(false);
    // The account page has loaded (leaving while it loads would abort its requests).
    await page.locator('#sessions tr').first().waitFor();
    await poll(() => page.locator('#events li').count()).toBeGreaterThan(0);

    // The link worked once: opened again, it says so and offers a new one.
    await page.goto(`${server.url}/reset-password#token=${token}`);
    const again = page.locator('#reset-form');
    await again.locator('input[name=newPassword]').fill(`${NEW_PASSWORD} 2`);
    await again.locator('input[name=confirmPassword]').fill(`${NEW_PASSWORD} 2`);
    await again.locator('button[type=submit]').click();
    await page.locator('#reset-invalid').waitFor({ state: 'visible' });
    expect(await page.textContent('#reset-title')).toBe('This link does not work');
    expect(await page.textContent('#reset-invalid-text')).toMatch(/^It was used already, has expired, or a newer one was sent\. Ask for a new one/);
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('reset-again');
    await checkView(page, 'reset-password-invalid');
    await page.click('#reset-again');
    await page.locator('#forgot').waitFor({ state: 'visible' });
    expect(page.url()).toBe(`${server.url}/`);

    expect(seen.failures).toEqual([
      'POST /auth/password/reset: 400', // the common password
      'POST /auth/login: 401', // the old password
      'POST /auth/password/reset: 400', // the used link
    ]);
    expect(seen.consoleLines).toEqual([]);
    await Promise.all([first.close(), second.close(), context.close()]);
  });

  it('a first visit to /reset-password or /verify-email without a link: says what to do, and no request fails', async () => {
    const context = await newContext();
    const page = await context.newPage();
    const seen = watch(page);
    await page.goto(`${server.url}/reset-password`);
    await page.locator('#reset-invalid').waitFor({ state: 'visible' });
    expect(await page.textContent('#reset-invalid-text')).toContain('there is no link here');
    await page.goto(`${server.url}/verify-email`);
    await poll(() => page.textContent('#verify-title')).toBe('Nothing to confirm');
    expect(await page.locator('#verify-continue').textContent()).toBe('Go to sign in');
    await sleep(500);
    expect(seen.failures).toEqual([]);
    expect(seen.consoleLines).toEqual([]);

    // A link pasted into this very tab changes only the fragment: the page loads anew for it.
    await page.goto(`${server.url}/verify-email#token=${'A'.repeat(88)}`);
    await poll(() => page.textContent('#verify-title').catch(() => '')).toBe('This link does not work');
    await expectNoTokenInAddress(page, '/verify-email');
    expect(seen.failures).toEqual(['POST /auth/email/verify: 400']);
    await context.close();
  });

  it('change email: a wrong password is refused; the link to the new address changes it, and the page says so', async () => {
    const context = await newContext();
    const page = await openDemo(context, server.url, 'signed-out');
    const seen = watch(page);
    const { email } = await registerInPage(page, newEmail('change'));
    const next = newEmail('changed');
    const form = page.locator('#email-form');
    await form.locator('input[name=newEmail]').fill(next);
    await form.locator('input[name=currentPassword]').fill('not the password');
    await form.locator('button[type=submit]').click();
    await poll(() => form.locator('[data-error]').textContent()).toBe('The current password is incorrect.');
    expect(await authState(page)).toMatchObject({ status: 'signed_in' });

    await form.locator('input[name=currentPassword]').fill(PASSWORD);
    await form.locator('button[type=submit]').click();
    await poll(() => form.locator('[data-status]').textContent()).toContain(`We sent a link to ${next}.`);
    expect(await form.locator('input[name=currentPassword]').inputValue(), 'the password is not kept').toBe('');
    expect(await page.textContent('#user-email'), 'unchanged until the link is used').toBe(email);
    await checkView(page, 'account-email-change-sent');

    const token = mailbox.linkToken(await mail(next, SUBJECTS.change));
    const link = await context.newPage();
    const linkSeen = watch(link);
    await link.goto(`${server.url}/verify-email#token=${token}`);
    await poll(() => link.textContent('#verify-title')).toBe('Email address changed');
    await expectNoTokenInAddress(link, '/verify-email');
    expect(await link.textContent('#verify-text')).toBe(`Your account's email address is now ${next}. Sign in with it from now on.`);
    await checkView(link, 'verify-email-changed');
    await link.click('#verify-continue');
    await link.locator('#signed-in').waitFor({ state: 'visible' });
    expect(await link.textContent('#user-email')).toBe(next);
    expect(await link.locator('#verify-banner').isVisible(), 'the new address is verified by its link').toBe(false);
    // The first tab follows.
    await poll(() => page.textContent('#user-email')).toBe(next);
    expect(await page.textContent('#whoami-name')).toBe(next);

    expect(linkSeen.failures).toEqual([]);
    expect(linkSeen.consoleLines).toEqual([]);
    expect(seen.failures).toEqual(['POST /auth/email: 403']);
    expect(seen.consoleLines).toEqual([]);
    await context.close();
  });

  it('the account: change the name, download my data, delete the account (asks first, needs the password)', async () => {
    const context = await newContext();
    const page = await openDemo(context, server.url, 'signed-out');
    const seen = watch(page);
    const { email, userId } = await registerInPage(page, newEmail('account'));

    const nameForm = page.locator('#name-form');
    await nameForm.locator('input[name=name]').fill('Ada Lovelace');
    await nameForm.locator('button[type=submit]').click();
    await poll(() => page.textContent('#user-name')).toBe('Ada Lovelace');
    expect(await page.textContent('#user-fullname')).toBe('Ada Lovelace');
    expect(await nameForm.locator('[data-status]').textContent()).toBe('Your name is now Ada Lovelace.');
    await poll(async () => (await page.locator('#events li').allTextContents()).join('|')).toContain('Profile updated');

    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#export')]);
    expect(download.suggestedFilename()).toBe('tessera-account.json');
    const data = JSON.parse(readFileSync((await download.path())!, 'utf8'));
    expect(data.user).toMatchObject({ id: userId, email, name: 'Ada Lovelace' });
    expect(JSON.stringify(data)).not.toMatch(/\$argon2|tsr_|eyJ/);
    await page.locator('#account-settings').scrollIntoViewIfNeeded();
    await checkView(page, 'account-settings');

    const deleteForm = page.locator('#delete-form');
    const questions: string[] = [];
    page.once('dialog', (dialog) => {
      questions.push(dialog.message());
      void dialog.dismiss();
    });
    await deleteForm.locator('input[name=currentPassword]').fill(PASSWORD);
    const deletes: string[] = [];
    page.on('request', (r) => {
      if (r.method() === 'DELETE') deletes.push(new URL(r.url()).pathname);
    });
    await deleteForm.locator('button[type=submit]').click();
    await sleep(300);
    expect(questions).toEqual([expect.stringMatching(new RegExp(`^Delete the account ${email.replace(/[.+]/g, '\\$&')} for good\\?`))]);
    expect(deletes, 'Cancel deletes nothing').toEqual([]);

    page.once('dialog', (dialog) => void dialog.accept());
    await deleteForm.locator('input[name=currentPassword]').fill('not the password');
    await deleteForm.locator('button[type=submit]').click();
    await poll(() => deleteForm.locator('[data-error]').textContent()).toBe('The current password is incorrect.');
    expect(await authState(page)).toMatchObject({ status: 'signed_in' });

    page.once('dialog', (dialog) => void dialog.accept());
    await deleteForm.locator('input[name=currentPassword]').fill(PASSWORD);
    const deleted = page.waitForResponse((r) => r.request().method() === 'DELETE' && new URL(r.url()).pathname === '/auth/me');
    await deleteForm.locator('button[type=submit]').click();
    const answer = await deleted;
    expect(answer.status(), 'the status of DELETE /auth/me with the right password').toBe(204);
    await page.locator('#signed-out').waitFor({ state: 'visible' });
    expect(await page.textContent('#notice')).toBe('Your account was deleted, with its sessions and your personal data.');
    expect(await page.evaluate(() => document.body.textContent)).not.toContain(email);
    await checkView(page, 'account-deleted');

    // Gone: no sign-in, and the next visit makes no request that fails (the cookies went with it).
    await signInThroughForm(page, email, PASSWORD);
    await poll(() => page.locator('#sign-in-form [data-error]').textContent()).toBe('Email or password is incorrect.');
    const failedBefore = seen.failures.length;
    await page.reload();
    await page.locator('#signed-out').waitFor({ state: 'visible' });
    await sleep(500);
    expect(seen.failures.slice(failedBefore), 'after a reload').toEqual([]);
    expect(seen.failures).toEqual(['DELETE /auth/me: 403', 'POST /auth/login: 401']);
    expect(seen.consoleLines).toEqual([]);
    await context.close();
  });
});
