/**
 * docs/deployment.md, run: Debian's nginx with TLS (a certificate made here) in front of two
 * `node dist/cli/main.js serve` processes on one PostgreSQL schema and one Redis, configured
 * with the blocks of the guide itself (its settings, its nginx site, its systemd unit), read
 * out of the Markdown. Only ports, paths and credentials are replaced, each exactly once, so a
 * change to the guide is a change to what runs here.
 *
 * Like the fault suite it starts real processes: it runs with TESSERA_FAULTS=1 and
 * TEST_DATABASE_URL (`.ci/run` does), and skips itself, saying why, otherwise.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { chromium, type Browser } from 'playwright-core';
import { Agent, fetch, type Response } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../faults/helpers/free-port.js';
import { FAULTS_ENABLED, TEST_DATABASE_URL, freshSchema, type FreshSchema } from '../faults/helpers/pg-schema.js';
import { RedisProcess } from '../faults/helpers/redis-process.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const GUIDE = 'docs/deployment.md';
const NGINX = '/usr/sbin/nginx';
const CHROMIUM = '/usr/bin/chromium';
const HAS_NGINX = existsSync(NGINX);
const HAS_CHROMIUM = existsSync(CHROMIUM);
const ON_CI = !!process.env.CI && !/^(0|false)$/i.test(process.env.CI);
const run = promisify(execFile);

const SKIP_REASON = !TEST_DATABASE_URL
  ? 'needs TEST_DATABASE_URL (the two nodes share a PostgreSQL)'
  : !FAULTS_ENABLED
    ? 'starts nginx and server processes: run it with TESSERA_FAULTS=1 npx vitest run test/deploy'
    : !HAS_NGINX
      ? `no nginx at ${NGINX} (apt-get install nginx; .ci/run installs it)`
      : '';

const PASSWORD = 'correct horse battery staple';
const SECRET = 'deploy-test-secret-that-is-at-least-32-bytes!';
const FORGED = '6.6.6.6';
/** The per-IP sign-up budget (docs/configuration.md, Rate limits). */
const REGISTER_PER_IP = 20;
/** A migration no release has: what an older release meets after an upgrade. */
const FUTURE_MIGRATION = '2099-01-01T00-00-from-a-newer-release';

// ---------------------------------------------------------------------------------------------
// The guide's blocks

/** The fenced block that follows `<!-- deploy-test: NAME … -->` in the guide. */
function guideBlock(name: string): string {
  const text = readFileSync(join(ROOT, GUIDE), 'utf8');
  const match = new RegExp(`<!-- deploy-test: ${name}\\b[^>]*-->\\s*\\n\`\`\`[a-z]*\\n([\\s\\S]*?)\\n\`\`\`\\n`).exec(text);
  if (!match) throw new Error(`${GUIDE} has no block marked <!-- deploy-test: ${name} -->`);
  return match[1]!;
}

/** `text` with `from` replaced by `to`; `from` must occur exactly once (else the guide changed under the test). */
function replaceOnce(text: string, from: string, to: string): string {
  const count = text.split(from).length - 1;
  if (count !== 1) throw new Error(`the guide's block has ${count} occurrences of ${JSON.stringify(from)} where the test expects exactly one`);
  return text.replace(from, () => to);
}

/** KEY=VALUE lines of a shell environment file; comments and blank lines skipped. */
function parseEnvFile(block: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of block.split('\n')) {
    const m = /^([A-Z][A-Z0-9_]*)=(.*)$/.exec(line.trim());
    if (m) env[m[1]!] = m[2]!;
  }
  return env;
}

// ---------------------------------------------------------------------------------------------
// Processes

interface Proc {
  child: ChildProcess;
  output(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

const procs = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of procs) child.kill('SIGKILL');
});

