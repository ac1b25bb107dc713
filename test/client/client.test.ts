import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TesseraClient, TesseraClientError, withAxios, type AuthState, type AxiosLike } from '../../src/client/index.js';
import { BACKENDS } from '../helpers/backends.js';
import { newEmail, PASSWORD, startTestApp, type TestApp } from '../helpers/app.js';

/**
 * The browser client in Node, with the body transport, against a real listening
 * server (frozen server clock: "the access token expired" is the server's clock moving on).
 */

const NEW_PASSWORD = 'a completely different passphrase';

interface Call {
  method: string;
  url: string;
  path: string;
  authorization: string | null;
}

/** A fetch that records every request it passes on (and can be told to fail some). */
function recordingFetch(options: { fail?: (call: Call) => 'before' | 'after' | false } = {}) {
  const calls: Call[] = [];
  const fetchFn: typeof globalThis.fetch = async (input, init) => {
    const request = new Request(input, init);
    const url = new URL(request.url);
    const call = { method: request.method, url: request.url, path: url.pathname, authorization: request.headers.get('authorization') };
    calls.push(call);
    const failure = options.fail?.(call);
    if (failure === 'before') throw new TypeError('fetch failed (simulated: never reached the server)');
    const response = await globalThis.fetch(request);
    if (failure === 'after') {
      await response.arrayBuffer();
      throw new TypeError('fetch failed (simulated: the response was lost)');
    }
    return response;
  };
  return {
    calls,
    fetch: fetchFn,
    count: (path: string) => calls.filter((c) => c.path === path).length,
    reset: () => calls.splice(0),
  };
}

