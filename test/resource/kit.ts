import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, type CryptoKey, type JWK, type JWTPayload } from 'jose';
import ts from 'typescript';
import { expect } from 'vitest';
import { TesseraAuthError, type AuthContext, type Verifier } from '../../src/resource/verify.js';
import { freePort } from '../faults/helpers/free-port.js';
import { startLiveIssuer, type LiveIssuer } from '../helpers/live-issuer.js';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const HERE = fileURLToPath(new URL('./', import.meta.url));

/** A signing key of our own, with its kid. */
export interface TestKey {
  kid: string;
  alg: 'EdDSA' | 'ES256' | 'RS256';
  privateKey: CryptoKey;
  publicJwk: JWK;
  privateJwk: JWK;
}

export async function newKey(alg: TestKey['alg'] = 'EdDSA'): Promise<TestKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true, ...(alg === 'EdDSA' ? { crv: 'Ed25519' } : {}) });
  const kid = randomUUID();
  return { kid, alg, privateKey, publicJwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' }, privateJwk: { ...(await exportJWK(privateKey)), kid } };
}

/** Signs an access token the way Tessera does, with any claim or header member overridden (undefined removes it). */
export async function sign(key: TestKey, claims: Record<string, unknown>, header: Record<string, unknown> = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const payload = Object.fromEntries(
    Object.entries({ sub: randomUUID(), sid: randomUUID(), iat: now, exp: now + 900, jti: randomUUID(), ...claims }).filter(([, v]) => v !== undefined),
  ) as JWTPayload;
  const protectedHeader = Object.fromEntries(
    Object.entries({ alg: key.alg, typ: 'at+jwt', kid: key.kid, ...header }).filter(([, v]) => v !== undefined),
  ) as { alg: string };
  return new SignJWT(payload).setProtectedHeader(protectedHeader).sign(key.privateKey);
}

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
const parts = (token: string) => token.split('.') as [string, string, string];
export const decode = (segment: string) => JSON.parse(Buffer.from(segment, 'base64url').toString()) as Record<string, unknown>;

/** Forgeries of a genuine token that a verifier must refuse, by name. */
export async function forgeries(genuine: string, publicJwk: JWK): Promise<Record<string, string>> {
  const [header, payload, signature] = parts(genuine);
  const claims = decode(payload);
  const hs256 = async (secret: Uint8Array) =>
    new SignJWT(claims).setProtectedHeader({ ...decode(header), alg: 'HS256' }).sign(secret);
  // The classic confusion: the verifier's own public key, as PEM or raw bytes, used as an HMAC secret.
  const { importJWK } = await import('jose');
  const pem = await exportSPKI((await importJWK(publicJwk, String(publicJwk.alg ?? 'EdDSA'), { extractable: true })) as CryptoKey);
  return {
    'tampered payload': `${header}.${b64({ ...claims, sub: randomUUID() })}.${signature}`,
    'tampered signature': `${header}.${payload}.${signature[0] === 'A' ? 'B' : 'A'}${signature.slice(1)}`,
    'alg none': `${b64({ ...decode(header), alg: 'none' })}.${payload}.`,
    'HS256 keyed with the public key (PEM)': await hs256(new TextEncoder().encode(pem)),
    'HS256 keyed with the public key (JWK x)': await hs256(Buffer.from(String(publicJwk.x ?? publicJwk.n), 'base64url')),
  };
}

/** The checks every refusal passes: status, RFC 6750 challenge, problem+json in Tessera's shape. */
export async function expectRefused(res: Response, status: 401 | 403 | 503, code: string, detail?: string) {
  const body = (await res.json()) as Record<string, unknown>;
  expect({ status: res.status, body }).toMatchObject({ status, body: { type: `urn:tessera:error:${code}`, status, code } });
  expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json\b/);
  expect(typeof body.title).toBe('string');
  if (detail !== undefined) expect(body.detail).toBe(detail);
  const challenge = res.headers.get('www-authenticate');
  if (status === 401) expect(challenge).toMatch(/^Bearer\b/);
  if (status === 403) expect(challenge).toMatch(/^Bearer error="insufficient_scope"/);
  return { body, challenge };
}

