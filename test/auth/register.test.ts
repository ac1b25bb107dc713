/** `register` without HTTP: what it writes, and that a refusal writes nothing. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { register } from '../../src/auth/register.js';
import { BACKENDS } from '../helpers/backends.js';
import { META, PASSWORD, caught, eventTypes, newEmail, openWorld, registerDeps, revokedReasons, sessionIdOf, type World } from './deps.js';

describe.each(BACKENDS)('register on %s', (backend) => {
  let w: World;
  beforeAll(async () => {
    w = await openWorld(backend);
  });
  afterAll(() => w.close());

  const countUsers = async (email: string) =>
    Number((await w.store.db.selectFrom('users').select((eb) => eb.fn.countAll().as('n')).where('email', '=', email).executeTakeFirstOrThrow()).n);
  const countAll = async (table: 'users' | 'sessions') =>
    Number((await w.store.db.selectFrom(table).select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);

  it('creates the user, its first session at generation 1 and a `registered` event', async () => {
    const email = newEmail();
    const tokens = await register(registerDeps(w), { email: `  ${email.toUpperCase()} `, password: PASSWORD, name: ' Ada ', transport: 'body', meta: META });

    expect(tokens.user).toMatchObject({ email, name: 'Ada', createdAt: w.now() });
    expect(w.refreshTokens.parse(tokens.refreshToken)?.generation).toBe(1);
    const user = await w.store.findUserByEmail(email);
    expect(user).toMatchObject({ id: tokens.user.id, disabled: false });
    expect(await w.hasher.verify(user?.passwordHash, PASSWORD)).toBe(true);

    const sessionId = sessionIdOf(w, tokens.refreshToken);
    expect(await revokedReasons(w, tokens.user.id)).toEqual({ [sessionId]: null });
    const row = await w.store.db.selectFrom('sessions').selectAll().where('id', '=', sessionId).executeTakeFirstOrThrow();
    expect(row).toMatchObject({ generation: 1, parent_generation: null, ip: META.ip, user_agent: META.userAgent });
    expect(await w.store.listEvents(tokens.user.id)).toEqual([
      { type: 'registered', sessionId, createdAt: w.now(), ip: META.ip, userAgent: META.userAgent },
    ]);
  });

  it('refuses an address already taken, in another case and with spaces, with `email_taken` and writes nothing', async () => {
    const email = newEmail();
    await register(registerDeps(w), { email, password: PASSWORD, transport: 'body', meta: META });
    const [users, sessions] = [await countAll('users'), await countAll('sessions')];

    const error = await caught(register(registerDeps(w), { email: ` ${email.toUpperCase()}\t`, password: `${PASSWORD}!`, transport: 'body', meta: META }));

    expect(error).toMatchObject({ code: 'email_taken', status: 409 });
    expect(await countUsers(email)).toBe(1);
    expect([await countAll('users'), await countAll('sessions')]).toEqual([users, sessions]);
  });

  it.each([
    ['too short', 'seven77'],
    ['one of the most common', 'password123'],
  ])('refuses a password %s with `weak_password` and writes no user', async (_why, password) => {
    const email = newEmail();
    const error = await caught(register(registerDeps(w), { email, password, transport: 'body', meta: META }));

    expect(error).toMatchObject({ code: 'weak_password', status: 400 });
    expect(await countUsers(email)).toBe(0);
  });

  it('with the cookie transport, ends the session the previous refresh cookie named', async () => {
    const previous = await register(registerDeps(w), { email: newEmail(), password: PASSWORD, transport: 'cookie', meta: META });
    const next = await register(registerDeps(w), {
      email: newEmail(), password: PASSWORD, transport: 'cookie', cookieToken: previous.refreshToken, meta: META,
    });

    expect(await revokedReasons(w, previous.user.id)).toEqual({ [sessionIdOf(w, previous.refreshToken)]: 'logout' });
    expect(await eventTypes(w, previous.user.id)).toEqual(['registered', 'logout']);
    expect(await revokedReasons(w, next.user.id)).toEqual({ [sessionIdOf(w, next.refreshToken)]: null });
  });
});
