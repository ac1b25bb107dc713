/**
 * Data at rest (SPEC §2: "No refresh token, nor a hash of one, is stored"; passwords are
 * argon2id; ASVS 5.0 V6.2, V7, V14/V16 logging): after a full run of every endpoint on a
 * real `tessera serve` process at LOG_LEVEL=debug, neither a dump of the database schema
 * nor the process's log holds any password, refresh token (nor its MAC, nor a hash of it),
 * access token or cookie value that went over the wire. The dump is pg_dump's when it is
 * installed, else every row of every table.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bearer, client, codeOf, type Client, type HttpResponse } from './helpers/http.js';
import { describeFaults, freshSchema, type FreshSchema } from './helpers/pg-schema.js';
import { expectNoCredentialShapes, SecretBag } from './helpers/secrets.js';
import { CHILD_SECRET, startServer, stopAll, type ServerProcess } from './helpers/server-process.js';

describeFaults('data at rest and in the logs after a full run', () => {
  const secrets = new SecretBag();
  let schema: FreshSchema;
  let server: ServerProcess;
  let http: Client;
  let dump: string;
  let usersAtStart: unknown[];

  const cookieOf = (res: HttpResponse) => /^tessera_refresh=([^;]*)/.exec([res.headers['set-cookie'] ?? []].flat().find((c) => c.startsWith('tessera_refresh=')) ?? '')?.[1];
  const take = (res: HttpResponse, status: number) => {
    secrets.fromResponse(res);
    expect(res.status, res.text).toBe(status);
    return res;
  };

  beforeAll(async () => {
    secrets.other.add(CHILD_SECRET);
    schema = await freshSchema({ migrated: true });
    server = await startServer({ ...schema.env, LOG_LEVEL: 'debug', PUBLIC_URL: 'http://localhost:3000', REFRESH_REUSE_GRACE: '2s' });
    http = client(server.url);
    usersAtStart = await schema.query('select email from users');
    const origin = { origin: 'http://localhost:3000', 'x-tessera-csrf': '1' };

    // --- a browser (cookie transport) -----------------------------------------------
    const alicePassword = secrets.password('alice’s correct horse battery');
    const aliceEmail = `alice-${schema.name}@example.com`;
    const reg = take(await http.post('/auth/register', { email: aliceEmail, password: alicePassword, name: 'Alice' }), 201);
    let cookie = cookieOf(reg)!;
    expect(cookie).toMatch(/^tsr_/);
    const cookieRefresh = take(await http.post('/auth/refresh', undefined, { headers: { ...origin, cookie: `tessera_refresh=${cookie}` } }), 200);
    const replay = take(await http.post('/auth/refresh', undefined, { headers: { ...origin, cookie: `tessera_refresh=${cookie}` } }), 200);
    expect(cookieOf(replay)).toBe(cookieOf(cookieRefresh));
    cookie = cookieOf(cookieRefresh)!;
    const aliceAccess = cookieRefresh.json<{ accessToken: string }>().accessToken;
    take(await http.get('/auth/me', { headers: bearer(aliceAccess) }), 200);
    take(await http.get('/auth/sessions', { headers: bearer(aliceAccess) }), 200);
    take(await http.get('/auth/events', { headers: bearer(aliceAccess) }), 200);
    take(await http.post('/auth/refresh', undefined, { headers: { cookie: `tessera_refresh=${cookie}` } }), 403); // no CSRF header
    take(await http.post('/auth/logout', undefined, { headers: { ...origin, cookie: `tessera_refresh=${cookie}` } }), 204);

    // --- a mobile app (body transport), with a password change, a revocation and a theft ----
    const bobPassword = secrets.password('bob’s first passphrase here');
    const bobEmail = `bob-${schema.name}@example.com`;
    const bob = take(await http.post('/auth/register', { email: bobEmail, password: bobPassword, transport: 'body' }), 201).json<{ accessToken: string; refreshToken: string }>();
    take(await http.post('/auth/login', { email: bobEmail, password: secrets.password('not bob’s password at all') }), 401);
    take(await http.post('/auth/login', { email: `nobody-${schema.name}@example.com`, password: secrets.password('a password for nobody') }), 401);
    const phone = take(await http.post('/auth/login', { email: bobEmail, password: bobPassword, transport: 'body' }), 200).json<{ accessToken: string; refreshToken: string }>();
    const tablet = take(await http.post('/auth/login', { email: bobEmail, password: bobPassword, transport: 'body' }), 200).json<{ accessToken: string; refreshToken: string }>();
    const rotated = take(await http.post('/auth/refresh', { refreshToken: phone.refreshToken }), 200).json<{ refreshToken: string }>();
    await new Promise((r) => setTimeout(r, 2_200)); // past the grace window
    const again = take(await http.post('/auth/refresh', { refreshToken: rotated.refreshToken }), 200).json<{ refreshToken: string }>();
    take(await http.post('/auth/refresh', { refreshToken: phone.refreshToken }), 401); // reuse: the phone session is revoked
    take(await http.post('/auth/refresh', { refreshToken: again.refreshToken }), 401);
    take(await http.delete(`/auth/sessions/${JSON.parse(Buffer.from(tablet.accessToken.split('.')[1]!, 'base64url').toString()).sid}`, { headers: bearer(bob.accessToken) }), 204);
    const newPassword = secrets.password('bob’s second passphrase here');
    take(await http.post('/auth/password', { currentPassword: secrets.password('a wrong current password'), newPassword }, { headers: bearer(bob.accessToken) }), 403);
    take(await http.post('/auth/password', { currentPassword: bobPassword, newPassword }, { headers: bearer(bob.accessToken) }), 204);
    take(await http.post('/auth/login', { email: bobEmail, password: newPassword, transport: 'body' }), 200);
    take(await http.post('/auth/logout', { refreshToken: bob.refreshToken, scope: 'global' }), 204);

    // --- credentials inside requests that fail before any handler runs ------------------
    const inBrokenJson = secrets.password('password inside broken json');
    const broken = await http.call('POST', '/auth/login', { body: `{"email":"x@example.com","password":"${inBrokenJson}"`, headers: { 'content-type': 'application/json' } });
    expect(codeOf(broken)).toBe('invalid_request');
    const inBadSchema = secrets.password('password with a bad email');
    expect((await http.post('/auth/login', { email: 'not-an-email', password: inBadSchema })).status).toBe(400);
    const inWrongType = secrets.password('password sent as form data');
    expect((await http.call('POST', '/auth/register', { body: `email=a%40b.c&password=${inWrongType}`, headers: { 'content-type': 'application/x-www-form-urlencoded' } })).status).toBe(415);
    const forgedBearer = `${bob.accessToken.slice(0, -4)}AAAA`;
    secrets.accessTokens.add(forgedBearer);
    expect((await http.get('/auth/me', { headers: bearer(forgedBearer) })).status).toBe(401);
    expect((await http.post('/auth/refresh', { refreshToken: `${again.refreshToken.slice(0, -3)}abc` })).status).toBe(401);
    secrets.refreshTokens.add(`${again.refreshToken.slice(0, -3)}abc`);

    dump = await schema.dump();
  }, 90_000);

  afterAll(async () => {
    await stopAll();
    await schema?.drop();
  });

  it('the run touched every kind of secret (so the checks below are not vacuous)', async () => {
    expect(secrets.passwords.size).toBeGreaterThanOrEqual(8);
    expect(secrets.refreshTokens.size).toBeGreaterThanOrEqual(8);
    expect(secrets.accessTokens.size).toBeGreaterThanOrEqual(8);
    expect(secrets.cookies.size).toBeGreaterThanOrEqual(2);
    // and the dump is a real one, with the rows of the run in it
    expect(dump).toContain(`alice-${schema.name}@example.com`);
    expect(dump).toContain('reuse_detected');
    expect(dump.length).toBeGreaterThan(2_000);
  });

  it('the database dump holds no password, no refresh token (nor its MAC, nor a hash of it), no access token and no cookie value', () => {
    secrets.expectAbsentFrom(dump, 'the database dump');
    expectNoCredentialShapes(dump, 'the database dump');
  });

  it('a new server creates no default account (ASVS 5.0 V6.3.2)', () => {
    expect(usersAtStart).toEqual([]);
  });

  it('passwords are stored as argon2id (m=19456, t=2, p=1) only', async () => {
    const rows = await schema.query<{ password_hash: string }>('select password_hash from users');
    expect(rows.length).toBeGreaterThanOrEqual(2);
    for (const { password_hash } of rows) expect(password_hash).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$/);
  });

  it('signing keys are stored sealed: no private key member in the clear', async () => {
    const rows = await schema.query<{ public_jwk: Record<string, unknown>; private_jwk_sealed: string }>('select public_jwk, private_jwk_sealed from signing_keys');
    expect(rows).toHaveLength(1);
    expect(rows[0]!.public_jwk).not.toHaveProperty('d');
    // ciphertext in base64url: no JSON at all (a bare "OKP" could be three random characters of it)
    expect(rows[0]!.private_jwk_sealed).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(Buffer.from(rows[0]!.private_jwk_sealed, 'base64url').toString('latin1')).not.toMatch(/"d"|"kty"|"crv"/);
    expect(dump).not.toMatch(/"d"\s*:/);
  });

  it('the debug-level log of the whole run holds none of them either, nor TESSERA_SECRET', () => {
    const log = server.logs();
    // it logged every request of the run (LOG_LEVEL=debug: everything Tessera and Fastify log is in it)
    expect(log.match(/"msg":"request completed"/g)?.length ?? 0).toBeGreaterThanOrEqual(25);
    expect(log).toContain('/auth/refresh');
    secrets.expectAbsentFrom(log, 'the server log');
    expectNoCredentialShapes(log, 'the server log');
  });
});
