/**
 * End-to-end helpers: a real listening Tessera (real clock, built demo page) and a
 * headless Debian Chromium driven by playwright-core. Without Chromium the suites skip
 * themselves and say why; on CI (CI set) a missing Chromium is a failure instead.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { expect, it } from 'vitest';
import type { Config } from '../../src/core/config.js';
import { SESSION_HINT_COOKIE } from '../../src/core/vocabulary.js';
import type { Backend } from '../helpers/backends.js';
import { startLiveServer as startLiveServerOn, type LiveServer } from '../helpers/live-issuer.js';

export const CHROMIUM_PATH = '/usr/bin/chromium';
export const HAS_CHROMIUM = existsSync(CHROMIUM_PATH);
/** Suffix for a describe name: empty when Chromium is there, the reason for skipping otherwise. */
export const SKIP_REASON = HAS_CHROMIUM ? '' : ` — skipped: no Chromium at ${CHROMIUM_PATH} (install Debian's chromium to run these)`;

/**
 * On CI the browser tests must run: a missing Chromium fails the run instead of
 * skipping. Call once at the top level of every browser test file.
 */
export function requireChromiumOnCi(): void {
  const onCi = !!process.env.CI && !/^(0|false)$/i.test(process.env.CI);
  if (onCi && !HAS_CHROMIUM) {
    it(`Chromium is required on CI (CI=${process.env.CI}) but ${CHROMIUM_PATH} does not exist`, () => {
      expect.fail(`no Chromium at ${CHROMIUM_PATH}: install the Debian chromium package on the CI image`);
    });
  }
}

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const ARTIFACTS = fileURLToPath(new URL('../../test-artifacts/', import.meta.url));

/** One run on PostgreSQL when TEST_DATABASE_URL is set, else on PGlite: enough for end-to-end tests. */
export const BROWSER_BACKEND: Backend = process.env.TEST_DATABASE_URL ? 'postgres' : 'pglite';

export const PASSWORD = 'correct horse battery staple';
export const REFRESH_COOKIE = 'tessera_refresh';
export { SESSION_HINT_COOKIE };

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

export type { LiveServer };

/**
 * The real app with the real clock, listening on 127.0.0.1, serving the built demo
 * (run `npm run build` first; `npm test` does). `env` configures it like an operator would.
 */
export async function startLiveServer(env: Record<string, string>, rateLimits: Partial<Config['rateLimits']> = {}): Promise<LiveServer> {
  if (!existsSync(new URL('../../dist/demo/app.js', import.meta.url))) {
    throw new Error('dist/demo is not built: run `npm run build` before the browser tests (npm test does)');
  }
  return startLiveServerOn(BROWSER_BACKEND, env, { registerPerIp: 10_000, ...rateLimits });
}

let counter = 0;
export function newEmail(tag = 'user'): string {
  return `${tag}${Date.now().toString(36)}${(counter++).toString(36)}@example.com`;
}

/** expect.poll with room for a loaded machine (its default gives up after 1 s). */
export const poll = <T>(fn: () => T | Promise<T>) => expect.poll(fn, { timeout: 5_000, interval: 50 });

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Opens the demo page and waits until it has decided: signed in or signed out. */
export async function openDemo(context: BrowserContext, url: string, expect: 'signed-in' | 'signed-out' | 'any' = 'any'): Promise<Page> {
  const page = await context.newPage();
  await page.goto(`${url}/`);
  await page.waitForFunction(() => (window as any).tessera?.state?.status !== 'unknown' && document.getElementById('loading')!.hidden);
  if (expect !== 'any') await page.locator(`#${expect}`).waitFor({ state: 'visible', timeout: 10_000 });
  return page;
}

/** The page's auth state: status, user id and sign-out reason. */
export function authState(page: Page): Promise<{ status: string; userId: string | null; reason: string | null }> {
  return page.evaluate(() => {
    const state = (window as any).tessera.state;
    return { status: state.status, userId: state.user?.id ?? null, reason: state.reason ?? null };
  });
}

