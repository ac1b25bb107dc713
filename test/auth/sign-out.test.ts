/** `signOut` without HTTP: each scope, with a refresh token or an access token, and with nothing at all. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signIn } from '../../src/auth/sign-in.js';
import { signOut } from '../../src/auth/sign-out.js';
import { BACKENDS } from '../helpers/backends.js';
import { META, PASSWORD, caught, eventTypes, newAccount, openWorld, revokedReasons, sessionIdOf, signInDeps, signOutDeps, type World } from './deps.js';

describe.each(BACKENDS)('signOut on %s', (backend) => {
  let w: World;
  beforeAll(async () => {
    w = await openWorld(backend);
  });
  afterAll(() => w.close());

  /** A user with two sessions: `a` from registering, `b` from signing in. */
  async function twoSessions() {
    const account = await newAccount(w);
    const b = await signIn(signInDeps(w), {
      email: account.email, password: PASSWORD, transport: 'body', meta: META, afterResponse: () => {},
    });
    return { userId: account.userId, a: account.tokens, aId: account.sessionId, b, bId: sessionIdOf(w, b.refreshToken) };
  }

  it('local, with a refresh token, ends that session only', async () => {
    const { userId, a, aId, bId } = await twoSessions();
    await signOut(signOutDeps(w), { scope: 'local', refreshToken: a.refreshToken, meta: META });

    expect(await revokedReasons(w, userId)).toEqual({ [aId]: 'logout', [bId]: null });
    expect(await eventTypes(w, userId)).toEqual(['registered', 'login_succeeded', 'logout']);
  });

  it('local, with an access token only, ends the session it names', async () => {
    const { userId, aId, b, bId } = await twoSessions();
    await signOut(signOutDeps(w), { scope: 'local', accessToken: b.accessToken, meta: META });

    expect(await revokedReasons(w, userId)).toEqual({ [aId]: null, [bId]: 'logout' });
  });

  it("others keeps the caller's session and ends the rest", async () => {
    const { userId, a, aId, bId } = await twoSessions();
    const third = sessionIdOf(w, (await signIn(signInDeps(w), {
      email: a.user.email, password: PASSWORD, transport: 'body', meta: META, afterResponse: () => {},
    })).refreshToken);

    await signOut(signOutDeps(w), { scope: 'others', refreshToken: a.refreshToken, meta: META });

    expect(await revokedReasons(w, userId)).toEqual({ [aId]: null, [bId]: 'logout_others', [third]: 'logout_others' });
    expect((await w.store.listEvents(userId))[0]).toMatchObject({ type: 'sessions_revoked', sessionId: aId });
  });

  it('global, with an access token only, ends every session', async () => {
    const { userId, aId, b, bId } = await twoSessions();
    await signOut(signOutDeps(w), { scope: 'global', accessToken: b.accessToken, meta: META });

    expect(await revokedReasons(w, userId)).toEqual({ [aId]: 'logout_global', [bId]: 'logout_global' });
    expect(await eventTypes(w, userId)).toEqual(['registered', 'login_succeeded', 'sessions_revoked']);
  });

  it('global with an access token of an ended session is `unauthorized` and ends nothing', async () => {
    const { userId, a, aId, bId } = await twoSessions();
    await signOut(signOutDeps(w), { scope: 'local', refreshToken: a.refreshToken, meta: META });

    expect(await caught(signOut(signOutDeps(w), { scope: 'global', accessToken: a.accessToken, meta: META }))).toMatchObject({ code: 'unauthorized', status: 401 });
    expect(await revokedReasons(w, userId)).toEqual({ [aId]: 'logout', [bId]: null });
  });

  it('local with neither token resolves and changes nothing', async () => {
    const { userId } = await twoSessions();
    const countRevoked = async () =>
      Number((await w.store.db.selectFrom('sessions').select((eb) => eb.fn.countAll().as('n')).where('revoked_at', 'is not', null).executeTakeFirstOrThrow()).n);
    const countEvents = async () =>
      Number((await w.store.db.selectFrom('security_events').select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);
    const before = [await countRevoked(), await countEvents()];

    await expect(signOut(signOutDeps(w), { scope: 'local', meta: META })).resolves.toBeUndefined();

    expect([await countRevoked(), await countEvents()]).toEqual(before);
    expect(Object.values(await revokedReasons(w, userId))).toEqual([null, null]);
  });
});
