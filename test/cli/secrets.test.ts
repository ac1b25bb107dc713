/**
 * Changing TESSERA_SECRET without signing anyone out (docs/operations.md). The real app on
 * one database, first under the old secret, then under the new one with
 * TESSERA_SECRET_PREVIOUS, then after `tessera secrets rotate` under the new one alone. The
 * command itself runs as operators run it: the built CLI (`node dist/cli/main.js`, so
 * `npm run build` first) as a child process.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { resealAll } from '../../src/cli/secrets.js';
import { loadConfig, type Config } from '../../src/core/config.js';
import { RefreshTokenCodec } from '../../src/core/refresh-token.js';
import { buildApp } from '../../src/server/app.js';
import type { App } from '../../src/server/context.js';
import { migrateToLatest, openDatabase } from '../../src/store/database.js';
import { Store } from '../../src/store/store.js';
import { FEATURE_BACKENDS, openTestStore, type Backend, type TestStore } from '../helpers/backends.js';
import { FrozenClock, PASSWORD, expectProblem, refresh, register } from '../helpers/app.js';
import { base32Decode, totpCode, totpStep } from '../../src/core/totp.js';

const OLD = 'the-old-secret-that-is-at-least-32-bytes-long';
const NEW = 'the-new-secret-that-is-at-least-32-bytes-long';
const OTHER = 'a-third-secret-that-is-at-least-32-bytes-long';
const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

/** The real app on `store` under `secret`, with `previous` as TESSERA_SECRET_PREVIOUS, as `tessera serve` builds it. */
async function appOn(store: Store, clock: FrozenClock, secret: string, previous?: string): Promise<App> {
  const env = { TESSERA_SECRET: secret, TESSERA_SECRET_PREVIOUS: previous, LOG_LEVEL: 'silent', PASSWORD_HASH_QUEUE: '1000' };
  const result = loadConfig(env);
  if (!result.ok) throw new Error(result.errors.join('\n'));
  return buildApp({ config: result.config, store, secret, clock: clock.now });
}

/** The generation and salt of `token`'s session, and whether `secret` made it. */
async function madeWith(store: Store, token: string, secret: string): Promise<boolean> {
  const codec = new RefreshTokenCodec(secret);
  const parsed = codec.parse(token)!;
  const session = await store.findSessionForRefresh(parsed.userId, parsed.sessionId);
  return codec.verify(parsed, session!.salt);
}

const kids = async (app: App) => ((await app.inject({ method: 'GET', url: '/.well-known/jwks.json' })).json() as { keys: { kid: string }[] }).keys.map((k) => k.kid);

