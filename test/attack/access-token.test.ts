/**
 * Attacks on access tokens (SPEC §2, RFC 8725, ASVS 5.0 V9), as real HTTP requests to a
 * listening server. Every forged token names the victim (Bob) and is sent to the protected
 * endpoints; each must be 401 `unauthorized`, and the database must not change.
 *
 * The server is configured with SIGNING_KEYS that this file generated, so the test also
 * holds Tessera's genuine private key. That lets each check be shown on its own: a token
 * that is right in every way but one (typ, iss, aud, a time claim, crit…) is refused for
 * that one reason. `control` cases prove the crafting itself is right.
 *
 * Bad Bearer *shapes* (no scheme, garbage, 17 KiB headers → 431) are in
 * test/server/bad-input.test.ts and are not repeated here.
 */
import { createHmac, generateKeyPairSync, randomUUID, sign, constants, type KeyObject } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignJWT } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi, type MockInstance } from 'vitest';
import { bearer, codeOf, type HttpResponse } from '../faults/helpers/http.js';
import { b64url, compact, ed25519Key, segment, selfSignedCertificate, signEd25519, signEncoded } from './helpers/jwt-forge.js';
import { loginAccount, registerAccount, snapshot, startLiveApp, type Account, type LiveApp } from './helpers/live-app.js';

const signing = ed25519Key('tessera-key-1');
const second = ed25519Key('tessera-key-2');
const attacker = ed25519Key('attacker-key');

let t: LiveApp;
let alice: Account;
let bob: Account;
let bobPhone: Account;
let before: Awaited<ReturnType<typeof snapshot>>;
let ISS: string;
let AUD: string;

// A server the forged tokens point at (jku, x5u, kid): it must never be asked for anything.
let listener: Server;
let listenerUrl: string;
const listenerHits: string[] = [];
let fetchSpy: MockInstance<typeof fetch>;

const now = () => Math.floor(t.clock.time / 1000);
const header = (over: Record<string, unknown> = {}) => ({ alg: 'EdDSA', typ: 'at+jwt', kid: signing.kid, ...over });
/** Claims of a valid token; by default for Alice (the controls), forgeries pass Bob's. */
const claims = (over: Record<string, unknown> = {}) => ({
  iss: ISS, aud: AUD, sub: alice.sub, sid: alice.sid, iat: now(), exp: now() + 900, jti: randomUUID(), ...over,
});
const asBob = (over: Record<string, unknown> = {}) => claims({ sub: bob.sub, sid: bob.sid, ...over });
/** Signed with Tessera's genuine key: only what the overrides change is wrong. */
const genuine = (h: Record<string, unknown> = {}, c: Record<string, unknown> = {}) => signEd25519(header(h), claims(c), signing.privateKey);
/** Signed with the attacker's own Ed25519 key. */
const byAttacker = (h: Record<string, unknown> = {}, c: Record<string, unknown> = {}) =>
  signEd25519(header({ kid: attacker.kid, ...h }), asBob(c), attacker.privateKey);

const parts = (token: string) => token.split('.') as [string, string, string];
/** Flips one bit of the signature's byte `index` (negative counts from the end). */
function flipSignatureByte(token: string, index: number): string {
  const [h, p, s] = parts(token);
  const bytes = Buffer.from(s, 'base64url');
  const i = index < 0 ? bytes.length + index : index;
  bytes[i] = bytes[i]! ^ 0x01;
  return `${h}.${p}.${b64url(bytes)}`;
}

function me(token: string): Promise<HttpResponse> {
  return t.http.get('/auth/me', { headers: bearer(token) });
}

function expectUnauthorized(res: HttpResponse, token?: string) {
  expect(res.status, res.text).toBe(401);
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(codeOf(res)).toBe('unauthorized');
  if (token && token.length > 20) expect(res.text).not.toContain(token);
}

async function expectRefused(token: string) {
  const res = await me(token);
  expectUnauthorized(res, token);
  return res.json<{ detail?: string }>();
}

type Case = [name: string, make: () => string | Promise<string>];

beforeAll(async () => {
  listener = createServer((req, res) => {
    listenerHits.push(`${req.method} ${req.url}`);
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ keys: [{ ...attacker.publicJwk, alg: 'EdDSA', use: 'sig' }] }));
  });
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  listenerUrl = `http://127.0.0.1:${(listener.address() as AddressInfo).port}`;

  t = await startLiveApp({ SIGNING_KEYS: JSON.stringify({ keys: [signing.privateJwk, second.privateJwk] }), RATE_LIMITS: 'off' });
  ISS = t.config.publicUrl;
  AUD = t.config.audience;
  alice = await registerAccount(t.http);
  bob = await registerAccount(t.http);
  bobPhone = await loginAccount(t.http, bob);
  // Spy after setup: from here on, the server must make no outbound request at all.
  fetchSpy = vi.spyOn(globalThis, 'fetch');
  before = await snapshot(t);
});

