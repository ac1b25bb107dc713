/**
 * Abuse of refresh tokens (SPEC §2 and §3, RFC 9700 §4.14, ASVS 5.0 V7), as real HTTP
 * requests to a listening server, with the session row and the security events checked
 * after every step.
 *
 * The plain rules of §3 (rotate, replay, reissue, reuse, refused, ended) are proven end to
 * end in test/server/auth-flow.test.ts, exhaustively in test/core/decide-refresh.test.ts,
 * and under concurrency in test/store/concurrency.test.ts. This file is what an attacker
 * does with them: replays long after, bytes changed by hand, tokens spliced between
 * sessions, forgeries by someone who can read the database, tokens after the session ended
 * for every reason, and forged tokens used to sign a victim out or to spend their budget.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RefreshTokenCodec } from '../../src/core/refresh-token.js';
import { TEST_SECRET } from '../helpers/app.js';
import { bearer, codeOf, type HttpResponse } from '../faults/helpers/http.js';
import { claimsOf, eventsOf, loginAccount, registerAccount, sessionRow, snapshot, startLiveApp, type Account, type LiveApp } from './helpers/live-app.js';

const DAY = 86_400;
let t: LiveApp;

beforeAll(async () => {
  t = await startLiveApp({ RATE_LIMITS: 'off', REFRESH_TOKEN_TTL: '7d', SESSION_MAX_AGE: '30d', REFRESH_REUSE_GRACE: '10s' });
});
afterAll(() => t?.close());

// ---- token surgery: tsr_ + base64url(version 1 B ‖ user id 16 B ‖ session id 16 B ‖ generation 4 B ‖ MAC 32 B) ----

const GENERATION_AT = 33;
const MAC_AT = 37;
const TOKEN_BYTES = 69;

function bytesOf(token: string): Buffer {
  return Buffer.from(token.slice(4), 'base64url');
}
function tokenOf(bytes: Buffer): string {
  return `tsr_${bytes.toString('base64url')}`;
}
function generationOf(token: string): number {
  return bytesOf(token).readUInt32BE(GENERATION_AT);
}
/** The same token with its generation bytes replaced, MAC kept. */
function withGeneration(token: string, generation: number): string {
  const bytes = bytesOf(token);
  bytes.writeUInt32BE(generation >>> 0, GENERATION_AT);
  return tokenOf(bytes);
}
function flipByte(token: string, index: number): string {
  const bytes = bytesOf(token);
  bytes[index] = bytes[index]! ^ 0x01;
  return tokenOf(bytes);
}
/** Ids and generation of `head`, MAC of `tail`. */
function splice(head: string, tail: string): string {
  return tokenOf(Buffer.concat([bytesOf(head).subarray(0, MAC_AT), bytesOf(tail).subarray(MAC_AT)]));
}

async function refresh(token: string): Promise<HttpResponse> {
  return t.http.post('/auth/refresh', { refreshToken: token });
}
async function refreshed(token: string): Promise<{ refreshToken: string; accessToken: string }> {
  const res = await refresh(token);
  expect(res.status, res.text).toBe(200);
  return res.json<{ refreshToken: string; accessToken: string }>();
}
async function rotated(token: string): Promise<string> {
  return (await refreshed(token)).refreshToken;
}
function expectCode(res: HttpResponse, status: number, code: string) {
  expect(res.status, res.text).toBe(status);
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(codeOf(res)).toBe(code);
}
async function reuseEvents(account: Account) {
  return (await eventsOf(t, account.sub)).filter((e) => e.type === 'reuse_detected');
}

/** A session with a history: tokens of generations 1..n (index = generation - 1). */
async function sessionWithHistory(n: number, account?: Account): Promise<{ account: Account; tokens: string[] }> {
  const a = account ?? (await registerAccount(t.http));
  const tokens = [a.tokens.refreshToken!];
  for (let g = 2; g <= n; g++) {
    t.clock.advance(60);
    tokens.push(await rotated(tokens[tokens.length - 1]!));
  }
  return { account: a, tokens };
}

