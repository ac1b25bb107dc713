import { mkdirSync } from 'node:fs';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  axeViolations, BROWSER_BACKEND, HAS_CHROMIUM, launchChromium, openDemo, PASSWORD, poll, registerInPage, requireChromiumOnCi,
  SCREENSHOTS, SKIP_REASON, startLiveServer, type LiveServer,
} from './helpers.js';

/**
 * The demo page as a newcomer first sees it (issue "first hour"): every view fits a 360 px
 * phone without sideways scrolling, nothing runs past its card, the sessions become cards on
 * narrow screens, axe-core finds nothing, and field borders and the focus ring meet WCAG 2.2's
 * 3:1 for non-text contrast. Screenshots of every view go to test-artifacts/screenshots/.
 */

requireChromiumOnCi();

const VIEWPORTS = [
  { name: 'narrow', width: 360, height: 800 },
  { name: 'phone', width: 390, height: 844 },
  { name: 'desktop', width: 1280, height: 800 },
] as const;
/** The breakpoint of style.css below which each session is a card. */
const CARDS_BELOW = 640;
const LONG_EMAIL = 'a.very.long.name.for.testing@example-domain-with-length.com';
const IPHONE = 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1';
const FIREFOX_WINDOWS = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0';

/**
 * What does not fit: the page wider than the window, or an element or a run of text reaching
 * past its card (or past the window, outside cards). Content inside an overflow-clipping box
 * (the visually hidden table header) is judged by that box.
 */
function overflows(page: Page): Promise<string[]> {
  return page.evaluate(() => {
    const found: string[] = [];
    const { innerWidth } = window;
    const { scrollWidth } = document.documentElement;
    if (scrollWidth > innerWidth) found.push(`the page is ${scrollWidth}px wide in a ${innerWidth}px window`);
    const clipped = (node: Node) => {
      for (let a = node.parentElement; a && a !== document.body; a = a.parentElement) {
        if (/hidden|clip/.test(getComputedStyle(a).overflowX)) return true;
      }
      return false;
    };
    const name = (el: Element) => `<${el.tagName.toLowerCase()}${el.id ? `#${el.id}` : ''}${el.className ? `.${String(el.className).replace(/\s+/g, '.')}` : ''}>`;
    const check = (rect: DOMRect, owner: Element, what: string) => {
      if (rect.width === 0 && rect.height === 0) return;
      const card = owner.closest('.card');
      const box = card ? card.getBoundingClientRect() : { left: 0, right: innerWidth };
      if (rect.left < box.left - 0.5 || rect.right > box.right + 0.5) {
        found.push(`${what} spans ${Math.round(rect.left)}–${Math.round(rect.right)}px, past ${card ? 'its card' : 'the window'} (${Math.round(box.left)}–${Math.round(box.right)}px)`);
      }
    };
    for (const el of document.body.querySelectorAll('*')) {
      if (el.closest('[hidden]') || clipped(el)) continue;
      check(el.getBoundingClientRect(), el, name(el));
    }
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      const parent = node.parentElement!;
      if (!node.textContent!.trim() || parent.closest('[hidden]') || clipped(node)) continue;
      const range = document.createRange();
      range.selectNodeContents(node);
      check(range.getBoundingClientRect(), parent, `the text "${node.textContent!.trim().slice(0, 40)}" in ${name(parent)}`);
    }
    return found;
  });
}

const channels = (css: string) => css.match(/[\d.]+/g)!.slice(0, 3).map(Number);
/** WCAG 2.2 contrast ratio of two opaque CSS colours as getComputedStyle gives them (`rgb(r, g, b)`). */
function contrast(a: string, b: string): number {
  const luminance = (css: string) => {
    const [r, g, bl] = channels(css).map((c) => (c / 255 <= 0.03928 ? c / 255 / 12.92 : ((c / 255 + 0.055) / 1.055) ** 2.4));
    return 0.2126 * r! + 0.7152 * g! + 0.0722 * bl!;
  };
  const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x);
  return (hi! + 0.05) / (lo! + 0.05);
}

