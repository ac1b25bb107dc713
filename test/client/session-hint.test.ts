import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { TesseraClient } from '../../src/client/index.js';
import { SESSION_HINT_COOKIE } from '../../src/core/vocabulary.js';

/**
 * SPEC §10: the client refreshes on load only when there may be a session to restore — the
 * hint cookie Tessera sets next to the refresh cookie, or, where the page cannot read it (a
 * front end on another origin), its own flag in localStorage. The browser globals are stubbed
 * here, and Tessera is a fake that answers like the real one (test/browser covers the real one).
 */

const TESSERA = 'https://auth.example.com';
const OTHER_SITE = 'https://app.example.net';
const USER = { id: '0b4a1c2e-0000-4000-8000-000000000001', email: 'ada@example.com', name: 'Ada', createdAt: '2026-01-01T00:00:00.000Z' };

/** A browser page at `origin`: document.cookie, localStorage (or none: `storage: 'broken'`), window.location. */
function stubBrowser(origin: string, options: { cookie?: string; storage?: Map<string, string> | 'broken' } = {}) {
  const page = { cookie: options.cookie ?? '' };
  const map = options.storage === 'broken' ? undefined : (options.storage ?? new Map<string, string>());
  vi.stubGlobal('window', { location: { origin } });
  vi.stubGlobal('document', {
    get cookie() {
      return page.cookie;
    },
    visibilityState: 'visible',
    addEventListener() {},
    removeEventListener() {},
  });
  vi.stubGlobal('localStorage', map === undefined ? {
    getItem() { throw new DOMException('denied', 'SecurityError'); },
    setItem() { throw new DOMException('denied', 'SecurityError'); },
    removeItem() { throw new DOMException('denied', 'SecurityError'); },
  } : {
    getItem: (key: string) => map.get(key) ?? null,
    setItem: (key: string, value: string) => void map.set(key, String(value)),
    removeItem: (key: string) => void map.delete(key),
  });
  return { page, storage: map };
}

/** A fake Tessera: `session` says whether the refresh cookie would work. Records every path asked. */
function fakeTessera(state: { session: boolean }) {
  const calls: string[] = [];
  const json = (status: number, body: unknown) => new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });
  const fetchFn: typeof globalThis.fetch = async (input) => {
    const path = new URL(input instanceof Request ? input.url : String(input)).pathname;
    calls.push(path);
    const tokens = { accessToken: `at-${calls.length}`, tokenType: 'Bearer', expiresIn: 900, user: USER };
    if (path === '/auth/login') {
      state.session = true;
      return json(200, tokens);
    }
    if (path === '/auth/logout') {
      state.session = false;
      return new Response(null, { status: 204 });
    }
    if (path === '/auth/refresh') {
      return state.session ? json(200, tokens) : json(401, { type: 'x', title: 'x', status: 401, code: 'invalid_refresh_token' });
    }
    return json(404, { type: 'x', title: 'x', status: 404, code: 'not_found' });
  };
  return { calls, fetch: fetchFn };
}

