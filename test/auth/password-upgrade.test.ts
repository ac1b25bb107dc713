/**
 * Hashes from elsewhere: bcrypt (`$2a$`, `$2b$`, `$2y$`, made by the `bcrypt` and `bcryptjs`
 * packages and by PHP) and argon2 of other parameters verify at sign-in and are replaced by
 * argon2id on the first success, over HTTP and in the use case; a failed upgrade never
 * fails the sign-in, and never undoes a password change.
 */
import { hash as argon2Hash } from '@node-rs/argon2';
import bcrypt from 'bcrypt';
import bcryptjs from 'bcryptjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { importUsers } from '../../src/auth/import-users.js';
import { ARGON2_PARAMS, PasswordHasher, UNUSABLE_PASSWORD_HASH } from '../../src/auth/password-hasher.js';
import { signIn } from '../../src/auth/sign-in.js';
import { TesseraError } from '../../src/core/errors.js';
import type { Store } from '../../src/store/store.js';
import { BACKENDS } from '../helpers/backends.js';
import { expectProblem, login, newEmail, startTestApp, type TestApp } from '../helpers/app.js';
import { META, caught, openWorld, signInDeps, type World } from './deps.js';

const OLD = 'password from the old system';
const WRONG = 'not the old password at all';
/** php.net's `password_verify` example: a `$2y$` hash made by PHP itself. */
const PHP_HASH = '$2y$07$BCryptRequires22Chrcte/VlQH0piJtjXl.0t1XkA8pw9dMXTpOq';
const PHP_PASSWORD = 'rasmuslerdorf';
const TODAY = /^\$argon2id\$v=19\$m=19456,t=2,p=1\$/;

/** Every hash kind a team may bring, with the password that verifies against it. */
async function foreignHashes() {
  const nodeBcrypt = bcrypt.hashSync(OLD, 5);
  return {
    'bcrypt $2a$': { hash: bcrypt.hashSync(OLD, bcrypt.genSaltSync(4, 'a')), password: OLD },
    'bcrypt $2b$': { hash: nodeBcrypt, password: OLD },
    'bcryptjs $2b$': { hash: bcryptjs.hashSync(OLD, 6), password: OLD },
    'bcryptjs $2a$': { hash: bcryptjs.hashSync(OLD, 4).replace(/^\$2b\$/, '$2a$'), password: OLD },
    'bcrypt $2y$ (relabelled)': { hash: nodeBcrypt.replace(/^\$2b\$/, '$2y$'), password: OLD },
    'PHP $2y$': { hash: PHP_HASH, password: PHP_PASSWORD },
    'argon2i, other parameters': { hash: await argon2Hash(OLD, { algorithm: 1, memoryCost: 4096, timeCost: 3, parallelism: 2 }), password: OLD },
    'argon2id, 64 MiB': { hash: await argon2Hash(OLD, { algorithm: 2, memoryCost: 65536, timeCost: 3, parallelism: 4 }), password: OLD },
  };
}

async function* linesOf(...lines: string[]) {
  yield* lines;
}

