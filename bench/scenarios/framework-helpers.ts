import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Dispatcher } from 'undici';
import { getJson, runLoad, type LoadResult, type Step } from '../lib/load.js';
import { CpuMeter, freePort, startChild, type Child, type CpuUse } from '../lib/processes.js';
import type { VerifyInput } from './verify.js';

/**
 * What Tessera's framework helpers add per request over the bare framework (target: ≤ 10 µs).
 *
 * Per framework (Express 5, Fastify 5, NestJS 11 on platform-express), two servers, each its
 * own process (bench/scenarios/framework-servers/<framework>.ts), one route `GET /me` that
 * answers `{ sub, sid }`:
 * - bare: the route verifies the Bearer token by hand with `createVerifier` of tessera/verify;
 * - helper: the route behind the framework's helper (tessera/express, tessera/fastify, tessera/nestjs).
 * Both get the same verifier options (JWKS from a URL that the server process serves itself on a
 * second loopback port, issuer, audience, no revocation feed) and import the BUILT package.
 */

export type Framework = 'express' | 'fastify' | 'nestjs';
export type FrameworkVariant = 'bare' | 'helper';
export const FRAMEWORKS: readonly Framework[] = ['express', 'fastify', 'nestjs'];

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SERVERS = fileURLToPath(new URL('./framework-servers/', import.meta.url));

export interface FrameworkHelperResult {
  framework: Framework;
  variant: FrameworkVariant;
  repeat: number;
  load: LoadResult;
  /** CPU over the measured window; `serverMs` is the server process's. */
  cpu: CpuUse | undefined;
}

export interface FrameworkHelpersOptions {
  /** A `VerifyInput` JSON file: the JWKS, the access tokens, their issuer and audience. */
  inputFile: string;
  /** Default: all three. */
  frameworks?: Framework[];
  repeats: number;
  durationS: number;
  warmupS: number;
  concurrency: number;
  /** The servers' output is appended here. */
  logFile: string;
  /** One line per measured window. */
  log: (line: string) => void;
  /** The built package whose dist/resource/*.js is measured. Default: the repository's dist/. */
  tesseraDist?: string;
}

async function startFrameworkServer(framework: Framework, variant: FrameworkVariant, opts: FrameworkHelpersOptions, dist: string) {
  const [port, jwksPort] = [await freePort(), await freePort()];
  const child = await startChild({
    name: `${framework} (${variant})`,
    command: process.execPath,
    // tsx by its resolved URL, so that the caller's working directory does not matter.
    args: ['--import', import.meta.resolve('tsx'), join(SERVERS, `${framework}.ts`)],
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      NODE_ENV: 'production',
      HOST: '127.0.0.1',
      PORT: String(port),
      JWKS_PORT: String(jwksPort),
      VARIANT: variant,
      BENCH_INPUT: opts.inputFile,
      TESSERA_DIST: dist,
    },
    logFile: opts.logFile,
    readyUrl: `http://127.0.0.1:${jwksPort}/ready`,
    timeoutMs: 30_000,
  });
  return { child, origin: `http://127.0.0.1:${port}` };
}

/** The claims of a token, unverified: what the route must answer for it. */
function claimsOf(token: string): { sub?: unknown; sid?: unknown } {
  return JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString()) as { sub?: unknown; sid?: unknown };
}

/** One request before the window: 200 with the token's own `{ sub, sid }`, or the run is measuring the wrong thing. */
async function checkServer(origin: string, token: string, label: string): Promise<void> {
  const res = await fetch(`${origin}/me`, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(10_000) });
  const body = await res.text();
  const { sub, sid } = claimsOf(token);
  if (res.status !== 200 || body !== JSON.stringify({ sub, sid })) {
    throw new Error(`${label}: GET /me answered ${res.status} ${body.slice(0, 200)}, not 200 ${JSON.stringify({ sub, sid })}`);
  }
  const refused = await fetch(`${origin}/me`, { signal: AbortSignal.timeout(10_000) });
  await refused.arrayBuffer();
  if (refused.status !== 401) throw new Error(`${label}: GET /me without a token answered ${refused.status}, not 401`);
}