function launch(command: string, args: string[], env: Record<string, string>, cwd = ROOT): Proc {
  const child = spawn(command, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  procs.add(child);
  let output = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('exit', (code, signal) => {
      procs.delete(child);
      resolve({ code, signal });
    });
    child.on('error', (error) => {
      output += `\n${error.message}`;
      procs.delete(child);
      resolve({ code: -1, signal: null });
    });
  });
  return {
    child,
    output: () => output,
    exited,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null || !procs.has(child)) return;
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), 12_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Resolves when `ready()` holds; rejects when the process exits first or after `timeoutMs`. */
async function waitFor(proc: Proc, what: string, ready: () => boolean | Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exited = false;
  void proc.exited.then(() => (exited = true));
  while (!(await ready())) {
    if (exited) throw new Error(`${what} exited before it was ready:\n${proc.output().slice(-3000)}`);
    if (Date.now() > deadline) throw new Error(`${what} was not ready within ${timeoutMs} ms:\n${proc.output().slice(-3000)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

interface Node extends Proc {
  port: number;
}

/** `tessera serve` from the build, as the systemd unit runs it: the guide's settings, PORT from the unit. */
async function startNode(env: Record<string, string>, port: number): Promise<Node> {
  const proc = launch(process.execPath, ['dist/cli/main.js', 'serve'], {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: process.env.HOME ?? tmpdir(),
    ...env,
    PORT: String(port),
  });
  // Ready as a load balancer sees it: /readyz answers 200.
  await waitFor(proc, `the node on port ${port}`, async () => {
    try {
      return (await fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(2_000) })).status === 200;
    } catch {
      return false;
    }
  });
  return Object.assign(proc, { port });
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

// ---------------------------------------------------------------------------------------------

if (ON_CI && FAULTS_ENABLED && !HAS_NGINX) {
  it(`nginx is required on CI (CI=${process.env.CI}) but ${NGINX} does not exist`, () => {
    expect.fail(`no nginx at ${NGINX}: .ci/run installs Debian's nginx`);
  });
}

