import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/core/config.js';
import { buildApp } from '../../src/server/app.js';
import { listenForMetrics, type MetricsListener } from '../../src/server/metrics.js';
import { FEATURE_BACKENDS, openTestStore, type TestStore } from '../helpers/backends.js';
import { expectProblem, login, newEmail, refresh, register, startTestApp, TEST_SECRET, type TestApp } from '../helpers/app.js';

/**
 * SPEC §9 Metrics: off unless METRICS_PORT or METRICS_TOKEN; on the main port behind the
 * token; on a listener of its own with METRICS_PORT; Prometheus' text format; outcomes counted
 * by rule and code; route patterns, never raw paths; no user data anywhere in the output.
 */

const TOKEN = 'metrics-token-0123456789abcdefghijklmnop';
const WRONG_TOKEN = 'metrics-token-0123456789abcdefghijklmnoq';
const WRONG_PASSWORD = 'not the right password';

/** The value of one series, such as `tessera_refresh_total{outcome="rotate"}`; undefined if absent. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

async function scrape(t: TestApp): Promise<string> {
  const res = await t.app.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer ${TOKEN}` } });
  expect(res.statusCode, res.body).toBe(200);
  expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
  return res.body;
}

describe.each(FEATURE_BACKENDS)('metrics on the main port with METRICS_TOKEN, on %s', (backend) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(backend, { METRICS_TOKEN: TOKEN }, { loginFailuresPerAccountIp: 2, registerPerIp: 1 });
  });
  afterAll(() => t.close());

  it('refuses a scrape without the token, or with a wrong one, as 401 unauthorized', async () => {
    const none = await t.app.inject({ method: 'GET', url: '/metrics' });
    expectProblem(none, 401, 'unauthorized');
    expect(none.headers['www-authenticate']).toBe('Bearer');
    for (const authorization of [`Bearer ${WRONG_TOKEN}`, `Bearer ${TOKEN.slice(0, -1)}`, `Bearer ${TOKEN}x`, TOKEN, `Basic ${TOKEN}`]) {
      expectProblem(await t.app.inject({ method: 'GET', url: '/metrics', headers: { authorization } }), 401, 'unauthorized');
    }
  });

  it('counts logins, refreshes by rule, reuse, refusals by code and limit, and times routes by pattern', async () => {
    const { email, body } = await register(t.app);
    const r1 = body.refreshToken!;
    const second = await t.app.inject({ method: 'POST', url: '/auth/register', payload: { email: newEmail(), password: WRONG_PASSWORD, transport: 'body' } });
    expectProblem(second, 429, 'rate_limited');

    const signedIn = await login(t.app, email);
    expect(signedIn.statusCode).toBe(200);
    expectProblem(await login(t.app, email, { password: WRONG_PASSWORD }), 401, 'invalid_credentials');
    expectProblem(await login(t.app, email, { password: WRONG_PASSWORD }), 401, 'invalid_credentials');
    expectProblem(await login(t.app, email, { password: WRONG_PASSWORD }), 429, 'rate_limited');

    const rotated = await refresh(t.app, r1);
    expect(rotated.statusCode).toBe(200);
    const r2 = rotated.json().refreshToken as string;
    expect((await refresh(t.app, r1)).json().refreshToken).toBe(r2); // replay: within the grace window
    t.clock.advance(t.config.refreshReuseGrace + 1);
    const reissued = await refresh(t.app, r1); // reissue: the parent after the grace window
    expect(reissued.statusCode).toBe(200);
    const r3 = reissued.json().refreshToken as string;
    expectProblem(await refresh(t.app, r2), 401, 'refresh_token_reused'); // rule 4: an orphan ends the session
    expectProblem(await refresh(t.app, r3), 401, 'refresh_token_reused'); // rule 6: the session was ended for reuse
    expectProblem(await refresh(t.app, 'tsr_garbage'), 401, 'invalid_refresh_token');

    const sessionId = '5f0c3d4e-8a1b-4c2d-9e3f-a4b5c6d7e8f9';
    const access = signedIn.json().accessToken as string;
    await t.app.inject({ method: 'DELETE', url: `/auth/sessions/${sessionId}`, headers: { authorization: `Bearer ${access}` } });
    expect((await t.app.inject({ method: 'GET', url: `/nope/${encodeURIComponent(email)}` })).statusCode).toBe(404);

    const text = await scrape(t);
    expect(sample(text, 'tessera_refresh_total{outcome="rotate"}')).toBe(1);
    expect(sample(text, 'tessera_refresh_total{outcome="replay"}')).toBe(1);
    expect(sample(text, 'tessera_refresh_total{outcome="reissue"}')).toBe(1);
    expect(sample(text, 'tessera_refresh_total{outcome="reuse"}')).toBe(1);
    expect(sample(text, 'tessera_refresh_total{outcome="refresh_token_reused"}')).toBe(1);
    expect(sample(text, 'tessera_refresh_total{outcome="invalid_refresh_token"}')).toBe(1);
    expect(sample(text, 'tessera_refresh_total{outcome="session_expired"}')).toBe(0);
    expect(sample(text, 'tessera_reuse_detections_total')).toBe(1);
    expect(sample(text, 'tessera_logins_total{outcome="success"}')).toBe(1);
    expect(sample(text, 'tessera_logins_total{outcome="invalid_credentials"}')).toBe(2);
    expect(sample(text, 'tessera_logins_total{outcome="rate_limited"}')).toBe(1);
    expect(sample(text, 'tessera_logins_total{outcome="account_disabled"}')).toBe(0);
    expect(sample(text, 'tessera_rate_limited_total{limit="login_account_ip"}')).toBe(1);
    expect(sample(text, 'tessera_rate_limited_total{limit="register"}')).toBe(1);
    expect(sample(text, 'tessera_unavailable_total{cause="database"}')).toBe(0);
    expect(sample(text, 'tessera_password_hash_in_flight')).toBe(0);
    expect(sample(text, 'tessera_password_hash_queued')).toBe(0);
    expect(sample(text, 'tessera_password_hash_queue_limit')).toBe(t.config.passwordHashQueue);

    // Durations by route pattern and status class; anything unrouted under one label.
    expect(sample(text, 'tessera_http_request_duration_seconds_count{method="POST",route="/auth/refresh",status_class="2xx"}')).toBe(3);
    expect(sample(text, 'tessera_http_request_duration_seconds_count{method="POST",route="/auth/refresh",status_class="4xx"}')).toBe(3);
    expect(text).toContain('route="/auth/sessions/:id"');
    expect(sample(text, 'tessera_http_request_duration_seconds_count{method="GET",route="unmatched",status_class="4xx"}')).toBe(1);
    // Node's own metrics, in this app's registry.
    expect(text).toContain('process_cpu_user_seconds_total');
    expect(text).toContain('nodejs_eventloop_lag_seconds');
    expect(text).toMatch(/^# TYPE tessera_refresh_total counter$/m);

    // No user data: no email, ids, tokens, IPs or raw paths.
    const user = body.user!;
    for (const secret of [email, encodeURIComponent(email), user.id, sessionId, r1, r2, r3, access, '127.0.0.1', '/nope']) {
      expect(text, secret).not.toContain(secret);
    }
  });

  it('leaves the metrics out of the OpenAPI document', async () => {
    const doc = (await t.app.inject('/openapi.json')).json();
    expect(doc.paths).not.toHaveProperty(['/metrics']);
  });
});

describe('metrics when nothing asks for them', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp('pglite');
  });
  afterAll(() => t.close());

  it('answers GET /metrics as any unknown route: 404, with a token or without', async () => {
    expectProblem(await t.app.inject({ method: 'GET', url: '/metrics' }), 404, 'not_found');
    expectProblem(await t.app.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer ${TOKEN}` } }), 404, 'not_found');
    expect(await listenForMetrics(t.app)).toBeUndefined();
  });
});

describe('METRICS_PORT', () => {
  let t: TestApp;
  let listener: MetricsListener;
  beforeAll(async () => {
    t = await startTestApp('pglite', { METRICS_PORT: '0' });
    listener = (await listenForMetrics(t.app))!;
  });
  afterAll(async () => {
    await listener?.close();
    await t.close();
  });

  it('serves GET /metrics on its own listener, with no credential', async () => {
    expect(listener.port).toBeGreaterThan(0);
    await register(t.app);
    const res = await fetch(`http://127.0.0.1:${listener.port}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    expect(sample(text, 'tessera_http_request_duration_seconds_count{method="POST",route="/auth/register",status_class="2xx"}')).toBe(1);
  });

  it('answers nothing else there, and nothing on the main port', async () => {
    const other = await fetch(`http://127.0.0.1:${listener.port}/auth/login`);
    expect(other.status).toBe(404);
    expect(await other.json()).toMatchObject({ code: 'not_found' });
    const post = await fetch(`http://127.0.0.1:${listener.port}/metrics`, { method: 'POST' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, HEAD');
    expectProblem(await t.app.inject({ method: 'GET', url: '/metrics' }), 404, 'not_found');
  });
});

describe('METRICS_PORT with METRICS_TOKEN: 503s by cause and the pool gauges', () => {
  let db: TestStore;
  let app: Awaited<ReturnType<typeof buildApp>>;
  let listener: MetricsListener;
  beforeAll(async () => {
    const loaded = loadConfig({
      TESSERA_SECRET: TEST_SECRET, LOG_LEVEL: 'silent', METRICS_PORT: '0', METRICS_TOKEN: TOKEN, PASSWORD_HASH_CONCURRENCY: '1', PASSWORD_HASH_QUEUE: '0',
    });
    if (!loaded.ok) throw new Error(loaded.errors.join('\n'));
    db = await openTestStore('pglite');
    app = await buildApp({
      config: loaded.config, store: db.store, secret: TEST_SECRET,
      databasePool: { totalCount: 4, idleCount: 3, waitingCount: 1 },
    });
    listener = (await listenForMetrics(app))!;
  });
  afterAll(async () => {
    await listener?.close();
    await app.close();
  });

  const scrapeListener = (authorization?: string) =>
    fetch(`http://127.0.0.1:${listener.port}/metrics`, { headers: authorization ? { authorization } : {} });
  const scrapeText = async () => {
    const res = await scrapeListener(`Bearer ${TOKEN}`);
    expect(res.status).toBe(200);
    return res.text();
  };

  it('asks for the token on the listener too, and serves nothing on the main port', async () => {
    const none = await scrapeListener();
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toBe('Bearer');
    expect(await none.json()).toMatchObject({ status: 401, code: 'unauthorized' });
    expect((await scrapeListener(`Bearer ${WRONG_TOKEN}`)).status).toBe(401);
    expectProblem(await app.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer ${TOKEN}` } }), 404, 'not_found');
  });

  it('publishes the pool counts and the hash limits', async () => {
    const text = await scrapeText();
    expect(sample(text, 'tessera_database_pool_connections')).toBe(4);
    expect(sample(text, 'tessera_database_pool_idle_connections')).toBe(3);
    expect(sample(text, 'tessera_database_pool_waiting')).toBe(1);
    expect(sample(text, 'tessera_password_hash_concurrency')).toBe(1);
    expect(sample(text, 'tessera_password_hash_queue_limit')).toBe(0);
  });

  it('counts a full hash queue as hash_queue, and a lost database as database', async () => {
    const { email } = await register(app);
    const answers = await Promise.all(Array.from({ length: 6 }, () => login(app, email)));
    const refused = answers.filter((a) => a.statusCode === 503).length;
    expect(refused).toBeGreaterThan(0);
    let text = await scrapeText();
    expect(sample(text, 'tessera_unavailable_total{cause="hash_queue"}')).toBe(refused);
    expect(sample(text, 'tessera_logins_total{outcome="service_unavailable"}')).toBe(refused);

    await db.close();
    expectProblem(await app.inject('/readyz'), 503, 'service_unavailable');
    text = await scrapeText();
    expect(sample(text, 'tessera_unavailable_total{cause="database"}')).toBe(1);
  });
});

describe('METRICS_PORT and METRICS_TOKEN settings', () => {
  const base = { TESSERA_SECRET: TEST_SECRET };
  const errors = (env: Record<string, string>) => {
    const result = loadConfig({ ...base, ...env });
    return result.ok ? [] : result.errors;
  };

  it('refuses a token shorter than 32 bytes, without echoing it', () => {
    const found = errors({ METRICS_TOKEN: 'short-token' });
    expect(found).toEqual([expect.stringMatching(/^METRICS_TOKEN is too short: it must be at least 32 bytes/)]);
    expect(found.join('\n')).not.toContain('short-token');
    expect(errors({ METRICS_TOKEN: TOKEN })).toEqual([]);
  });

  it('refuses a port that is not one, or the main port', () => {
    expect(errors({ METRICS_PORT: 'x' })).toEqual([expect.stringMatching(/^METRICS_PORT="x" is not valid/)]);
    expect(errors({ METRICS_PORT: '70000' })).toEqual([expect.stringMatching(/^METRICS_PORT="70000" is not valid/)]);
    expect(errors({ PORT: '4000', METRICS_PORT: '4000' })).toEqual([expect.stringMatching(/^METRICS_PORT=4000 is the same as PORT/)]);
    const ok = loadConfig({ ...base, METRICS_PORT: '9464' });
    expect(ok.ok && ok.config.metricsPort).toBe(9464);
    const off = loadConfig(base);
    expect(off.ok && [off.config.metricsPort, off.config.metricsToken]).toEqual([undefined, undefined]);
  });
});