afterEach(async () => {
  // No forged token may write anything: no session, no revocation, no event, no password.
  expect(await snapshot(t)).toEqual(before);
});

afterAll(async () => {
  fetchSpy?.mockRestore();
  await t?.close();
  await new Promise((resolve) => listener?.close(resolve));
});

describe('controls: the crafting is right, so each refusal below is the check under test', () => {
  it('the server’s own access token is accepted', async () => {
    const res = await me(alice.tokens.accessToken);
    expect(res.status).toBe(200);
    expect(res.json<{ user: { id: string } }>().user.id).toBe(alice.sub);
  });

  it('a token crafted here with the genuine key and the right header and claims is accepted', async () => {
    const res = await me(genuine());
    expect(res.status, res.text).toBe(200);
    expect(res.json<{ user: { id: string } }>().user.id).toBe(alice.sub);
  });

  it('the second published key verifies the tokens it signed (key rotation works)', async () => {
    const res = await me(signEd25519(header({ kid: second.kid }), claims(), second.privateKey));
    expect(res.status, res.text).toBe(200);
  });

  it('the JWKS publishes exactly the configured public keys, and no private part', async () => {
    const res = await t.http.get('/.well-known/jwks.json');
    expect(res.status).toBe(200);
    const { keys } = res.json<{ keys: Record<string, unknown>[] }>();
    expect(keys.map((k) => k.kid)).toEqual([signing.kid, second.kid]);
    expect(keys.map((k) => k.x)).toEqual([signing.publicJwk.x, second.publicJwk.x]);
    for (const key of keys) expect(key).not.toHaveProperty('d');
  });
});

describe('alg "none", in any spelling', () => {
  const spellings = ['none', 'None', 'NONE', 'nOnE', 'none ', ' none', 'none\u0000'];
  const cases: Case[] = [
    ...spellings.map((alg): Case => [`alg ${JSON.stringify(alg)}, empty signature`, () => compact(header({ alg }), asBob())]),
    ...spellings.map((alg): Case => [`alg ${JSON.stringify(alg)}, no signature segment`, () => `${segment(header({ alg }))}.${segment(asBob())}`]),
    ['alg none, keeping a genuine token’s signature', () => compact(header({ alg: 'none' }), asBob(), parts(bob.tokens.accessToken)[2])],
    ['alg none on the server’s own token (header swapped)', () => {
      const [, p, s] = parts(bob.tokens.accessToken);
      return `${segment({ alg: 'none', typ: 'at+jwt' })}.${p}.${s}`;
    }],
    ['alg missing', () => compact(header({ alg: undefined }), asBob())],
    ['alg null', () => compact(header({ alg: null }), asBob())],
    ['alg empty string', () => compact(header({ alg: '' }), asBob())],
    ['alg as an array ["EdDSA"]', () => signEd25519(header({ alg: ['EdDSA'] }), claims(), signing.privateKey)],
    ['alg as an object', () => signEd25519(header({ alg: {} }), claims(), signing.privateKey)],
  ];
  it.each(cases)('%s → 401', async (_name, make) => {
    await expectRefused(await make());
  });
});

