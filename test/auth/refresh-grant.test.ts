/** `refreshGrant` without HTTP: rotation, the replay within grace, and reuse of an older generation. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { refreshGrant } from '../../src/auth/refresh-grant.js';
import { BACKENDS } from '../helpers/backends.js';
import { META, caught, eventTypes, newAccount, openWorld, refreshDeps, revokedReasons, type World } from './deps.js';

describe.each(BACKENDS)('refreshGrant on %s', (backend) => {
  let w: World;
  beforeAll(async () => {
    w = await openWorld(backend);
  });
  afterAll(() => w.close());

  const refresh = (token: string) => refreshGrant(refreshDeps(w), token, META);
  const generationOf = (token: string) => w.refreshTokens.parse(token)?.generation;
  const sessionRow = (id: string) =>
    w.store.db.selectFrom('sessions').select(['generation', 'parent_generation', 'revoked_reason']).where('id', '=', id).executeTakeFirstOrThrow();

  it('rotates to generation 2, and a replay of generation 1 within grace returns the identical token', async () => {
    const { sessionId, tokens: first } = await newAccount(w);
    w.clock.advance(60);
    const rotated = await refresh(first.refreshToken);
    expect(generationOf(rotated.refreshToken)).toBe(2);

    w.clock.advance(w.graceSeconds / 2);
    const replayed = await refresh(first.refreshToken);

    expect(replayed.refreshToken).toBe(rotated.refreshToken);
    expect(replayed.accessToken).not.toBe(rotated.accessToken);
    expect(await sessionRow(sessionId)).toEqual({ generation: 2, parent_generation: 1, revoked_reason: null });
  });

  it('ends the session for reuse when generation 1 comes back after two rotations', async () => {
    const { userId, sessionId, tokens: first } = await newAccount(w);
    const second = await refresh(first.refreshToken);
    w.clock.advance(w.graceSeconds + 1);
    const third = await refresh(second.refreshToken);
    expect(generationOf(third.refreshToken)).toBe(3);

    const error = await caught(refresh(first.refreshToken));

    expect(error).toMatchObject({ code: 'refresh_token_reused', status: 401 });
    expect(await sessionRow(sessionId)).toEqual({ generation: 3, parent_generation: 2, revoked_reason: 'reuse' });
    expect(await eventTypes(w, userId)).toEqual(['registered', 'reuse_detected']);
    // Every later holder, the current one included, hears why (SPEC §3 rule 6), and nothing more is recorded.
    expect((await caught(refresh(third.refreshToken))).code).toBe('refresh_token_reused');
    expect(await revokedReasons(w, userId)).toEqual({ [sessionId]: 'reuse' });
    expect(await eventTypes(w, userId)).toEqual(['registered', 'reuse_detected']);
  });

  it('refuses a token whose MAC is not genuine with `invalid_refresh_token` and changes nothing', async () => {
    const { sessionId, tokens } = await newAccount(w);
    // One character inside the MAC changed: still well formed, so it is the MAC that is refused.
    const at = tokens.refreshToken.length - 10;
    const forged = tokens.refreshToken.slice(0, at) + (tokens.refreshToken[at] === 'A' ? 'B' : 'A') + tokens.refreshToken.slice(at + 1);
    expect(w.refreshTokens.parse(forged)?.sessionId).toBe(sessionId);

    expect((await caught(refresh(forged))).code).toBe('invalid_refresh_token');
    expect(await sessionRow(sessionId)).toEqual({ generation: 1, parent_generation: null, revoked_reason: null });
  });
});
