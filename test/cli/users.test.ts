/**
 * `tessera users import FILE` and `tessera users roles EMAIL a,b` as operators run them: the
 * built CLI (`node dist/cli/main.js`, so `npm run build` first) as a child process, on a
 * PGlite data directory or a fresh PostgreSQL schema. Then the real app on that database:
 * imported users sign in over HTTP with the passwords of the system they come from.
 */
import { hash as argon2Hash } from '@node-rs/argon2';
import bcrypt from 'bcrypt';
import bcryptjs from 'bcryptjs';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UNUSABLE_PASSWORD_HASH } from '../../src/auth/password-hasher.js';
import { loadConfig } from '../../src/core/config.js';
import { buildApp } from '../../src/server/app.js';
import type { App } from '../../src/server/context.js';
import { openDatabase } from '../../src/store/database.js';
import { Store } from '../../src/store/store.js';
import { BACKENDS, openTestStore, type Backend } from '../helpers/backends.js';
import { FrozenClock, TEST_SECRET, expectProblem, login, newEmail } from '../helpers/app.js';

const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
const OLD = 'password from the old system';
const WRONG = 'not the old password at all';

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

const jsonl = (...rows: (object | string)[]) => `${rows.map((r) => (typeof r === 'string' ? r : JSON.stringify(r))).join('\n')}\n`;

/** A database the CLI reaches by environment and the test by a `Store`, opened once the CLI is done with it (PGlite serves one process). */
async function cliDatabase(backend: Backend, dir: string): Promise<{ env: Record<string, string>; open(): Promise<{ store: Store; close(): Promise<void> }> }> {
  if (backend === 'pglite') {
    const dataDir = join(dir, 'data');
    return {
      env: { DATA_DIR: dataDir },
      open: async () => {
        const { db } = await openDatabase({ url: undefined, dataDir });
        return { store: new Store(db), close: () => db.destroy() };
      },
    };
  }
  const test = await openTestStore(backend);
  return { env: { DATABASE_URL: test.url!, DATABASE_SCHEMA: test.schema! }, open: async () => ({ store: test.store, close: test.close }) };
}

/** The real app on that store, as startTestApp builds it. */
async function appOn(store: Store): Promise<App> {
  const result = loadConfig({ TESSERA_SECRET: TEST_SECRET, LOG_LEVEL: 'silent', PASSWORD_HASH_QUEUE: '1000' });
  if (!result.ok) throw new Error(result.errors.join('\n'));
  return buildApp({ config: result.config, store, secret: TEST_SECRET, clock: new FrozenClock().now });
}

