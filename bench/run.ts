import { execFile, spawn } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, release, tmpdir, totalmem, type } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import { hash as argon2Hash, verify as argon2Verify } from '@node-rs/argon2';
import pg from 'pg';
import { Pool } from 'undici';
import { ARGON2_PARAMS } from '../src/auth/password-hasher.js';
import { getJson, postJson, runLoad, type Step } from './lib/load.js';
import { CpuMeter, freePort, rssMiB, sampleRss, startChild, stopAllChildren, type Child } from './lib/processes.js';
import {
  fmt, median, ratios, renderMarkdown, summarise, tableLabel, type BackendKind, type Machine, type RunRecord,
} from './lib/report.js';
import { loginStep } from './scenarios/login.js';
import { protectedStep } from './scenarios/protected.js';
import { refreshStep, signIn, TokenRing, type Chains } from './scenarios/refresh.js';
import { runFrameworkHelpers } from './scenarios/framework-helpers.js';
import { ensurePeersInstalled, PEERS, type Peer } from './scenarios/peers.js';
import { runVerifyLoop, type VerifyInput } from './scenarios/verify.js';
import { workerEmail } from './seed.js';

/**
 * `npm run bench` (full) and `npm run bench:smoke`: Tessera against the physical floor,
 * on the machine's PostgreSQL and on the embedded PGlite. See docs/benchmarks.md.
 *
 * Every measured run starts its own server process (Tessera from dist/, or the floor),
 * warms it up, measures one window and stops it; repeats are interleaved (Tessera,
 * floor, Tessera, floor, …) so that drift in the machine's load hits both alike.
 */

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const PASSWORD = 'bench-password-not-a-secret';
const FLOOR_ONE = 'floor:one-statement';
const FLOOR_TWO = 'floor:read-update';
const QUIET = 'tessera, LOG_LEVEL=warn';
type FloorMode = 'one-statement' | 'read-update';
const exec = promisify(execFile);

interface Options {
  mode: 'full' | 'smoke';
  backends: BackendKind[];
  pgUrl: string;
  repeats: number;
  durationS: number;
  warmupS: number;
  concurrency: number;
  tables: number[];
  spu: number[];
  floors: FloorMode[];
  floorAtEveryTable: boolean;
  loginDurationS: number;
  flood: { concurrency: number; durationS: number };
  verifySeconds: number;
  only: Set<string>;
  profile: boolean;
  /** Also measure the peers (bench/peers/: better-auth and a hand-rolled server) on PostgreSQL. */
  peers: boolean;
  /** Start-ups measured per backend. */
  starts: number;
  out: string;
  /** Where Tessera's built code is: dist/, or an experimental build to compare against it. */
  tesseraDist: string;
  /** Another build of Tessera measured beside this one in the refresh and protected scenarios (a change's "before"). */
  before?: string;
  /** A results.json to summarise again (after a change to the report), instead of measuring. */
  rerender?: string;
}

