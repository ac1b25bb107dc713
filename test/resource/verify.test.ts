import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { rotateSigningKey } from '../../src/auth/signing-keys.js';
import { ERRORS } from '../../src/core/errors.js';
import { createVerifier, TesseraAuthError, type Verifier, type VerifierOptions } from '../../src/resource/verify.js';
import { TEST_SECRET } from '../helpers/app.js';
import { decode, eventually, freePort, newKey, ROOT, sign, startLiveIssuer, startStub, type LiveIssuer, type Stub, type TestKey } from './kit.js';

/**
 * createVerifier against a stub issuer whose JWKS and revocation feed each test sets: what
 * the JWKS cache does, and every state of the feed. The framework suites run against a live Tessera.
 */
const run = promisify(execFile);
let stub: Stub;
let key: TestKey;
const verifiers: Verifier[] = [];

beforeAll(async () => {
  stub = await startStub();
  key = await newKey('EdDSA');
});
afterAll(() => stub.close());
afterEach(() => {
  verifiers.splice(0).forEach((v) => v.close());
  vi.useRealTimers();
});

/** A verifier of the stub issuer; each test gets its own paths so none shares a cache or a feed. */
function verifier(paths: { jwks?: string; feed?: string }, options: Partial<VerifierOptions> = {}) {
  const v = createVerifier({
    issuer: stub.url,
    jwksUrl: `${stub.url}${paths.jwks ?? '/jwks'}`,
    ...(paths.feed ? { revocations: true, revocationsUrl: `${stub.url}${paths.feed}`, pollIntervalMs: 20 } : {}),
    ...options,
  });
  verifiers.push(v);
  return v;
}
const token = (claims: Record<string, unknown> = {}, k = key) => sign(k, { iss: stub.url, aud: stub.url, ...claims });
const refusal = async (promise: Promise<unknown>) => {
  const error = await promise.then(() => undefined, (e: unknown) => e);
  expect(error).toBeInstanceOf(TesseraAuthError);
  return error as TesseraAuthError;
};
const path = () => `/${randomUUID()}`;

describe('tokens', () => {
  beforeAll(() => stub.route('/jwks', () => ({ status: 200, body: { keys: [key.publicJwk] } })));

  it.each(['EdDSA', 'ES256', 'RS256'] as const)('accepts %s, the algorithms Tessera signs with', async (alg) => {
    const k = await newKey(alg);
    const jwks = path();
    stub.route(jwks, () => ({ status: 200, body: { keys: [k.publicJwk] } }));
    const sid = randomUUID();
    const auth = await verifier({ jwks }).verify(await token({ sub: 'u1', sid, roles: ['admin'], org_id: 'acme', amr: ['pwd'], auth_time: 1_700_000_000 }, k));
    expect(auth).toMatchObject({ userId: 'u1', sessionId: sid, roles: ['admin'], orgId: 'acme', amr: ['pwd'], authTime: 1_700_000_000 });
    expect(auth.claims.iss).toBe(stub.url);
  });

  it('gives empty roles and amr when the token has none, and omits orgId and authTime', async () => {
    const auth = await verifier({}).verify(await token());
    expect(auth.roles).toEqual([]);
    expect(auth.amr).toEqual([]);
    expect('orgId' in auth || 'authTime' in auth).toBe(false);
  });

  it('defaults the audience to the issuer, ignores a trailing slash on it, and takes another one', async () => {
    expect((await verifier({}, { issuer: `${stub.url}/` }).verify(await token())).userId).toBeTypeOf('string');
    await refusal(verifier({}).verify(await token({ aud: 'https://api.example.com' })));
    expect(await verifier({}, { audience: 'https://api.example.com' }).verify(await token({ aud: 'https://api.example.com' }))).toBeTruthy();
  });

  it('refuses with a public detail and keeps the real cause private', async () => {
    const error = await refusal(verifier({}).verify(await token({ iss: 'https://evil.example.com' })));
    expect(error).toMatchObject({ code: 'unauthorized', status: 401, detail: 'The access token is not valid' });
    expect(String((error.cause as Error).message)).toMatch(/iss/);
    expect(error.toProblem()).toEqual({ type: 'urn:tessera:error:unauthorized', title: ERRORS.unauthorized.title, status: 401, code: 'unauthorized', detail: 'The access token is not valid' });
    expect(error.headers()).toEqual({ 'www-authenticate': 'Bearer error="invalid_token", error_description="The access token is not valid"' });
  });

  it('answers a missing token with a bare challenge', async () => {
    for (const missing of [undefined, '']) {
      const error = await refusal(verifier({}).verify(missing));
      expect(error.detail).toBe('An Authorization: Bearer access token is required');
      expect(error.headers()).toEqual({ 'www-authenticate': 'Bearer' });
    }
  });

  it('uses the titles of Tessera\'s error table', () => {
    for (const code of ['unauthorized', 'insufficient_role', 'service_unavailable'] as const) {
      expect(new TesseraAuthError(code, 'x').toProblem()).toMatchObject({ title: ERRORS[code].title, status: ERRORS[code].status });
    }
  });
});

