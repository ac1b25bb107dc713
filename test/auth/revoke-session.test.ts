/** `revokeSession` without HTTP: only an active session of the caller's own can be ended. */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { revokeSession } from '../../src/auth/revoke-session.js';
import { BACKENDS } from '../helpers/backends.js';
import { META, caught, eventTypes, newAccount, openWorld, revokeSessionDeps, revokedReasons, type World } from './deps.js';

describe.each(BACKENDS)('revokeSession on %s', (backend) => {
  let w: World;
  beforeAll(async () => {
    w = await openWorld(backend);
  });
  afterAll(() => w.close());

  it('ends one of the caller’s sessions, given its id in any case, and records `session_revoked`', async () => {
    const { userId, sessionId } = await newAccount(w);
    await revokeSession(revokeSessionDeps(w), userId, sessionId.toUpperCase(), META);

    expect(await revokedReasons(w, userId)).toEqual({ [sessionId]: 'revoked' });
    expect(await eventTypes(w, userId)).toEqual(['registered', 'session_revoked']);
  });

  it.each([
    ['a malformed id', () => 'not-a-uuid'],
    ['an unknown id', () => randomUUID()],
  ])('answers %s with `not_found`', async (_what, id) => {
    const { userId, sessionId } = await newAccount(w);
    expect(await caught(revokeSession(revokeSessionDeps(w), userId, id(), META))).toMatchObject({ code: 'not_found', status: 404 });
    expect(await revokedReasons(w, userId)).toEqual({ [sessionId]: null });
  });

  it("answers another user's session id with `not_found` and leaves that session alone", async () => {
    const caller = await newAccount(w);
    const victim = await newAccount(w);

    const error = await caught(revokeSession(revokeSessionDeps(w), caller.userId, victim.sessionId, META));

    expect(error).toMatchObject({ code: 'not_found', status: 404 });
    expect(await revokedReasons(w, victim.userId)).toEqual({ [victim.sessionId]: null });
    expect(await eventTypes(w, victim.userId)).toEqual(['registered']);
    expect(await eventTypes(w, caller.userId)).toEqual(['registered']);
  });

  it('answers an already ended session with `not_found`', async () => {
    const { userId, sessionId } = await newAccount(w);
    await revokeSession(revokeSessionDeps(w), userId, sessionId, META);
    expect((await caught(revokeSession(revokeSessionDeps(w), userId, sessionId, META))).code).toBe('not_found');
    expect(await eventTypes(w, userId)).toEqual(['registered', 'session_revoked']);
  });
});