describe.each(BACKENDS)('tessera users import|roles on %s', (backend) => {
  let dir: string;
  let store: Store;
  let app: App;
  let close: () => Promise<void>;
  const runs: Record<string, Run> = {};
  const nodeBcrypt = bcrypt.hashSync(OLD, 5);
  const users = {
    bcrypt2a: { email: newEmail(), hash: bcrypt.hashSync(OLD, bcrypt.genSaltSync(4, 'a')), password: OLD },
    bcrypt2b: { email: newEmail(), hash: nodeBcrypt, password: OLD },
    bcryptjs: { email: newEmail(), hash: bcryptjs.hashSync(OLD, 6), password: OLD },
    bcrypt2y: { email: newEmail(), hash: nodeBcrypt.replace(/^\$2b\$/, '$2y$'), password: OLD },
    php2y: { email: newEmail(), hash: '$2y$07$BCryptRequires22Chrcte/VlQH0piJtjXl.0t1XkA8pw9dMXTpOq', password: 'rasmuslerdorf' },
    argon2: { email: newEmail(), hash: '', password: OLD },
  };
  const admin = newEmail();
  const noPassword = newEmail();
  const badFileEmail = newEmail();
  const againNew = newEmail();

  beforeAll(async () => {
    if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first`);
    users.argon2.hash = await argon2Hash(OLD, { algorithm: 2, memoryCost: 8192, timeCost: 3, parallelism: 1 });
    dir = await mkdtemp(join(tmpdir(), 'tessera-cli-'));
    const database = await cliDatabase(backend, dir);
    const file = (name: string) => join(dir, name);

    await writeFile(file('bad.jsonl'), jsonl(
      { email: badFileEmail },
      { email: newEmail(), password: 'plain text' },
      '',
      { email: newEmail(), roles: ['tessera:root'] },
      { email: ` ${badFileEmail.toUpperCase()}` },
    ));
    await writeFile(file('users.jsonl'), jsonl(
      ...Object.values(users).map(({ email, hash }) => ({ email, passwordHash: hash })),
      '',
      { email: admin, name: 'Ada', passwordHash: users.bcryptjs.hash, roles: ['tessera:admin', 'editor'], orgId: 'acme', metadata: { plan: 'pro' }, emailVerified: true },
      { email: noPassword, name: null },
    ));
    await writeFile(file('again.jsonl'), jsonl({ email: againNew }, { email: users.bcrypt2b.email.toUpperCase() }));

    const env = database.env;
    runs.bad = await tessera(['users', 'import', file('bad.jsonl')], env);
    runs.missing = await tessera(['users', 'import', file('no-such-file.jsonl')], env);
    runs.import = await tessera(['users', 'import', file('users.jsonl')], env);
    runs.again = await tessera(['users', 'import', file('again.jsonl')], env);
    runs.roles = await tessera(['users', 'roles', users.bcrypt2a.email.toUpperCase(), 'billing:read, editor,tessera:admin'], env);
    runs.clear = await tessera(['users', 'roles', admin, ''], env);
    runs.badRole = await tessera(['users', 'roles', admin, 'Editor'], env);
    runs.noUser = await tessera(['users', 'roles', newEmail(), 'editor'], env);

    ({ store, close } = await database.open());
    app = await appOn(store);
  }, 180_000);
  afterAll(async () => {
    await app?.close();
    await close?.();
    await rm(dir, { recursive: true, force: true });
  });

  const row = (email: string) => store.db.selectFrom('users').selectAll().where('email', '=', email).executeTakeFirst();
  const eventTypes = async (email: string) =>
    (await store.db.selectFrom('security_events').select('type').where('user_id', '=', (await row(email))!.id).orderBy('id').execute()).map((e) => e.type);

  it('reports every bad line with its number and reason, and imports nothing', async () => {
    expect(runs.bad!.code).toBe(1);
    expect(runs.bad!.stdout).toBe('');
    const lines = runs.bad!.stderr.trim().split('\n');
    expect(lines).toEqual([
      expect.stringMatching(/bad\.jsonl:2: unknown field "password"$/),
      expect.stringMatching(/bad\.jsonl:4: role tessera:root is reserved/),
      expect.stringMatching(new RegExp(`bad\\.jsonl:5: email ${badFileEmail} is also on line 1$`)),
      'tessera: nothing imported: 3 bad lines',
    ]);
    expect(await row(badFileEmail)).toBeUndefined();
  });

  it('says so when the file cannot be read', () => {
    expect(runs.missing).toMatchObject({ code: 1, stderr: expect.stringContaining('cannot read') });
    expect(runs.missing!.stderr).toContain('ENOENT');
  });

  it('imports every user of a good file, and refuses a file with an email that already has an account', async () => {
    expect(runs.import).toMatchObject({ code: 0, stdout: expect.stringMatching(/^imported 8 users from .*users\.jsonl\n$/) });
    expect(runs.again!.code).toBe(1);
    expect(runs.again!.stderr).toMatch(new RegExp(`again\\.jsonl:2: ${users.bcrypt2b.email} already has an account\\n`));
    expect(runs.again!.stderr).toContain('tessera: nothing imported: 1 email already has an account in the database');
    expect(await row(againNew)).toBeUndefined();

    expect(await row(admin)).toMatchObject({ name: 'Ada', org_id: 'acme', metadata: { plan: 'pro' }, email_verified_at: expect.any(Date) });
    expect((await row(noPassword))?.password_hash).toBe(UNUSABLE_PASSWORD_HASH);
    expect(await eventTypes(users.php2y.email)).toEqual(['imported']);
  });

  it('`users roles` replaces the set, clears it with "", refuses bad names and unknown users', async () => {
    expect(runs.roles).toMatchObject({ code: 0, stdout: `roles of ${users.bcrypt2a.email}: billing:read,editor,tessera:admin\n` });
    expect((await row(users.bcrypt2a.email))?.roles).toEqual(['billing:read', 'editor', 'tessera:admin']);
    expect(await eventTypes(users.bcrypt2a.email)).toEqual(['imported', 'roles_changed']);

    expect(runs.clear).toMatchObject({ code: 0, stdout: `roles of ${admin}: (none)\n` });
    expect((await row(admin))?.roles).toEqual([]);
    expect(runs.badRole).toMatchObject({ code: 1, stderr: expect.stringContaining('role "Editor" is not a valid name') });
    expect(runs.noUser).toMatchObject({ code: 1, stderr: expect.stringContaining('no user with email') });
  });

  it('imported users sign in over HTTP with their old password; the hash becomes argon2id, and the next login works', async () => {
    for (const [kind, { email, hash, password }] of Object.entries(users)) {
      expectProblem(await login(app, email, { password: WRONG }), 401, 'invalid_credentials');
      expect((await row(email))?.password_hash, kind).toBe(hash);

      const first = await login(app, email, { password });
      expect(first.statusCode, `${kind}: ${first.body}`).toBe(200);
      expect((await row(email))?.password_hash, kind).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
      const second = await login(app, email, { password });
      expect(second.statusCode, `${kind}: ${second.body}`).toBe(200);
    }
    expect((await login(app, admin, { password: OLD })).statusCode).toBe(200);
  });

  it('a user imported without a password hash cannot sign in', async () => {
    for (const password of [OLD, UNUSABLE_PASSWORD_HASH]) expectProblem(await login(app, noPassword, { password }), 401, 'invalid_credentials');
  });
});