function parseOptions(): Options {
  const { values } = parseArgs({
    options: {
      smoke: { type: 'boolean', default: false },
      backends: { type: 'string' },
      'pg-url': { type: 'string' },
      repeats: { type: 'string' },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      concurrency: { type: 'string' },
      tables: { type: 'string' },
      spu: { type: 'string' },
      only: { type: 'string' },
      floors: { type: 'string' },
      'tessera-dist': { type: 'string' },
      before: { type: 'string' },
      rerender: { type: 'string' },
      profile: { type: 'boolean', default: false },
      peers: { type: 'boolean', default: false },
      out: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(
      'Usage: node --import tsx bench/run.ts [--smoke] [--backends postgres,pglite] [--pg-url URL] [--repeats N]\n' +
        '  [--duration S] [--warmup S] [--concurrency C] [--tables 1000,100000,1000000] [--spu 1,10,100]\n' +
        '  [--only refresh,protected,verify,helpers,scaling,login,flood,startup] [--floors one-statement,read-update] [--profile] [--out DIR]\n' +
        '  [--peers]   also measure better-auth and a hand-rolled Express server (bench/peers/, installed on first use) on PostgreSQL\n' +
        '  [--tessera-dist DIR]   run Tessera from another build (an experiment) instead of dist/\n' +
        '  [--before DIR]   also measure another build (a copy of dist/ before a change) in refresh and protected\n' +
        '  [--rerender results.json]   summarise a finished run again, measuring nothing\n' +
        '--profile writes a .cpuprofile of the server of every measured run into OUT/profiles (bench/profile-summary.ts reads them).\n' +
        'FLOOR_PREPARED=0 in the environment makes the floor send unnamed statements, as Kysely does.\n' +
        'DATABASE_POOLER=transaction in the environment runs Tessera on PostgreSQL without named statements.\n',
    );
    process.exit(0);
  }
  const smoke = values.smoke;
  const list = (raw: string | undefined, fallback: number[]) => (raw ? raw.split(',').map(Number) : fallback);
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  return {
    mode: smoke ? 'smoke' : 'full',
    backends: (values.backends ?? 'postgres,pglite').split(',').map((b) => b.trim()) as BackendKind[],
    pgUrl: values['pg-url'] ?? process.env.BENCH_DATABASE_URL ?? process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test',
    repeats: Number(values.repeats ?? (smoke ? 1 : 3)),
    durationS: Number(values.duration ?? (smoke ? 1.5 : 10)),
    warmupS: Number(values.warmup ?? (smoke ? 0.5 : 3)),
    concurrency: Number(values.concurrency ?? 16),
    tables: list(values.tables, smoke ? [1_000, 10_000] : [1_000, 100_000, 1_000_000]),
    spu: list(values.spu, [1, 10, 100]),
    floors: (values.floors !== undefined ? values.floors.split(',').filter(Boolean) : smoke ? ['one-statement'] : ['one-statement', 'read-update']) as FloorMode[],
    floorAtEveryTable: !smoke,
    loginDurationS: smoke ? 1.5 : 10,
    flood: smoke ? { concurrency: 128, durationS: 2 } : { concurrency: 256, durationS: 10 },
    verifySeconds: smoke ? 1 : 5,
    only: new Set((values.only ?? 'refresh,protected,verify,helpers,scaling,login,flood,startup').split(',')),
    profile: values.profile,
    peers: values.peers,
    starts: smoke ? 2 : 5,
    tesseraDist: values['tessera-dist'] ?? join(ROOT, 'dist'),
    ...(values.rerender ? { rerender: values.rerender } : {}),
    ...(values.before ? { before: values.before } : {}),
    out: values.out ?? join(ROOT, 'test-artifacts', 'bench', `${stamp}-${smoke ? 'smoke' : 'full'}`),
  };
}

interface Backend {
  kind: BackendKind;
  origin: string;
  publicUrl: string;
  env: NodeJS.ProcessEnv;
  seedArgs: string[];
  sessions: number;
  logFile: string;
  cleanup(): Promise<void>;
}

const records: RunRecord[] = [];
const problems: string[] = [];
let options: Options;
let machine: Machine;
/** The backend being measured, so that an interrupt can still drop its schema or directory. */
let current: Backend | undefined;

function log(line: string): void {
  process.stdout.write(`${line}\n`);
}

async function pgAdmin(url: string, statement: string): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await client.query(statement);
  } finally {
    await client.end();
  }
}

/** A signing key that Tessera (SIGNING_KEYS) and the floor share, so their tokens are interchangeable. */
function signingKeys(): string {
  const { privateKey } = generateKeyPairSync('ed25519');
  const jwk = privateKey.export({ format: 'jwk' });
  return JSON.stringify({ keys: [{ kty: 'OKP', crv: 'Ed25519', x: jwk.x, d: jwk.d, kid: `bench-${randomBytes(4).toString('hex')}` }] });
}