describe('other algorithms', () => {
  const publicKeyForms: [string, () => Uint8Array][] = [
    ['the raw 32-byte public key', () => Buffer.from(signing.publicJwk.x, 'base64url')],
    ['the public key’s base64url text (x)', () => Buffer.from(signing.publicJwk.x)],
    ['the JWK JSON exactly as served by /.well-known/jwks.json', () => Buffer.from(JSON.stringify({ kty: 'OKP', crv: 'Ed25519', x: signing.publicJwk.x, kid: signing.kid, alg: 'EdDSA', use: 'sig' }))],
    ['the SPKI PEM of the public key', () => Buffer.from(signing.publicKey.export({ type: 'spki', format: 'pem' }) as string)],
    ['the SPKI DER of the public key', () => signing.publicKey.export({ type: 'spki', format: 'der' })],
  ];
  const hmac: Case[] = ['HS256', 'HS384', 'HS512'].flatMap((alg) =>
    publicKeyForms.map(([form, key]): Case => [
      `${alg} signed (with jose) using ${form} as the HMAC secret`,
      () => new SignJWT(asBob()).setProtectedHeader({ alg, typ: 'at+jwt', kid: signing.kid }).sign(new Uint8Array(key())),
    ]),
  );

  function withNodeKey(alg: string, key: KeyObject, sigOptions: (input: Buffer) => Buffer): string {
    const input = `${segment(header({ alg }))}.${segment(asBob())}`;
    return `${input}.${b64url(sigOptions(Buffer.from(input)))}`;
  }
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const p256 = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' });
  const asymmetric: Case[] = [
    ['RS256 with the attacker’s RSA key, kid of the genuine key', () => withNodeKey('RS256', rsa.privateKey, (i) => sign('sha256', i, rsa.privateKey))],
    ['PS256 with the attacker’s RSA key', () => withNodeKey('PS256', rsa.privateKey, (i) => sign('sha256', i, { key: rsa.privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }))],
    ['ES256 with the attacker’s P-256 key', () => withNodeKey('ES256', p256.privateKey, (i) => sign('sha256', i, { key: p256.privateKey, dsaEncoding: 'ieee-p1363' }))],
    ['ES384 with the attacker’s P-384 key', () => withNodeKey('ES384', p384.privateKey, (i) => sign('sha384', i, { key: p384.privateKey, dsaEncoding: 'ieee-p1363' }))],
    ['EdDSA with the attacker’s Ed25519 key under the genuine kid', () => signEd25519(header(), asBob(), attacker.privateKey)],
    ['"Ed25519" (the fully-specified name) with the genuine key: not the configured algorithm', () => genuine({ alg: 'Ed25519' })],
    ['EdDSA signed by the second key under the first key’s kid', () => signEd25519(header({ kid: signing.kid }), claims(), second.privateKey)],
    ['EdDSA signed by the first key under the second key’s kid', () => signEd25519(header({ kid: second.kid }), claims(), signing.privateKey)],
  ];
  it.each([...hmac, ...asymmetric])('%s → 401', async (_name, make) => {
    await expectRefused(await make());
  });

  it('HMAC over the genuine token’s own signing input with the public key is refused too (no key-type confusion)', async () => {
    const [h, p] = parts(bob.tokens.accessToken);
    const hs = `${segment({ ...JSON.parse(Buffer.from(h, 'base64url').toString()), alg: 'HS256' })}.${p}`;
    const mac = createHmac('sha256', Buffer.from(signing.publicJwk.x, 'base64url')).update(hs).digest();
    await expectRefused(`${hs}.${b64url(mac)}`);
  });
});

describe('tampered tokens', () => {
  const tamperedPayload = (change: (c: Record<string, unknown>) => Record<string, unknown>) => () => {
    const [h, p, s] = parts(alice.tokens.accessToken);
    return `${h}.${segment(change(JSON.parse(Buffer.from(p, 'base64url').toString())))}.${s}`;
  };
  const cases: Case[] = [
    ['payload: sub and sid changed to the victim’s', tamperedPayload((c) => ({ ...c, sub: bob.sub, sid: bob.sid }))],
    ['payload: only sid changed to the victim’s session', tamperedPayload((c) => ({ ...c, sid: bob.sid }))],
    ['payload: exp pushed a year ahead', tamperedPayload((c) => ({ ...c, exp: (c.exp as number) + 365 * 86400 }))],
    ['payload: a claim added ("admin": true)', tamperedPayload((c) => ({ ...c, admin: true }))],
    ['payload: the same claims re-serialised with other whitespace', () => {
      const [h, p, s] = parts(alice.tokens.accessToken);
      return `${h}.${segment(JSON.stringify(JSON.parse(Buffer.from(p, 'base64url').toString()), null, 1))}.${s}`;
    }],
    ['payload: duplicate sub/sid members appended (last ones name the victim)', () => {
      const [h, p, s] = parts(alice.tokens.accessToken);
      const text = Buffer.from(p, 'base64url').toString().replace(/}$/, `,"sub":"${bob.sub}","sid":"${bob.sid}"}`);
      return `${h}.${segment(text)}.${s}`;
    }],
    ['header: kid switched to the other published key', () => {
      const [, p, s] = parts(alice.tokens.accessToken);
      const h = JSON.parse(Buffer.from(parts(alice.tokens.accessToken)[0], 'base64url').toString());
      return `${segment({ ...h, kid: second.kid })}.${p}.${s}`;
    }],
    ['signature: first byte flipped', () => flipSignatureByte(alice.tokens.accessToken, 0)],
    ['signature: middle byte flipped', () => flipSignatureByte(alice.tokens.accessToken, 31)],
    ['signature: last byte flipped', () => flipSignatureByte(alice.tokens.accessToken, -1)],
    ['signature: one character short', () => alice.tokens.accessToken.slice(0, -1)],
    ['signature: one character too many', () => `${alice.tokens.accessToken}A`],
    ['signature: empty', () => alice.tokens.accessToken.replace(/[^.]+$/, '')],
    ['signature: segment missing (two parts)', () => parts(alice.tokens.accessToken).slice(0, 2).join('.')],
    ['signature: 64 zero bytes', () => `${parts(alice.tokens.accessToken).slice(0, 2).join('.')}.${b64url(Buffer.alloc(64))}`],
    ['signature: another genuine token’s signature', () => `${parts(alice.tokens.accessToken).slice(0, 2).join('.')}.${parts(bob.tokens.accessToken)[2]}`],
    ['four segments', () => `${alice.tokens.accessToken}.${parts(alice.tokens.accessToken)[2]}`],
    ['five segments (JWE-shaped, alg dir)', () => `${segment({ alg: 'dir', enc: 'A256GCM', typ: 'at+jwt' })}..${b64url(Buffer.alloc(12))}.${segment(asBob())}.${b64url(Buffer.alloc(16))}`],
  ];
  it.each(cases)('%s → 401', async (_name, make) => {
    await expectRefused(await make());
  });
});

