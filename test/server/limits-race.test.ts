import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryWindowCounter } from '../../src/auth/window-counter.js';
import { BACKENDS } from '../helpers/backends.js';
import { login, newEmail, refresh, register, startTestApp, type TestApp } from '../helpers/app.js';

describe('MemoryWindowCounter', () => {
  it('keeps the end a window started with, however often it is hit', async () => {
    let now = 0;
    const counter = new MemoryWindowCounter(() => now);
    for (let i = 0; i < 100; i++) {
      now += 500;
      await counter.increment('k', 60);
    }
    // the window opened at 0.5 s and ends at 60.5 s: at 50 s, 10.5 s are left (rounded up), not a fresh 60
    expect(await counter.increment('k', 60)).toEqual({ count: 101, resetIn: 11 });
    now += 10_500;
    expect(await counter.increment('k', 60)).toEqual({ count: 1, resetIn: 60 });
    await counter.close();
  });
});

describe.each(BACKENDS)('limits under parallel requests on %s', (backend) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(backend, {}, { loginFailuresPerAccountIp: 5, registerPerIp: 10_000 });
  });
  afterAll(() => t.close());

  it('wrong passwords sent all at once cannot get past the per-account-per-IP limit', async () => {
    const { email } = await register(t.app);
    const results = await Promise.all(Array.from({ length: 20 }, () => login(t.app, email, { password: 'not the password at all' })));
    const statuses = results.map((r) => r.statusCode);
    expect(statuses.filter((s) => s === 401)).toHaveLength(5);
    expect(statuses.filter((s) => s === 429)).toHaveLength(15);
  });

  it('a successful login takes its attempt back', async () => {
    const { email } = await register(t.app);
    for (let i = 0; i < 8; i++) expect((await login(t.app, email)).statusCode).toBe(200);
  });

  it('a local logout with an old refresh token is theft evidence: the session is revoked for reuse', async () => {
    const { body } = await register(t.app);
    const old = body.refreshToken!;
    const second = await refresh(t.app, old);
    expect(second.statusCode).toBe(200);
    expect((await refresh(t.app, second.json().refreshToken)).statusCode).toBe(200);
    // generation 1 is now older than the parent (2) of the current generation (3)
    const res = await t.app.inject({ method: 'POST', url: '/auth/logout', payload: { refreshToken: old } });
    expect(res.statusCode).toBe(204);
    const sessionId = JSON.parse(Buffer.from(body.accessToken.split('.')[1]!, 'base64url').toString()).sid;
    const row = await t.db.store.db.selectFrom('sessions').select(['revoked_reason']).where('id', '=', sessionId).executeTakeFirstOrThrow();
    expect(row.revoked_reason).toBe('reuse');
    const events = await t.db.store.db.selectFrom('security_events').select('type').where('session_id', '=', sessionId).execute();
    expect(events.map((e) => e.type)).toContain('reuse_detected');
  });

  it('login with a new email is not limited by another account’s failures', async () => {
    expect((await login(t.app, newEmail())).statusCode).toBe(401);
  });
});
