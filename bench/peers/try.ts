/**
 * A short end-to-end check of the peers, the way the harness will drive them:
 *
 *   node --import tsx bench/peers/try.ts [--url postgres://postgres@127.0.0.1:5432/test]
 *
 * Per peer: a fresh schema, its migration, a server to sign 16 users in, then a fresh
 * server per window (as the harness does) for 2 s of refresh and 2 s of protected at
 * concurrency 16, each stopped with SIGTERM (must exit 0); the schema is dropped at the end.
 * Exits 1 on any non-2xx, a server that did not exit 0, or a schema left behind.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { runLoad, type LoadResult, type Step } from '../lib/load.js';
import { startChild, stopAllChildren, type Child } from '../lib/processes.js';
import { ensurePeersInstalled, PEERS, type Peer } from '../scenarios/peers.js';

const { values } = parseArgs({ options: { url: { type: 'string' } } });
const databaseUrl = values.url ?? process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const USERS = 16;
const CONCURRENCY = 16;
const DURATION_S = 2;
const PASSWORD = 'correct horse battery staple';
const logDir = mkdtempSync(join(tmpdir(), 'tessera-peers-try-'));
const problems: string[] = [];

async function admin(statement: string, params: unknown[] = []): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    return await client.query(statement, params);
  } finally {
    await client.end();
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

async function start(peer: Peer, schema: string, what: string): Promise<{ child: Child; origin: string }> {
  const port = await freePort();
  const spec = peer.server({
    port,
    databaseUrl,
    schema,
    baseEnv: { PATH: process.env.PATH, HOME: process.env.HOME, NODE_ENV: 'production' },
  });
  const origin = `http://127.0.0.1:${port}`;
  const child = await startChild({
    name: `${peer.label} (${what})`,
    command: spec.command,
    args: spec.args,
    env: spec.env,
    logFile: join(logDir, `${peer.name}.log`),
    readyUrl: `${origin}${spec.readyPath}`,
    timeoutMs: 30_000,
  });
  return { child, origin };
}

async function stop(child: Child): Promise<void> {
  const { code, signal } = await child.stop(10_000);
  const ok = code === 0 && signal === null;
  console.log(`  ${child.name} stopped: exit ${signal ?? code}${ok ? '' : '  <-- not a clean exit'}`);
  if (!ok) problems.push(`${child.name} exited with ${signal ?? code}`);
}

function report(peer: Peer, scenario: string, result: LoadResult): void {
  const statuses = Object.entries(result.statuses).map(([k, v]) => `${k}×${v}`).join(' ');
  console.log(
    `  ${peer.label.padEnd(17)} ${scenario.padEnd(9)} ${result.okThroughput.toFixed(0).padStart(6)} req/s ok` +
      `  p50 ${result.latency.p50.toFixed(2)} ms  p99 ${result.latency.p99.toFixed(2)} ms  statuses ${statuses || '(none)'}  errors ${result.errors}`,
  );
  if (result.errors > 0 || result.completed === 0) problems.push(`${peer.label} ${scenario}: ${result.errors} errors of ${result.completed} (${statuses})`);
}

async function measure(peer: Peer, schema: string, scenario: string, step: Step): Promise<void> {
  const { child, origin } = await start(peer, schema, scenario);
  try {
    report(peer, scenario, await runLoad({ origin, concurrency: CONCURRENCY, durationS: DURATION_S, warmupS: 0, step }));
  } finally {
    await stop(child);
  }
}

async function tryPeer(peer: Peer): Promise<void> {
  const schema = `peers_try_${peer.name.replace('-', '_')}_${randomBytes(4).toString('hex')}`;
  console.log(`${peer.label}: schema ${schema}`);
  console.log(`  refresh   = ${peer.describes.refresh}`);
  console.log(`  protected = ${peer.describes.protected}`);
  await admin(`create schema ${schema}`);
  try {
    let t = Date.now();
    await peer.migrate(databaseUrl, schema);
    console.log(`  migrated in ${Date.now() - t} ms`);

    const emails = Array.from({ length: USERS }, (_, i) => `peer-try-${i}@example.com`);
    const first = await start(peer, schema, 'sign-in');
    t = Date.now();
    const chains = await peer.signIn(first.origin, emails, PASSWORD).finally(() => stop(first.child));
    console.log(`  signed in ${USERS} users in ${Date.now() - t} ms`);

    // A fresh server per window, as the harness does: the tokens must survive restarts.
    await measure(peer, schema, 'refresh', peer.refreshStep(chains));
    await measure(peer, schema, 'protected', peer.protectedStep(chains));
  } finally {
    await admin(`drop schema if exists ${schema} cascade`);
    const left = await admin('select 1 from pg_namespace where nspname = $1', [schema]);
    if (left.rowCount) problems.push(`schema ${schema} was not dropped`);
    else console.log(`  schema ${schema} dropped`);
  }
}

process.once('SIGINT', () => {
  void stopAllChildren().finally(() => process.exit(130));
});

try {
  let t = Date.now();
  await ensurePeersInstalled((line) => console.log(line));
  console.log(`peers installed (checked in ${Date.now() - t} ms); server logs in ${logDir}`);
  for (const peer of PEERS) await tryPeer(peer);
} catch (error) {
  problems.push((error as Error).stack ?? String(error));
} finally {
  await stopAllChildren();
}

if (problems.length > 0) {
  console.log(`\nFAILED:\n- ${problems.join('\n- ')}`);
  process.exit(1);
}
console.log('\nall peers clean: every response 2xx, every server exited 0 on SIGTERM, every schema dropped');