describe('keys embedded in or pointed at by the token are never trusted, and never fetched', () => {
  const certificate = () => selfSignedCertificate(attacker.privateKey, attacker.publicKey).toString('base64');
  const cases: Case[] = [
    ['jwk: the attacker’s public key, no kid', () => byAttacker({ jwk: attacker.publicJwk, kid: undefined })],
    ['jwk: the attacker’s public key under the genuine kid', () => byAttacker({ jwk: { ...attacker.publicJwk, kid: signing.kid }, kid: signing.kid })],
    ['jwk: the attacker’s public key under its own kid', () => byAttacker({ jwk: attacker.publicJwk })],
    ['jku: a JWKS URL serving the attacker’s key, attacker kid', () => byAttacker({ jku: `${listenerUrl}/jwks.json` })],
    ['jku: a JWKS URL serving the attacker’s key, genuine kid', () => byAttacker({ jku: `${listenerUrl}/jwks.json`, kid: signing.kid })],
    ['x5u: a certificate URL', () => byAttacker({ x5u: `${listenerUrl}/cert.pem` })],
    ['x5c: a real self-signed certificate holding the attacker’s key', () => byAttacker({ x5c: [certificate()] })],
    ['x5c under the genuine kid', () => byAttacker({ x5c: [certificate()], kid: signing.kid })],
    ['jwk + jku + x5u + x5c all at once, genuine kid', () =>
      byAttacker({ kid: signing.kid, jwk: attacker.publicJwk, jku: `${listenerUrl}/a`, x5u: `${listenerUrl}/b`, x5c: [certificate()] })],
  ];
  it.each(cases)('%s → 401', async (_name, make) => {
    await expectRefused(await make());
  });
});

describe('hostile kid values are only ever a lookup key', () => {
  const attackerSigned: Case[] = [
    ['../../../../../../dev/null', () => byAttacker({ kid: '../../../../../../dev/null' })],
    ['/etc/passwd', () => byAttacker({ kid: '/etc/passwd' })],
    ['file:///etc/passwd', () => byAttacker({ kid: 'file:///etc/passwd' })],
    ['SQL: \' OR \'1\'=\'1', () => byAttacker({ kid: "' OR '1'='1" })],
    ['SQL: genuine kid followed by a comment', () => byAttacker({ kid: `${signing.kid}' --` })],
    ['SQL: a statement', () => byAttacker({ kid: "x'; delete from sessions; --" })],
    ['a URL of a server serving the attacker’s key', () => byAttacker({ kid: `${listenerUrl}/jwks.json` })],
    ['empty', () => byAttacker({ kid: '' })],
    ['a NUL byte', () => byAttacker({ kid: '\u0000' })],
    ['__proto__', () => byAttacker({ kid: '__proto__' })],
    ['constructor', () => byAttacker({ kid: 'constructor' })],
    ['toString', () => byAttacker({ kid: 'toString' })],
    ['3000 characters', () => byAttacker({ kid: 'k'.repeat(3000) })],
  ];
  const genuinelySigned: Case[] = [
    ['genuine kid with a trailing space', () => genuine({ kid: `${signing.kid} ` })],
    ['genuine kid in upper case', () => genuine({ kid: signing.kid.toUpperCase() })],
    ['genuine kid inside an array', () => genuine({ kid: [signing.kid] })],
    ['kid as an object', () => genuine({ kid: { toString: signing.kid } })],
    ['kid null', () => genuine({ kid: null })],
    ['kid 0', () => genuine({ kid: 0 })],
    ['no kid at all', () => genuine({ kid: undefined })],
  ];
  it.each(attackerSigned)('attacker-signed, kid %s → 401', async (_name, make) => {
    await expectRefused(await make());
  });
  it.each(genuinelySigned)('signed with the genuine key, %s → 401 (kid must name the key exactly)', async (_name, make) => {
    await expectRefused(await make());
  });
});