describe('the JWKS', () => {
  it('is fetched once, and again for an unknown kid at most once per 30 s', async () => {
    const jwks = path();
    const rotated = await newKey();
    let keys = [key.publicJwk];
    stub.route(jwks, () => ({ status: 200, body: { keys } }));
    const v = verifier({ jwks });
    const genuine = await token();
    for (let i = 0; i < 3; i++) await v.verify(genuine);
    expect(stub.hits.get(jwks)).toBe(1);

    // Within 30 s of that fetch, a flood of made-up kids fetches nothing...
    const madeUp = () => token({}, { ...key, kid: randomUUID() });
    for (let i = 0; i < 10; i++) expect((await refusal(v.verify(await madeUp()))).status).toBe(401);
    expect(stub.hits.get(jwks)).toBe(1);
    // ...nor does a key published just now.
    keys = [key.publicJwk, rotated.publicJwk];
    await refusal(v.verify(await token({}, rotated)));
    expect(stub.hits.get(jwks)).toBe(1);

    // 31 s later (only Date moves: jose times its cache with Date.now()), an unknown kid
    // refetches once: the new key verifies, and more unknown kids fetch nothing for 30 s.
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() + 31_000 });
    expect((await v.verify(await token({}, rotated))).userId).toBeTypeOf('string');
    expect(stub.hits.get(jwks)).toBe(2);
    for (let i = 0; i < 10; i++) await refusal(v.verify(await madeUp()));
    await v.verify(genuine);
    expect(stub.hits.get(jwks)).toBe(2);
    vi.setSystemTime(Date.now() + 31_000);
    for (let i = 0; i < 10; i++) await refusal(v.verify(await madeUp()));
    expect(stub.hits.get(jwks)).toBe(3);
  });

  it('that cannot be fetched is a 503 with Retry-After, not a 401, and one warning per outage', async () => {
    const jwks = path();
    let up = false;
    stub.route(jwks, () => (up ? { status: 200, body: { keys: [key.publicJwk] } } : { status: 500, body: { error: 'down' } }));
    const warn = vi.fn<(message: string) => void>();
    const v = verifier({ jwks }, { logger: { warn } });
    const error = await refusal(v.verify(await token()));
    expect(error).toMatchObject({ code: 'service_unavailable', status: 503, detail: 'The access token cannot be checked right now' });
    expect(error.headers()).toEqual({ 'retry-after': '5' });
    expect(error.toProblem().title).toBe(ERRORS.service_unavailable.title);
    expect((error.cause as Error).message).toMatch(/200 OK/);
    await refusal(v.verify(await token()));
    expect(warn).toHaveBeenCalledTimes(1);
    expect(warn.mock.calls[0]![0]).toMatch(/the JWKS .* could not be fetched .*; tokens are answered 503 until it can/);
    up = true;
    await v.verify(await token());

    const nowhere = `http://127.0.0.1:${await freePort()}`;
    const unreachable = verifier({}, { issuer: nowhere, jwksUrl: undefined, logger: { warn } });
    expect((await refusal(unreachable.verify(await token({ iss: nowhere, aud: nowhere })))).status).toBe(503);
    expect(warn.mock.calls[1]![0]).toMatch(/ECONNREFUSED/);
  });

  it('that holds no key for the kid is a 401', async () => {
    const jwks = path();
    stub.route(jwks, () => ({ status: 200, body: { keys: [] } }));
    expect((await refusal(verifier({ jwks }).verify(await token()))).status).toBe(401);
  });
});