describe.each(FEATURE_BACKENDS)('changing TESSERA_SECRET on %s', (backend: Backend) => {
  let db: TestStore;
  let clock: FrozenClock;
  const apps: App[] = [];
  const start = async (secret: string, previous?: string) => {
    const app = await appOn(db.store, clock, secret, previous);
    apps.push(app);
    return app;
  };
  /** A node stops (before the next one starts with other secrets). */
  const stop = (app: App) => app.close().then(() => void apps.splice(apps.indexOf(app), 1));

  beforeEach(async () => {
    db = await openTestStore(backend);
    clock = new FrozenClock();
  });
  afterEach(async () => {
    await Promise.all(apps.splice(0).map((app) => app.close()));
    await db.close();
  });

  it('a session started under the old secret refreshes under the new one; its successor is made under the new secret, and a replay returns that very token', async () => {
    const before = await start(OLD);
    const t1 = (await register(before)).body.refreshToken!;
    await stop(before);

    const during = await start(NEW, OLD);
    const rotated = await refresh(during, t1);
    expect(rotated.statusCode, rotated.body).toBe(200);
    const t2 = rotated.json().refreshToken as string;
    expect(await madeWith(db.store, t2, NEW)).toBe(true);
    expect(await madeWith(db.store, t2, OLD)).toBe(false);

    // Rule 2 within REFRESH_REUSE_GRACE: the old-secret parent gets the identical current token, made under the new secret.
    clock.advance(5);
    const replayed = await refresh(during, t1);
    expect(replayed.statusCode, replayed.body).toBe(200);
    expect(replayed.json().refreshToken).toBe(t2);

    // Rule 1 goes on under the new secret.
    const t3 = (await refresh(during, t2)).json().refreshToken as string;
    expect(await madeWith(db.store, t3, NEW)).toBe(true);

    // Rule 4: an old-secret token older than the parent is still recognised as genuine, so it still reveals theft.
    expectProblem(await refresh(during, t1), 401, 'refresh_token_reused');
    expectProblem(await refresh(during, t3), 401, 'refresh_token_reused');
  });

  it('a rotation made just before the switch: the replay after it returns the same generation under the new secret, and both holders converge without a theft alarm', async () => {
    const before = await start(OLD);
    const t1 = (await register(before)).body.refreshToken!;
    const t2old = (await refresh(before, t1)).json().refreshToken as string;
    await stop(before);

    const during = await start(NEW, OLD);
    clock.advance(2);
    const replayed = await refresh(during, t1);
    expect(replayed.statusCode, replayed.body).toBe(200);
    const t2new = replayed.json().refreshToken as string;
    // The same generation, but the node that rotated made it under the old secret: nothing stored says so, and only the current secret issues.
    expect(new RefreshTokenCodec(NEW).parse(t2new)!.generation).toBe(new RefreshTokenCodec(OLD).parse(t2old)!.generation);
    expect(await madeWith(db.store, t2new, NEW)).toBe(true);

    // Either copy rotates the session, and the other then replays onto the same next token.
    const t3 = (await refresh(during, t2old)).json().refreshToken as string;
    clock.advance(1);
    const converged = await refresh(during, t2new);
    expect(converged.statusCode, converged.body).toBe(200);
    expect(converged.json().refreshToken).toBe(t3);
  });

  it('a revocation-feed cursor given out under the old secret is accepted under the new one; a forged one is not', async () => {
    const before = await start(OLD);
    const cursor = ((await before.inject({ method: 'GET', url: '/auth/revocations' })).json() as { cursor: string }).cursor;
    await stop(before);

    const during = await start(NEW, OLD);
    const page = await during.inject({ method: 'GET', url: `/auth/revocations?after=${cursor}` });
    expect(page.statusCode, page.body).toBe(200);
    const fresh = (page.json() as { cursor: string }).cursor;
    expect((await during.inject({ method: 'GET', url: `/auth/revocations?after=${fresh}` })).statusCode).toBe(200);
    const forged = `${cursor.slice(0, -1)}${cursor.endsWith('A') ? 'B' : 'A'}`;
    expectProblem(await during.inject({ method: 'GET', url: `/auth/revocations?after=${forged}` }), 400, 'invalid_request');

    // Without the previous secret, an old cursor is refused (resource servers then start again without `after`); a new one is not.
    await resealAll(db.store, NEW, OLD);
    const after = await start(NEW);
    expectProblem(await after.inject({ method: 'GET', url: `/auth/revocations?after=${cursor}` }), 400, 'invalid_request');
    expect((await after.inject({ method: 'GET', url: `/auth/revocations?after=${fresh}` })).statusCode).toBe(200);
  });

  it('signing keys sealed under the old secret: refused with a clear message without TESSERA_SECRET_PREVIOUS, loaded with it, and after a re-seal loaded without it', async () => {
    const before = await start(OLD);
    const { body } = await register(before);
    const published = await kids(before);
    await stop(before);

    await expect(appOn(db.store, clock, NEW)).rejects.toThrow(
      new RegExp(`^the signing key ${published[0]} in the database was sealed with a different TESSERA_SECRET; .*set that one as TESSERA_SECRET_PREVIOUS until \`tessera secrets rotate\` has re-sealed the keys`),
    );
    await expect(appOn(db.store, clock, NEW, OTHER)).rejects.toThrow(/was sealed with neither TESSERA_SECRET nor TESSERA_SECRET_PREVIOUS; set TESSERA_SECRET_PREVIOUS to the secret it was created with/);

    const during = await start(NEW, OLD);
    expect(await kids(during)).toEqual(published);
    // An access token signed before the switch still works: the key that signed it opened.
    const me = await during.inject({ method: 'GET', url: '/auth/me', headers: { authorization: `Bearer ${body.accessToken}` } });
    expect(me.statusCode, me.body).toBe(200);
    const t2 = (await refresh(during, body.refreshToken!)).json().refreshToken as string;

    const [first] = await resealAll(db.store, NEW, OLD);
    expect(first).toMatchObject({ rows: published.length, resealed: published.length, unreadable: [] });
    const [again] = await resealAll(db.store, NEW, OLD);
    expect(again).toMatchObject({ rows: published.length, resealed: 0, unreadable: [] });
    // A running node holds the keys it opened and is not disturbed.
    expect(await kids(during)).toEqual(published);

    const after = await start(NEW);
    expect(await kids(after)).toEqual(published);
    const rotated = await refresh(after, t2);
    expect(rotated.statusCode, rotated.body).toBe(200);
  });

  it('TOTP secrets sealed under the old secret: codes work while TESSERA_SECRET_PREVIOUS is set, and after a re-seal without it', async () => {
    const before = await start(OLD);
    const { body } = await register(before);
    const userId = JSON.parse(Buffer.from(body.accessToken.split('.')[1]!, 'base64url').toString()).sub as string;
    await db.store.db.updateTable('users').set({ email_verified_at: clock.now() }).where('id', '=', userId).execute();
    const bearer = { authorization: `Bearer ${body.accessToken}` };
    const secret = base32Decode((await before.inject({ method: 'POST', url: '/auth/mfa/totp/setup', headers: bearer })).json().secret)!;
    const code = () => totpCode(secret, totpStep(clock.now()));
    expect((await before.inject({ method: 'POST', url: '/auth/mfa/totp/confirm', headers: bearer, payload: { code: code() } })).statusCode).toBe(200);
    await stop(before);

    const signIn = async (app: App) => {
      clock.advance(30);
      const login = await app.inject({ method: 'POST', url: '/auth/login', payload: { email: body.user!.email, password: PASSWORD, transport: 'body' } });
      expect(login.statusCode, login.body).toBe(403);
      return app.inject({ method: 'POST', url: '/auth/mfa/verify', payload: { mfaToken: login.json().mfaToken, code: code(), transport: 'body' } });
    };
    const during = await start(NEW, OLD);
    expect((await signIn(during)).statusCode).toBe(200);
    const reports = await resealAll(db.store, NEW, OLD);
    expect(reports.find((r) => r.column.item === 'TOTP secret of user')).toMatchObject({ rows: 1, resealed: 1, unreadable: [] });
    await stop(during);
    const after = await start(NEW);
    expect((await signIn(after)).statusCode).toBe(200);
  });

  it('resealAll reports values neither secret opens, changes nothing of them, and still moves the rest', async () => {
    const before = await start(OLD);
    await stop(before);
    // an embedder passing the same secret twice is told so before anything is built
    const config = (loadConfig({ TESSERA_SECRET: NEW, LOG_LEVEL: 'silent' }) as { ok: true; config: Config }).config;
    await expect(buildApp({ config, store: db.store, secret: NEW, secretPrevious: NEW })).rejects.toThrow(/^TESSERA_SECRET_PREVIOUS is the same as TESSERA_SECRET/);
    const [report] = await resealAll(db.store, NEW, OTHER);
    expect(report!.resealed).toBe(0);
    expect(report!.unreadable).toHaveLength(report!.rows);
    // left as they were: the old secret still opens them
    expect((await resealAll(db.store, NEW, OLD))[0]).toMatchObject({ resealed: report!.rows, unreadable: [] });
  });
});

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function tessera(args: string[], env: Record<string, string>): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH ?? '', ...env } }, (error, stdout, stderr) => {
      resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr });
    });
  });
}