describe('claims: genuinely signed, one thing wrong', () => {
  const typ: Case[] = (['JWT', 'jwt', 'at+jwt ', 'application/jwt', 'id_token+jwt', 'at+jwt\u0000', undefined, null, ['at+jwt'], 1] as unknown[]).map(
    (value): Case => [`typ ${value === undefined ? 'missing' : JSON.stringify(value)}`, () => genuine({ typ: value })],
  );
  const claimCases: [string, () => Record<string, unknown>][] = [
    ['iss of another issuer', () => ({ iss: 'https://evil.example' })],
    ['iss with a trailing slash', () => ({ iss: `${ISS}/` })],
    ['iss in upper case', () => ({ iss: ISS.toUpperCase() })],
    ['iss missing', () => ({ iss: undefined })],
    ['iss null', () => ({ iss: null })],
    ['iss as an array', () => ({ iss: [ISS] })],
    ['aud of another audience', () => ({ aud: 'https://evil.example' })],
    ['aud missing', () => ({ aud: undefined })],
    ['aud empty array', () => ({ aud: [] })],
    ['aud an array of other audiences', () => ({ aud: ['https://evil.example', 'api'] })],
    ['aud a number', () => ({ aud: 1 })],
    ['exp 61 s ago (expired beyond any leeway)', () => ({ iat: now() - 900, exp: now() - 61 })],
    ['exp an hour ago', () => ({ iat: now() - 4000, exp: now() - 3600 })],
    ['exp missing', () => ({ exp: undefined })],
    ['exp a string', () => ({ exp: String(now() + 900) })],
    ['exp null', () => ({ exp: null })],
    ['nbf 61 s ahead (not yet valid)', () => ({ nbf: now() + 61 })],
    ['nbf a day ahead', () => ({ nbf: now() + 86400 })],
    ['iat 61 s in the future (issued in the future)', () => ({ iat: now() + 61, exp: now() + 961 })],
    ['iat a day in the future', () => ({ iat: now() + 86400, exp: now() + 87300 })],
    ['iat older than ACCESS_TOKEN_TTL although exp is a day ahead', () => ({ iat: now() - 900 - 61, exp: now() + 86400 })],
    ['iat missing', () => ({ iat: undefined })],
    ['iat a string', () => ({ iat: String(now()) })],
    ['sub missing', () => ({ sub: undefined })],
    ['sub a number', () => ({ sub: 42 })],
    ['sub of another user with the caller’s sid', () => ({ sub: bob.sub })],
    ['sub of no user', () => ({ sub: randomUUID() })],
    ['sid missing', () => ({ sid: undefined })],
    ['sid a number', () => ({ sid: 42 })],
    ['sid of another user’s session', () => ({ sid: bob.sid })],
    ['sid of no session', () => ({ sid: randomUUID() })],
    ['sid not a uuid', () => ({ sid: "' or 1=1 --" })],
    ['jti missing', () => ({ jti: undefined })],
    ['jti a number', () => ({ jti: 42 })],
  ];
  const cases: Case[] = [...typ, ...claimCases.map(([name, over]): Case => [name, () => genuine({}, over())])];
  it.each(cases)('%s → 401', async (_name, make) => {
    await expectRefused(await make());
  });

  it('an expired genuine token says so; a time claim within the leeway is not what refuses it', async () => {
    expect((await expectRefused(genuine({}, { iat: now() - 1000, exp: now() - 61 }))).detail).toBe('The access token has expired');
  });
});

describe('crit headers are refused', () => {
  const cases: Case[] = [
    ['crit ["exp"]', () => genuine({ crit: ['exp'] })],
    ['crit ["x-tessera"] with the member present', () => genuine({ crit: ['x-tessera'], 'x-tessera': 1 })],
    ['crit ["b64"] with b64 false (unencoded payload)', () => genuine({ crit: ['b64'], b64: false })],
    ['crit ["b64"] with b64 true (a no-op extension jose knows)', () => genuine({ crit: ['b64'], b64: true })],
    ['crit []', () => genuine({ crit: [] })],
    ['crit "exp" (a string)', () => genuine({ crit: 'exp' })],
    ['crit [""]', () => genuine({ crit: [''] })],
    ['crit ["kid"]', () => genuine({ crit: ['kid'] })],
  ];
  it.each(cases)('%s (genuine signature) → 401', async (_name, make) => {
    await expectRefused(await make());
  });
});

