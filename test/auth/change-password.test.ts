/** `changePassword` without HTTP: the 403 case of a wrong current password, and what a change ends. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { changePassword } from '../../src/auth/change-password.js';
import { signIn } from '../../src/auth/sign-in.js';
import { BACKENDS } from '../helpers/backends.js';
import {
  META, PASSWORD, caught, changePasswordDeps, eventTypes, newAccount, openWorld, revokedReasons, sessionIdOf, signInDeps, type World,
} from './deps.js';

const NEW_PASSWORD = 'a brand new passphrase, never used';

describe.each(BACKENDS)('changePassword on %s', (backend) => {
  let w: World;
  beforeAll(async () => {
    w = await openWorld(backend);
  });
  afterAll(() => w.close());

  const storedHash = async (userId: string) => (await w.store.findUserById(userId))?.passwordHash;

  it('refuses a wrong current password with `invalid_credentials` in its 403 case and keeps the old hash', async () => {
    const { userId, sessionId } = await newAccount(w);
    const before = await storedHash(userId);

    const error = await caught(changePassword(changePasswordDeps(w), {
      userId, sessionId, currentPassword: 'not the password at all', newPassword: NEW_PASSWORD, meta: META,
    }));

    expect(error).toMatchObject({ code: 'invalid_credentials', status: 403 });
    expect(await storedHash(userId)).toBe(before);
    expect(await revokedReasons(w, userId)).toEqual({ [sessionId]: null });
    expect(await eventTypes(w, userId)).toEqual(['registered']);
  });

  it("sets the new password, keeps the caller's session, ends the others and records `password_changed`", async () => {
    const { email, userId, sessionId } = await newAccount(w);
    const other = await signIn(signInDeps(w), { email, password: PASSWORD, transport: 'body', meta: META, afterResponse: () => {} });

    await changePassword(changePasswordDeps(w), { userId, sessionId, currentPassword: PASSWORD, newPassword: NEW_PASSWORD, meta: META });

    expect(await revokedReasons(w, userId)).toEqual({ [sessionId]: null, [sessionIdOf(w, other.refreshToken)]: 'password_changed' });
    expect((await w.store.listEvents(userId))[0]).toMatchObject({ type: 'password_changed', sessionId });
    const hash = await storedHash(userId);
    expect(await w.hasher.verify(hash, NEW_PASSWORD)).toBe(true);
    expect(await w.hasher.verify(hash, PASSWORD)).toBe(false);
  });

  it('refuses a common new password with `weak_password` before checking the current one', async () => {
    const { userId, sessionId } = await newAccount(w);
    const before = await storedHash(userId);

    const error = await caught(changePassword(changePasswordDeps(w), { userId, sessionId, currentPassword: PASSWORD, newPassword: 'password123', meta: META }));

    expect(error).toMatchObject({ code: 'weak_password', status: 400 });
    expect(await storedHash(userId)).toBe(before);
  });
});