describe('replay of old generations long after', () => {
  it('a generation-1 token captured at login and replayed six days (and six rotations) later revokes only its session', async () => {
    const victim = await registerAccount(t.http);
    const laptop = await loginAccount(t.http, victim);
    const stranger = await registerAccount(t.http);
    const captured = victim.tokens.refreshToken!;
    let current = captured;
    for (let day = 1; day <= 6; day++) {
      t.clock.advance(DAY);
      current = await rotated(current);
    }
    expect(await sessionRow(t, victim.sid)).toMatchObject({ generation: 7, parent_generation: 6, revoked_at: null });

    t.clock.advance(3600);
    expectCode(await refresh(captured), 401, 'refresh_token_reused');
    expect(await sessionRow(t, victim.sid)).toMatchObject({ generation: 7, revoked_reason: 'reuse', revoked_at: t.clock.now() });
    expect(await reuseEvents(victim)).toEqual([{ type: 'reuse_detected', session_id: victim.sid }]);
    // the holder of the newest token learns why too, and it is recorded once
    expectCode(await refresh(current), 401, 'refresh_token_reused');
    expect(await reuseEvents(victim)).toHaveLength(1);
    expectCode(await t.http.get('/auth/me', { headers: bearer(victim.tokens.accessToken) }), 401, 'unauthorized');
    // the same user's other device and another user carry on
    await rotated(laptop.tokens.refreshToken!);
    await rotated(stranger.tokens.refreshToken!);
  });

  it('after the idle lifetime every token, old or current, is session_expired; nothing is revoked or recorded', async () => {
    const { account, tokens } = await sessionWithHistory(4);
    t.clock.advance(7 * DAY + 1);
    const before = await sessionRow(t, account.sid);
    for (const token of [...tokens].reverse()) expectCode(await refresh(token), 401, 'session_expired');
    expect(await sessionRow(t, account.sid)).toEqual(before);
    expect(before).toMatchObject({ revoked_at: null, generation: 4 });
    expect(await reuseEvents(account)).toEqual([]);
  });

  it('after the absolute lifetime (refreshed daily for 30 days) every token is session_expired; nothing is revoked', async () => {
    const account = await registerAccount(t.http);
    const tokens = [account.tokens.refreshToken!];
    for (let day = 1; day < 30; day++) {
      t.clock.advance(DAY);
      tokens.push(await rotated(tokens[tokens.length - 1]!));
    }
    t.clock.advance(DAY);
    const before = await sessionRow(t, account.sid);
    for (const token of [tokens[tokens.length - 1]!, tokens[tokens.length - 2]!, tokens[0]!]) {
      expectCode(await refresh(token), 401, 'session_expired');
    }
    expect(await sessionRow(t, account.sid)).toEqual(before);
    expect(await reuseEvents(account)).toEqual([]);
  });
});

describe('tokens of a session that ended are refused without raising a false theft alarm', () => {
  it('after logout: the current, parent and older tokens are invalid_refresh_token; the reason stays logout; no reuse event', async () => {
    const { account, tokens } = await sessionWithHistory(4);
    expect((await t.http.post('/auth/logout', { refreshToken: tokens[3] })).status).toBe(204);
    t.clock.advance(30 * 60);
    for (const token of [...tokens].reverse()) expectCode(await refresh(token), 401, 'invalid_refresh_token');
    expect(await sessionRow(t, account.sid)).toMatchObject({ revoked_reason: 'logout', generation: 4 });
    expect(await reuseEvents(account)).toEqual([]);
  });

  it('after a password change: the other sessions’ tokens of every generation are invalid_refresh_token; the changer’s session works', async () => {
    const owner = await registerAccount(t.http);
    const { account: other, tokens } = await sessionWithHistory(3, await loginAccount(t.http, owner));
    const res = await t.http.post('/auth/password', { currentPassword: owner.password, newPassword: 'a brand new passphrase' }, { headers: bearer(owner.tokens.accessToken) });
    expect(res.status, res.text).toBe(204);
    for (const token of [...tokens].reverse()) expectCode(await refresh(token), 401, 'invalid_refresh_token');
    expect(await sessionRow(t, other.sid)).toMatchObject({ revoked_reason: 'password_changed', generation: 3 });
    expect(await reuseEvents(owner)).toEqual([]);
    await rotated(owner.tokens.refreshToken!);
  });

  it('after the account is disabled: even an orphan is invalid_refresh_token and revokes nothing; after enable it is still evidence of theft', async () => {
    const { account, tokens } = await sessionWithHistory(2); // 1 → 2
    t.clock.advance(11);
    const reissued = await rotated(tokens[0]!); // lost response: 1 again → 3, so 2 is an orphan
    expect(generationOf(reissued)).toBe(3);
    const orphan = tokens[1]!;

    await t.db.store.setUserDisabled(account.email, true, t.clock.now());
    const before = await sessionRow(t, account.sid);
    for (const token of [orphan, reissued, tokens[0]!]) expectCode(await refresh(token), 401, 'invalid_refresh_token');
    expect(await sessionRow(t, account.sid)).toEqual(before);
    expect(await reuseEvents(account)).toEqual([]);
    const login = await t.http.post('/auth/login', { email: account.email, password: account.password, transport: 'body' });
    expectCode(login, 403, 'account_disabled');

    await t.db.store.setUserDisabled(account.email, false, t.clock.now());
    expectCode(await refresh(orphan), 401, 'refresh_token_reused');
    expect(await sessionRow(t, account.sid)).toMatchObject({ revoked_reason: 'reuse' });
    expect(await reuseEvents(account)).toHaveLength(1);
  });
});

