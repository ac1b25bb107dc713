/**
 * The CLI as a person meets it: the built `node dist/cli/main.js` (so `npm run build` first)
 * as a child process on a PGlite data directory of its own. Plain text for people, never
 * pino's JSON; an unknown command named; `migrate` saying what it did; and an embedded data
 * directory that a running server holds refused to every other process, instead of a change
 * that prints success and is lost.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MIGRATIONS } from '../../src/store/database.js';
import { TEST_SECRET } from '../helpers/app.js';

const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
const MIGRATION_COUNT = Object.keys(MIGRATIONS).length;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function tessera(args: string[], env: Record<string, string>): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH ?? '', TESSERA_SECRET: TEST_SECRET, ...env } }, (error, stdout, stderr) => {
      resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr });
    });
  });
}

/** No line of pino's JSON: CLI output is for people. */
function expectPlainText(run: Run) {
  for (const line of `${run.stdout}${run.stderr}`.split('\n')) expect(line).not.toMatch(/^\s*\{/);
}

/** `tessera serve` on `dataDir` with PORT=0, resolved once it says it is ready. */
async function startServer(dataDir: string): Promise<{ child: ChildProcess; output: () => string; exited: Promise<number | null> }> {
  const child = spawn(process.execPath, [CLI, 'serve'], {
    env: { PATH: process.env.PATH ?? '', TESSERA_SECRET: TEST_SECRET, DATA_DIR: dataDir, PORT: '0', HOST: '127.0.0.1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the server was not ready within 45 s:\n${output}`)), 45_000);
    child.stdout!.on('data', () => {
      if (output.includes('Tessera is ready')) {
        clearTimeout(timer);
        resolve();
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`the server exited (${code}) before it was ready:\n${output}`));
    });
  });
  return { child, output: () => output, exited };
}

let dir: string;
beforeAll(async () => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first`);
  dir = await mkdtemp(join(tmpdir(), 'tessera-cli-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('tessera <command>', () => {
  it('names an unknown command, then prints the usage, and exits 2', async () => {
    const run = await tessera(['frob'], { DATA_DIR: join(dir, 'unused') });
    expect(run.code).toBe(2);
    expect(run.stdout).toBe('');
    expect(run.stderr).toMatch(/^tessera: unknown command "frob"\n\nUsage: tessera <command>\n/);
    expect(existsSync(join(dir, 'unused'))).toBe(false);
  });

  it('says which arguments of a known command are wrong', async () => {
    const run = await tessera(['users', 'enable'], { DATA_DIR: join(dir, 'unused') });
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/^tessera: wrong arguments for "users enable"\n\nUsage:/);
  });

  it('prints the usage on stdout and exits 0 when asked for help', async () => {
    const run = await tessera(['--help'], {});
    expect(run).toMatchObject({ code: 0, stderr: '' });
    expect(run.stdout).toMatch(/^Usage: tessera <command>/);
  });
});

describe('tessera migrate', () => {
  it('lists the migrations it applied, then says the database is up to date; run again, only that', async () => {
    const env = { DATA_DIR: join(dir, 'migrate') };
    const first = await tessera(['migrate'], env);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toBe(
      `${Object.keys(MIGRATIONS).map((name) => `applied ${name}\n`).join('')}the database is up to date (${MIGRATION_COUNT} migrations)\n`,
    );
    const again = await tessera(['migrate'], env);
    expect(again).toMatchObject({ code: 0, stdout: `the database is up to date (${MIGRATION_COUNT} migrations)\n` });
    expectPlainText(first);
    expectPlainText(again);
  });

  it('explains a database it cannot reach, as text, without the password', async () => {
    const run = await tessera(['migrate'], { DATABASE_URL: 'postgres://someone:hunter2-secret@127.0.0.1:1/tessera' });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('tessera: cannot open the database (PostgreSQL at 127.0.0.1:1/tessera): nothing listens at 127.0.0.1:1 (ECONNREFUSED)');
    expect(run.stderr).not.toContain('hunter2');
    expectPlainText(run);
  });
});

describe('an embedded data directory held by a running server', () => {
  it('is refused to `users enable` and to a second `serve` while the server runs, and works once it stopped', async () => {
    const dataDir = join(dir, 'held');
    const env = { DATA_DIR: dataDir };
    const server = await startServer(dataDir);
    try {
      expect(existsSync(join(dataDir, 'server.pid'))).toBe(true);
      const refused = await tessera(['users', 'enable', 'x@example.com'], env);
      expect(refused.code).toBe(1);
      expect(refused.stdout).toBe('');
      expect(refused.stderr).toContain(
        `tessera: a running Tessera server (pid ${server.child.pid}) holds DATA_DIR ${dataDir}; stop it first, or use PostgreSQL (DATABASE_URL) to manage users while it runs`,
      );
      expectPlainText(refused);

      const second = await tessera(['serve'], { ...env, PORT: '0', HOST: '127.0.0.1' });
      expect(second.code).toBe(1);
      expect(second.stdout + second.stderr).toContain(`a running Tessera server (pid ${server.child.pid}) holds DATA_DIR ${dataDir}; stop it first`);
    } finally {
      server.child.kill('SIGTERM');
      expect(await server.exited).toBe(0);
    }
    expect(existsSync(join(dataDir, 'server.pid'))).toBe(false);
    const after = await tessera(['users', 'enable', 'x@example.com'], env);
    expect(after).toMatchObject({ code: 1, stdout: '', stderr: 'tessera: no user with email x@example.com\n' });
  }, 90_000);

  it('is taken over from a server that died without removing its pid file', async () => {
    const dataDir = join(dir, 'stale');
    const server = await startServer(dataDir);
    server.child.kill('SIGKILL');
    await server.exited;
    expect(existsSync(join(dataDir, 'server.pid'))).toBe(true);
    const run = await tessera(['migrate'], { DATA_DIR: dataDir });
    expect(run).toMatchObject({ code: 0, stdout: `the database is up to date (${MIGRATION_COUNT} migrations)\n` });
  }, 90_000);
});