/** Registers through the page's own client (fast path for tests that are not about the form). */
export async function registerInPage(page: Page, email = newEmail()): Promise<{ email: string; userId: string }> {
  const user = await page.evaluate(
    ([email, password]) => (window as any).tessera.register({ email, password }),
    [email, PASSWORD] as const,
  );
  await page.locator('#signed-in').waitFor({ state: 'visible' });
  return { email, userId: user.id };
}

/** `tessera.fetch(path)` inside the page: the status. */
export function fetchInPage(page: Page, path = '/auth/me'): Promise<number> {
  return page.evaluate((path) => (window as any).tessera.fetch(path).then((r: Response) => r.status), path);
}

/** The refresh cookie in a context's jar, if any. */
export async function refreshCookieOf(context: BrowserContext) {
  return (await context.cookies()).find((c) => c.name === REFRESH_COOKIE && c.value !== '');
}

/** The session hint cookie in a context's jar, if any (not a secret: a thief copying the jar takes it too). */
export async function hintCookieOf(context: BrowserContext) {
  return (await context.cookies()).find((c) => c.name === SESSION_HINT_COOKIE && c.value !== '');
}

/** Every key and value of localStorage and sessionStorage, for the "no token stored" checks. */
export function webStorage(page: Page): Promise<string[]> {
  return page.evaluate(() => {
    const out: string[] = [];
    for (const storage of [localStorage, sessionStorage]) {
      for (let i = 0; i < storage.length; i++) {
        const key = storage.key(i)!;
        out.push(key, storage.getItem(key) ?? '');
      }
    }
    return out;
  });
}

/** Asserts no key or value of web storage holds a JWT (`eyJ`) or a refresh token (`tsr_`). */
export async function expectNoTokenInStorage(page: Page): Promise<void> {
  for (const entry of await webStorage(page)) {
    expect(entry, 'web storage entry').not.toContain('eyJ');
    expect(entry, 'web storage entry').not.toContain('tsr_');
  }
}

/** The security events of a user, optionally of one type. */
export function eventsOf(server: LiveServer, userId: string, type?: string) {
  let q = server.db.store.db.selectFrom('security_events').selectAll().where('user_id', '=', userId);
  if (type) q = q.where('type', '=', type as never);
  return q.execute();
}

export function sessionRow(server: LiveServer, id: string) {
  return server.db.store.db.selectFrom('sessions').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
}

/** The session a refresh token belongs to, and its generation. */
export function parseRefreshToken(server: LiveServer, token: string): { sessionId: string; generation: number } {
  const parsed = server.app.tessera.refreshTokens.parse(token);
  if (!parsed) throw new Error(`not a refresh token: ${token.slice(0, 8)}…`);
  return { sessionId: parsed.sessionId, generation: parsed.generation };
}

export async function screenshot(page: Page, name: string): Promise<void> {
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: `${ARTIFACTS}${name}.png`, fullPage: true });
}

/** The demo's screenshots for people to look at, by view and size, beside the other test artifacts (ignored by git). */
export const SCREENSHOTS = `${ARTIFACTS}screenshots/`;
const AXE_PATH = fileURLToPath(new URL('../../node_modules/axe-core/axe.min.js', import.meta.url));

/**
 * axe-core's violations on the page as it is now, one line per failing element, so a failed
 * `toEqual([])` reads as a list. The page's CSP (script-src 'self') refuses the injected script:
 * open the page in a context made with `{ bypassCSP: true }`.
 */
export async function axeViolations(page: Page): Promise<string[]> {
  if (!(await page.evaluate(() => 'axe' in window))) await page.addScriptTag({ path: AXE_PATH });
  const violations: { id: string; impact: string; help: string; nodes: { target: string[]; failureSummary: string }[] }[] =
    await page.evaluate(async () => (await (window as any).axe.run()).violations);
  return violations.flatMap((v) => v.nodes.map((n) => `${v.id} (${v.impact}): ${v.help} — at ${n.target.join(' ')}: ${n.failureSummary.replace(/\s+/g, ' ')}`));
}