describe('tampered bytes: a forged token never changes a session, so it can never sign anyone out', () => {
  /** A victim at generation 4 (parent 3), and the row to compare against. */
  async function victimAtGeneration4() {
    const { account, tokens } = await sessionWithHistory(4);
    t.clock.advance(60);
    return { account, tokens, before: await sessionRow(t, account.sid) };
  }

  it('generation bytes changed, MAC kept (to the parent, an older one, the next, 0, 2^32-1, high bit) → invalid_refresh_token', async () => {
    const { account, tokens, before } = await victimAtGeneration4();
    const current = tokens[3]!;
    // had the generation been judged before the MAC, 3 would replay or reissue and 1 or 2 would revoke the session
    for (const g of [3, 2, 1, 5, 0, 0xffffffff, 4 | 0x80000000]) {
      expectCode(await refresh(withGeneration(current, g)), 401, 'invalid_refresh_token');
    }
    expect(await sessionRow(t, account.sid)).toEqual(before);
    expect(await reuseEvents(account)).toEqual([]);
    await rotated(current);
  });

  it('each of the 32 MAC bytes flipped in turn → invalid_refresh_token, nothing changes', async () => {
    const { account, tokens, before } = await victimAtGeneration4();
    for (const token of [tokens[3]!, tokens[0]!]) {
      for (let i = MAC_AT; i < TOKEN_BYTES; i++) expectCode(await refresh(flipByte(token, i)), 401, 'invalid_refresh_token');
    }
    expect(await sessionRow(t, account.sid)).toEqual(before);
    expect(await reuseEvents(account)).toEqual([]);
  });

  it('version, user id and session id bytes flipped → invalid_refresh_token; neither the victim nor any other session moves', async () => {
    const { account, tokens, before } = await victimAtGeneration4();
    const all = await snapshot(t);
    for (const i of [0, 1, 8, 16, 17, 24, 32]) expectCode(await refresh(flipByte(tokens[0]!, i)), 401, 'invalid_refresh_token');
    expect(await sessionRow(t, account.sid)).toEqual(before);
    expect(await snapshot(t)).toEqual(all);
  });

  it('a token of another session: the victim’s id and generation with the attacker’s genuine MAC → invalid_refresh_token', async () => {
    const { account, tokens, before } = await victimAtGeneration4();
    const { tokens: mine } = await sessionWithHistory(4);
    for (let g = 0; g < 4; g++) expectCode(await refresh(splice(tokens[g]!, mine[g]!)), 401, 'invalid_refresh_token');
    // and the attacker's own id with the victim's MAC
    expectCode(await refresh(splice(mine[3]!, tokens[3]!)), 401, 'invalid_refresh_token');
    expect(await sessionRow(t, account.sid)).toEqual(before);
    expect(await reuseEvents(account)).toEqual([]);
  });

  it('someone who can read the database (salt, generation) but not TESSERA_SECRET cannot forge a token, not even an old one', async () => {
    const { account, tokens, before } = await victimAtGeneration4();
    const { salt } = await t.db.store.db.selectFrom('sessions').select('salt').where('id', '=', account.sid).executeTakeFirstOrThrow();
    for (const secret of ['another-secret-that-is-at-least-32-bytes!!', TEST_SECRET.slice(0, -1) + '?', '']) {
      const codec = new RefreshTokenCodec(secret);
      for (const g of [4, 3, 1]) {
        const forged = codec.issue(account.sub, account.sid, Buffer.from(salt), g);
        expect(forged).not.toBe(tokens[g - 1]);
        expectCode(await refresh(forged), 401, 'invalid_refresh_token');
      }
    }
    expect(await sessionRow(t, account.sid)).toEqual(before);
    expect(await reuseEvents(account)).toEqual([]);
  });

  it('forged old-generation tokens sent to logout (any scope) and as the cookie sign nobody out', async () => {
    const { account, tokens, before } = await victimAtGeneration4();
    const laptop = await loginAccount(t.http, account);
    const forgedOld = withGeneration(tokens[3]!, 1);
    expect((await t.http.post('/auth/logout', { refreshToken: forgedOld })).status).toBe(204);
    expectCode(await t.http.post('/auth/logout', { refreshToken: forgedOld, scope: 'global' }), 401, 'invalid_refresh_token');
    expectCode(await t.http.post('/auth/logout', { refreshToken: forgedOld, scope: 'others' }), 401, 'invalid_refresh_token');
    const cookie = await t.http.post('/auth/refresh', undefined, { headers: { cookie: `tessera_refresh=${forgedOld}`, 'x-tessera-csrf': '1' } });
    expectCode(cookie, 401, 'invalid_refresh_token');
    expect(await sessionRow(t, account.sid)).toEqual(before);
    expect(await sessionRow(t, laptop.sid)).toMatchObject({ revoked_at: null });
    expect(await reuseEvents(account)).toEqual([]);
  });

  it('an access token, or a refresh token with its prefix or case changed, is not a refresh token', async () => {
    const { account, tokens, before } = await victimAtGeneration4();
    const current = tokens[3]!;
    for (const token of [account.tokens.accessToken, current.replace('tsr_', 'TSR_'), current.slice(4), `tsr_${current}`, current.toUpperCase(), `${current}=`]) {
      expectCode(await refresh(token), 401, 'invalid_refresh_token');
    }
    expect(await sessionRow(t, account.sid)).toEqual(before);
  });
});