describe.skipIf(!HAS_CHROMIUM)(`the demo page on phones and desktops: layout, axe-core, contrast, on ${BROWSER_BACKEND}${SKIP_REASON}`, () => {
  let server: LiveServer;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;

  beforeAll(async () => {
    mkdirSync(SCREENSHOTS, { recursive: true });
    [server, browser] = await Promise.all([startLiveServer({ ACCESS_TOKEN_TTL: '60s' }), launchChromium()]);
    // axe-core is injected as a script, which the page's CSP would refuse.
    context = await browser.newContext({ bypassCSP: true, viewport: VIEWPORTS[0] });
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  /** Every viewport: fits, (for signed-in views) sessions as cards or a table, no axe violation, a screenshot. */
  async function checkView(view: string) {
    for (const viewport of VIEWPORTS) {
      await page.setViewportSize(viewport);
      const at = `${view} at ${viewport.width}×${viewport.height}`;
      expect.soft(await overflows(page), at).toEqual([]);
      if (await page.locator('#signed-in').isVisible()) {
        const display = await page.locator('#sessions tr').first().evaluate((tr) => getComputedStyle(tr).display);
        expect.soft(display, `a session row's display, ${at}`).toBe(viewport.width < CARDS_BELOW ? 'block' : 'table-row');
      }
      expect.soft(await axeViolations(page), `axe-core, ${at}`).toEqual([]);
      await page.screenshot({ path: `${SCREENSHOTS}${view}-${viewport.name}.png`, fullPage: true });
    }
  }

  it('signed out, on the sign-in tab', async () => {
    page = await openDemo(context, server.url, 'signed-out');
    expect(await page.locator('#signed-out h1').textContent()).toBeTruthy();
    await checkView('signed-out');
  });

  it('signed out, on the create-account tab', async () => {
    await page.click('#tab-sign-up');
    await page.locator('#sign-up-form').waitFor({ state: 'visible' });
    await checkView('sign-up');
  });

  it('the create-account tab refusing a common password', async () => {
    const form = page.locator('#sign-up-form');
    await form.locator('input[name=email]').fill(LONG_EMAIL.replace('a.very', 'weak.very'));
    await form.locator('input[name=password]').fill('password');
    await form.locator('button[type=submit]').click();
    await form.locator('[data-error]').waitFor({ state: 'visible' });
    await checkView('sign-up-weak-password');
  });

  it('signed in with a long email and five sessions (a table on desktops, cards on phones)', async () => {
    // The account and three other devices, signed in through the page's own client.
    const { email } = await registerInPage(await openDemo(await browser.newContext(), server.url, 'signed-out'), LONG_EMAIL);
    for (const userAgent of [IPHONE, FIREFOX_WINDOWS, undefined]) {
      const other = await openDemo(await browser.newContext({ userAgent }), server.url, 'signed-out');
      await other.evaluate(([email, password]) => (window as any).tessera.login({ email, password }), [email, PASSWORD] as const);
    }
    await page.click('#tab-sign-in');
    const form = page.locator('#sign-in-form');
    await form.locator('input[name=email]').fill(email);
    await form.locator('input[name=password]').fill(PASSWORD);
    await form.locator('button[type=submit]').click();
    await page.locator('#signed-in').waitFor({ state: 'visible' });
    await poll(() => page.locator('#sessions tr').count()).toBe(5);
    await poll(() => page.locator('#events li').count()).toBe(5);
    expect(await page.textContent('#whoami-name')).toBe(email);
    expect(await page.textContent('#user-name')).toBe(email);
    await checkView('signed-in');
  });

  it('signed in on this device only: "Sign out all other sessions" unavailable but readable, and saying why', async () => {
    await page.click('#sign-out-others');
    await poll(() => page.locator('#sessions tr').count()).toBe(1);
    const button = page.locator('#sign-out-others');
    expect(await button.getAttribute('aria-disabled')).toBe('true');
    expect(await page.locator('#sign-out-others-hint').isVisible()).toBe(true);
    expect(await button.getAttribute('aria-describedby')).toBe('sign-out-others-hint');
    const { color, background } = await button.evaluate((el) => ({ color: getComputedStyle(el).color, background: getComputedStyle(el).backgroundColor }));
    expect(contrast(color, background), `${color} on ${background}`).toBeGreaterThanOrEqual(4.5);
    await checkView('signed-in-alone');
  });

  it('signed out again, with the notice', async () => {
    await page.click('#sign-out');
    await page.locator('#signed-out').waitFor({ state: 'visible' });
    expect(await page.locator('#notice').textContent()).toBe('You are signed out.');
    await checkView('signed-out-notice');
  });

  it('field borders and the focus ring stand out 3:1 from the card and the page (WCAG 2.2 SC 1.4.11)', async () => {
    const card = page.locator('#signed-out .card');
    const [cardBackground, pageBackground] = await Promise.all([
      card.evaluate((el) => getComputedStyle(el).backgroundColor),
      page.evaluate(() => getComputedStyle(document.body).backgroundColor === 'rgba(0, 0, 0, 0)' ? getComputedStyle(document.documentElement).backgroundColor : getComputedStyle(document.body).backgroundColor),
    ]);
    const input = page.locator('#sign-in-form input[name=email]');
    const border = await input.evaluate((el) => getComputedStyle(el).borderTopColor);
    expect(contrast(border, cardBackground), `input border ${border} on ${cardBackground}`).toBeGreaterThanOrEqual(3);

    // Keyboard focus: on a field, then (Shift+Tab) on the selected tab, the one tab in the Tab order.
    await input.focus();
    await page.keyboard.press('Shift+Tab');
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('tab-sign-in');
    await input.focus();
    for (const target of [input, page.locator('#tab-sign-in')]) {
      if (target !== input) await page.keyboard.press('Shift+Tab');
      const ring = await target.evaluate((el) => {
        const style = getComputedStyle(el);
        return { focused: el.matches(':focus-visible'), color: style.outlineColor, style: style.outlineStyle, width: parseFloat(style.outlineWidth) };
      });
      expect(ring).toMatchObject({ focused: true, style: 'solid' });
      expect(ring.width).toBeGreaterThanOrEqual(2);
      for (const background of [cardBackground, pageBackground]) {
        expect(contrast(ring.color, background), `focus ring ${ring.color} on ${background}`).toBeGreaterThanOrEqual(3);
      }
    }
  });
});