describe('tessera secrets rotate', () => {
  let dir: string;
  beforeAll(async () => {
    if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first`);
    dir = await mkdtemp(join(tmpdir(), 'tessera-secrets-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  /** An embedded database in its own DATA_DIR whose signing key was made under `secret`; returns its kids. */
  async function dataDirWithKeys(name: string, secret: string): Promise<{ dataDir: string; kids: string[] }> {
    const dataDir = join(dir, name);
    const { db } = await openDatabase({ url: undefined, dataDir });
    try {
      await migrateToLatest(db);
      const app = await appOn(new Store(db), new FrozenClock(), secret);
      const published = await kids(app);
      await app.close();
      return { dataDir, kids: published };
    } finally {
      await db.destroy();
    }
  }

  /** Whether the app starts on `dataDir` with `secret` alone, and the keys it publishes. */
  async function keysUnder(dataDir: string, secret: string): Promise<string[]> {
    const { db } = await openDatabase({ url: undefined, dataDir });
    try {
      const app = await appOn(new Store(db), new FrozenClock(), secret);
      const published = await kids(app);
      await app.close();
      return published;
    } finally {
      await db.destroy();
    }
  }

  it('re-seals under the new secret, says what to do next, is idempotent, and afterwards the new secret alone opens the keys', async () => {
    const { dataDir, kids: published } = await dataDirWithKeys('rotate', OLD);
    expect(published).toHaveLength(1);
    const env = { DATA_DIR: dataDir, TESSERA_SECRET: NEW, TESSERA_SECRET_PREVIOUS: OLD, SESSION_MAX_AGE: '30d' };

    const first = await tessera(['secrets', 'rotate'], env);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stderr).toBe('');
    const lines = first.stdout.split('\n');
    expect(lines[0]).toBe(`signing keys (signing_keys.private_jwk_sealed): 1 value; 1 re-sealed under TESSERA_SECRET now, 0 already under it`);
    expect(lines[1]).toBe('TOTP secrets (totp_factors.secret_sealed): 0 values; 0 re-sealed under TESSERA_SECRET now, 0 already under it');
    expect(lines[2]).toBe('Every sealed value is now under TESSERA_SECRET: no stored value needs TESSERA_SECRET_PREVIOUS any more.');
    expect(first.stdout).toContain('Next:');
    expect(first.stdout).toMatch(/Keep TESSERA_SECRET_PREVIOUS set on every node for SESSION_MAX_AGE \(30d\) after the last node started with the new\n\s+TESSERA_SECRET \(if that was before now: until \d{4}-\d\d-\d\dT/);
    expect(first.stdout).toContain('Removing it sooner signs out every session that has not refreshed since the change');
    // no line of pino's JSON: the output is for people
    for (const line of lines) expect(line).not.toMatch(/^\s*\{/);

    const again = await tessera(['secrets', 'rotate'], env);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout.split('\n')[0]).toBe(`signing keys (signing_keys.private_jwk_sealed): 1 value; 0 re-sealed under TESSERA_SECRET now, 1 already under it`);

    const check = await tessera(['secrets', 'rotate'], { DATA_DIR: dataDir, TESSERA_SECRET: NEW });
    expect(check).toMatchObject({ code: 0, stderr: '' });
    expect(check.stdout).toBe(
      `signing keys (signing_keys.private_jwk_sealed): 1 value; 0 re-sealed under TESSERA_SECRET now, 1 already under it\n` +
        'TOTP secrets (totp_factors.secret_sealed): 0 values; 0 re-sealed under TESSERA_SECRET now, 0 already under it\n' +
        'TESSERA_SECRET_PREVIOUS is not set: every sealed value opens under TESSERA_SECRET alone.\n',
    );

    expect(await keysUnder(dataDir, NEW)).toEqual(published);
  }, 120_000);

  it('exits 1 naming each value neither secret opens, and leaves it as it was', async () => {
    const { dataDir, kids: published } = await dataDirWithKeys('unreadable', OLD);
    const run = await tessera(['secrets', 'rotate'], { DATA_DIR: dataDir, TESSERA_SECRET: NEW, TESSERA_SECRET_PREVIOUS: OTHER });
    expect(run.code).toBe(1);
    expect(run.stdout).toBe(
      `signing keys (signing_keys.private_jwk_sealed): 1 value; 0 re-sealed under TESSERA_SECRET now, 0 already under it, 1 left as it is\n` +
        'TOTP secrets (totp_factors.secret_sealed): 0 values; 0 re-sealed under TESSERA_SECRET now, 0 already under it\n',
    );
    expect(run.stderr).toBe(
      `tessera: signing key ${published[0]} is sealed under neither TESSERA_SECRET nor TESSERA_SECRET_PREVIOUS\n` +
        'tessera: 1 sealed value could not be opened and was left as it was: set TESSERA_SECRET_PREVIOUS to the secret it was sealed with and run `tessera secrets rotate` again\n',
    );
    const without = await tessera(['secrets', 'rotate'], { DATA_DIR: dataDir, TESSERA_SECRET: NEW });
    expect(without.code).toBe(1);
    expect(without.stderr).toContain(`tessera: signing key ${published[0]} is sealed under another secret than TESSERA_SECRET\n`);
    expect(await keysUnder(dataDir, OLD)).toEqual(published);
  }, 120_000);

  it('refuses a bad TESSERA_SECRET_PREVIOUS before it opens anything', async () => {
    const dataDir = join(dir, 'bad-config');
    const same = await tessera(['secrets', 'rotate'], { DATA_DIR: dataDir, TESSERA_SECRET: NEW, TESSERA_SECRET_PREVIOUS: NEW });
    expect(same.code).toBe(1);
    expect(same.stderr).toContain('tessera: TESSERA_SECRET_PREVIOUS is the same as TESSERA_SECRET');
    const short = await tessera(['secrets', 'rotate'], { DATA_DIR: dataDir, TESSERA_SECRET: NEW, TESSERA_SECRET_PREVIOUS: 'too-short' });
    expect(short.code).toBe(1);
    expect(short.stderr).toContain('tessera: TESSERA_SECRET_PREVIOUS is too short: it must be at least 32 bytes');
    expect(short.stderr).not.toContain('too-short');
    const alone = await tessera(['secrets', 'rotate'], { DATA_DIR: dataDir, TESSERA_SECRET_PREVIOUS: OLD });
    expect(alone.code).toBe(1);
    expect(alone.stderr).toContain('tessera: TESSERA_SECRET_PREVIOUS is set but TESSERA_SECRET is not');
    expect(existsSync(dataDir)).toBe(false);
  });

  it('is refused while a running server holds the embedded data directory', async () => {
    const dataDir = join(dir, 'held');
    await mkdir(dataDir);
    // This test process stands in for the server: a live pid that is not the command's own.
    await writeFile(join(dataDir, 'server.pid'), `${process.pid}\n`);
    const run = await tessera(['secrets', 'rotate'], { DATA_DIR: dataDir, TESSERA_SECRET: NEW, TESSERA_SECRET_PREVIOUS: OLD });
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr).toContain(`tessera: a running Tessera server (pid ${process.pid}) holds DATA_DIR ${dataDir}; stop it first`);
    // refused before the database was opened: PGlite made no files
    expect(existsSync(join(dataDir, 'pgdata'))).toBe(false);
  });

  it('is in the usage, and other arguments are refused', async () => {
    const help = await tessera(['--help'], {});
    expect(help.stdout).toContain('  secrets rotate         after TESSERA_SECRET changed: re-seal every stored value under it');
    const wrong = await tessera(['secrets'], {});
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toMatch(/^tessera: wrong arguments for "secrets"\n\nUsage:/);
    expect((await tessera(['secrets', 'rotate', '--now'], {})).code).toBe(2);
  });
});