describe('restoring a session on page load', () => {
  const clients: TesseraClient[] = [];
  const client = (options: ConstructorParameters<typeof TesseraClient>[0]) => {
    const c = new TesseraClient({ crossTab: false, ...options });
    clients.push(c);
    return c;
  };
  beforeEach(() => {
    clients.splice(0);
  });
  afterEach(() => {
    for (const c of clients) c.close();
    vi.unstubAllGlobals();
  });

  describe('a page on Tessera’s own origin reads the hint cookie', () => {
    it('a first visit with no hint makes no request and is signed out, with no reason to show', async () => {
      stubBrowser(TESSERA, { cookie: 'theme=dark' });
      const tessera = fakeTessera({ session: false });
      const auth = client({ fetch: tessera.fetch });
      const states: string[] = [];
      auth.onChange((s) => states.push(s.status));
      expect(await auth.restore()).toBeNull();
      expect(auth.state).toEqual({ status: 'signed_out', user: null });
      expect(states).toEqual(['signed_out']);
      // Nor does asking for a token: there is nothing to refresh.
      expect(await auth.getAccessToken()).toBeNull();
      expect(tessera.calls).toEqual([]);
    });

    it('an unknown client asking for a token first (before restore) makes no request either', async () => {
      stubBrowser(TESSERA);
      const tessera = fakeTessera({ session: false });
      const auth = client({ fetch: tessera.fetch });
      expect(await auth.getAccessToken()).toBeNull();
      expect(auth.state.status).toBe('signed_out');
      expect(tessera.calls).toEqual([]);
    });

    it('with the hint, one refresh restores the session', async () => {
      stubBrowser(TESSERA, { cookie: `theme=dark; ${SESSION_HINT_COOKIE}=1` });
      const tessera = fakeTessera({ session: true });
      const auth = client({ fetch: tessera.fetch });
      expect(await auth.restore()).toEqual(USER);
      expect(tessera.calls).toEqual(['/auth/refresh']);
    });

    it('with the hint but no valid refresh cookie: one refresh, a 401, signed out without a reason, nothing more', async () => {
      stubBrowser(TESSERA, { cookie: `${SESSION_HINT_COOKIE}=1` });
      const tessera = fakeTessera({ session: false });
      const auth = client({ fetch: tessera.fetch });
      expect(await auth.restore()).toBeNull();
      expect(auth.state).toEqual({ status: 'signed_out', user: null });
      expect(await auth.getAccessToken()).toBeNull();
      expect(tessera.calls).toEqual(['/auth/refresh']);
    });

    it('the hint decides here: a flag left in localStorage does not make it refresh, and none is written', async () => {
      const storage = new Map([[`tessera:session:${TESSERA}`, '1']]);
      stubBrowser(TESSERA, { storage });
      const tessera = fakeTessera({ session: false });
      const auth = client({ fetch: tessera.fetch });
      expect(await auth.restore()).toBeNull();
      expect(tessera.calls).toEqual([]);
      storage.clear();
      await auth.login({ email: USER.email, password: 'x'.repeat(12) });
      expect([...storage.keys()]).toEqual([]);
    });
  });

  describe('a front end on another origin keeps its own flag', () => {
    const FLAG = `tessera:session:${TESSERA}`;

    it('no hint and no flag: no request; sign-in sets the flag (no token in it); a reload restores; sign-out clears it', async () => {
      const { storage } = stubBrowser(OTHER_SITE);
      const state = { session: false };
      const tessera = fakeTessera(state);
      const first = client({ baseUrl: TESSERA, fetch: tessera.fetch });
      expect(await first.restore()).toBeNull();
      expect(tessera.calls).toEqual([]);

      await first.login({ email: USER.email, password: 'x'.repeat(12) });
      expect(storage!.get(FLAG)).toBe('1');
      expect([...storage!.values()].join()).not.toContain('at-');

      // A reload: a new client on the same page.
      const second = client({ baseUrl: TESSERA, fetch: tessera.fetch });
      expect(await second.restore()).toEqual(USER);
      expect(tessera.calls).toEqual(['/auth/login', '/auth/refresh']);

      await second.logout();
      expect(storage!.has(FLAG)).toBe(false);
      const third = client({ baseUrl: TESSERA, fetch: tessera.fetch });
      expect(await third.restore()).toBeNull();
      expect(tessera.calls).toEqual(['/auth/login', '/auth/refresh', '/auth/logout']);
    });

    it('a flag whose session has ended: one refresh, a 401, the flag is cleared, and the next load is quiet', async () => {
      const { storage } = stubBrowser(OTHER_SITE, { storage: new Map([[FLAG, '1']]) });
      const tessera = fakeTessera({ session: false });
      expect(await client({ baseUrl: TESSERA, fetch: tessera.fetch }).restore()).toBeNull();
      expect(tessera.calls).toEqual(['/auth/refresh']);
      expect(storage!.has(FLAG)).toBe(false);
      expect(await client({ baseUrl: TESSERA, fetch: tessera.fetch }).restore()).toBeNull();
      expect(tessera.calls).toEqual(['/auth/refresh']);
    });

    it('a hint it can read (COOKIE_DOMAIN shared with the front end) is enough without a flag', async () => {
      stubBrowser(OTHER_SITE, { cookie: `${SESSION_HINT_COOKIE}=1` });
      const tessera = fakeTessera({ session: true });
      expect(await client({ baseUrl: TESSERA, fetch: tessera.fetch }).restore()).toEqual(USER);
      expect(tessera.calls).toEqual(['/auth/refresh']);
    });

    it('without web storage there is no knowing: it asks, as before', async () => {
      stubBrowser(OTHER_SITE, { storage: 'broken' });
      const tessera = fakeTessera({ session: true });
      const auth = client({ baseUrl: TESSERA, fetch: tessera.fetch });
      expect(await auth.restore()).toEqual(USER);
      expect(tessera.calls).toEqual(['/auth/refresh']);
    });
  });

  it('the body transport (Node, mobile) restores only from a refresh token it was given', async () => {
    const tessera = fakeTessera({ session: true });
    expect(await client({ transport: 'body', baseUrl: TESSERA, fetch: tessera.fetch }).restore()).toBeNull();
    expect(tessera.calls).toEqual([]);
    expect(await client({ transport: 'body', baseUrl: TESSERA, fetch: tessera.fetch, refreshToken: 'tsr_saved' }).restore()).toEqual(USER);
    expect(tessera.calls).toEqual(['/auth/refresh']);
  });
});