async function openBackend(kind: BackendKind, outDir: string): Promise<Backend> {
  const port = await freePort();
  const publicUrl = `http://127.0.0.1:${port}`;
  const dataDir = mkdtempSync(join(tmpdir(), 'tessera-bench-'));
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    NODE_ENV: 'production',
    PORT: String(port),
    HOST: '127.0.0.1',
    PUBLIC_URL: publicUrl,
    DATA_DIR: dataDir,
    TESSERA_SECRET: randomBytes(48).toString('base64url'),
    SIGNING_KEYS: signingKeys(),
    // The one departure from the defaults: each worker refreshes its own session hundreds of
    // times a second, which is exactly what the per-session limit exists to stop.
    RATE_LIMITS: 'off',
    ...(process.env.FLOOR_PREPARED ? { FLOOR_PREPARED: process.env.FLOOR_PREPARED } : {}),
    // DATABASE_POOLER=transaction: Tessera without named statements, as behind PgBouncer (postgres only)
    ...(process.env.DATABASE_POOLER && kind === 'postgres' ? { DATABASE_POOLER: process.env.DATABASE_POOLER } : {}),
  };
  const logFile = join(outDir, `${kind}-servers.log`);
  if (kind === 'postgres') {
    const schema = `tessera_bench_${randomBytes(6).toString('hex')}`;
    await pgAdmin(options.pgUrl, `create schema ${schema}`);
    // Every process names the run's schema in its statements (DATABASE_SCHEMA), as a deployment would.
    env.DATABASE_URL = options.pgUrl;
    env.DATABASE_SCHEMA = schema;
    return {
      kind, origin: publicUrl, publicUrl, env, logFile, sessions: 0,
      seedArgs: ['--url', options.pgUrl, '--schema', schema],
      async cleanup() {
        await pgAdmin(options.pgUrl, `drop schema if exists ${schema} cascade`).catch((e: Error) => problems.push(`could not drop schema ${schema}: ${e.message}`));
        rmSync(dataDir, { recursive: true, force: true });
      },
    };
  }
  return {
    kind, origin: publicUrl, publicUrl, env, logFile, sessions: 0,
    seedArgs: ['--data-dir', dataDir],
    async cleanup() {
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

async function seed(backend: Backend, args: string[]): Promise<void> {
  const started = performance.now();
  const { stdout } = await exec(process.execPath, ['--import', 'tsx', join(ROOT, 'bench/seed.ts'), ...backend.seedArgs, ...args], {
    cwd: ROOT,
    maxBuffer: 1 << 20,
  });
  const result = JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as { sessions: number; added: number };
  backend.sessions = result.sessions;
  log(`  [${backend.kind}] seed ${args.filter((a) => !a.startsWith('$argon2')).join(' ')} → ${fmt(result.sessions)} sessions (${((performance.now() - started) / 1000).toFixed(1)} s)`);
}

/**
 * `tessera-quiet`: Tessera with LOG_LEVEL=warn, no request logging: the row that shows what logging costs.
 * `tessera-before`: another build (`--before DIR`), measured beside this one for a change's before/after figures.
 */
type ServerKind = 'tessera' | 'tessera-quiet' | 'tessera-before' | FloorMode;

async function startServer(backend: Backend, kind: ServerKind, profileName?: string): Promise<Child> {
  const profile = profileName ? ['--cpu-prof', `--cpu-prof-dir=${join(options.out, 'profiles')}`, `--cpu-prof-name=${profileName}.cpuprofile`] : [];
  if (kind === 'tessera' || kind === 'tessera-quiet' || kind === 'tessera-before') {
    const dist = kind === 'tessera-before' ? options.before! : options.tesseraDist;
    return startChild({
      name: 'tessera', command: process.execPath, args: [...profile, tesseraEntry(dist), 'serve'],
      env: kind === 'tessera-quiet' ? { ...backend.env, LOG_LEVEL: 'warn' } : backend.env, logFile: backend.logFile, readyUrl: `${backend.origin}/readyz`,
    });
  }
  return startChild({
    name: `floor (${kind})`, command: process.execPath, args: [...profile, '--import', 'tsx', join(ROOT, 'bench/floor/refresh-floor.ts')],
    env: { ...backend.env, FLOOR_MODE: kind }, logFile: backend.logFile, readyUrl: `${backend.origin}/readyz`,
  });
}

function serverLabel(kind: ServerKind): string {
  return kind === 'tessera' ? 'tessera' : kind === 'tessera-quiet' ? QUIET : kind === 'tessera-before' ? 'tessera:before' : `floor:${kind}`;
}

/** One measured run: start the server, warm up, measure, stop. */
async function measure(backend: Backend, spec: {
  scenario: RunRecord['scenario'];
  /** One of Tessera's or the floor's kinds, or a peer's label with its own `start` and `origin`. */
  server: ServerKind | string;
  variant: string;
  repeat: number;
  step: Step;
  concurrency?: number;
  durationS?: number;
  warmupS?: number;
  after?: (origin: string) => Promise<void>;
  start?: () => Promise<Child>;
  origin?: string;
}): Promise<RunRecord> {
  const profileName = options.profile
    ? `${backend.kind}-${spec.scenario}-${spec.server}-${spec.variant.replace(/\W+/g, '_')}-r${spec.repeat}` : undefined;
  const origin = spec.origin ?? backend.origin;
  const server = spec.start ? await spec.start() : await startServer(backend, spec.server as ServerKind, profileName);
  const meter = new CpuMeter(server.pid, backend.kind === 'postgres');
  const rss = sampleRss(server.pid, 250);
  const loadStart = loadavg();
  let record: RunRecord;
  try {
    const load = await runLoad({
      origin,
      concurrency: spec.concurrency ?? options.concurrency,
      durationS: spec.durationS ?? options.durationS,
      warmupS: spec.warmupS ?? options.warmupS,
      step: spec.step,
      onWindow: { open: () => meter.open(), close: () => meter.close() },
    });
    await spec.after?.(origin);
    record = {
      backend: backend.kind, scenario: spec.scenario, server: spec.start ? spec.server : serverLabel(spec.server as ServerKind), variant: spec.variant, repeat: spec.repeat,
      tableSessions: backend.sessions, load, cpu: meter.result, serverPeakRssMiB: Math.round(rss.stop()),
      loadAvg: { start: loadStart, end: loadavg() },
    };
  } finally {
    rss.stop();
    if (server.crashed()) problems.push(`${backend.kind}: ${server.name} crashed during ${spec.scenario} ${spec.variant}`);
    await server.stop();
  }
  records.push(record);
  const l = record.load!;
  if (l.errors > 0) problems.push(`${backend.kind}: ${record.server} ${spec.scenario} ${spec.variant}: ${l.errors} error(s) ${JSON.stringify(l.statuses)}`);
  const c = record.cpu;
  const per = (ms: number | undefined) => (ms === undefined || l.completed === 0 ? '–' : fmt((ms * 1000) / l.completed));
  log(
    `  [${backend.kind}] ${spec.scenario.padEnd(9)} ${record.server.padEnd(19)} ${spec.variant.padEnd(18)} r${spec.repeat}: ` +
      `${fmt(l.okThroughput).padStart(6)} req/s  p50 ${l.latency.p50.toFixed(2)}  p99 ${l.latency.p99.toFixed(2)} ms  errors ${l.errors}` +
      `  | µs/req server ${per(c?.serverMs)}${backend.kind === 'postgres' ? ` pg ${per(c?.postgresMs)}` : ''} loadgen ${per(c?.loadGeneratorMs)}  other ${c ? fmt((100 * c.otherMs) / c.wallMs) : '–'}%`,
  );
  saveProgress();
  return record;
}

async function withTessera<T>(backend: Backend, fn: (origin: string) => Promise<T>): Promise<T> {
  const server = await startServer(backend, 'tessera');
  try {
    return await fn(backend.origin);
  } finally {
    await server.stop();
  }
}

function emails(group: string): string[] {
  return Array.from({ length: options.concurrency }, (_, i) => workerEmail(group, i));
}

/** Median time of one argon2id verification with Tessera's parameters, on an idle event loop. */
async function hashTimeMs(passwordHash: string): Promise<number> {
  for (let i = 0; i < 3; i++) await argon2Verify(passwordHash, PASSWORD);
  const times: number[] = [];
  for (let i = 0; i < 15; i++) {
    const t = performance.now();
    await argon2Verify(passwordHash, PASSWORD);
    times.push(performance.now() - t);
  }
  return median(times);
}

/**
 * Verifications per second with one per core running at once (Tessera's hashing pool is
 * that size): argon2id is memory-hard, so on a machine whose cores share a cache and memory
 * bandwidth this is less than cores ÷ one hash's time.
 */
async function parallelHashRate(passwordHash: string, seconds = 3): Promise<number> {
  let done = 0;
  const start = performance.now();
  const end = start + seconds * 1000;
  await Promise.all(
    Array.from({ length: availableParallelism() }, async () => {
      while (performance.now() < end) {
        await argon2Verify(passwordHash, PASSWORD);
        done++;
      }
    }),
  );
  return done / ((performance.now() - start) / 1000);
}

let hashMs: number | undefined;
let hashRate: number | undefined;
const floodRecords: RunRecord[] = [];

async function benchBackend(kind: BackendKind, passwordHash: string, verifyDone: { done: boolean }): Promise<void> {
  log(`\n== ${kind} ==`);
  const backend = await openBackend(kind, options.out);
  current = backend;
  try {
    const R = options.repeats;
    const [baseTable = 1_000, ...biggerTables] = options.tables;
    const groups = options.spu.map((n) => ({ n, name: `g${n}`, emails: emails(`g${n}`) }));
    const base = groups[0]!;
    const ring = new TokenRing(1_000);
    let jwks: VerifyInput['jwks'] | undefined;

    // Users for every group; filler up to the base table size less the sessions about to be signed in.
    await seed(backend, [
      '--migrate', '--password-hash', passwordHash,
      ...groups.flatMap((g) => ['--workers', `${g.name}:${options.concurrency}`]),
      '--grow', String(Math.max(0, baseTable - options.concurrency)), '--vacuum',
    ]);
    const chains = new Map<string, Chains>();
    chains.set(base.name, await withTessera(backend, (origin) => signIn(origin, base.name, base.emails, PASSWORD)));
    backend.sessions += options.concurrency;
    const baseChains = chains.get(base.name)!;
    const baseVariant = tableLabel(baseTable);

    // Refresh and protected route, each against its floor, interleaved.
    if (options.only.has('refresh') || options.only.has('protected')) {
      for (let r = 1; r <= R; r++) {
        // The servers take turns, and the order turns with each repeat, so that neither drift
        // in the machine's load nor a place in the sequence favours one of them.
        const turn = <T>(list: T[]) => list.map((_, i) => list[(i + r - 1) % list.length]!);
        if (options.only.has('refresh')) {
          // Quiet: what request logging costs, the same server with only warnings logged.
          const servers: ServerKind[] = ['tessera', ...options.floors, 'tessera-quiet', ...(options.before ? ['tessera-before' as const] : [])];
          for (const server of turn(servers)) {
            await measure(backend, {
              scenario: 'refresh', server, variant: baseVariant, repeat: r,
              // Tessera's own tokens feed the verify-only scenario: the ring, and its JWKS.
              step: server === 'tessera' ? refreshStep(baseChains, ring) : refreshStep(baseChains),
              after: server === 'tessera' ? async (origin) => {
                const pool = new Pool(origin);
                jwks = (await getJson(pool, '/.well-known/jwks.json')).json as VerifyInput['jwks'];
                await pool.close();
              } : undefined,
            });
          }
        }
        if (options.only.has('protected')) {
          // The access tokens of the last refreshes; they are valid for ACCESS_TOKEN_TTL (15 min).
          const servers: ServerKind[] = ['tessera', 'one-statement', ...(options.before ? ['tessera-before' as const] : [])];
          for (const server of turn(servers)) {
            await measure(backend, { scenario: 'protected', server, variant: baseVariant, repeat: r, step: protectedStep(baseChains) });
          }
        }
      }
    }

    // Verify only and the framework helpers: no database, so once per harness run, with the tokens just issued.
    if ((options.only.has('verify') || options.only.has('helpers')) && !verifyDone.done && jwks && ring.tokens.length > 0) {
      verifyDone.done = true;
      const input: VerifyInput = { jwks, tokens: ring.tokens, issuer: backend.publicUrl, audience: backend.publicUrl, ttl: 900 };
      const file = join(options.out, 'verify-input.json');
      writeFileSync(file, JSON.stringify(input));
      log(`\n  verify only: ${input.tokens.length} distinct access tokens, JWKS of ${input.jwks.keys.length} key(s)`);
      for (let r = 1; r <= R && options.only.has('verify'); r++) {
        for (const [impl, server, c] of [['tessera', 'tessera', options.concurrency], ['floor', 'floor:node-crypto', 1], ['tessera', 'tessera', 1]] as const) {
          if (c === 1 && impl === 'tessera' && r > 1) continue;
          const loadStart = loadavg();
          const verify = await runVerifyLoop(impl, file, options.verifySeconds, c, options.tesseraDist);
          records.push({ backend: 'none', scenario: 'verify', server, variant: `C=${c}`, repeat: r, verify, loadAvg: { start: loadStart, end: loadavg() } });
          if (verify.failures > 0) problems.push(`verify ${server}: ${verify.failures} token(s) did not verify`);
          log(`  [none] verify    ${server.padEnd(19)} C=${String(c).padEnd(16)} r${r}: ${fmt(verify.opsPerS).padStart(6)} verifications/s  failures ${verify.failures}`);
        }
      }
      if (options.only.has('helpers')) {
        log('\n  framework helpers: GET /me behind tessera/express, tessera/fastify, tessera/nestjs against the bare framework calling tessera/verify');
        const loadStart = loadavg();
        for (const result of await runFrameworkHelpers({
          inputFile: file, repeats: R, durationS: options.durationS, warmupS: options.warmupS, concurrency: options.concurrency,
          logFile: join(options.out, 'framework-servers.log'), log, tesseraDist: options.tesseraDist,
        })) {
          records.push({
            backend: 'none', scenario: 'helpers', server: `${result.framework}:${result.variant}`, variant: `C=${options.concurrency}`,
            repeat: result.repeat, load: result.load, cpu: result.cpu, loadAvg: { start: loadStart, end: loadavg() },
          });
          if (result.load.errors > 0) problems.push(`${result.framework} ${result.variant}: ${result.load.errors} error(s) ${JSON.stringify(result.load.statuses)}`);
        }
      }
      saveProgress();
    }

    if (options.peers && backend.kind === 'postgres' && (options.only.has('refresh') || options.only.has('protected'))) await peers(backend, R, baseVariant);

    // Sessions per user: the other groups' extra sessions, seeded with SQL; their workers sign in.
    if (options.only.has('scaling') && groups.length > 1) {
      await seed(backend, [...groups.filter((g) => g.n > 1).flatMap((g) => ['--extra', `${g.name}:${options.concurrency}:${g.n - 1}`]), '--vacuum']);
      await withTessera(backend, async (origin) => {
        for (const g of groups.slice(1)) chains.set(g.name, await signIn(origin, g.name, g.emails, PASSWORD));
      });
      backend.sessions += options.concurrency * (groups.length - 1);
      for (let r = 1; r <= R; r++) {
        for (const g of groups) {
          await measure(backend, { scenario: 'refresh', server: 'tessera', variant: `${g.n} sessions/user`, repeat: r, step: refreshStep(chains.get(g.name)!) });
        }
      }
    }

    // Table size: filler up to each size, then the base group's workers again.
    if (options.only.has('scaling')) {
      for (const size of biggerTables) {
        await seed(backend, ['--password-hash', passwordHash, '--grow', String(size), '--vacuum']);
        for (let r = 1; r <= R; r++) {
          await measure(backend, { scenario: 'refresh', server: 'tessera', variant: tableLabel(size), repeat: r, step: refreshStep(baseChains) });
          if (options.floorAtEveryTable) {
            await measure(backend, { scenario: 'refresh', server: 'one-statement', variant: tableLabel(size), repeat: r, step: refreshStep(baseChains) });
          }
        }
      }
    }

    // Login, bound by argon2; then the flood.
    if (options.only.has('login')) {
      hashMs ??= await hashTimeMs(passwordHash);
      hashRate ??= await parallelHashRate(passwordHash, options.mode === 'smoke' ? 1 : 3);
      log(
        `  one argon2id verification: ${hashMs.toFixed(1)} ms → cores ÷ hash time = ${fmt((availableParallelism() * 1000) / hashMs)} logins/s on ${availableParallelism()} cores; ` +
          `measured with ${availableParallelism()} at once: ${fmt(hashRate)} verifications/s`,
      );
      for (let r = 1; r <= R; r++) {
        await measure(backend, {
          scenario: 'login', server: 'tessera', variant: 'correct password', repeat: r, step: loginStep(base.emails, PASSWORD),
          durationS: options.loginDurationS, warmupS: Math.min(2, options.warmupS),
        });
      }
    }
    if (options.only.has('flood')) await flood(backend, base.emails);
    if (options.only.has('startup')) await startup(backend);
  } finally {
    await stopAllChildren();
    await backend.cleanup();
    current = undefined;
  }
}

/**
 * The peers (bench/peers/): better-auth and a seed-style hand-rolled server, each in a schema
 * of its own on the same PostgreSQL, each user signed in through its API, then refresh and
 * the protected route measured like Tessera's, the peers taking turns.
 */
async function peers(backend: Backend, repeats: number, variant: string): Promise<void> {
  await ensurePeersInstalled(log);
  const prepared: { peer: Peer; schema: string; port: number; chains: Awaited<ReturnType<Peer['signIn']>> }[] = [];
  try {
    for (const peer of PEERS) {
      const schema = `${backend.env.DATABASE_SCHEMA}_${peer.name.replace(/\W/g, '_')}`;
      await pgAdmin(options.pgUrl, `create schema ${schema}`);
      const port = await freePort();
      prepared.push({ peer, schema, port, chains: undefined as never });
      await peer.migrate(options.pgUrl, schema);
      const server = await startPeer(peer, schema, port);
      try {
        prepared.at(-1)!.chains = await peer.signIn(`http://127.0.0.1:${port}`, emails('peer'), PASSWORD);
      } finally {
        await server.stop();
      }
      log(`  [postgres] ${peer.label}: refresh is ${peer.describes.refresh}; protected is ${peer.describes.protected}`);
    }
    for (let r = 1; r <= repeats; r++) {
      for (const { peer, schema, port, chains } of prepared) {
        for (const scenario of ['refresh', 'protected'] as const) {
          if (!options.only.has(scenario)) continue;
          await measure(backend, {
            scenario, server: peer.label, variant, repeat: r,
            step: scenario === 'refresh' ? peer.refreshStep(chains) : peer.protectedStep(chains),
            start: () => startPeer(peer, schema, port), origin: `http://127.0.0.1:${port}`,
          });
        }
      }
    }
  } finally {
    for (const { schema } of prepared) {
      await pgAdmin(options.pgUrl, `drop schema if exists ${schema} cascade`).catch((e: Error) => problems.push(`could not drop schema ${schema}: ${e.message}`));
    }
  }
}

function startPeer(peer: Peer, schema: string, port: number): Promise<Child> {
  const spec = peer.server({ port, databaseUrl: options.pgUrl, schema, baseEnv: { PATH: process.env.PATH, HOME: process.env.HOME, NODE_ENV: 'production' } });
  return startChild({ name: peer.label, command: spec.command, args: spec.args, env: spec.env, logFile: join(options.out, 'peers.log'), readyUrl: `http://127.0.0.1:${port}${spec.readyPath}` });
}

/**
 * Start-up: \`tessera serve\` to its ready line, which says where the time went. PostgreSQL:
 * the bench's schema, migrated already; PGlite: a fresh data directory each time, as at first start.
 */
async function startup(backend: Backend): Promise<void> {
  for (let r = 1; r <= options.starts; r++) {
    const dataDir = backend.kind === 'pglite' ? mkdtempSync(join(tmpdir(), 'tessera-bench-start-')) : undefined;
    const env = { ...backend.env, ...(dataDir ? { DATA_DIR: dataDir } : {}) };
    const began = performance.now();
    const child = spawn(process.execPath, [tesseraEntry(options.tesseraDist), 'serve'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      const line = await new Promise<string>((resolve, reject) => {
        let output = '';
        const timer = setTimeout(() => reject(new Error(`not ready within 30 s:\n${output}`)), 30_000);
        child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
          output += chunk;
          const ready = output.split('\n').find((l) => l.includes('Tessera is ready'));
          if (ready) {
            clearTimeout(timer);
            resolve(ready);
          }
        });
        child.once('exit', (code) => reject(new Error(`exited (${code}) before it was ready:\n${output}`)));
      });
      const ms = performance.now() - began;
      const parts = Object.fromEntries([...line.matchAll(/(Node and modules|database and migrations|keys and routes|listening) ([\d.]+)/g)].map((m) => [m[1]!, Number(m[2]) * 1000]));
      const variant = dataDir ? 'fresh data directory' : 'migrated schema';
      records.push({ backend: backend.kind, scenario: 'startup', server: 'tessera', variant, repeat: r, loadAvg: { start: loadavg(), end: loadavg() }, extra: { ms, parts } });
      log(`  [${backend.kind}] startup   tessera             ${variant.padEnd(18)} r${r}: ${fmt(ms)} ms to the ready line (${Object.entries(parts).map(([k, v]) => `${k} ${fmt(v)}`).join(', ')})`);
    } finally {
      child.kill('SIGTERM');
      await new Promise((resolve) => (child.exitCode === null ? child.once('exit', resolve) : resolve(undefined)));
      if (dataDir) rmSync(dataDir, { recursive: true, force: true });
    }
  }
  saveProgress();
}

/**
 * Login flood: far more concurrent sign-ins than the hashing pool takes. Expected: fast
 * 503s past the queue, bounded memory, and a healthy server that signs people in afterwards.
 */
async function flood(backend: Backend, users: string[]): Promise<void> {
  const server = await startServer(backend, 'tessera');
  const meter = new CpuMeter(server.pid, backend.kind === 'postgres');
  const loadStart = loadavg();
  const rssBeforeMiB = rssMiB(server.pid);
  const rss = sampleRss(server.pid, 50);
  try {
    const load = await runLoad({
      origin: backend.origin, concurrency: options.flood.concurrency, durationS: options.flood.durationS, warmupS: 0,
      step: loginStep(users, PASSWORD), onWindow: { open: () => meter.open(), close: () => meter.close() },
    });
    const peak = rss.stop();
    // Afterwards: alive, live, and a real sign-in works within a few seconds.
    const pool = new Pool(backend.origin);
    const health = await getJson(pool, '/healthz').catch(() => ({ status: 0 }));
    const started = performance.now();
    let login = 0;
    for (let i = 0; i < 10 && login !== 200; i++) {
      login = (await postJson(pool, '/auth/login', { email: users[0], password: PASSWORD, transport: 'body' }).catch(() => ({ status: 0 }))).status;
    }
    const loginMs = performance.now() - started;
    await pool.close();
    const unexpected = Object.entries(load.statuses).filter(([k]) => k !== '200' && k !== '503').reduce((n, [, v]) => n + v, 0);
    const healthy = !server.crashed() && health.status === 200 && login === 200;
    const record: RunRecord = {
      backend: backend.kind, scenario: 'flood', server: 'tessera', variant: `C=${options.flood.concurrency}`, repeat: 1,
      tableSessions: backend.sessions, load, cpu: meter.result, serverPeakRssMiB: Math.round(peak), loadAvg: { start: loadStart, end: loadavg() },
      extra: { healthy, healthz: health.status, loginAfter: login, loginAfterMs: Math.round(loginMs), rssBeforeMiB: Math.round(rssBeforeMiB), rssAfterMiB: Math.round(rssMiB(server.pid)), unexpected },
    };
    records.push(record);
    floodRecords.push(record);
    if (!healthy) problems.push(`${backend.kind}: the server was not healthy after the login flood (${JSON.stringify(record.extra)})`);
    if (unexpected > 0) problems.push(`${backend.kind}: login flood got statuses other than 200 and 503: ${JSON.stringify(load.statuses)}`);
    const s503 = load.latencyByStatus['503'];
    log(
      `  [${backend.kind}] flood     tessera             C=${options.flood.concurrency}: ${Object.entries(load.statuses).map(([k, v]) => `${k}×${v}`).join(' ')}` +
        `  503 p50 ${s503?.p50 ?? '–'} p99 ${s503?.p99 ?? '–'} ms  RSS ${Math.round(rssBeforeMiB)} → peak ${Math.round(peak)} MiB  healthy ${healthy}`,
    );
  } finally {
    rss.stop();
    await server.stop();
    saveProgress();
  }
}

function context() {
  return {
    hashMs, hashRate, cores: availableParallelism(), baseTable: tableLabel(options.tables[0] ?? 1_000), spu: options.spu,
    tables: options.tables, flood: floodRecords, verifyConcurrency: options.concurrency,
    startup: records.filter((r) => r.scenario === 'startup'),
  };
}

function saveProgress(): void {
  const summaries = summarise(records);
  const ratioList = ratios(summaries, context());
  writeFileSync(join(options.out, 'results.json'), JSON.stringify({ machine, options: { ...options, only: [...options.only] }, hashMs, hashRate, summaries, ratios: ratioList, records, problems }, null, 2));
  writeFileSync(join(options.out, 'results.md'), renderMarkdown(machine, summaries, ratioList, { ...options, baseTable: tableLabel(options.tables[0] ?? 1_000) }));
}

/** Re-summarises a finished run's records with the current report code. */
function rerender(file: string): number {
  const saved = JSON.parse(readFileSync(file, 'utf8')) as { machine: Machine; options: Options & { only: string[] }; hashMs?: number; hashRate?: number; records: RunRecord[]; problems: string[] };
  options = { ...saved.options, only: new Set(saved.options.only), out: join(file, '..') };
  machine = saved.machine;
  hashMs = saved.hashMs;
  hashRate = saved.hashRate;
  records.push(...saved.records);
  floodRecords.push(...saved.records.filter((r) => r.scenario === 'flood'));
  problems.push(...saved.problems);
  saveProgress();
  log(readFileSync(join(options.out, 'results.md'), 'utf8'));
  return 0;
}

async function main(): Promise<number> {
  options = parseOptions();
  if (options.rerender) return rerender(options.rerender);
  mkdirSync(join(options.out, 'profiles'), { recursive: true });
  if (!existsSync(tesseraEntry(options.tesseraDist))) throw new Error(`${options.tesseraDist}/cli/main.js is missing: run \`npm run build\` first (npm run bench does)`);
  const pgliteVersion = (/"version":\s*"([^"]+)"/.exec(readFileSync(join(ROOT, 'node_modules/@electric-sql/pglite/package.json'), 'utf8')))?.[1];
  machine = {
    cores: availableParallelism(),
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    os: `${type()} ${release()}`,
    ...(options.backends.includes('pglite') ? { pglite: pgliteVersion } : {}),
    startedAt: new Date().toISOString(),
    loadAvgStart: loadavg(),
    note: 'The server under test, the load generator and PostgreSQL share these cores; nothing is pinned.',
  };
  if (options.backends.includes('postgres')) {
    machine.postgres = String((await pgAdmin(options.pgUrl, 'show server_version')).rows[0]?.server_version ?? '?');
  }
  log(`Tessera bench (${options.mode}): ${machine.cores} cores, Node ${machine.node}${machine.postgres ? `, PostgreSQL ${machine.postgres}` : ''}; results in ${options.out}`);
  log(`C=${options.concurrency}, ${options.durationS} s windows after ${options.warmupS} s warm-up, ${options.repeats} repeat(s); load average ${machine.loadAvgStart.map((x) => x.toFixed(2)).join(' ')}`);

  const passwordHash = await argon2Hash(PASSWORD, ARGON2_PARAMS);
  const verifyDone = { done: false };
  for (const kind of options.backends) {
    try {
      await benchBackend(kind, passwordHash, verifyDone);
    } catch (error) {
      problems.push(`${kind}: ${(error as Error).stack ?? error}`);
      log(`  [${kind}] FAILED: ${(error as Error).message}`);
    }
  }
  machine.loadAvgEnd = loadavg();
  machine.finishedAt = new Date().toISOString();
  saveProgress();
  log(`\n${readFileSync(join(options.out, 'results.md'), 'utf8')}`);
  if (problems.length) {
    log(`Problems (${problems.length}):`);
    for (const p of problems) log(`  - ${p}`);
  }
  log(`Results: ${join(options.out, 'results.json')} and results.md`);
  return problems.length ? 1 : 0;
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    log(`\n${signal}: stopping servers and dropping the run's schema or data directory`);
    void stopAllChildren()
      .then(() => current?.cleanup())
      .finally(() => process.exit(130));
  });
}

main().then(
  (code) => process.exit(code),
  async (error) => {
    process.stderr.write(`bench: ${(error as Error).stack ?? error}\n`);
    await stopAllChildren();
    process.exit(1);
  },
);


/** The CLI of a build: dist/cli/main.js, or dist/cli.js in builds from before the CLI had its own folder. */
function tesseraEntry(dist: string): string {
  const current = join(dist, 'cli', 'main.js');
  return existsSync(current) || !existsSync(join(dist, 'cli.js')) ? current : join(dist, 'cli.js');
}