describe('theft: reuse revokes only that session', () => {
  it('a thief rotates a stolen token first; when the two lines cross, that one session is revoked — both are out, every other session and user carries on', async () => {
    const victim = await registerAccount(t.http);
    const phone = await loginAccount(t.http, victim);
    const tablet = await loginAccount(t.http, victim);
    const neighbour = await registerAccount(t.http);
    const stolen = victim.tokens.refreshToken!;

    t.clock.advance(60);
    const thiefToken = await rotated(stolen); // the thief uses it first: 1 → 2
    t.clock.advance(3600);
    // The victim comes back with its copy of 1, the parent: Tessera cannot tell this from a lost
    // response, so it reissues (1 → 3) and 2, the thief's token, becomes an orphan (SPEC §3 rule 3).
    const victimToken = await rotated(stolen);
    expect(generationOf(victimToken)).toBe(3);
    t.clock.advance(60);
    expectCode(await refresh(thiefToken), 401, 'refresh_token_reused');

    expect(await sessionRow(t, victim.sid)).toMatchObject({ revoked_reason: 'reuse', generation: 3 });
    expect(await reuseEvents(victim)).toEqual([{ type: 'reuse_detected', session_id: victim.sid }]);
    // the victim's line is out too, and so is the thief on every retry
    expectCode(await refresh(victimToken), 401, 'refresh_token_reused');
    expectCode(await refresh(thiefToken), 401, 'refresh_token_reused');

    // every other session of the victim, and the neighbour, are untouched and keep working
    const access: string[] = [];
    for (const device of [phone, tablet]) {
      expect(await sessionRow(t, device.sid)).toMatchObject({ revoked_at: null, generation: 1 });
      const { accessToken } = await refreshed(device.tokens.refreshToken!);
      expect((await t.http.get('/auth/me', { headers: bearer(accessToken) })).status).toBe(200);
      access.push(accessToken);
    }
    await rotated(neighbour.tokens.refreshToken!);
    const listed = await t.http.get('/auth/sessions', { headers: bearer(access[0]!) });
    expect(listed.json<{ sessions: { id: string }[] }>().sessions.map((s) => s.id).sort()).toEqual([phone.sid, tablet.sid].sort());
    expect(await reuseEvents(victim)).toHaveLength(1);
  });

  it('an old stolen token is not a remote “sign out everywhere” switch: logout scope=global with it revokes only its own session', async () => {
    const { account, tokens } = await sessionWithHistory(3);
    const phone = await loginAccount(t.http, account);
    expectCode(await t.http.post('/auth/logout', { refreshToken: tokens[0], scope: 'global' }), 401, 'refresh_token_reused');
    expect(await sessionRow(t, account.sid)).toMatchObject({ revoked_reason: 'reuse' });
    expect(await sessionRow(t, phone.sid)).toMatchObject({ revoked_at: null });
    await rotated(phone.tokens.refreshToken!);
    expect(await reuseEvents(account)).toHaveLength(1);
  });
});

