/** `importUsers` without the CLI: every field in stored form, every bad line reported by number, all or nothing. */
import { hash as argon2Hash } from '@node-rs/argon2';
import { randomUUID } from 'node:crypto';
import bcryptjs from 'bcryptjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IMPORT_LINE_MAX_BYTES, IMPORT_MAX_USERS, importUsers, type ImportUsersResult } from '../../src/auth/import-users.js';
import { ARGON2_PARAMS, UNUSABLE_PASSWORD_HASH } from '../../src/auth/password-hasher.js';
import { signIn } from '../../src/auth/sign-in.js';
import { METADATA_MAX_BYTES } from '../../src/core/user-fields.js';
import type { ImportedUser } from '../../src/store/store.js';
import { BACKENDS } from '../helpers/backends.js';
import { META, caught, eventTypes, newAccount, newEmail, openWorld, signInDeps, type World } from './deps.js';

const OLD_PASSWORD = 'the password from the old system';
const BCRYPT = bcryptjs.hashSync(OLD_PASSWORD, 4);

async function* linesOf(lines: Iterable<string | Uint8Array>) {
  yield* lines;
}

const json = (value: unknown) => JSON.stringify(value);

describe.each(BACKENDS)('importUsers on %s', (backend) => {
  let w: World;
  beforeAll(async () => {
    w = await openWorld(backend);
  });
  afterAll(() => w.close());

  const run = (lines: Iterable<string | Uint8Array>): Promise<ImportUsersResult> =>
    importUsers({ store: w.store, clock: w.now }, linesOf(lines), { ip: null, userAgent: null });
  const userCount = async () => Number((await w.store.db.selectFrom('users').select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);
  const userRow = (email: string) => w.store.db.selectFrom('users').selectAll().where('email', '=', email).executeTakeFirst();

  it('writes each user in stored form, with its email row and an `imported` event', async () => {
    const email = newEmail();
    const plain = newEmail();
    const result = await run([
      json({
        email: `  ${email.toUpperCase()} `, name: '  Ada Lovelace ', passwordHash: BCRYPT, roles: ['tessera:admin', 'editor', 'editor'],
        orgId: 'acme-42', metadata: { plan: 'pro', seats: [1, 2], nested: { é: 'ü' } }, emailVerified: true,
      }),
      json({ email: plain, name: null, passwordHash: null, roles: null, orgId: null, metadata: null, emailVerified: null }),
    ]);

    expect(result).toEqual({ outcome: 'imported', count: 2 });
    const row = await userRow(email);
    expect(row).toMatchObject({
      email, name: 'Ada Lovelace', password_hash: BCRYPT, roles: ['tessera:admin', 'editor'], org_id: 'acme-42',
      metadata: { plan: 'pro', seats: [1, 2], nested: { é: 'ü' } }, email_verified_at: w.now(), created_at: w.now(), disabled_at: null,
    });
    expect(await w.store.db.selectFrom('user_emails').select('user_id').where('email', '=', email).executeTakeFirst()).toEqual({ user_id: row!.id });
    expect(await eventTypes(w, row!.id)).toEqual(['imported']);
    expect(await w.store.findUserByEmail(email)).toMatchObject({ id: row!.id, passwordHash: BCRYPT, disabled: false });

    expect(await userRow(plain)).toMatchObject({
      name: '', password_hash: UNUSABLE_PASSWORD_HASH, roles: [], org_id: null, metadata: {}, email_verified_at: null,
    });
  });

  it('skips blank lines but counts them, and takes a byte order mark, CRLF and raw UTF-8 bytes', async () => {
    const [a, b] = [newEmail(), newEmail()];
    const bytes = new TextEncoder().encode(json({ email: b, name: 'Zoë' }));
    const result = await run([`\uFEFF${json({ email: a })}\r`, '', '   \r', bytes]);
    expect(result).toEqual({ outcome: 'imported', count: 2 });
    expect(await userRow(b)).toMatchObject({ name: 'Zoë' });

    const bad = await run(['', '  ', json({ email: 'nope' })]);
    expect(bad).toEqual({ outcome: 'invalid', problems: [{ line: 3, reason: expect.stringContaining('not a valid address') }] });
  });

  it('an empty file imports nobody', async () => {
    expect(await run([])).toEqual({ outcome: 'imported', count: 0 });
    expect(await run(['', ''])).toEqual({ outcome: 'imported', count: 0 });
  });

  it('reports every bad line with its number and reason, and imports nothing, not even the good lines', async () => {
    const before = await userCount();
    const good = newEmail();
    const dup = newEmail();
    const cases: [string | Uint8Array, RegExp][] = [
      ['not json', /^not valid JSON/],
      ['[1, 2]', /^not a JSON object$/],
      ['null', /^not a JSON object$/],
      [json({ email: newEmail(), password: 'hunter22' }), /^unknown field "password"$/],
      [json({ name: 'no email' }), /^email is missing$/],
      [json({ email: 42 }), /^email must be a string$/],
      [json({ email: 'no-at-sign.example.com' }), /not a valid address/],
      [json({ email: 'a b@example.com' }), /not a valid address/],
      [json({ email: `${'a'.repeat(250)}@example.com` }), /not a valid address/],
      [json({ email: newEmail(), name: 'x'.repeat(201) }), /^name is longer than 200 characters$/],
      [json({ email: newEmail(), name: 'tab\there' }), /^name holds a control character$/],
      [json({ email: newEmail(), passwordHash: '5f4dcc3b5aa765d61d8327deb882cf99' }), /^passwordHash is neither/],
      [json({ email: newEmail(), passwordHash: BCRYPT.replace(/^\$2.\$/, '$2x$') }), /^passwordHash is neither/],
      [json({ email: newEmail(), passwordHash: BCRYPT.slice(0, 59) }), /^passwordHash is neither/],
      [json({ email: newEmail(), passwordHash: BCRYPT.replace(/^\$2(.)\$04\$/, '$2$1$31$') }), /bcrypt cost 31/],
      [json({ email: newEmail(), passwordHash: '$argon2id$v=19$m=4194304,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2g' }), /m=4194304/],
      [json({ email: newEmail(), passwordHash: 12345 }), /^passwordHash must be a string$/],
      [json({ email: newEmail(), roles: 'admin' }), /^roles must be an array/],
      [json({ email: newEmail(), roles: ['Editor'] }), /role "Editor" is not a valid name/],
      [json({ email: newEmail(), roles: ['a'.repeat(33)] }), /is not a valid name/],
      [json({ email: newEmail(), roles: Array.from({ length: 21 }, (_, i) => `role${i}`) }), /at most 20 roles, not 21/],
      [json({ email: newEmail(), roles: ['tessera:owner'] }), /role tessera:owner is reserved/],
      [json({ email: newEmail(), orgId: 'o'.repeat(65) }), /^orgId must be 1 to 64 characters$/],
      [json({ email: newEmail(), orgId: '' }), /^orgId must be 1 to 64 characters$/],
      [json({ email: newEmail(), orgId: 7 }), /^orgId must be a string$/],
      [json({ email: newEmail(), metadata: ['a'] }), /^metadata must be a JSON object$/],
      [json({ email: newEmail(), metadata: { blob: 'x'.repeat(METADATA_MAX_BYTES) } }), /^metadata is \d+ bytes serialised, more than 4096$/],
      [json({ email: newEmail(), metadata: { bad: 'nul\u0000' } }), /NUL character or a lone surrogate/],
      [`{"email":"${newEmail()}","name":"half \\ud800 a pair"}`, /NUL character or a lone surrogate/],
      [json({ email: newEmail(), emailVerified: 'yes' }), /^emailVerified must be true or false$/],
      [json({ email: dup }), /./], // a good line: the first with this email (filtered out of `expected` below)
      [json({ email: ` ${dup.toUpperCase()}` }), new RegExp(`^email ${dup} is also on line \\d+$`)],
      [new Uint8Array([0x7b, 0xff, 0x7d]), /^the line is not valid UTF-8$/],
      ['x'.repeat(IMPORT_LINE_MAX_BYTES + 1), /^the line is longer than 65536 bytes$/],
      [json({ email: 'bad', name: 5, colour: 'red' }), /^unknown field "colour"; email "bad" is not a valid address; name must be a string$/],
    ];
    const lines = [json({ email: good }), ...cases.map(([line]) => line)];
    const result = await run(lines);

    expect(result.outcome).toBe('invalid');
    const problems = result.outcome === 'invalid' ? result.problems : [];
    const dupLine = cases.findIndex(([line]) => line === json({ email: dup })) + 2;
    const expected = cases.map(([, reason], i) => ({ line: i + 2, reason })).filter(({ line }) => line !== dupLine);
    expect(problems.map((p) => p.line)).toEqual(expected.map((e) => e.line));
    for (const [i, problem] of problems.entries()) expect(problem.reason, `line ${problem.line}`).toMatch(expected[i]!.reason);
    expect(problems.find((p) => p.line === dupLine + 1)?.reason).toBe(`email ${dup} is also on line ${dupLine}`);
    expect(await userCount()).toBe(before);
    expect(await userRow(good)).toBeUndefined();
  });

  it('refuses the whole file when emails already have accounts, naming their lines', async () => {
    const { email: existing } = await newAccount(w);
    const fresh = newEmail();
    const before = await userCount();
    const result = await run([json({ email: fresh }), '', json({ email: existing.toUpperCase() })]);

    expect(result).toEqual({ outcome: 'taken', lines: [{ line: 3, email: existing }] });
    expect(await userCount()).toBe(before);
    expect(await userRow(fresh)).toBeUndefined();
  });

  it('two imports racing for one email: one imports it, the other is told it is taken and writes nothing', async () => {
    const email = newEmail();
    const bystanders = [newEmail(), newEmail()];
    const user = (address: string, name: string): ImportedUser => ({
      id: randomUUID(), email: address, name, passwordHash: UNUSABLE_PASSWORD_HASH, roles: [], orgId: null, metadata: '{}', emailVerified: false,
    });
    const results = await Promise.all([
      w.store.importUsers([user(bystanders[0]!, 'first'), user(email, 'first')], w.now(), META),
      w.store.importUsers([user(bystanders[1]!, 'second'), user(email, 'second')], w.now(), META),
    ]);

    expect(results.map((r) => r.imported).sort()).toEqual([0, 2]);
    expect(results.find((r) => r.imported === 0)?.taken).toEqual([email]);
    const winner = results.findIndex((r) => r.imported === 2);
    expect((await userRow(email))?.name).toBe(winner === 0 ? 'first' : 'second');
    expect(await userRow(bystanders[1 - winner]!)).toBeUndefined();
  });

  it('imports more users than one statement takes, in one transaction', async () => {
    const emails = Array.from({ length: 2_345 }, () => newEmail());
    const result = await run(emails.map((email) => json({ email, roles: ['member'] })));
    expect(result).toEqual({ outcome: 'imported', count: 2_345 });
    const rows = await w.store.db.selectFrom('users').select('email').where('email', 'in', emails).execute();
    expect(rows).toHaveLength(2_345);

    // One taken email near the end: nothing of the first batches stays behind.
    const more = Array.from({ length: 1_500 }, () => newEmail());
    const refused = await run([...more.map((email) => json({ email })), json({ email: emails[2_000] })]);
    expect(refused).toEqual({ outcome: 'taken', lines: [{ line: 1_501, email: emails[2_000] }] });
    expect(await w.store.db.selectFrom('users').select('email').where('email', 'in', more).execute()).toEqual([]);
  });

  it(`refuses a file of more than ${IMPORT_MAX_USERS} users, and stops reading there`, async () => {
    let read = 0;
    let blank = 0;
    async function* endless() {
      for (let i = 0; ; i++) {
        read++;
        if (i % 1000 === 0) blank++;
        yield i % 1000 === 0 ? '' : json({ email: `bulk${i}@example.com` });
      }
    }
    const before = await userCount();
    const result = await importUsers({ store: w.store, clock: w.now }, endless(), { ip: null, userAgent: null });
    expect(result).toEqual({ outcome: 'invalid', problems: [{ line: read, reason: expect.stringContaining(`more than ${IMPORT_MAX_USERS} users`) }] });
    expect(read - blank).toBe(IMPORT_MAX_USERS + 1);
    expect(await userCount()).toBe(before);
  });

  it('a user imported without a password hash cannot sign in with any password', async () => {
    const email = newEmail();
    await run([json({ email })]);
    for (const password of [OLD_PASSWORD, UNUSABLE_PASSWORD_HASH, '!unusable', 'correct horse battery staple']) {
      const error = await caught(signIn(signInDeps(w), { email, password, transport: 'body', meta: META, afterResponse: () => {} }));
      expect(error).toMatchObject({ code: 'invalid_credentials', status: 401 });
    }
    expect((await userRow(email))?.password_hash).toBe(UNUSABLE_PASSWORD_HASH);
  });

  it('takes argon2 hashes verbatim, of today’s parameters and others', async () => {
    const [today, other] = [newEmail(), newEmail()];
    const todayHash = await argon2Hash(OLD_PASSWORD, ARGON2_PARAMS);
    const otherHash = await argon2Hash(OLD_PASSWORD, { algorithm: 1 /* argon2i */, memoryCost: 4096, timeCost: 3, parallelism: 2 });
    expect(await run([json({ email: today, passwordHash: todayHash }), json({ email: other, passwordHash: otherHash })])).toMatchObject({ count: 2 });
    expect((await userRow(today))?.password_hash).toBe(todayHash);
    expect((await userRow(other))?.password_hash).toBe(otherHash);
  });
});