// A leading byte-order mark is not in this list: RFC 8259 §8.1 lets a JSON parser ignore it,
// and only the key holder could sign one, so it is neither a forgery nor a confusion vector.
describe('malformed base64 or JSON, even under a genuine signature', () => {
  const validHeader = () => JSON.stringify(header());
  const validClaims = () => JSON.stringify(claims());
  const k = () => signing.privateKey;
  const cases: Case[] = [
    ['header JSON cut short', () => signEd25519(validHeader().slice(0, -1), validClaims(), k())],
    ['header a JSON array', () => signEd25519('[]', validClaims(), k())],
    ['header JSON null', () => signEd25519('null', validClaims(), k())],
    ['header a JSON string', () => signEd25519('"EdDSA"', validClaims(), k())],
    ['header with trailing garbage', () => signEd25519(`${validHeader()}x`, validClaims(), k())],
    ['header with a comment', () => signEd25519(`/*x*/${validHeader()}`, validClaims(), k())],
    ['header with single quotes', () => signEd25519(validHeader().replaceAll('"', "'"), validClaims(), k())],
    ['header in UTF-16', () => signEncoded(b64url(Buffer.from(validHeader(), 'utf16le')), segment(validClaims()), k())],
    ['header not valid UTF-8', () => signEncoded(b64url(Buffer.concat([Buffer.from(validHeader().slice(0, -1)), Buffer.from([0xff, 0x7d])])), segment(validClaims()), k())],
    ['payload JSON cut short', () => signEd25519(validHeader(), validClaims().slice(0, -1), k())],
    ['payload a JSON array', () => signEd25519(validHeader(), '[]', k())],
    ['payload JSON null', () => signEd25519(validHeader(), 'null', k())],
    ['payload a number', () => signEd25519(validHeader(), '1', k())],
    ['payload with trailing garbage', () => signEd25519(validHeader(), `${validClaims()}}`, k())],
    ['payload in UTF-16', () => signEncoded(segment(validHeader()), b64url(Buffer.from(validClaims(), 'utf16le')), k())],
    ['header segment with a character outside base64url (*)', () => signEncoded(`${segment(validHeader())}*`, segment(validClaims()), k())],
    ['payload segment with a character outside base64url (*)', () => signEncoded(segment(validHeader()), `*${segment(validClaims())}`, k())],
    ['header segment in standard base64 (+ and /)', () => signEncoded(`${segment(validHeader())}+/`, segment(validClaims()), k())],
    ['signature with a character outside base64url (*)', () => `${genuine().slice(0, -2)}*A`],
    ['an empty token', () => ''],
    ['only dots', () => '..'],
    ['three empty segments and a fourth', () => '...'],
    ['a.b.c', () => 'a.b.c'],
  ];
  it.each(cases)('%s → 401', async (_name, make) => {
    await expectRefused(await make());
  });
});