/** Worker w sends tokens[w], tokens[w + C], tokens[w + 2C], … (mod n): every token, none shared at once. */
function meStep(tokens: readonly string[], concurrency: number): Step {
  const next = new Array<number>(concurrency).fill(0);
  const headers = tokens.map((t) => ({ authorization: `Bearer ${t}` }));
  return async (worker: number, pool: Dispatcher) => {
    const k = next[worker] ?? 0;
    next[worker] = k + 1;
    const { status } = await getJson(pool, '/me', headers[(worker + k * concurrency) % headers.length]);
    return status;
  };
}

const fmt = (n: number) => (n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(1));

/**
 * Measures every framework's bare and helper servers, `repeats` times each, a fresh process per
 * window. Variants are interleaved (bare, helper on even repeats; helper, bare on odd ones, so
 * that neither always runs second) and each pair runs back to back.
 */
export async function runFrameworkHelpers(opts: FrameworkHelpersOptions): Promise<FrameworkHelperResult[]> {
  const dist = opts.tesseraDist ?? join(ROOT, 'dist');
  for (const name of ['verify', 'express', 'fastify', 'nestjs']) {
    const file = join(dist, 'resource', `${name}.js`);
    if (!existsSync(file)) throw new Error(`${file} is missing: run \`npm run build\` first`);
  }
  const input = JSON.parse(readFileSync(opts.inputFile, 'utf8')) as VerifyInput;
  if (input.tokens.length === 0) throw new Error(`${opts.inputFile} has no tokens`);
  const frameworks = opts.frameworks ?? [...FRAMEWORKS];
  const results: FrameworkHelperResult[] = [];

  for (let repeat = 0; repeat < opts.repeats; repeat++) {
    for (const framework of frameworks) {
      const variants: FrameworkVariant[] = repeat % 2 === 0 ? ['bare', 'helper'] : ['helper', 'bare'];
      for (const variant of variants) {
        const label = `${framework} (${variant}) r${repeat}`;
        const { child, origin } = await startFrameworkServer(framework, variant, opts, dist);
        let result: FrameworkHelperResult;
        try {
          await checkServer(origin, input.tokens[0]!, label);
          const meter = new CpuMeter(child.pid, false);
          const load = await runLoad({
            origin,
            concurrency: opts.concurrency,
            durationS: opts.durationS,
            warmupS: opts.warmupS,
            step: meStep(input.tokens, opts.concurrency),
            onWindow: { open: () => meter.open(), close: () => meter.close() },
          });
          if (child.crashed()) throw new Error(`${label}: the server crashed (see ${opts.logFile})`);
          result = { framework, variant, repeat, load, cpu: meter.result };
        } finally {
          await stop(child);
        }
        results.push(result);
        const { load, cpu } = result;
        const per = (ms: number | undefined) => (ms === undefined || load.completed === 0 ? '–' : fmt((ms * 1000) / load.completed));
        opts.log(
          `  [helpers] ${framework.padEnd(8)} ${variant.padEnd(7)} r${repeat}: ` +
            `${fmt(load.okThroughput).padStart(6)} req/s  p50 ${load.latency.p50.toFixed(2)}  p99 ${load.latency.p99.toFixed(2)} ms  errors ${load.errors}` +
            `${load.errors > 0 ? ` ${JSON.stringify(load.statuses)}` : ''}` +
            `  | µs/req server ${per(cpu?.serverMs)} loadgen ${per(cpu?.loadGeneratorMs)}  other ${cpu ? fmt((100 * cpu.otherMs) / cpu.wallMs) : '–'}%`,
        );
      }
    }
  }
  return results;
}

async function stop(child: Child): Promise<void> {
  await child.stop(5_000);
}