/** A server that answers 401 to everything: an API whose 401 is not about an expired token. */
async function alwaysUnauthorized(): Promise<{ url: string; hits: () => number; authorizations: (string | undefined)[]; close(): Promise<void> }> {
  const authorizations: (string | undefined)[] = [];
  const server: Server = createServer((request, response) => {
    authorizations.push(request.headers.authorization);
    request.resume();
    response.writeHead(401, { 'content-type': 'application/problem+json' });
    response.end(JSON.stringify({ type: 'about:blank', title: 'no', status: 401, code: 'unauthorized' }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    hits: () => authorizations.length,
    authorizations,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/** A minimal axios look-alike: interceptors, `request(config)`, rejects on status >= 400 with `{config, response}`. */
function fakeAxios(baseURL: string, options: { headersClass?: boolean } = {}) {
  let nextId = 0;
  const requestInterceptors = new Map<number, (config: any) => any>();
  const responseInterceptors = new Map<number, [(response: any) => any, (error: any) => any]>();
  const sent: { url: string; authorization: string | undefined }[] = [];
  const axios = {
    sent,
    interceptors: {
      request: {
        use: (onFulfilled: (config: any) => any) => (requestInterceptors.set(nextId, onFulfilled), nextId++),
        eject: (id: number) => void requestInterceptors.delete(id),
      },
      response: {
        use: (onFulfilled: (response: any) => any, onRejected: (error: any) => any) => (responseInterceptors.set(nextId, [onFulfilled, onRejected]), nextId++),
        eject: (id: number) => void responseInterceptors.delete(id),
      },
    },
    async request(input: any): Promise<any> {
      // Like axios, each request works on a merged copy that keeps custom properties.
      let config = { method: 'get', ...input, headers: options.headersClass ? new FakeAxiosHeaders(input.headers) : { ...input.headers } };
      for (const interceptor of requestInterceptors.values()) config = await interceptor(config);
      const headers: Record<string, string> = config.headers instanceof FakeAxiosHeaders ? config.headers.toJSON() : config.headers;
      const res = await globalThis.fetch(new URL(config.url, baseURL), { method: config.method.toUpperCase(), headers });
      const data = await res.json().catch(() => null);
      sent.push({ url: config.url, authorization: headers.Authorization ?? headers.authorization });
      const response = { status: res.status, data, config };
      let result: Promise<any> = res.status < 400
        ? Promise.resolve(response)
        : Promise.reject(Object.assign(new Error(`Request failed with status code ${res.status}`), { config, response }));
      for (const [onFulfilled, onRejected] of responseInterceptors.values()) result = result.then(onFulfilled, onRejected);
      return result;
    },
  };
  return axios satisfies AxiosLike;
}

/** Like axios's AxiosHeaders: a class with `set`, not a plain object. */
class FakeAxiosHeaders {
  readonly #map = new Map<string, string>();
  constructor(init: Record<string, string> = {}) {
    for (const [k, v] of Object.entries(init)) this.#map.set(k, v);
  }
  set(name: string, value: string) {
    this.#map.set(name, value);
    return this;
  }
  get(name: string) {
    return this.#map.get(name);
  }
  toJSON(): Record<string, string> {
    return Object.fromEntries(this.#map);
  }
}

async function expectClientError(promise: Promise<unknown>, code: string, status: number): Promise<TesseraClientError> {
  const error = await promise.then(
    () => expect.fail(`expected a TesseraClientError ${code}`),
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(TesseraClientError);
  expect(error).toMatchObject({ name: 'TesseraClientError', code, status });
  return error as TesseraClientError;
}

describe.each(BACKENDS)('TesseraClient in Node, body transport, on %s', (backend) => {
  let t: TestApp;
  let baseUrl: string;
  let ttl: number;
  const clients: TesseraClient[] = [];

  beforeAll(async () => {
    t = await startTestApp(backend, {}, { registerPerIp: 10_000 });
    await t.app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = t.app.server.address() as AddressInfo;
    baseUrl = `http://127.0.0.1:${port}`;
    ttl = t.config.accessTokenTtl;
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    await t.close();
  });

  /** A client with a recording fetch; `tokens` collects every onRefreshToken call; `states` every onChange. */
  function newClient(options: { refreshToken?: string; fail?: (call: Call) => 'before' | 'after' | false } = {}) {
    const net = recordingFetch({ fail: options.fail });
    const tokens: (string | null)[] = [];
    const client = new TesseraClient({
      baseUrl: `${baseUrl}/`,
      fetch: net.fetch,
      refreshToken: options.refreshToken,
      onRefreshToken: (token) => tokens.push(token),
    });
    const states: AuthState[] = [];
    client.onChange((s) => states.push(s));
    clients.push(client);
    return { client, net, tokens, states };
  }

  const sessionIdOf = (refreshToken: string) => t.app.tessera.refreshTokens.parse(refreshToken)!.sessionId;
  const sessionRow = (id: string) => t.db.store.db.selectFrom('sessions').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
  // Past the lifetime and the verifier's clock tolerance (≤ 60 s, SPEC §2).
  const expireAccessTokens = () => t.clock.advance(ttl + 61);

  it('defaults to the body transport outside a browser and starts signed out without a saved token', async () => {
    const { client, net } = newClient();
    expect(client.state).toEqual({ status: 'unknown', user: null });
    expect(await client.restore()).toBeNull();
    expect(client.state.status).toBe('signed_out');
    expect(net.calls).toHaveLength(0);
    expect(await client.getAccessToken()).toBeNull();
  });

  it('register, me, sessions, events: the account through the client; onRefreshToken gets the token', async () => {
    const { client, net, tokens, states } = newClient();
    const email = newEmail();
    const user = await client.register({ email, password: PASSWORD, name: 'Ada' });
    expect(user).toEqual({ id: expect.any(String), email, name: 'Ada', createdAt: expect.any(String), roles: [], orgId: null, emailVerified: false });
    expect(client.state).toEqual({ status: 'signed_in', user });
    expect(states.map((s) => s.status)).toEqual(['signed_in']);
    expect(tokens).toEqual([expect.stringMatching(/^tsr_/)]);
    // The register request asked for the body transport and carried no cookie machinery.
    const registerCall = net.calls.find((c) => c.path === '/auth/register')!;
    expect(registerCall.method).toBe('POST');

    expect(await client.me()).toEqual(user);
    const sessions = await client.sessions();
    expect(sessions).toEqual([
      expect.objectContaining({ id: sessionIdOf(tokens[0]!), current: true, device: expect.any(String), ip: '127.0.0.1' }),
    ]);
    const events = await client.events();
    expect(events.map((e) => e.type)).toContain('registered');
    expect(events[0]).toEqual({ type: expect.any(String), createdAt: expect.any(String), ip: '127.0.0.1', userAgent: expect.anything(), sessionId: expect.any(String) });
    // No refresh was needed for any of it: the fresh access token was used.
    expect(net.count('/auth/refresh')).toBe(0);
    for (const call of net.calls.filter((c) => c.path !== '/auth/register')) {
      expect(call.authorization).toMatch(/^Bearer eyJ/);
    }
  });

  it('errors carry the server code and status: invalid_credentials, email_taken, weak_password, not_found', async () => {
    const { client } = newClient();
    const email = newEmail();
    await client.register({ email, password: PASSWORD });

    const other = newClient().client;
    await expectClientError(other.login({ email, password: 'wrong password!' }), 'invalid_credentials', 401);
    await expectClientError(other.login({ email: newEmail(), password: PASSWORD }), 'invalid_credentials', 401);
    await expectClientError(other.register({ email, password: PASSWORD }), 'email_taken', 409);
    await expectClientError(other.register({ email: newEmail(), password: 'short' }), 'weak_password', 400);
    // A failed sign-in leaves the client as it was: not signed in.
    expect(other.state.status).not.toBe('signed_in');

    await expectClientError(client.revokeSession('00000000-0000-4000-8000-000000000000'), 'not_found', 404);
    await expectClientError(client.revokeSession('not-a-uuid'), 'not_found', 404);
    expect(client.state.status).toBe('signed_in');
  });

  it('network_error when the server cannot be reached', async () => {
    const closed = await alwaysUnauthorized();
    await closed.close(); // nothing listens on that port any more
    const client = new TesseraClient({ baseUrl: closed.url, crossTab: false });
    const error = await expectClientError(client.login({ email: newEmail(), password: PASSWORD }), 'network_error', 0);
    expect(error.message).toBeTruthy();
  });

  it('login, sessions, revokeSession: the revoked client is signed out at its next request', async () => {
    const a = newClient();
    const email = newEmail();
    const user = await a.client.register({ email, password: PASSWORD });
    const b = newClient();
    expect(await b.client.login({ email, password: PASSWORD })).toEqual(user);

    const sessions = await a.client.sessions();
    expect(sessions).toHaveLength(2);
    const bSession = sessions.find((s) => !s.current)!;
    expect(bSession.id).toBe(sessionIdOf(b.tokens[0]!));

    await a.client.revokeSession(bSession.id);
    expect((await a.client.sessions()).map((s) => s.id)).toEqual([sessionIdOf(a.tokens[0]!)]);
    expect((await sessionRow(bSession.id)).revoked_at).not.toBeNull();

    // B's access token is still unexpired, but Tessera checks the session: 401, one refresh, signed out.
    await expectClientError(b.client.me(), 'unauthorized', 401);
    expect(b.net.count('/auth/refresh')).toBe(1);
    expect(b.client.state).toEqual({ status: 'signed_out', user: null, reason: 'invalid_refresh_token' });
    expect(b.tokens.at(-1)).toBeNull();
    expect(a.client.state.status).toBe('signed_in');
  });

  it('changePassword: a wrong current password is 403 and no refresh; the right one signs out the other sessions', async () => {
    const a = newClient();
    const email = newEmail();
    await a.client.register({ email, password: PASSWORD });
    const b = newClient();
    await b.client.login({ email, password: PASSWORD });

    await expectClientError(a.client.changePassword('not the password', NEW_PASSWORD), 'invalid_credentials', 403);
    expect(a.net.count('/auth/refresh')).toBe(0);
    expect(a.client.state.status).toBe('signed_in');
    await expectClientError(a.client.changePassword(PASSWORD, 'short'), 'weak_password', 400);

    await a.client.changePassword(PASSWORD, NEW_PASSWORD);
    expect(a.client.state.status).toBe('signed_in');
    expect(await b.client.refresh()).toBe(false);
    expect(b.client.state).toMatchObject({ status: 'signed_out', reason: 'invalid_refresh_token' });
    expect((await a.client.events()).map((e) => e.type)).toContain('password_changed');

    const c = newClient().client;
    await expectClientError(c.login({ email, password: PASSWORD }), 'invalid_credentials', 401);
    await c.login({ email, password: NEW_PASSWORD });
    expect(c.state.status).toBe('signed_in');
  });

  it('logout: local signs this client out and tells onRefreshToken; the old token no longer restores', async () => {
    const { client, tokens, states } = newClient();
    await client.register({ email: newEmail(), password: PASSWORD });
    const saved = tokens.at(-1)!;

    await client.logout();
    expect(client.state).toEqual({ status: 'signed_out', user: null, reason: 'logout' });
    expect(states.at(-1)).toEqual(client.state);
    expect(tokens.at(-1)).toBeNull();
    expect((await sessionRow(sessionIdOf(saved))).revoked_at).not.toBeNull();
    // Logging out twice is harmless.
    await client.logout();

    const later = newClient({ refreshToken: saved });
    expect(await later.client.restore()).toBeNull();
    expect(later.client.state.status).toBe('signed_out');
    expect(await later.client.getAccessToken()).toBeNull();
  });

  it('logout others and global', async () => {
    const email = newEmail();
    const a = newClient();
    await a.client.register({ email, password: PASSWORD });
    const b = newClient();
    await b.client.login({ email, password: PASSWORD });
    const c = newClient();
    await c.client.login({ email, password: PASSWORD });

    await a.client.logout({ scope: 'others' });
    expect(a.client.state.status).toBe('signed_in');
    expect(await a.client.sessions()).toHaveLength(1);
    expect(await b.client.refresh()).toBe(false);
    expect(await c.client.refresh()).toBe(false);

    const d = newClient();
    await d.client.login({ email, password: PASSWORD });
    await a.client.logout({ scope: 'global' });
    expect(a.client.state).toMatchObject({ status: 'signed_out', reason: 'logout' });
    expect(await d.client.refresh()).toBe(false);
  });

  it('restore: a client started from a saved refresh token is signed in with one refresh', async () => {
    const first = newClient();
    const user = await first.client.register({ email: newEmail(), password: PASSWORD });
    const second = newClient({ refreshToken: first.tokens.at(-1)! });
    expect(await second.client.restore()).toEqual(user);
    expect(second.client.state).toEqual({ status: 'signed_in', user });
    expect(second.net.count('/auth/refresh')).toBe(1);
    expect(second.tokens).toEqual([expect.stringMatching(/^tsr_/)]);
    expect(second.tokens[0]).not.toBe(first.tokens.at(-1));
  });

  it('onRefreshToken receives every new refresh token, and the latest is the one that works', async () => {
    const { client, tokens } = newClient();
    await client.register({ email: newEmail(), password: PASSWORD });
    expect(await client.refresh()).toBe(true);
    expect(await client.refresh()).toBe(true);
    expect(tokens).toHaveLength(3);
    expect(new Set(tokens).size).toBe(3);
    const generations = tokens.map((tk) => t.app.tessera.refreshTokens.parse(tk)!.generation);
    expect(generations).toEqual([generations[0], generations[0]! + 1, generations[0]! + 2]);

    const resumed = newClient({ refreshToken: tokens.at(-1)! });
    expect(await resumed.client.restore()).not.toBeNull();
  });

  it('fetch adds the Bearer; on a 401 it refreshes once and retries once', async () => {
    const { client, net } = newClient();
    await client.register({ email: newEmail(), password: PASSWORD });
    net.reset();

    const ok = await client.fetch('/auth/me');
    expect(ok.status).toBe(200);
    expect(net.calls).toEqual([expect.objectContaining({ path: '/auth/me', authorization: expect.stringMatching(/^Bearer eyJ/) })]);
    const before = net.calls[0]!.authorization;

    expireAccessTokens();
    net.reset();
    const res = await client.fetch(`${baseUrl}/auth/me`, { headers: { accept: 'application/json' } });
    expect(res.status).toBe(200);
    expect((await res.json()).user.id).toBe(client.state.user!.id);
    expect(net.calls.map((c) => c.path)).toEqual(['/auth/me', '/auth/refresh', '/auth/me']);
    expect(net.calls[0]!.authorization).toBe(before);
    expect(net.calls[2]!.authorization).toMatch(/^Bearer eyJ/);
    expect(net.calls[2]!.authorization).not.toBe(before);
    expect(client.state.status).toBe('signed_in');
  });

  it('fetch replays a request body on the retry', async () => {
    const { client, net } = newClient();
    await client.register({ email: newEmail(), password: PASSWORD });
    expireAccessTokens();
    net.reset();
    // A POST with a JSON body: after the refresh the same body goes again (a wrong password: 403).
    const res = await client.fetch('/auth/password', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ currentPassword: 'definitely wrong', newPassword: NEW_PASSWORD }),
    });
    expect(res.status).toBe(403);
    expect(net.calls.map((c) => c.path)).toEqual(['/auth/password', '/auth/refresh', '/auth/password']);
  });

  it('10 concurrent fetches after the access token expired cause exactly one refresh, and all succeed', async () => {
    const { client, net, tokens } = newClient();
    await client.register({ email: newEmail(), password: PASSWORD });
    expireAccessTokens();
    net.reset();

    const responses = await Promise.all(Array.from({ length: 10 }, () => client.fetch('/auth/me')));
    expect(net.count('/auth/refresh')).toBe(1);
    // Every one of the ten got its 401 with the old token, and every one is retried with the new one.
    expect(responses.map((r) => r.status)).toEqual(Array(10).fill(200));
    expect(net.count('/auth/me')).toBe(20);
    expect(tokens).toHaveLength(2);
    expect(client.state.status).toBe('signed_in');
  });

  it('10 concurrent calls with an unusable token share one refresh (getAccessToken)', async () => {
    // A client restored from a token has no access token yet: every call waits for the same refresh.
    const first = newClient();
    await first.client.register({ email: newEmail(), password: PASSWORD });
    const { client, net } = newClient({ refreshToken: first.tokens.at(-1)! });
    const responses = await Promise.all(Array.from({ length: 10 }, () => client.fetch('/auth/me')));
    expect(responses.map((r) => r.status)).toEqual(Array(10).fill(200));
    expect(net.count('/auth/refresh')).toBe(1);
    expect(net.count('/auth/me')).toBe(10);
  });

  it('a 401 from another API does not loop: at most one refresh per call, at most three in a row', async () => {
    const api = await alwaysUnauthorized();
    try {
      const { client, net } = newClient();
      await client.register({ email: newEmail(), password: PASSWORD });
      net.reset();

      const perCall: { refreshes: number; hits: number; status: number }[] = [];
      for (let i = 0; i < 6; i++) {
        const refreshesBefore = net.count('/auth/refresh');
        const hitsBefore = api.hits();
        const res = await client.fetch(`${api.url}/orders`);
        perCall.push({ refreshes: net.count('/auth/refresh') - refreshesBefore, hits: api.hits() - hitsBefore, status: res.status });
      }
      for (const call of perCall) {
        expect(call.status).toBe(401);
        expect(call.refreshes).toBeLessThanOrEqual(1);
        expect(call.hits).toBeLessThanOrEqual(2);
        expect(call.hits).toBe(call.refreshes + 1);
      }
      expect(net.count('/auth/refresh')).toBeLessThanOrEqual(3);
      expect(net.count('/auth/refresh')).toBeGreaterThanOrEqual(1);
      // The refreshes themselves worked: still signed in.
      expect(client.state.status).toBe('signed_in');
      expect(api.authorizations.every((a) => a?.startsWith('Bearer eyJ'))).toBe(true);

      // An authenticated success ends the streak: the next foreign 401 may refresh once again.
      expect((await client.fetch('/auth/me')).status).toBe(200);
      const before = net.count('/auth/refresh');
      expect((await client.fetch(`${api.url}/orders`)).status).toBe(401);
      expect(net.count('/auth/refresh') - before).toBeLessThanOrEqual(1);
    } finally {
      await api.close();
    }
  });

  it('10 concurrent calls to an API that always answers 401 cause at most a few refreshes, no loop', async () => {
    const api = await alwaysUnauthorized();
    try {
      const { client, net } = newClient();
      await client.register({ email: newEmail(), password: PASSWORD });
      net.reset();
      const responses = await Promise.all(Array.from({ length: 10 }, () => client.fetch(`${api.url}/orders`)));
      expect(responses.map((r) => r.status)).toEqual(Array(10).fill(401));
      expect(net.count('/auth/refresh')).toBeLessThanOrEqual(3);
      expect(api.hits()).toBeLessThanOrEqual(20);
      expect(client.state.status).toBe('signed_in');
    } finally {
      await api.close();
    }
  });

  it('a signed-out client sends no Bearer and does not retry', async () => {
    const { client, net } = newClient();
    await client.restore();
    expect(client.state.status).toBe('signed_out');
    const res = await client.fetch('/auth/me');
    expect(res.status).toBe(401);
    expect(net.calls.filter((c) => c.path === '/auth/me')).toEqual([expect.objectContaining({ authorization: null })]);
    expect(net.count('/auth/refresh')).toBe(0);
  });

  it('a refresh whose response is lost is retried and gets the identical token (grace window); nobody is signed out', async () => {
    let loseNext = false;
    const { client, net, tokens } = newClient({ fail: (call) => (call.path === '/auth/refresh' && loseNext ? ((loseNext = false), 'after') : false) });
    await client.register({ email: newEmail(), password: PASSWORD });
    const sessionId = sessionIdOf(tokens[0]!);
    const generation = (await sessionRow(sessionId)).generation;

    loseNext = true;
    net.reset();
    expect(await client.refresh()).toBe(true);
    expect(net.count('/auth/refresh')).toBe(2);
    // The server rotated once (the lost response) and replayed the same token to the retry.
    const row = await sessionRow(sessionId);
    expect(row.generation).toBe(generation + 1);
    expect(row.revoked_at).toBeNull();
    expect(tokens).toHaveLength(2);
    expect(t.app.tessera.refreshTokens.parse(tokens[1]!)!.generation).toBe(generation + 1);
    expect(client.state.status).toBe('signed_in');
    expect((await client.fetch('/auth/me')).status).toBe(200);
  });

  it('a refresh that cannot reach the server is retried a few times, then gives up without signing out', async () => {
    let offline = false;
    const { client, net, tokens } = newClient({ fail: (call) => (offline && call.path === '/auth/refresh' ? 'before' : false) });
    await client.register({ email: newEmail(), password: PASSWORD });
    offline = true;
    net.reset();
    expect(await client.refresh()).toBe(false);
    expect(net.count('/auth/refresh')).toBe(3);
    expect(client.state.status).toBe('signed_in');
    expect(tokens).not.toContain(null);

    offline = false;
    expect(await client.refresh()).toBe(true);
    expect(client.state.status).toBe('signed_in');
  });

  it('tells a reused token from an expired session: refresh_token_reused and session_expired', async () => {
    const victim = newClient();
    await victim.client.register({ email: newEmail(), password: PASSWORD });
    const stolen = victim.tokens.at(-1)!;
    await victim.client.refresh();
    await victim.client.refresh();
    // The thief replays an old token: the session ends for both.
    const thief = newClient({ refreshToken: stolen });
    expect(await thief.client.restore()).toBeNull();
    expect(thief.client.state).toMatchObject({ status: 'signed_out', reason: 'refresh_token_reused' });
    expect(await victim.client.refresh()).toBe(false);
    expect(victim.client.state).toMatchObject({ status: 'signed_out', reason: 'refresh_token_reused' });

    const sleeper = newClient();
    await sleeper.client.register({ email: newEmail(), password: PASSWORD });
    t.clock.advance(t.config.refreshTokenTtl + 1);
    expect(await sleeper.client.refresh()).toBe(false);
    expect(sleeper.client.state).toMatchObject({ status: 'signed_out', reason: 'session_expired' });
  });

  describe('withAxios', () => {
    it('adds the Bearer to every request; a 401 refreshes once and retries once', async () => {
      const { client, net } = newClient();
      const user = await client.register({ email: newEmail(), password: PASSWORD });
      const api = fakeAxios(baseUrl);
      withAxios(client, api);

      const first = await api.request({ url: '/auth/me' });
      expect(first).toMatchObject({ status: 200, data: { user: { id: user.id } } });
      expect(api.sent[0]!.authorization).toMatch(/^Bearer eyJ/);

      expireAccessTokens();
      net.reset();
      const second = await api.request({ url: '/auth/me' });
      expect(second.status).toBe(200);
      expect(net.count('/auth/refresh')).toBe(1);
      expect(api.sent.slice(1).map((s) => s.authorization)).toEqual([api.sent[0]!.authorization, expect.stringMatching(/^Bearer eyJ/)]);
      expect(api.sent[2]!.authorization).not.toBe(api.sent[0]!.authorization);
    });

    it('works with a headers object that has set() (AxiosHeaders)', async () => {
      const { client } = newClient();
      await client.register({ email: newEmail(), password: PASSWORD });
      const api = fakeAxios(baseUrl, { headersClass: true });
      withAxios(client, api);
      expect((await api.request({ url: '/auth/me' })).status).toBe(200);
      expect(api.sent[0]!.authorization).toMatch(/^Bearer eyJ/);
    });

    it('a 401 that survives the retry is rejected: one refresh, no loop', async () => {
      const other = await alwaysUnauthorized();
      try {
        const { client, net } = newClient();
        await client.register({ email: newEmail(), password: PASSWORD });
        net.reset();
        const api = fakeAxios(other.url);
        withAxios(client, api);
        const error = await api.request({ url: '/orders' }).catch((e: any) => e);
        expect(error.response.status).toBe(401);
        expect(net.count('/auth/refresh')).toBe(1);
        expect(other.hits()).toBe(2);
      } finally {
        await other.close();
      }
    });

    it('passes other errors through without refreshing; the returned function detaches it', async () => {
      const { client, net } = newClient();
      await client.register({ email: newEmail(), password: PASSWORD });
      const api = fakeAxios(baseUrl);
      const detach = withAxios(client, api);
      net.reset();
      const notFound = await api.request({ url: '/no/such/route' }).catch((e: any) => e);
      expect(notFound.response.status).toBe(404);
      expect(net.count('/auth/refresh')).toBe(0);

      detach();
      const res = await api.request({ url: '/auth/me' }).catch((e: any) => e);
      expect(res.response.status).toBe(401);
      expect(api.sent.at(-1)!.authorization).toBeUndefined();
      expect(net.count('/auth/refresh')).toBe(0);
    });
  });
});

describe.each(BACKENDS)('TesseraClient with short-lived access tokens (ACCESS_TOKEN_TTL=3s) on %s', (backend) => {
  let t: TestApp;
  let baseUrl: string;
  beforeAll(async () => {
    t = await startTestApp(backend, { ACCESS_TOKEN_TTL: '3s' });
    await t.app.listen({ port: 0, host: '127.0.0.1' });
    baseUrl = `http://127.0.0.1:${(t.app.server.address() as AddressInfo).port}`;
  });
  afterAll(() => t.close());

  it('uses a just-issued access token instead of refreshing before every request', async () => {
    // SPEC §1: lifetimes from 1 s up are valid. A token with most of its life left should be used.
    const net = recordingFetch();
    const client = new TesseraClient({ baseUrl, fetch: net.fetch });
    await client.register({ email: newEmail(), password: PASSWORD });
    net.reset();
    for (let i = 0; i < 3; i++) expect((await client.fetch('/auth/me')).status).toBe(200);
    expect(net.count('/auth/refresh')).toBe(0);
    client.close();
  });
});