/** Runs `check` until it returns true or `ms` pass, with short pauses; the elapsed time. */
export async function eventually(check: () => Promise<boolean> | boolean, ms = 3000, pauseMs = 25): Promise<number> {
  const start = Date.now();
  while (!(await check())) {
    if (Date.now() - start > ms) throw new Error(`not true within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, pauseMs));
  }
  return Date.now() - start;
}

/** A live Tessera whose signing key we hold, so tests can sign tokens its JWKS vouches for. */
export interface Issuer extends LiveIssuer {
  key: TestKey;
  /** A token signed with the issuer's own key: `iss` and `aud` right unless overridden. */
  forge(claims?: Record<string, unknown>, header?: Record<string, unknown>): Promise<string>;
  logout(refreshToken: string): Promise<void>;
}

export async function startIssuer(env: Record<string, string> = {}): Promise<Issuer> {
  const key = await newKey('EdDSA');
  const live = await startLiveIssuer('pglite', { SIGNING_KEYS: JSON.stringify({ keys: [key.privateJwk] }), ...env });
  return {
    ...live,
    key,
    forge: (claims = {}, header = {}) => sign(key, { iss: live.url, aud: live.url, ...claims }, header),
    async logout(refreshToken) {
      const res = await fetch(`${live.url}/auth/logout`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ refreshToken }) });
      if (res.status !== 204) throw new Error(`logout: ${res.status} ${await res.text()}`);
    },
  };
}

/** A tiny HTTP server whose answers a test sets route by route, counting requests. */
export interface Stub {
  url: string;
  hits: Map<string, number>;
  requests: URL[];
  route(path: string, answer: (url: URL) => { status: number; body?: unknown; delayMs?: number }): void;
  close(): Promise<void>;
}

export async function startStub(): Promise<Stub> {
  const routes = new Map<string, (url: URL) => { status: number; body?: unknown; delayMs?: number }>();
  const hits = new Map<string, number>();
  const requests: URL[] = [];
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://stub');
    requests.push(url);
    hits.set(url.pathname, (hits.get(url.pathname) ?? 0) + 1);
    const answer = routes.get(url.pathname)?.(url) ?? { status: 404 };
    const send = () => {
      res.writeHead(answer.status, { 'content-type': 'application/json' });
      res.end(answer.body === undefined ? '' : JSON.stringify(answer.body));
    };
    if (answer.delayMs) setTimeout(send, answer.delayMs);
    else send();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    hits,
    requests,
    route: (path, answer) => void routes.set(path, answer),
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

// ---------------------------------------------------------------------------------------------
// The apps of docs/resource-servers.md, run as they are written.

const DOCS = join(ROOT, 'docs', 'resource-servers.md');
/** The issuer the docs' examples name; tests put the live issuer's URL in its place. */
const DOCS_ISSUER = "'https://auth.example.com'";

/** The code block that follows `<!-- snippet: NAME -->` in docs/resource-servers.md. */
export function docSnippet(name: string): string {
  const docs = readFileSync(DOCS, 'utf8');
  const match = new RegExp(`<!-- snippet: ${name} -->\\s*\`\`\`ts\\n([\\s\\S]*?)\`\`\``).exec(docs);
  if (!match?.[1]) throw new Error(`no snippet "${name}" in docs/resource-servers.md`);
  return match[1];
}

/** TypeScript as Nest projects compile it: legacy decorators with type metadata. */
const COMPILER_OPTIONS: ts.CompilerOptions = {
  target: ts.ScriptTarget.ES2022,
  module: ts.ModuleKind.NodeNext,
  moduleResolution: ts.ModuleResolutionKind.NodeNext,
  strict: true,
  skipLibCheck: true,
  esModuleInterop: true,
  experimentalDecorators: true,
  emitDecoratorMetadata: true,
  types: ['node'],
  noEmit: true,
};

/**
 * Type-checks snippets as an app's own files in `dir` (so `tessera/…` resolves through the
 * package's exports to dist/, as it would for a user), without writing them anywhere: the
 * diagnostics, empty when clean.
 */
export function typeCheck(dir: string, sources: Record<string, string>): string[] {
  const virtual = new Map(Object.entries(sources).map(([name, source]) => [join(dir, `${name}.snippet.mts`), source]));
  const host = ts.createCompilerHost(COMPILER_OPTIONS);
  const { getSourceFile, fileExists, readFile } = host;
  host.fileExists = (file) => virtual.has(file) || fileExists.call(host, file);
  host.readFile = (file) => virtual.get(file) ?? readFile.call(host, file);
  host.getSourceFile = (file, language, ...rest) => {
    const source = virtual.get(file);
    return source !== undefined ? ts.createSourceFile(file, source, language) : getSourceFile.call(host, file, language, ...rest);
  };
  const program = ts.createProgram([...virtual.keys()], COMPILER_OPTIONS, host);
  return ts.getPreEmitDiagnostics(program).map((d) => `${ts.flattenDiagnosticMessageText(d.messageText, '\n')}${d.file ? ` (${d.file.fileName})` : ''}`);
}

export interface RunningApp {
  url: string;
  output(): string;
  stop(): Promise<void>;
}

/**
 * Runs a snippet of the docs as a program of its own in `dir` (test/resource, or the NestJS 12
 * fixture), against `issuer`, on a free loopback port: the issuer and the port are the only
 * things changed. Resolves once `GET /health` answers.
 */
export async function runSnippet(name: string, issuer: string, dir = HERE): Promise<RunningApp> {
  const port = await freePort();
  const source = localize(docSnippet(name), issuer, port);
  const js = ts.transpileModule(source, { fileName: `${name}.mts`, compilerOptions: { ...COMPILER_OPTIONS, noEmit: false } }).outputText;
  // One file per test process: two runs of the suite in one checkout must not swap apps.
  const file = join(dir, '.generated', `${name}-${process.pid}.mjs`);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, js);
  const child: ChildProcess = spawn(process.execPath, [file], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_OPTIONS: '' } });
  let output = '';
  child.stdout!.on('data', (chunk) => (output += chunk));
  child.stderr!.on('data', (chunk) => (output += chunk));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
    rmSync(file, { force: true });
  };
  try {
    await eventually(async () => {
      if (child.exitCode !== null) throw new Error(`${name} exited with ${child.exitCode}:\n${output}`);
      return fetch(`${url}/health`).then((r) => r.ok, () => false);
    }, 20_000, 50);
  } catch (error) {
    await stop();
    throw error;
  }
  return { url, output: () => output, stop };
}