describe('the revocation feed', () => {
  beforeAll(() => stub.route('/jwks', () => ({ status: 200, body: { keys: [key.publicJwk] } })));
  const iso = (ms: number) => new Date(ms).toISOString();
  const logger = () => ({ warn: vi.fn<(message: string) => void>() });

  it('is read before the first answer, so a fresh server never accepts a session ended before it started', async () => {
    const feed = path();
    const sid = randomUUID();
    stub.route(feed, () => ({ status: 200, delayMs: 200, body: { entries: [{ sid, revokedAt: iso(Date.now()) }], cursor: '1' } }));
    const v = verifier({ feed });
    const error = await refusal(v.verify(await token({ sid, iat: Math.floor(Date.now() / 1000) - 5 })));
    expect(error).toMatchObject({ status: 401, detail: 'The session has ended' });
    expect(v.status()).toEqual({ revocations: 'up', revokedSessions: 1 });
  });

  it('follows the cursor, refuses tokens issued up to revokedAt and accepts later ones', async () => {
    const feed = path();
    const sid = randomUUID();
    const now = Date.now();
    const pages: { entries: unknown[]; cursor: string }[] = [{ entries: [], cursor: 'c1' }];
    stub.route(feed, (url) => {
      const after = url.searchParams.get('after');
      return { status: 200, body: after === 'c1' ? { entries: [{ sid, revokedAt: iso(now) }], cursor: 'c2' } : after === 'c2' ? { entries: [], cursor: 'c2' } : pages[0] };
    });
    const v = verifier({ feed });
    const before = await token({ sid, iat: Math.floor(now / 1000) - 1 });
    const atTheSameSecond = await token({ sid, iat: Math.floor(now / 1000) });
    const after = await token({ sid, iat: Math.floor(now / 1000) + 2 });
    await eventually(() => v.status().revokedSessions === 1);
    expect((await refusal(v.verify(before))).detail).toBe('The session has ended');
    await refusal(v.verify(atTheSameSecond));
    expect((await v.verify(after)).sessionId).toBe(sid);
    const afters = () => stub.requests.filter((u) => u.pathname === feed).map((u) => u.searchParams.get('after'));
    await eventually(() => afters().length >= 4);
    expect(afters().slice(0, 4)).toEqual([null, 'c1', 'c2', 'c2']);
  });

  it('starts again without a cursor when the feed refuses it (400)', async () => {
    const feed = path();
    const sid = randomUUID();
    let fromTheStart = 0;
    stub.route(feed, (url) => {
      if (url.searchParams.get('after') === 'stale') return { status: 400, body: { code: 'invalid_request' } };
      if (url.searchParams.has('after')) return { status: 200, body: { entries: [], cursor: 'fresh' } };
      // The first read hands out a cursor the feed will later refuse; the second is the new start.
      return fromTheStart++ === 0
        ? { status: 200, body: { entries: [], cursor: 'stale' } }
        : { status: 200, body: { entries: [{ sid, revokedAt: iso(Date.now()) }], cursor: 'fresh' } };
    });
    const log = logger();
    const v = verifier({ feed }, { logger: log });
    await eventually(() => v.status().revokedSessions === 1);
    await eventually(() => stub.hits.get(feed)! >= 4);
    expect(log.warn).not.toHaveBeenCalled();
    const afters = stub.requests.filter((u) => u.pathname === feed).map((u) => u.searchParams.get('after'));
    expect(afters.slice(0, 4)).toEqual([null, 'stale', null, 'fresh']);
  });

  it('when down, keeps serving from what it knows and warns once per outage', async () => {
    const feed = path();
    const ended = randomUUID();
    let state: 'up' | 'down' | 'garbage' = 'up';
    stub.route(feed, () =>
      state === 'up' ? { status: 200, body: { entries: [{ sid: ended, revokedAt: iso(Date.now()) }], cursor: 'c' } }
      : state === 'garbage' ? { status: 200, body: { entries: [{ sid: 42 }], cursor: 'c' } }
      : { status: 503, body: {} });
    const log = logger();
    const v = verifier({ feed }, { logger: log });
    const endedToken = await token({ sid: ended, iat: Math.floor(Date.now() / 1000) - 5 });
    await refusal(v.verify(endedToken));

    state = 'down';
    await eventually(() => v.status().revocations === 'down');
    const polled = stub.hits.get(feed)!;
    await eventually(() => stub.hits.get(feed)! >= polled + 3);
    expect(log.warn).toHaveBeenCalledTimes(1);
    expect(log.warn.mock.calls[0]![0]).toMatch(/revocation feed .* is unreachable \(it answered HTTP 503\); still accepting tokens/);
    expect((await v.verify(await token())).userId).toBeTypeOf('string');
    expect((await refusal(v.verify(endedToken))).detail).toBe('The session has ended');

    state = 'up';
    await eventually(() => v.status().revocations === 'up');
    state = 'garbage';
    await eventually(() => v.status().revocations === 'down');
    expect(log.warn).toHaveBeenCalledTimes(2);
    expect(log.warn.mock.calls[1]![0]).toMatch(/without sid or revokedAt/);
  });

  it("unreachable from the start: warns, and serves (or, 'fail-closed', refuses with 503)", async () => {
    const open = logger();
    const closed = logger();
    const nowhere = { revocations: true as const, revocationsUrl: `http://127.0.0.1:${await freePort()}/auth/revocations`, pollIntervalMs: 20 };
    const failOpen = verifier({}, { ...nowhere, logger: open });
    const failClosed = verifier({}, { ...nowhere, revocations: 'fail-closed', logger: closed });
    expect((await failOpen.verify(await token())).userId).toBeTypeOf('string');
    const error = await refusal(failClosed.verify(await token()));
    expect(error).toMatchObject({ code: 'service_unavailable', status: 503 });
    expect(open.warn).toHaveBeenCalledTimes(1);
    expect(open.warn.mock.calls[0]![0]).toMatch(/ECONNREFUSED/);
    expect(closed.warn.mock.calls[0]![0]).toMatch(/refusing every token until it answers/);
  });

  it("'fail-closed' refuses while the feed is down and serves again once it answers", async () => {
    const feed = path();
    let up = true;
    stub.route(feed, () => (up ? { status: 200, body: { entries: [], cursor: 'c' } } : { status: 500 }));
    const v = verifier({ feed }, { revocations: 'fail-closed', logger: logger() });
    const genuine = await token();
    await v.verify(genuine);
    up = false;
    await eventually(() => v.status().revocations === 'down');
    expect((await refusal(v.verify(genuine))).status).toBe(503);
    up = true;
    await eventually(() => v.status().revocations === 'up');
    await v.verify(genuine);
  });

  it('forgets entries older than the token lifetime, so memory stays bounded', async () => {
    const feed = path();
    const now = Date.now();
    const minutesAgo = (m: number) => ({ sid: randomUUID(), revokedAt: iso(now - m * 60_000) });
    // 15 min lifetime + 60 s leeway until a token says otherwise.
    const entries = [minutesAgo(20), minutesAgo(15.5), minutesAgo(5), minutesAgo(0)];
    stub.route(feed, () => ({ status: 200, body: { entries, cursor: 'c' } }));
    const v = verifier({ feed });
    await eventually(() => v.status().revokedSessions > 0);
    expect(v.status().revokedSessions).toBe(3);
    // Tokens of 2 minutes: an entry of 5 minutes ago can concern no live token any more.
    await v.verify(await token({ iat: Math.floor(now / 1000), exp: Math.floor(now / 1000) + 120 }));
    await eventually(() => v.status().revokedSessions === 1);
  });

  it('never keeps a process alive: its timer is unref()ed', async () => {
    const built = pathToFileURL(join(ROOT, 'dist', 'resource', 'verify.js')).href;
    const program = `const { createVerifier } = await import(${JSON.stringify(built)});
      createVerifier({ issuer: ${JSON.stringify(stub.url)}, revocations: true, pollIntervalMs: 10, logger: { warn() {} } });`;
    const started = Date.now();
    await run(process.execPath, ['--input-type=module', '-e', program], { timeout: 10_000 });
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('stops polling on close()', async () => {
    const feed = path();
    stub.route(feed, () => ({ status: 200, body: { entries: [], cursor: 'c' } }));
    const v = verifier({ feed });
    await v.verify(await token());
    v.close();
    const hits = stub.hits.get(feed)!;
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(stub.hits.get(feed)).toBe(hits);
    expect(v.status().revocations).toBe('closed');
  });
});

describe.each(['EdDSA', 'ES256', 'RS256'] as const)('against a live Tessera with SIGNING_ALG=%s', (alg) => {
  let issuer: LiveIssuer;
  beforeAll(async () => {
    issuer = await startLiveIssuer('pglite', { SIGNING_ALG: alg });
  });
  afterAll(() => issuer?.close());

  it('verifies its tokens with the key its JWKS publishes, and reads its claims', async () => {
    const jwks = (await (await fetch(`${issuer.url}/.well-known/jwks.json`)).json()) as { keys: Record<string, unknown>[] };
    expect(jwks.keys.length).toBeGreaterThan(0);
    for (const k of jwks.keys) expect(k).toMatchObject({ alg: expect.any(String), use: 'sig', kid: expect.any(String) });
    const user = await issuer.signUp();
    const header = decode(user.accessToken.split('.')[0]!);
    expect(header).toMatchObject({ alg, typ: 'at+jwt' });
    expect(jwks.keys.find((k) => k.kid === header.kid)).toMatchObject({ alg });

    const v = createVerifier({ issuer: issuer.url });
    verifiers.push(v);
    const auth = await v.verify(user.accessToken);
    expect(auth).toMatchObject({ userId: user.userId, sessionId: user.sessionId, roles: [], amr: ['pwd'], authTime: expect.any(Number) });
    expect(auth.claims).toMatchObject({ iss: issuer.url, aud: issuer.url });

    await issuer.setRoles(user.email, ['admin', 'billing']);
    const { accessToken } = await issuer.refresh(user.refreshToken);
    expect((await v.verify(accessToken)).roles).toEqual(['admin', 'billing']);
  });

  it('follows `tessera keys rotate` to the next algorithm: the new key by its kid, the old one still', async () => {
    const next = ({ EdDSA: 'ES256', ES256: 'RS256', RS256: 'EdDSA' } as const)[alg];
    const v = createVerifier({ issuer: issuer.url });
    verifiers.push(v);
    const before = await issuer.signUp();
    await v.verify(before.accessToken);
    const { store } = issuer.app.tessera;
    const deps = { store, secret: TEST_SECRET, accessTokenTtl: issuer.config.accessTokenTtl, clock: () => new Date() };
    const { kid } = await rotateSigningKey(deps, next);
    // The new key signs 60 s after it is published; only Date moves, for Tessera and the verifier alike.
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() + 61_000 });
    await issuer.app.tessera.keys.reload();
    const after = await issuer.signUp();
    expect(decode(after.accessToken.split('.')[0]!)).toMatchObject({ alg: next, kid });
    expect((await v.verify(after.accessToken)).userId).toBe(after.userId);
    expect((await v.verify(before.accessToken)).userId).toBe(before.userId);
  });
});
