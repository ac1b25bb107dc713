/**
 * Your own account (SPEC §7): `PATCH /auth/me {name?}` → 200 the user; `GET /auth/me/export` →
 * 200 everything stored about the user; `DELETE /auth/me {currentPassword}` → 204: the account,
 * its sessions and its personal data go, its security events stay without personal data, its
 * sessions are in the revocation feed and its address can sign up again. Each backend, with
 * email features on (a real SMTP server), frozen clock.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectProblem, login, PASSWORD, refresh, refreshCookie, register, type TestApp, type TokenBody } from '../helpers/app.js';
import { FEATURE_BACKENDS } from '../helpers/backends.js';
import { startMailbox, type Mailbox } from '../helpers/mailbox.js';
import { Inbox, SUBJECTS, bearer, claimsOf, expectAccepted, forgot, me, outboxDrained, startMailApp, tokensOf } from '../helpers/account-mail.js';

const FIREFOX_WINDOWS = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0';

let mailbox: Mailbox;
let inbox: Inbox;
beforeAll(async () => {
  mailbox = await startMailbox();
  inbox = new Inbox(mailbox);
});
afterAll(() => mailbox?.stop());

describe.each(FEATURE_BACKENDS)('own account on %s', (backend) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startMailApp(backend, mailbox);
  });
  afterAll(() => t?.close());

  const patchMe = (accessToken: string | undefined, payload: unknown) =>
    t.app.inject({ method: 'PATCH', url: '/auth/me', headers: accessToken ? bearer(accessToken) : {}, payload: payload as object });
  const deleteMe = (accessToken: string, payload: unknown, headers: Record<string, string> = {}) =>
    t.app.inject({ method: 'DELETE', url: '/auth/me', headers: { ...bearer(accessToken), ...headers }, payload: payload as object });
  const exportMe = (accessToken: string) => t.app.inject({ method: 'GET', url: '/auth/me/export', headers: bearer(accessToken) });

  describe('PATCH /auth/me', () => {
    it('sets the name (trimmed) and answers the user as it is now; an event is recorded', async () => {
      const { body } = await register(t.app);
      const res = await patchMe(body.accessToken, { name: '  Ada Lovelace  ' });
      expect(res.statusCode, res.body).toBe(200);
      expect(res.json()).toEqual({ user: { ...body.user, name: 'Ada Lovelace', roles: [], orgId: null, emailVerified: false } });
      expect((await me(t.app, body.accessToken)).json().user.name).toBe('Ada Lovelace');
      const types = await t.db.store.db.selectFrom('security_events').select('type').where('user_id', '=', claimsOf(body.accessToken).sub).execute();
      expect(types.map((e) => e.type)).toContain('profile_updated');

      // an empty body changes nothing
      const same = await patchMe(body.accessToken, {});
      expect(same.statusCode, same.body).toBe(200);
      expect(same.json().user.name).toBe('Ada Lovelace');
    });

    it('refuses what is not a name, and anything but a name: 400 invalid_request; no token: 401', async () => {
      const { body } = await register(t.app);
      for (const payload of [
        { name: 'Ada\r\nBcc: attacker@example.com' },
        { name: 'Ada\u0000' },
        { name: 'x'.repeat(201) },
        { name: 42 },
        { email: 'attacker@example.com' },
        { name: 'Ada', roles: ['tessera:admin'] },
      ]) {
        expectProblem(await patchMe(body.accessToken, payload), 400, 'invalid_request');
      }
      expect((await me(t.app, body.accessToken)).json().user).toEqual({ ...body.user, roles: [], orgId: null, emailVerified: false });
      expectProblem(await patchMe(undefined, { name: 'Ada' }), 401, 'unauthorized');
    });
  });

  describe('GET /auth/me/export', () => {
    it('is everything stored about the caller, as a JSON attachment, without a hash, a salt or a link', async () => {
      const { email, body } = await register(t.app, { headers: { 'user-agent': FIREFOX_WINDOWS } });
      const userId = claimsOf(body.accessToken).sub;
      tokensOf(await login(t.app, email));
      await patchMe(body.accessToken, { name: 'Ada' });

      const res = await exportMe(body.accessToken);
      expect(res.statusCode, res.body).toBe(200);
      expect(res.headers['content-type']).toMatch(/^application\/json/);
      expect(res.headers['content-disposition']).toMatch(/^attachment/);
      const data = res.json();
      expect(data.user).toMatchObject({ id: userId, email, name: 'Ada' });
      expect(data.sessions).toHaveLength(2);
      expect(data.sessions).toContainEqual(expect.objectContaining({ userAgent: FIREFOX_WINDOWS, ip: '127.0.0.1' }));
      expect(data.events.map((e: { type: string }) => e.type)).toEqual(expect.arrayContaining(['registered', 'login_succeeded', 'profile_updated']));
      expect(data.knownDevices.length).toBeGreaterThan(0);
      expect(data.pendingLinks).toEqual([expect.objectContaining({ purpose: 'verify_email', email })]);

      // nothing that could be used: the password hash, a session's salt, a link's request id or token
      const user = await t.db.store.db.selectFrom('users').select('password_hash').where('id', '=', userId).executeTakeFirstOrThrow();
      const sessions = await t.db.store.db.selectFrom('sessions').select('salt').where('user_id', '=', userId).execute();
      const link = await t.db.store.db.selectFrom('account_tokens').select('request_id').where('user_id', '=', userId).executeTakeFirstOrThrow();
      const token = await inbox.token(email, SUBJECTS.verify);
      expect(res.body).not.toContain(user.password_hash);
      expect(res.body).not.toContain('$argon2');
      for (const s of sessions) {
        const salt = Buffer.from(s.salt);
        for (const encoding of ['hex', 'base64', 'base64url'] as const) expect(res.body).not.toContain(salt.toString(encoding));
      }
      expect(res.body).not.toContain(link.request_id);
      expect(res.body).not.toContain(token);
      expect(res.body).not.toContain(body.refreshToken!);
    });

    it('needs a Bearer token of a live session: 401', async () => {
      expectProblem(await t.app.inject({ method: 'GET', url: '/auth/me/export' }), 401, 'unauthorized');
      const { body } = await register(t.app);
      await t.app.inject({ method: 'POST', url: '/auth/logout', payload: { refreshToken: body.refreshToken } });
      expectProblem(await exportMe(body.accessToken), 401, 'unauthorized');
    });
  });

  describe('DELETE /auth/me', () => {
    it('a wrong or missing currentPassword: 403 invalid_credentials, 400; the account stays', async () => {
      const { email, body } = await register(t.app);
      expectProblem(await deleteMe(body.accessToken, { currentPassword: 'not the password' }), 403, 'invalid_credentials');
      expectProblem(await deleteMe(body.accessToken, {}), 400, 'invalid_request');
      expect((await me(t.app, body.accessToken)).statusCode).toBe(200);
      tokensOf(await login(t.app, email));
    });

    it('deletes the account: every session refused and in the revocation feed, events kept without personal data, the address free', async () => {
      const feedStart = (await t.app.inject({ url: '/auth/revocations' })).json().cursor as string;
      const { email, body: first } = await register(t.app, { headers: { 'user-agent': FIREFOX_WINDOWS } });
      const userId = claimsOf(first.accessToken).sub;
      const second = tokensOf(await login(t.app, email, { headers: { 'user-agent': FIREFOX_WINDOWS } }));
      const browser = await login(t.app, email, { transport: 'cookie' });
      expect(browser.statusCode, browser.body).toBe(200);
      const sessions: TokenBody[] = [first, second, browser.json()];
      const sids = sessions.map((s) => claimsOf(s.accessToken).sid);
      await outboxDrained(t);

      const res = await deleteMe(first.accessToken, { currentPassword: PASSWORD });
      expect(res.statusCode, res.body).toBe(204);
      // the browser's refresh cookie is cleared
      expect(refreshCookie(res)).toMatchObject({ value: '' });

      // no session of the account works any more
      for (const s of sessions) expectProblem(await me(t.app, s.accessToken), 401, 'unauthorized');
      for (const s of [first, second]) expectProblem(await refresh(t.app, s.refreshToken!), 401, 'invalid_refresh_token');
      expectProblem(await login(t.app, email), 401, 'invalid_credentials');

      // resource servers hear of every one of them
      t.clock.advance(1);
      const feed = await t.app.inject({ url: '/auth/revocations', query: { after: feedStart } });
      expect(feed.statusCode, feed.body).toBe(200);
      const listed = (feed.json().entries as { sid: string }[]).map((e) => e.sid);
      for (const sid of sids) expect(listed).toContain(sid);

      // what stays holds no personal data; what identified the person is gone
      const db = t.db.store.db;
      const events = await db.selectFrom('security_events').select(['type', 'ip', 'user_agent']).where('user_id', '=', userId).orderBy('id').execute();
      expect(events.map((e) => e.type)).toEqual(expect.arrayContaining(['registered', 'login_succeeded', 'account_deleted']));
      for (const e of events) expect(e).toMatchObject({ ip: null, user_agent: null });
      const rows = await db.selectFrom('sessions').select(['revoked_at', 'ip', 'user_agent']).where('user_id', '=', userId).execute();
      for (const s of rows) expect(s).toMatchObject({ revoked_at: expect.any(Date), ip: null, user_agent: null });
      expect(await db.selectFrom('users').select('id').where('id', '=', userId).execute()).toEqual([]);
      expect(await db.selectFrom('user_emails').select('user_id').where('email', '=', email).execute()).toEqual([]);
      expect(await db.selectFrom('known_devices').select('device').where('user_id', '=', userId).execute()).toEqual([]);
      expect(await db.selectFrom('account_tokens').select('purpose').where('user_id', '=', userId).execute()).toEqual([]);
      expect(await db.selectFrom('outbox').select('id').where('user_id', '=', userId).where('kind', '=', 'mail').execute()).toEqual([]);

      // nobody can recover it, and the address can sign up again as a new account
      expectAccepted(await forgot(t.app, email));
      const again = await register(t.app, { email });
      expect(claimsOf(again.body.accessToken).sub).not.toBe(userId);
      await inbox.next(email, SUBJECTS.verify);
      await outboxDrained(t);
      expect(inbox.all(email, SUBJECTS.reset)).toEqual([]);
    });

    it('needs a Bearer token: 401', async () => {
      expectProblem(await t.app.inject({ method: 'DELETE', url: '/auth/me', payload: { currentPassword: PASSWORD } }), 401, 'unauthorized');
    });
  });
});