/** The docs' issuer and port 3000 replaced by the test's; fails if the snippet no longer names them. */
function localize(source: string, issuer: string, port: number): string {
  if (!source.includes(DOCS_ISSUER)) throw new Error(`the snippet no longer names ${DOCS_ISSUER}`);
  let listens = 0;
  const localized = source
    .replaceAll(DOCS_ISSUER, JSON.stringify(issuer))
    .replace(/listen\(3000\)/g, () => (listens++, `listen(${port}, '127.0.0.1')`))
    .replace(/listen\(\{ port: 3000 \}\)/g, () => (listens++, `listen({ port: ${port}, host: '127.0.0.1' })`));
  if (listens !== 1) throw new Error(`the snippet should listen once on port 3000, found ${listens}`);
  return localized;
}

export type { LiveIssuer };
export { freePort, startLiveIssuer };

/** A verifier whose answer is the token: `roles:a,b` is a caller with those roles. */
export function fakeVerifier() {
  let closed = 0;
  const verifier: Verifier = {
    async verify(token) {
      if (!token) throw new TesseraAuthError('unauthorized', 'An Authorization: Bearer access token is required', { tokenPresented: false });
      if (!token.startsWith('roles:')) throw new TesseraAuthError('unauthorized', 'The access token is not valid');
      return { userId: 'u', sessionId: 's', roles: token.slice(6).split(',').filter(Boolean), amr: [], claims: {} } satisfies AuthContext;
    },
    status: () => ({ revocations: 'off', revokedSessions: 0 }),
    close: () => void closed++,
  };
  return { verifier, closed: () => closed };
}
