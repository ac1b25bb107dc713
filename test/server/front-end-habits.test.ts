import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BACKENDS } from '../helpers/backends.js';
import { PASSWORD, expectProblem, newEmail, refreshCookie, startTestApp, type TestApp } from '../helpers/app.js';

/**
 * What front ends written for hand-rolled servers do (the axios code of the designs Tessera
 * replaces), and what Tessera now accepts of it: an empty body of any content type is {},
 * and a cookie logout that forgot X-Tessera-CSRF but carries the session's own Bearer token.
 */
describe.each(BACKENDS)('front-end habits on %s', (backend) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(backend);
  });
  afterAll(() => t.close());

  const signIn = async () => {
    const res = await t.app.inject({ method: 'POST', url: '/auth/register', payload: { email: newEmail(), password: PASSWORD } });
    expect(res.statusCode, res.body).toBe(201);
    const accessToken = res.json().accessToken as string;
    const sid = JSON.parse(Buffer.from(accessToken.split('.')[1]!, 'base64url').toString()).sid as string;
    return { cookie: refreshCookie(res)!.value, accessToken, sid };
  };
  const revokedAt = async (sid: string) =>
    (await t.db.store.db.selectFrom('sessions').select('revoked_at').where('id', '=', sid).executeTakeFirstOrThrow()).revoked_at;
  const FORM = 'application/x-www-form-urlencoded';

  it('axios.post(url, null): an empty form-urlencoded body refreshes and logs out like {}', async () => {
    const s = await signIn();
    const refreshed = await t.app.inject({
      method: 'POST', url: '/auth/refresh', cookies: { tessera_refresh: s.cookie }, headers: { 'content-type': FORM, 'x-tessera-csrf': '1' }, payload: '',
    });
    expect(refreshed.statusCode, refreshed.body).toBe(200);
    const out = await t.app.inject({
      method: 'POST', url: '/auth/logout', cookies: { tessera_refresh: refreshCookie(refreshed)!.value },
      headers: { 'content-type': FORM, 'x-tessera-csrf': '1' }, payload: '',
    });
    expect(out.statusCode, out.body).toBe(204);
    expect(await revokedAt(s.sid)).not.toBeNull();
  });

  it('any other content type with a body is still 415', async () => {
    for (const [type, payload] of [[FORM, 'a=1'], ['text/plain', '{}'], ['multipart/form-data; boundary=x', '--x--']] as const) {
      const res = await t.app.inject({ method: 'POST', url: '/auth/refresh', headers: { 'content-type': type }, payload });
      expectProblem(res, 415, 'unsupported_media_type');
    }
    // an empty body is {} also as JSON: refresh then has no token
    const res = await t.app.inject({ method: 'POST', url: '/auth/refresh', headers: { 'content-type': 'application/json' }, payload: '' });
    expectProblem(res, 401, 'invalid_refresh_token');
  });

  it('a cookie logout without X-Tessera-CSRF but with the same session’s Bearer token signs out', async () => {
    const s = await signIn();
    const res = await t.app.inject({
      method: 'POST', url: '/auth/logout', cookies: { tessera_refresh: s.cookie }, headers: { authorization: `Bearer ${s.accessToken}` },
    });
    expect(res.statusCode, res.body).toBe(204);
    expect(await revokedAt(s.sid)).not.toBeNull();
    expect(refreshCookie(res)?.value).toBe('');
  });

  it('without the header, another session’s token, a bad token, no token or a hostile Origin: 403 csrf_failed, the session lives', async () => {
    const s = await signIn();
    const other = await signIn();
    const attempts: Record<string, string>[] = [
      {},
      { authorization: `Bearer ${other.accessToken}` },
      { authorization: `Bearer ${s.accessToken.slice(0, -2)}xx` },
      { authorization: 'Bearer nonsense' },
      { authorization: `Bearer ${s.accessToken}`, origin: 'https://evil.example' },
    ];
    for (const headers of attempts) {
      const res = await t.app.inject({ method: 'POST', url: '/auth/logout', cookies: { tessera_refresh: s.cookie }, headers });
      expectProblem(res, 403, 'csrf_failed');
    }
    expect(await revokedAt(s.sid)).toBeNull();
    expect(await revokedAt(other.sid)).toBeNull();
  });
});