// RFC 7515 §2: base64url without padding, in its own alphabet. A decoder that forgives `=`,
// `+`/`/` or non-zero unused bits gives one signature many spellings, each a different string.
describe('only canonical base64url: the same bytes spelled another way → 401', () => {
  const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  const k = () => signing.privateKey;
  /** JSON text whose length is not a multiple of 3 bytes, so its base64url ends in a character with unused bits. */
  const unaligned = (value: unknown) => {
    let text = JSON.stringify(value);
    while (Buffer.byteLength(text) % 3 === 0) text += ' ';
    return text;
  };
  // JSON is ASCII, and ASCII base64url only spells `-` or `_` for a `>` or `?` at the right offset: six in a row hold one.
  const ODD = '?>?>?>';
  /** A genuine canonical token (for Bob) with unused bits in every segment, whose segment `index` holds a `-` or `_`. */
  function genuineFor(index?: 0 | 1 | 2): string {
    for (let attempt = 0; attempt < 1000; attempt++) {
      const token = signEd25519(unaligned(header({ x: ODD })), unaligned(asBob({ x: ODD })), k());
      if (index === undefined || /[-_]/.test(parts(token)[index])) return token;
    }
    throw new Error('no signature with - or _ in 1000 tries');
  }
  /** Spells segment `index` of a genuine token otherwise; a changed header or payload is signed again as spelled. */
  function respell(token: string, index: 0 | 1 | 2, change: (segment: string) => string): string {
    const [h, p, s] = parts(token);
    if (index === 2) return `${h}.${p}.${change(s)}`;
    return index === 0 ? signEncoded(change(h), p, k()) : signEncoded(h, change(p), k());
  }
  const padded = (s: string) => s + '='.repeat((4 - (s.length % 4)) % 4 || 4);
  const oneEquals = (s: string) => `${s}=`;
  const standardAlphabet = (s: string) => s.replaceAll('-', '+').replaceAll('_', '/');
  /** The last character with its unused low bits set: it decodes to the same bytes. */
  const dirtyBits = (s: string) => {
    const unused = s.length % 4 === 2 ? 0b1111 : 0b11;
    return s.slice(0, -1) + ALPHABET[ALPHABET.indexOf(s.at(-1)!) | unused]!;
  };

  it('controls: such tokens, canonical, are accepted; each spelling below decodes to the same bytes', async () => {
    for (const index of [undefined, 0, 1, 2] as const) {
      const token = genuineFor(index);
      const res = await me(token);
      expect(res.status, res.text).toBe(200);
      expect(res.json<{ user: { id: string } }>().user.id).toBe(bob.sub);
      for (const segment of parts(token)) {
        expect(segment.length % 4).not.toBe(0);
        for (const change of [padded, dirtyBits, standardAlphabet]) {
          expect(Buffer.from(change(segment), 'base64')).toEqual(Buffer.from(segment, 'base64url'));
        }
      }
    }
  });

  it('the server’s own token with `=` padding on its signature → 401 on every protected route', async () => {
    const own = alice.tokens.accessToken;
    expect(parts(own)[2].length % 4).toBe(2);
    for (const token of [`${own}==`, `${own}=`, `${own}===`]) {
      await expectRefused(token);
      for (const url of ['/auth/sessions', '/auth/events']) expectUnauthorized(await t.http.get(url, { headers: bearer(token) }), token);
    }
    expect((await me(own)).status).toBe(200);
  });

  const SEGMENTS = [['header', 0], ['payload', 1], ['signature', 2]] as const;
  const cases: Case[] = SEGMENTS.flatMap(([name, index]): Case[] => [
    [`${name} with its = padding`, () => respell(genuineFor(), index, padded)],
    [`${name} with one =`, () => respell(genuineFor(), index, oneEquals)],
    [`${name} with = in the middle`, () => respell(genuineFor(), index, (s) => `${s.slice(0, 8)}=${s.slice(8)}`)],
    [`${name} in the standard alphabet (+ and /)`, () => respell(genuineFor(index), index, standardAlphabet)],
    [`${name} with non-zero unused bits in its last character`, () => respell(genuineFor(), index, dirtyBits)],
    [`${name} with a length no base64 has (4n+1)`, () => respell(genuineFor(), index, (s) => `${s}${'A'.repeat(((1 - s.length) % 4 + 4) % 4)}`)],
  ]);
  it.each(cases)('%s (genuine signature) → 401', async (_name, make) => {
    await expectRefused(await make());
  });
});

describe('duplicate members', () => {
  // RFC 7515 §4 / RFC 7519 §4: reject duplicates, or take only the lexically last member.
  // Either way, a first member must never be what the server acts on.
  async function expectNeverFirst(token: string, lastUser: string | 'refused') {
    const res = await me(token);
    if (res.status === 200) expect(res.json<{ user: { id: string } }>().user.id).toBe(lastUser);
    else expectUnauthorized(res);
  }
  const headerText = (first: string, last: string) => `{"alg":${first},"typ":"at+jwt","kid":"${signing.kid}","alg":${last}}`;

  it('without the key: any duplicate added to a genuine token breaks its signature → 401', async () => {
    const [h, p, s] = parts(alice.tokens.accessToken);
    const dupHeader = Buffer.from(h, 'base64url').toString().replace(/}$/, ',"alg":"none"}');
    await expectRefused(`${segment(dupHeader)}.${p}.${s}`);
    await expectRefused(`${segment(dupHeader)}.${p}.`);
  });

  it('alg "EdDSA" then "none" (genuine signature) → 401: the last alg is the one judged', async () => {
    await expectRefused(signEd25519(headerText('"EdDSA"', '"none"'), claims(), signing.privateKey));
  });

  it('sub/sid naming the victim first and the caller last (genuine signature): never acted on as the victim', async () => {
    const text = `{"iss":"${ISS}","aud":"${AUD}","sub":"${bob.sub}","sid":"${bob.sid}","iat":${now()},"exp":${now() + 900},"jti":"${randomUUID()}","sub":"${alice.sub}","sid":"${alice.sid}"}`;
    await expectNeverFirst(signEd25519(header(), text, signing.privateKey), alice.sub);
  });

  it('typ "JWT" then "at+jwt" and typ "at+jwt" then "JWT" (genuine signature): judged on the last', async () => {
    const h = (a: string, b: string) => `{"alg":"EdDSA","typ":"${a}","kid":"${signing.kid}","typ":"${b}"}`;
    await expectRefused(signEd25519(h('at+jwt', 'JWT'), claims(), signing.privateKey));
    await expectNeverFirst(signEd25519(h('JWT', 'at+jwt'), claims(), signing.privateKey), alice.sub);
  });
});

