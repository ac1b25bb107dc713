/**
 * The admin commands of the CLI (SPEC §9) as operators run them: the built CLI (`node
 * dist/cli/main.js`, so `npm run build` first) as a child process, on a PGlite data directory
 * or a fresh PostgreSQL schema, between which the test reads and writes the same database
 * through a `Store` (PGlite serves one process at a time: it is opened only while no command runs).
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newSession } from '../../src/auth/new-session.js';
import { loadConfig } from '../../src/core/config.js';
import { openDatabase } from '../../src/store/database.js';
import { Store } from '../../src/store/store.js';
import { FEATURE_BACKENDS, openTestStore, type Backend } from '../helpers/backends.js';
import { TEST_SECRET } from '../helpers/app.js';

const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
const ACTOR = `cli:${userInfo().username}`;
const META = { ip: '198.51.100.7', userAgent: 'Mozilla/5.0 (Windows NT 10.0) Firefox/120.0' };

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

/** Plain text for a person: no JSON log records, no stack traces. */
function expectPlainText(run: Run) {
  for (const line of `${run.stdout}${run.stderr}`.split('\n')) {
    expect(line).not.toMatch(/^\s*\{/);
    expect(line).not.toMatch(/^\s+at /);
  }
}

/** A database the CLI reaches by environment and the test through a `Store`, opened only between commands for PGlite. */
async function cliDatabase(backend: Backend, dir: string) {
  if (backend === 'pglite') {
    const dataDir = join(dir, 'data');
    return {
      dataDir,
      env: { DATA_DIR: dataDir } as Record<string, string>,
      async use<T>(body: (store: Store) => Promise<T>): Promise<T> {
        const { db } = await openDatabase({ url: undefined, dataDir });
        try {
          return await body(new Store(db));
        } finally {
          await db.destroy();
        }
      },
      close: async () => {},
    };
  }
  const test = await openTestStore(backend);
  return { dataDir: undefined, env: { DATABASE_URL: test.url!, DATABASE_SCHEMA: test.schema! } as Record<string, string>, use: <T>(body: (store: Store) => Promise<T>) => body(test.store), close: test.close };
}

const lifetimes = (() => {
  const result = loadConfig({ TESSERA_SECRET: TEST_SECRET });
  if (!result.ok) throw new Error(result.errors.join('\n'));
  return result.config;
})();

describe.each(FEATURE_BACKENDS)('tessera users and events on %s', (backend) => {
  let dir: string;
  let database: Awaited<ReturnType<typeof cliDatabase>>;
  const runs: Record<string, Run> = {};
  const tag = `cli${Date.now().toString(36)}`;
  const ada = `${tag}-ada@example.com`;
  const bob = `${tag}-bob@example.com`;
  let adaId = '';
  let cursor = '';

  beforeAll(async () => {
    if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first`);
    dir = await mkdtemp(join(tmpdir(), 'tessera-admin-cli-'));
    database = await cliDatabase(backend, dir);
    const run = (name: string, ...args: string[]) => tessera(args, database.env).then((r) => (runs[name] = r));

    await run('create', 'users', 'create', ` ${ada.toUpperCase()}`, '--name', 'Ada Lovelace', '--roles', 'editor,tessera:admin');
    adaId = /\(([0-9a-f-]{36})\)/.exec(runs.create!.stdout)?.[1] ?? '';
    await run('taken', 'users', 'create', ada);
    await run('createBob', 'users', 'create', bob);
    await run('badRole', 'users', 'create', `${tag}-x@example.com`, '--roles', 'Editor');
    await run('noEmail', 'users', 'create');
    await run('unknownFlag', 'users', 'create', `${tag}-y@example.com`, '--password', 'hunter2hunter2');

    await run('page1', 'users', 'list', '--query', tag.toUpperCase(), '--limit', '1');
    cursor = /--cursor (\S+)\n$/.exec(runs.page1!.stdout)?.[1] ?? '';
    await run('page2', 'users', 'list', '--query', tag, '--limit', '1', '--cursor', cursor);
    await run('forged', 'users', 'list', '--cursor', `${cursor.slice(0, -2)}xx`);
    await run('badLimit', 'users', 'list', '--limit', '0');

    await run('show', 'users', 'show', ada);
    await run('showId', 'users', 'show', adaId.toUpperCase());
    await run('showNone', 'users', 'show', `${tag}-nobody@example.com`);

    // Two sign-ins of Ada, as the server would record them.
    await database.use(async (store) => {
      for (let i = 0; i < 2; i++) await store.createSession(newSession(lifetimes, adaId, new Date()), META);
    });
    await run('sessions', 'users', 'sessions', ada);
    await run('revoke', 'users', 'revoke-sessions', ada);
    await run('factors', 'users', 'reset-factors', ada);
    await run('disable', 'users', 'disable', bob.toUpperCase());
    await run('enable', 'users', 'enable', bob);

    await run('events', 'events', '--user', ada, '--type', 'admin_action');
    await run('eventsPage', 'events', '--limit', '2');
    await run('badType', 'events', '--type', 'nonsense');
    await run('badEventsFlag', 'events', 'extra');

    await run('delete', 'users', 'delete', bob);
    await run('showDeleted', 'users', 'show', bob);
    // Each command starts a process that opens the database: minutes for PGlite on a busy machine.
  }, 900_000);
  afterAll(async () => {
    await database?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('creates a user without a password, with its name and roles (tessera:admin included), and says so', async () => {
    expect(runs.create).toMatchObject({ code: 0, stderr: '' });
    expect(runs.create!.stdout).toBe(
      `created ${ada} (${adaId}) with roles editor,tessera:admin; it has no password until the user sets one with a password reset\n`,
    );
    expect(runs.createBob!.code).toBe(0);
    expect(runs.taken).toMatchObject({ code: 1, stdout: '', stderr: 'tessera: An account with this email already exists\n' });
    expect(runs.badRole).toMatchObject({ code: 1, stderr: expect.stringContaining('role "Editor" is not a valid name') });
    for (const wrong of [runs.noEmail!, runs.unknownFlag!]) {
      expect(wrong.code).toBe(2);
      expect(wrong.stderr).toMatch(/^tessera: wrong arguments for "users create.*"\n\nUsage:/);
    }
    for (const r of Object.values(runs)) expectPlainText(r);
  });

  it('lists users a page at a time, by email or name prefix, with a cursor to go on; a forged cursor or a bad limit is refused', () => {
    expect(runs.page1).toMatchObject({ code: 0, stderr: '' });
    const [first, more] = runs.page1!.stdout.trim().split('\n');
    expect(first).toBe(`${adaId}  ${ada}  "Ada Lovelace"  roles editor,tessera:admin`);
    expect(more).toBe(`more: tessera users list --query "${tag.toUpperCase()}" --limit 1 --cursor ${cursor}`);
    expect(runs.page2).toMatchObject({ code: 0, stdout: expect.stringMatching(new RegExp(`^[0-9a-f-]{36}  ${bob}\\n$`)) });
    expect(runs.forged).toMatchObject({ code: 1, stdout: '', stderr: 'tessera: The cursor is not one this server gave out; start again without it\n' });
    expect(runs.badLimit!.code).toBe(2);
  });

  it('shows a user by email or id; an unknown one exits 1', () => {
    expect(runs.show).toMatchObject({ code: 0, stderr: '' });
    expect(runs.show!.stdout.split('\n')).toEqual([
      `id:             ${adaId}`,
      `email:          ${ada} (not verified)`,
      'name:           Ada Lovelace',
      expect.stringMatching(/^created: {8}\d{4}-\d\d-\d\dT/),
      'disabled:       no',
      'roles:          editor,tessera:admin',
      'organisation:   (none)',
      'metadata:       {}',
      'sessions:       0 active',
      'second factors: (none)',
      '',
    ]);
    expect(runs.showId!.stdout).toBe(runs.show!.stdout);
    expect(runs.showNone).toMatchObject({ code: 1, stdout: '', stderr: `tessera: no user with email ${tag}-nobody@example.com\n` });
  });

  it('lists the sessions, ends them all, resets the factors, disables and enables', () => {
    const lines = runs.sessions!.stdout.trim().split('\n');
    expect(lines).toHaveLength(2);
    for (const line of lines) expect(line).toMatch(/^[0-9a-f-]{36} {2}Firefox on Windows {2}last used \S+ {2}from 198\.51\.100\.7 {2}since \S+$/);
    expect(runs.revoke).toMatchObject({ code: 0, stdout: `ended 2 sessions of ${ada}\n` });
    expect(runs.factors).toMatchObject({ code: 0, stdout: `removed every second factor and passkey of ${ada} (0); the password alone signs them in now\n` });
    expect(runs.disable).toMatchObject({ code: 0, stdout: `disabled ${bob}\n` });
    expect(runs.enable).toMatchObject({ code: 0, stdout: `enabled ${bob}\n` });
  });

  it('prints the security log, newest first, each admin action naming the operator; bad filters are refused', () => {
    expect(runs.events).toMatchObject({ code: 0, stderr: '' });
    const lines = runs.events!.stdout.trim().split('\n');
    expect(lines.map((l) => / (\w+\.\w+) by /.exec(l)?.[1])).toEqual(['factors.reset', 'sessions.revoke_all', 'users.create']);
    for (const line of lines) expect(line).toMatch(new RegExp(`^\\S+Z  admin_action  user ${adaId}  .* by ${ACTOR.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    expect(lines[1]).toContain('{"target":');
    expect(runs.eventsPage!.stdout.trim().split('\n')).toHaveLength(3);
    expect(runs.eventsPage!.stdout).toMatch(/\nmore: tessera events --limit 2 --before \S+\n$/);
    expect(runs.badType).toMatchObject({ code: 1, stderr: expect.stringContaining('type must be one of') });
    expect(runs.badEventsFlag!.code).toBe(2);
  });

  it('deletes a user: their events stay, without IP addresses, the deletion naming the operator', async () => {
    expect(runs.delete).toMatchObject({ code: 0, stderr: '' });
    expect(runs.delete!.stdout).toMatch(new RegExp(`^deleted ${bob} \\([0-9a-f-]{36}\\): its sessions ended; its security events are kept, without IP addresses\\n$`));
    expect(runs.showDeleted).toMatchObject({ code: 1, stderr: `tessera: no user with email ${bob}\n` });
    await database.use(async (store) => {
      expect(await store.findUserByEmail(bob)).toBeUndefined();
      const events = await store.db.selectFrom('security_events').select(['type', 'ip', 'detail']).where('type', '=', 'account_deleted').execute();
      expect(events.find((e) => (e.detail as { actor?: string } | null)?.actor === ACTOR)).toMatchObject({ ip: null });
    });
  });
});

describe('an embedded database held by a running server', () => {
  it('is refused to the admin commands, with the reason, and nothing is written', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tessera-admin-held-'));
    try {
      const dataDir = join(dir, 'data');
      await mkdir(dataDir, { recursive: true });
      // A live process (this test runner) holds the directory, as `tessera serve` would.
      await writeFile(join(dataDir, 'server.pid'), `${process.pid}\n`);
      for (const args of [['users', 'list'], ['users', 'create', 'held@example.com'], ['events']]) {
        const run = await tessera(args, { DATA_DIR: dataDir });
        expect(run).toMatchObject({ code: 1, stdout: '' });
        expect(run.stderr).toContain(
          `tessera: a running Tessera server (pid ${process.pid}) holds DATA_DIR ${dataDir}; stop it first, or use PostgreSQL (DATABASE_URL) to manage users while it runs`,
        );
        expectPlainText(run);
      }
      expect(existsSync(join(dataDir, 'pgdata'))).toBe(false);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