describe('re-authentication ends the session the browser held (ASVS 5.0 V7.2.4)', () => {
  it('a cookie-mode login from a browser that still holds a live refresh cookie ends that older session', async () => {
    const account = await registerAccount(t.http);
    const first = await t.http.post('/auth/login', { email: account.email, password: account.password });
    expect(first.status).toBe(200);
    const oldCookie = /tessera_refresh=([^;]+)/.exec([first.headers['set-cookie'] ?? []].flat().join('\n'))![1]!;
    const oldSid = claimsOf(first.json<{ accessToken: string }>().accessToken).sid;

    t.clock.advance(60);
    const again = await t.http.post('/auth/login', { email: account.email, password: account.password }, { headers: { cookie: `tessera_refresh=${oldCookie}` } });
    expect(again.status).toBe(200);
    const newSid = claimsOf(again.json<{ accessToken: string }>().accessToken).sid;
    expect(newSid).not.toBe(oldSid);

    expect((await sessionRow(t, oldSid))!.revoked_at).not.toBeNull();
    expectCode(await refresh(oldCookie), 401, 'invalid_refresh_token');
    expect(await sessionRow(t, newSid)).toMatchObject({ revoked_at: null });
    expect(await reuseEvents(account)).toEqual([]);
  });
});

describe('forged tokens cannot spend a victim’s refresh budget (rate limits on)', () => {
  it('100 forged tokens naming the victim’s session are 401, never 429; the victim then refreshes normally', async () => {
    const limited = await startLiveApp({ REFRESH_REUSE_GRACE: '10s' }, { refreshPerSession: 5 });
    try {
      const victim = await registerAccount(limited.http);
      const token = victim.tokens.refreshToken!;
      for (let i = 0; i < 100; i++) {
        const forged = i % 2 === 0 ? withGeneration(token, i + 2) : flipByte(token, 20 + (i % 32));
        const res = await limited.http.post('/auth/refresh', { refreshToken: forged });
        expectCode(res, 401, 'invalid_refresh_token');
      }
      const res = await limited.http.post('/auth/refresh', { refreshToken: token });
      expect(res.status, res.text).toBe(200);
      expect(await sessionRow(limited, victim.sid)).toMatchObject({ generation: 2, revoked_at: null });
      // …and the budget is real: genuine refreshes past it are 429 with Retry-After
      let next = res.json<{ refreshToken: string }>().refreshToken;
      const statuses: number[] = [];
      for (let i = 0; i < 6; i++) {
        const r = await limited.http.post('/auth/refresh', { refreshToken: next });
        statuses.push(r.status);
        if (r.status === 200) next = r.json<{ refreshToken: string }>().refreshToken;
        else {
          expectCode(r, 429, 'rate_limited');
          expect(Number(r.headers['retry-after'])).toBeGreaterThan(0);
        }
      }
      expect(statuses).toContain(429);
    } finally {
      await limited.close();
    }
  });
});

it('unknown session ids of every shape are refused without a database write', async () => {
  const before = await snapshot(t);
  const codec = new RefreshTokenCodec(TEST_SECRET);
  for (const id of [randomUUID(), '00000000-0000-0000-0000-000000000000', 'ffffffff-ffff-ffff-ffff-ffffffffffff']) {
    expectCode(await refresh(codec.issue(randomUUID(), id, Buffer.alloc(16), 1)), 401, 'invalid_refresh_token');
  }
  expect(await snapshot(t)).toEqual(before);
});