describe('oversized tokens and headers', () => {
  it('a genuinely signed token over 8 KiB is refused before it is parsed', async () => {
    const token = genuine({}, { pad: 'x'.repeat(8200) });
    expect(token.length).toBeGreaterThan(8192);
    await expectRefused(token);
  });

  it('a token with a 3 KB JOSE header → 401', async () => {
    await expectRefused(byAttacker({ x: 'h'.repeat(2200) }));
  });

  it('a payload nested 1500 levels deep → 401, and the server carries on', async () => {
    const deep = `{"sub":"${bob.sub}","x":${'['.repeat(1500)}${']'.repeat(1500)}}`;
    await expectRefused(signEd25519(header({ kid: attacker.kid }), deep, attacker.privateKey));
    expect((await t.http.get('/healthz')).status).toBe(200);
  });

  it('a 15 KiB Authorization header (just under the 16 KiB header limit) → 401 at once', async () => {
    const res = await t.http.get('/auth/me', { headers: { authorization: `Bearer ${'A'.repeat(15 * 1024)}` } });
    expectUnauthorized(res);
  });
});

describe('a signature failure is reported before any claim is judged', () => {
  const expired = () => ({ sub: bob.sub, sid: bob.sid, iat: now() - 2000, exp: now() - 1000 });
  it('control: an expired token with a genuine signature is refused as expired', async () => {
    expect((await expectRefused(genuine({}, expired()))).detail).toBe('The access token has expired');
  });
  const cases: Case[] = [
    ['a flipped signature bit', () => flipSignatureByte(genuine({}, expired()), 5)],
    ['alg none', () => compact(header({ alg: 'none' }), claims(expired()))],
    ['HS256 keyed with the public key', () =>
      new SignJWT(claims(expired())).setProtectedHeader({ alg: 'HS256', typ: 'at+jwt', kid: signing.kid }).sign(Buffer.from(signing.publicJwk.x, 'base64url'))],
    ['the attacker’s key with an embedded jwk', () => byAttacker({ jwk: attacker.publicJwk, kid: signing.kid }, expired())],
    ['an unknown kid', () => byAttacker({}, expired())],
  ];
  it.each(cases)('expired claims under %s → "not valid", never "expired"', async (_name, make) => {
    expect((await expectRefused(await make())).detail).toBe('The access token is not valid');
  });
});

describe('forged tokens against every endpoint that acts for the victim', () => {
  const forgeries: Case[] = [
    ['alg none', () => compact(header({ alg: 'none' }), asBob())],
    ['HS256 keyed with the public JWK', () =>
      new SignJWT(asBob()).setProtectedHeader({ alg: 'HS256', typ: 'at+jwt', kid: signing.kid }).sign(Buffer.from(JSON.stringify(signing.publicJwk)))],
    ['an embedded jwk under the genuine kid', () => byAttacker({ jwk: attacker.publicJwk, kid: signing.kid })],
    ['the attacker’s own token with sub and sid swapped for the victim’s', () => {
      const [h, p, s] = parts(alice.tokens.accessToken);
      const c = JSON.parse(Buffer.from(p, 'base64url').toString());
      return `${h}.${segment({ ...c, sub: bob.sub, sid: bob.sid })}.${s}`;
    }],
  ];
  it.each(forgeries)('%s: sessions, events, revoke, password change and global logout are all 401; nothing changes', async (_name, make) => {
    const token = await make();
    const headers = bearer(token);
    expectUnauthorized(await t.http.get('/auth/sessions', { headers }));
    expectUnauthorized(await t.http.get('/auth/events', { headers }));
    expectUnauthorized(await t.http.delete(`/auth/sessions/${bobPhone.sid}`, { headers }));
    expectUnauthorized(await t.http.post('/auth/password', { currentPassword: 'guess guess guess', newPassword: 'attacker chosen password' }, { headers }));
    expectUnauthorized(await t.http.post('/auth/logout', { scope: 'global' }, { headers }));
    expectUnauthorized(await t.http.post('/auth/logout', { scope: 'others' }, { headers }));
    // local logout is idempotent (204 whatever is sent), and a forged token ends nothing
    expect((await t.http.post('/auth/logout', {}, { headers })).status).toBe(204);
    // the victim's real tokens still work
    expect((await me(bob.tokens.accessToken)).status).toBe(200);
    expect((await me(bobPhone.tokens.accessToken)).status).toBe(200);
  });
});

describe('no outbound request', () => {
  it('nothing in this file made the server fetch a URL: the jku/x5u/kid server saw no request and fetch was never called', () => {
    expect(listenerHits).toEqual([]);
    expect(fetchSpy).not.toHaveBeenCalled();
  });
});