describe.skipIf(!!SKIP_REASON)(`docs/deployment.md: nginx with TLS in front of two nodes${SKIP_REASON ? ` [skipped: ${SKIP_REASON}]` : ''}`, () => {
  let dir: string;
  let schema: FreshSchema;
  let redis: RedisProcess;
  let nginx: Proc;
  let nodes: Node[] = [];
  let nodeEnv: Record<string, string>;
  let httpsPort: number;
  let httpPort: number;
  let base: string;
  let ca: string;
  let agent: Agent;
  let browser: Browser | undefined;
  /** Registrations sent through nginx from 127.0.0.1: they spend the per-IP budget. */
  let registrations = 0;
  const email = `ada-${Date.now().toString(36)}@example.com`;
  let accessToken: string;

  const accessLog = () => readFileSync(join(dir, 'access.log'), 'utf8').split('\n').filter(Boolean);
  /** The access-log lines after the first `from`, once there are `count` (nginx writes a line just after its answer). */
  async function accessLogSince(from: number, count: number): Promise<string[]> {
    await expect.poll(() => accessLog().length - from, { timeout: 3_000, interval: 20 }).toBeGreaterThanOrEqual(count);
    return accessLog().slice(from);
  }
  /** The node ports nginx sent requests to, per access-log line (a retried request names two). */
  const upstreamsOf = (lines: string[]) => lines.flatMap((l) => [...(/upstream=(.*)$/.exec(l)?.[1] ?? '').matchAll(/127\.0\.0\.1:(\d+)/g)].map((m) => Number(m[1])));

  /** A request to nginx over https, trusting only the test's certificate. */
  function api(method: string, path: string, options: { json?: unknown; body?: string; headers?: Record<string, string> } = {}): Promise<Response> {
    const headers: Record<string, string> = { ...options.headers };
    let body = options.body;
    if (options.json !== undefined) {
      body = JSON.stringify(options.json);
      headers['content-type'] = 'application/json';
    }
    if (body !== undefined && !headers['content-type']) headers['content-type'] = 'application/json';
    if (method === 'POST' && path === '/auth/register') registrations++;
    return fetch(`${base}${path}`, { method, headers, body, dispatcher: agent, redirect: 'manual', signal: AbortSignal.timeout(15_000) });
  }

  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
  const sidOf = (token: string) => JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()).sid as string;

  beforeAll(async () => {
    for (const file of ['dist/cli/main.js', 'dist/demo/app.js']) {
      if (!existsSync(join(ROOT, file))) throw new Error(`${file} is missing: run npm run build first (npm test does)`);
    }
    dir = mkdtempSync(join(tmpdir(), 'tessera-deploy-'));
    [httpsPort, httpPort] = [await freePort(), await freePort()];
    base = `https://localhost:${httpsPort}`;
    const nodePorts = [await freePort(), await freePort()];

    // A self-signed certificate for localhost, valid one day.
    await run('openssl', [
      'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-days', '1',
      '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
      '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
    ], { timeout: 30_000 });
    ca = readFileSync(join(dir, 'cert.pem'), 'utf8');
    agent = new Agent({ connect: { ca }, keepAliveTimeout: 1_000 });

    [schema, redis] = await Promise.all([freshSchema({ prefix: 'tessera_deploy' }), RedisProcess.start()]);

    // The guide's settings, with this run's addresses and secret.
    const env = parseEnvFile(guideBlock('env'));
    expect(env.PORT, 'PORT must not be in the environment file (the unit sets it)').toBeUndefined();
    expect(env).toMatchObject({ NODE_ENV: 'production', TRUST_PROXY: '1', HOST: '127.0.0.1' });
    for (const key of ['PUBLIC_URL', 'TESSERA_SECRET', 'DATABASE_URL', 'REDIS_URL', 'SIGNING_ALG']) expect(env, `the guide sets ${key}`).toHaveProperty(key);
    nodeEnv = {
      ...env,
      PUBLIC_URL: base,
      TESSERA_SECRET: SECRET,
      ...schema.env, // DATABASE_URL and DATABASE_SCHEMA
      REDIS_URL: redis.url,
      DATA_DIR: join(dir, 'data'),
    };
    // Both nodes start together on the empty schema: one migrates, the other waits.
    nodes = await Promise.all(nodePorts.map((port) => startNode(nodeEnv, port)));

    // The guide's nginx site, with this run's ports and certificate, in a main config of our own.
    let site = guideBlock('nginx');
    site = replaceOnce(site, 'listen 443 ssl;', `listen 127.0.0.1:${httpsPort} ssl;`);
    site = replaceOnce(site, 'listen 80;', `listen 127.0.0.1:${httpPort};`);
    site = replaceOnce(site, '/etc/letsencrypt/live/auth.example.com/fullchain.pem', join(dir, 'cert.pem'));
    site = replaceOnce(site, '/etc/letsencrypt/live/auth.example.com/privkey.pem', join(dir, 'key.pem'));
    site = replaceOnce(site, 'server 127.0.0.1:3000 ', `server 127.0.0.1:${nodePorts[0]} `);
    site = replaceOnce(site, 'server 127.0.0.1:3001 ', `server 127.0.0.1:${nodePorts[1]} `);
    const conf = [
      'daemon off;',
      ...(process.getuid?.() === 0 ? ['user root;'] : []),
      'worker_processes 1;',
      `pid ${join(dir, 'nginx.pid')};`,
      `error_log ${join(dir, 'error.log')} warn;`,
      'events { worker_connections 256; }',
      'http {',
      `  log_format deploy '$remote_addr xff="$http_x_forwarded_for" "$request" $status upstream=$upstream_addr';`,
      `  access_log ${join(dir, 'access.log')} deploy;`,
      ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `  ${t}_temp_path ${join(dir, `${t}_temp`)};`),
      site,
      '}',
      '',
    ].join('\n');
    writeFileSync(join(dir, 'nginx.conf'), conf);
    nginx = launch(NGINX, ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')], { PATH: process.env.PATH ?? '/usr/bin:/bin' }, dir);
    await waitFor(nginx, 'nginx', async () => (await portOpen(httpsPort)) && (await portOpen(httpPort)), 15_000).catch((error: Error) => {
      throw new Error(`${error.message}\n${existsSync(join(dir, 'error.log')) ? readFileSync(join(dir, 'error.log'), 'utf8') : ''}`);
    });
  }, 90_000);

  afterAll(async () => {
    await browser?.close().catch(() => {});
    await agent?.close().catch(() => {});
    await Promise.all([nginx?.stop('SIGQUIT'), ...nodes.map((n) => n.stop())]);
    await redis?.kill();
    await schema?.drop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 30_000);

  it('http redirects to https; /healthz, /readyz and HSTS over TLS', async () => {
    const plain = await fetch(`http://localhost:${httpPort}/auth/me`, { redirect: 'manual', dispatcher: agent, signal: AbortSignal.timeout(10_000) });
    expect(plain.status).toBe(301);
    expect(plain.headers.get('location')).toBe('https://localhost/auth/me');

    const health = await api('GET', '/healthz');
    expect(await health.json()).toEqual({ status: 'ok' });
    const ready = await api('GET', '/readyz');
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: 'ready' });
    expect(ready.headers.get('strict-transport-security')).toMatch(/max-age=\d+/);
  });

  it('the refresh cookie is Secure, and the IP recorded is the real client, not its forged X-Forwarded-For', async () => {
    const res = await api('POST', '/auth/register', { json: { email, password: PASSWORD, name: 'Ada' }, headers: { 'x-forwarded-for': FORGED } });
    expect(res.status, await res.clone().text()).toBe(201);
    const cookies = res.headers.getSetCookie();
    const refresh = cookies.find((c) => c.startsWith('tessera_refresh='))!;
    expect(refresh).toMatch(/^tessera_refresh=tsr_/);
    expect(refresh.split(/;\s*/)).toEqual(expect.arrayContaining(['Secure', 'HttpOnly', 'SameSite=Strict', 'Path=/auth']));
    expect(cookies.find((c) => c.startsWith('tessera_session='))!.split(/;\s*/)).toContain('Secure');
    accessToken = ((await res.json()) as { accessToken: string }).accessToken;

    // A refresh through the cookie, again with a forged header: the session's IP is updated to… the real one.
    const cookie = refresh.split(';')[0]!;
    const refreshed = await api('POST', '/auth/refresh', { headers: { cookie, 'x-tessera-csrf': '1', 'x-forwarded-for': '7.7.7.7' } });
    expect(refreshed.status, await refreshed.clone().text()).toBe(200);
    accessToken = ((await refreshed.json()) as { accessToken: string }).accessToken;

    const sessions = (await (await api('GET', '/auth/sessions', { headers: bearer(accessToken) })).json()) as { sessions: { id: string; ip: string | null }[] };
    expect(sessions.sessions.map((s) => s.ip)).toEqual(['127.0.0.1']);
    const events = (await (await api('GET', '/auth/events', { headers: bearer(accessToken) })).json()) as { events: { type: string; ip: string | null }[] };
    expect(events.events.length).toBeGreaterThan(0);
    expect(events.events.map((e) => [e.type, e.ip])).toEqual(events.events.map((e) => [e.type, '127.0.0.1']));
    // nginx saw the forged headers; Tessera never did.
    await expect.poll(() => accessLog().some((l) => l.includes(`xff="${FORGED}"`) && l.includes('/auth/register')), { timeout: 3_000 }).toBe(true);
    expect(nodes.map((n) => n.output()).join('\n')).not.toContain(FORGED);
  });

  it.skipIf(!HAS_CHROMIUM)(`Chromium signs in on the demo page over https and stays signed in across a reload${HAS_CHROMIUM ? '' : ` [skipped: no Chromium at ${CHROMIUM}]`}`, async () => {
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      timeout: 20_000,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--ignore-certificate-errors'],
    });
    const context = await browser.newContext();
    const page = await context.newPage();
    page.setDefaultTimeout(10_000);
    await page.goto(`${base}/`);
    await page.locator('#signed-out').waitFor({ state: 'visible' });
    const form = page.locator('#sign-in-form');
    await form.locator('input[name=email]').fill(email);
    await form.locator('input[name=password]').fill(PASSWORD);
    await form.locator('button[type=submit]').click();
    await page.locator('#signed-in').waitFor({ state: 'visible' });
    expect(await page.textContent('#user-email')).toBe(email);

    const jar = await context.cookies(); // every path: the refresh cookie lives under /auth
    expect(jar.find((c) => c.name === 'tessera_refresh')).toMatchObject({ secure: true, httpOnly: true, path: '/auth', sameSite: 'Strict' });
    expect(jar.find((c) => c.name === 'tessera_session')).toMatchObject({ secure: true });

    // A reload starts from the cookie alone: the page refreshes through nginx, and is signed in again.
    const refreshes: number[] = [];
    page.on('response', (r) => {
      if (new URL(r.url()).pathname === '/auth/refresh') refreshes.push(r.status());
    });
    await page.reload();
    await page.locator('#signed-in').waitFor({ state: 'visible' });
    expect(await page.textContent('#user-email')).toBe(email);
    expect(refreshes).toEqual([200]);
    // The device list shows the browser's real address.
    await expect.poll(() => page.locator('#sessions').textContent(), { timeout: 5_000 }).toContain('127.0.0.1');
    await context.close();
  }, 60_000);

  it('both nodes answer: nginx sends requests to each in turn', async () => {
    const before = accessLog().length;
    for (let i = 0; i < 4; i++) expect((await api('GET', '/readyz')).status).toBe(200);
    const used = new Set(upstreamsOf(await accessLogSince(before, 4)));
    expect([...used].sort()).toEqual(nodes.map((n) => n.port).sort());
  });

  it(`the per-IP sign-up limit (${REGISTER_PER_IP} an hour) holds across both nodes, whatever X-Forwarded-For the client forges`, async () => {
    const before = accessLog().length;
    const remaining: number[] = [];
    let limited: Response | undefined;
    // An empty body is refused (400), but only after the per-IP limit counted it.
    for (let i = 0; i < REGISTER_PER_IP + 5 && !limited; i++) {
      const res = await api('POST', '/auth/register', { body: '{}', headers: { 'x-forwarded-for': `203.0.113.${i}` } });
      if (res.status === 429) limited = res;
      else {
        expect(res.status).toBe(400);
        remaining.push(Number(res.headers.get('x-ratelimit-remaining')));
      }
      await res.arrayBuffer();
    }
    expect(limited, 'no 429 although every request came from 127.0.0.1').toBeDefined();
    expect(Number(limited!.headers.get('retry-after'))).toBeGreaterThan(0);
    // One budget for the whole run: the registrations before this test spent part of it, and the
    // count went down by one at each request, whichever node answered.
    const spentBefore = registrations - remaining.length - 1;
    expect(remaining).toEqual(Array.from({ length: REGISTER_PER_IP - spentBefore }, (_, k) => REGISTER_PER_IP - spentBefore - 1 - k));
    expect(new Set(upstreamsOf(await accessLogSince(before, remaining.length + 1))).size, 'both nodes counted into the same budget').toBe(2);
    // Without a forged header, and with yet another one: still the same client, still limited.
    expect((await api('POST', '/auth/register', { body: '{}' })).status).toBe(429);
    expect((await api('POST', '/auth/register', { body: '{}', headers: { 'x-forwarded-for': '198.51.100.1' } })).status).toBe(429);
  });

  it('a request sent straight to a node, around nginx, is believed: the nodes must be reachable only by the proxy', async () => {
    const res = await fetch(`http://127.0.0.1:${nodes[0]!.port}/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-forwarded-for': FORGED },
      body: JSON.stringify({ email, password: PASSWORD, transport: 'body' }),
      signal: AbortSignal.timeout(15_000),
    });
    expect(res.status).toBe(200);
    const sid = sidOf(((await res.json()) as { accessToken: string }).accessToken);
    const sessions = (await (await api('GET', '/auth/sessions', { headers: bearer(accessToken) })).json()) as { sessions: { id: string; ip: string | null }[] };
    expect(sessions.sessions.find((s) => s.id === sid)?.ip).toBe(FORGED);
  });

  it('with one node stopped, nginx sends everything to the other, sign-ins included', async () => {
    const [stopped, alive] = nodes as [Node, Node];
    await stopped.stop('SIGTERM');
    expect((await stopped.exited).code).toBe(0);
    const before = accessLog().length;
    // Sign-ins first: in turn, one of them goes to the stopped node, is refused at connect, and
    // nginx passes it on (a POST too: it never reached the first node).
    for (let i = 0; i < 2; i++) {
      const res = await api('POST', '/auth/login', { json: { email, password: PASSWORD, transport: 'body' } });
      expect(res.status, await res.text()).toBe(200);
    }
    for (let i = 0; i < 4; i++) expect((await api('GET', '/readyz')).status).toBe(200);
    const lines = await accessLogSince(before, 6);
    expect(lines).toHaveLength(6);
    // Each request ended on the live node; a sign-in named the stopped node first.
    for (const line of lines) expect(upstreamsOf([line]).at(-1), line).toBe(alive.port);
    expect(lines.filter((l) => l.includes('POST /auth/login') && upstreamsOf([l])[0] === stopped.port), lines.join('\n')).toHaveLength(1);
  });

  it('a release that lacks a migration the database has (an older release after an upgrade) refuses to start', async () => {
    await schema.query('insert into kysely_migration (name, timestamp) values ($1, $2)', [FUTURE_MIGRATION, new Date().toISOString()]);
    try {
      const proc = launch(process.execPath, ['dist/cli/main.js', 'serve'], {
        PATH: process.env.PATH ?? '/usr/bin:/bin', ...nodeEnv, PORT: String(await freePort()),
      });
      const timer = setTimeout(() => proc.child.kill('SIGKILL'), 30_000);
      const { code } = await proc.exited;
      clearTimeout(timer);
      expect(code, proc.output()).toBe(1);
      expect(proc.output()).toContain(`corrupted migrations: previously executed migration ${FUTURE_MIGRATION} is missing`);
    } finally {
      await schema.query('delete from kysely_migration where name = $1', [FUTURE_MIGRATION]);
    }
  }, 40_000);
});

// The unit's ExecStart names /usr/bin/node, which verify checks exists (Debian's path; not under nvm).
const UNIT_SKIP = !existsSync('/usr/bin/systemd-analyze') ? 'no systemd-analyze' : !existsSync('/usr/bin/node') ? 'no /usr/bin/node, which the unit runs' : '';
describe.skipIf(!!UNIT_SKIP)(`docs/deployment.md: the systemd unit${UNIT_SKIP ? ` [skipped: ${UNIT_SKIP}]` : ''}`, () => {
  it('passes systemd-analyze verify with no warning', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tessera-unit-'));
    try {
      writeFileSync(join(dir, 'tessera@.service'), `${guideBlock('systemd')}\n`);
      const { stdout, stderr } = await run('systemd-analyze', ['verify', join(dir, 'tessera@3000.service')], { timeout: 30_000 }).catch(
        (error: { stdout: string; stderr: string; code: number }) => ({ stdout: error.stdout, stderr: `${error.stderr}\n(exit ${error.code})` }),
      );
      expect(`${stdout}${stderr}`.trim()).toBe('');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
