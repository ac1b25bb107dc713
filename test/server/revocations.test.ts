import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BACKENDS } from '../helpers/backends.js';
import { PASSWORD, expectProblem, login, refresh, register, startTestApp, type TestApp } from '../helpers/app.js';

interface Page {
  entries: { sid: string; revokedAt: string }[];
  cursor: string;
}

const sidOf = (accessToken: string) => JSON.parse(Buffer.from(accessToken.split('.')[1]!, 'base64url').toString()).sid as string;

describe.each(BACKENDS)('GET /auth/revocations on %s', (backend) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(backend, { ACCESS_TOKEN_TTL: '15m' });
  });
  afterAll(() => t.close());

  const feed = async (after?: string): Promise<Page> => {
    // past the feed's cache: every read here sees the database as it is now
    t.clock.advance(1);
    const res = await t.app.inject({ method: 'GET', url: '/auth/revocations', query: after === undefined ? {} : { after } });
    expect(res.statusCode, res.body).toBe(200);
    return res.json();
  };
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

  it('lists a logout, a revoked session, a password change, a reuse and a disabled user — sids and times only', async () => {
    const start = await feed();
    const out = (await register(t.app)).body;
    await t.app.inject({ method: 'POST', url: '/auth/logout', payload: { refreshToken: out.refreshToken } });

    const { email, body: a } = await register(t.app);
    const b = (await login(t.app, email)).json();
    expect((await t.app.inject({ method: 'DELETE', url: `/auth/sessions/${sidOf(b.accessToken)}`, headers: bearer(a.accessToken) })).statusCode).toBe(204);
    const c = (await login(t.app, email)).json();
    const pw = await t.app.inject({
      method: 'POST', url: '/auth/password', headers: bearer(a.accessToken), payload: { currentPassword: PASSWORD, newPassword: `${PASSWORD} 2` },
    });
    expect(pw.statusCode, pw.body).toBe(204);

    const stolen = (await register(t.app)).body;
    const second = (await refresh(t.app, stolen.refreshToken!)).json();
    await refresh(t.app, second.refreshToken);
    // a token older than the parent generation: theft
    expect((await refresh(t.app, stolen.refreshToken!)).json().code).toBe('refresh_token_reused');

    const { email: disabledEmail, body: d } = await register(t.app);
    await t.db.store.setUserDisabled(disabledEmail, true, t.clock.now());

    const page = await feed(start.cursor);
    const sids = page.entries.map((e) => e.sid);
    for (const ended of [out, b, c, stolen, d]) expect(sids).toContain(sidOf(ended.accessToken));
    expect(sids).not.toContain(sidOf(a.accessToken)); // the session that changed the password lives on
    expect(JSON.stringify(page)).not.toContain(email.split('@')[0]);
    for (const entry of page.entries) {
      expect(Object.keys(entry).sort()).toEqual(['revokedAt', 'sid']);
      expect(new Date(entry.revokedAt).toISOString()).toBe(entry.revokedAt);
    }

    // enabled again: the user's sessions are no longer listed (verifiers still refuse tokens issued before)
    await t.db.store.setUserDisabled(disabledEmail, false, t.clock.now());
    expect((await feed(start.cursor)).entries.map((e) => e.sid)).not.toContain(sidOf(d.accessToken));
  });

  it('a cursor returns what came after it, with an overlap, and nothing older than a token lifetime', async () => {
    const first = await feed();
    const gone = (await register(t.app)).body;
    await t.app.inject({ method: 'POST', url: '/auth/logout', payload: { refreshToken: gone.refreshToken } });
    const next = await feed(first.cursor);
    expect(next.entries.map((e) => e.sid)).toContain(sidOf(gone.accessToken));

    // a cursor within 10 s of the revocation lists it again, so a late commit is never skipped
    expect((await feed(next.cursor)).entries.map((e) => e.sid)).toContain(sidOf(gone.accessToken));
    t.clock.advance(20);
    const later = await feed(next.cursor);
    expect((await feed(later.cursor)).entries.map((e) => e.sid)).not.toContain(sidOf(gone.accessToken));

    // after ACCESS_TOKEN_TTL + 60 s every token of the session has expired: forgotten
    expect((await feed()).entries.map((e) => e.sid)).toContain(sidOf(gone.accessToken));
    t.clock.advance(15 * 60 + 60);
    expect((await feed()).entries.map((e) => e.sid)).not.toContain(sidOf(gone.accessToken));
  });

  it('a forged, altered or malformed cursor is 400 invalid_request', async () => {
    const { cursor } = await feed();
    const [time, mac] = cursor.split('.');
    const forged = [
      `${(Number.parseInt(time!, 36) - 60_000).toString(36)}.${mac}`,
      `${time}.${mac!.slice(0, -1)}${mac!.endsWith('A') ? 'B' : 'A'}`,
      `${time}.${mac}.x`, 'garbage', '', `${time}`, 'ZZZ.abc',
    ];
    for (const after of forged) {
      const res = await t.app.inject({ method: 'GET', url: '/auth/revocations', query: { after } });
      expectProblem(res, 400, 'invalid_request');
    }
    expectProblem(await t.app.inject({ method: 'GET', url: `/auth/revocations?after=${'a'.repeat(65)}` }), 400, 'invalid_request');
    expectProblem(await t.app.inject({ method: 'GET', url: '/auth/revocations?since=1' }), 400, 'invalid_request');
  });
});