/** `target`, with some members replaced; the others still work on the real object (private fields and all). */
function withOverrides<T extends object>(target: T, overrides: Partial<T>): T {
  return new Proxy(target, {
    get(real, key) {
      if (Object.hasOwn(overrides, key)) return overrides[key as keyof T];
      const value: unknown = Reflect.get(real, key, real);
      return typeof value === 'function' ? value.bind(real) : value;
    },
  });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
async function timed(run: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await run();
  return performance.now() - start;
}

describe('PasswordHasher with hashes from elsewhere', () => {
  const hasher = new PasswordHasher(4, 100);

  it('verifies each kind with its password only', async () => {
    for (const [kind, { hash, password }] of Object.entries(await foreignHashes())) {
      expect(await hasher.verify(hash, password), kind).toBe(true);
      expect(await hasher.verify(hash, WRONG), kind).toBe(false);
      expect(await hasher.verify(hash, `${password} `), kind).toBe(false);
    }
  });

  it('refuses $2x$ (a buggy PHP era), malformed bcrypt and the unusable marker', async () => {
    expect(await hasher.verify(PHP_HASH.replace('$2y$', '$2x$'), PHP_PASSWORD)).toBe(false);
    expect(await hasher.verify(PHP_HASH.slice(0, 40), PHP_PASSWORD)).toBe(false);
    expect(await hasher.verify(UNUSABLE_PASSWORD_HASH, UNUSABLE_PASSWORD_HASH)).toBe(false);
    expect(await hasher.verify('!', '')).toBe(false);
  });

  it('needsRehash: bcrypt and argon2 of other parameters yes; today’s argon2id and the unusable marker no', async () => {
    for (const [kind, { hash }] of Object.entries(await foreignHashes())) expect(hasher.needsRehash(hash), kind).toBe(true);
    expect(hasher.needsRehash(await hasher.hash(OLD))).toBe(false);
    expect(hasher.needsRehash(await argon2Hash(OLD, ARGON2_PARAMS))).toBe(false);
    expect(hasher.needsRehash(UNUSABLE_PASSWORD_HASH)).toBe(false);
  });

  it('an unusable hash costs an argon2 verification, as an unknown email does', async () => {
    const unknown: number[] = [];
    const unusable: number[] = [];
    for (let i = 0; i < 5; i++) {
      unknown.push(await timed(() => hasher.verify(undefined, OLD)));
      unusable.push(await timed(() => hasher.verify(UNUSABLE_PASSWORD_HASH, OLD)));
    }
    // One-sided: a check that skipped the hash would take microseconds, not half of ~20 ms.
    expect(median(unusable)).toBeGreaterThan(median(unknown) / 2);
  });

  it('bcrypt verifications count against the same concurrency limit and queue', async () => {
    const one = new PasswordHasher(1, 0);
    const slow = bcrypt.hashSync(OLD, 10);
    const first = one.verify(slow, OLD);
    const error = await caught(one.verify(slow, OLD));
    expect(error).toMatchObject({ code: 'service_unavailable', status: 503 });
    expect(await first).toBe(true);
  });
});

describe.each(BACKENDS)('an imported user signs in over HTTP on %s', (backend) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(backend);
  });
  afterAll(() => t.close());

  const storedHash = async (email: string) =>
    (await t.db.store.db.selectFrom('users').select('password_hash').where('email', '=', email).executeTakeFirstOrThrow()).password_hash;

  it('with the old password; the hash becomes argon2id at the first login and the next login still works', async () => {
    const users = Object.entries(await foreignHashes()).map(([kind, { hash, password }]) => ({ kind, hash, password, email: newEmail() }));
    const lines = linesOf(...users.map(({ email, hash }) => JSON.stringify({ email, passwordHash: hash })));
    expect(await importUsers({ store: t.db.store, clock: t.clock.now }, lines, META)).toEqual({ outcome: 'imported', count: users.length });

    for (const { kind, hash, password, email } of users) {
      expectProblem(await login(t.app, email, { password: WRONG }), 401, 'invalid_credentials');
      expect(await storedHash(email), kind).toBe(hash);

      const first = await login(t.app, email, { password });
      expect(first.statusCode, `${kind}: ${first.body}`).toBe(200);
      const upgraded = await storedHash(email);
      expect(upgraded, kind).toMatch(TODAY);

      const second = await login(t.app, email, { password });
      expect(second.statusCode, `${kind}: ${second.body}`).toBe(200);
      expect(await storedHash(email), kind).toBe(upgraded);
      expectProblem(await login(t.app, email, { password: WRONG }), 401, 'invalid_credentials');
    }
  });

  it('keeps an argon2id hash of today’s parameters as it is', async () => {
    const email = newEmail();
    const hash = await argon2Hash(OLD, ARGON2_PARAMS);
    await importUsers({ store: t.db.store, clock: t.clock.now }, linesOf(JSON.stringify({ email, passwordHash: hash })), META);
    expect((await login(t.app, email, { password: OLD })).statusCode).toBe(200);
    expect(await storedHash(email)).toBe(hash);
  });

  it('without a password hash: every password is `invalid_credentials`', async () => {
    const email = newEmail();
    await importUsers({ store: t.db.store, clock: t.clock.now }, linesOf(JSON.stringify({ email, name: 'No Password' })), META);
    for (const password of [OLD, UNUSABLE_PASSWORD_HASH, '!unusable']) {
      expectProblem(await login(t.app, email, { password }), 401, 'invalid_credentials');
    }
  });
});

describe.each(BACKENDS)('the upgrade at sign-in on %s', (backend) => {
  let w: World;
  beforeAll(async () => {
    w = await openWorld(backend);
  });
  afterAll(() => w.close());

  async function importOne(hash: string) {
    const email = newEmail();
    await importUsers({ store: w.store, clock: w.now }, linesOf(JSON.stringify({ email, passwordHash: hash })), META);
    const user = await w.store.findUserByEmail(email);
    return { email, userId: user!.id };
  }
  const hashOf = async (userId: string) => (await w.store.findUserById(userId))!.passwordHash;
  const attempt = (deps: ReturnType<typeof signInDeps>, email: string, password = OLD) =>
    signIn(deps, { email, password, transport: 'body', meta: META, afterResponse: () => {} });

  it('a failing write or a full hash queue does not fail the sign-in; the next one upgrades', async () => {
    const hash = bcryptjs.hashSync(OLD, 4);
    const { email, userId } = await importOne(hash);
    const failingStore = withOverrides<Store>(w.store, { updatePasswordHash: async () => Promise.reject(new Error('connection reset')) });
    const fullQueue = withOverrides(w.hasher, { hash: async () => Promise.reject(new TesseraError('service_unavailable', { retryAfter: 1 })) });

    await expect(attempt({ ...signInDeps(w), store: failingStore }, email)).resolves.toMatchObject({ user: { id: userId } });
    await expect(attempt({ ...signInDeps(w), hasher: fullQueue }, email)).resolves.toMatchObject({ user: { id: userId } });
    expect(await hashOf(userId)).toBe(hash);

    await attempt(signInDeps(w), email);
    expect(await hashOf(userId)).toMatch(TODAY);
  });

  it('never undoes a password change that committed between the check and the upgrade', async () => {
    const { email, userId } = await importOne(bcryptjs.hashSync(OLD, 4));
    const changed = await w.hasher.hash('the new password, set meanwhile');
    const racing = withOverrides<Store>(w.store, {
      updatePasswordHash: async (id: string, upgraded: string, replacing?: string) => {
        await w.store.updatePasswordHash(id, changed); // the password change wins the race
        return w.store.updatePasswordHash(id, upgraded, replacing);
      },
    });
    await attempt({ ...signInDeps(w), store: racing }, email);
    expect(await hashOf(userId)).toBe(changed);
  });
});
