import { createHmac, createPublicKey, randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignJWT, exportJWK, generateKeyPair, type JWK, type JWTPayload } from 'jose';
import buildGetJwks from 'get-jwks';
import jwksClient from 'jwks-rsa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROTATION_DELAY_SECONDS } from '../../src/auth/key-ring.js';
import { rotateSigningKey } from '../../src/auth/signing-keys.js';
import type { SigningAlg } from '../../src/core/signing-alg.js';
import { freePort } from '../faults/helpers/free-port.js';
import { TEST_SECRET } from '../helpers/app.js';
import { startLiveIssuer, type LiveIssuer } from '../helpers/live-issuer.js';

/**
 * The interop suites: a real Tessera on loopback, and in front of it a tiny resource server
 * per third-party JWT library, set up the way that library's own docs show. Each
 * `test/interop/*.test.ts` describes its library (how to start its server) and hands it to
 * `describeInterop`, which runs the same checks against every library.
 */

/** What a resource server is told, as the docs tell users to configure their library. */
export interface VerifierOptions {
  /** Tessera's PUBLIC_URL: the `iss` of its tokens. */
  issuer: string;
  /** ACCESS_TOKEN_AUDIENCE, which defaults to PUBLIC_URL. */
  audience: string;
  /** `${issuer}/.well-known/jwks.json` */
  jwksUri: string;
  /** The allowlist, always pinned to the one algorithm Tessera signs with. */
  algorithms: string[];
}

/** A resource server on loopback whose `GET /me` answers the verified payload, or a refusal whose body has a `message`. */
export interface ResourceServer {
  url: string;
  close(): Promise<void>;
}

export interface LibraryUnderTest {
  name: string;
  /** Starts the resource server as the docs show, verifying with `options`. */
  start(options: VerifierOptions): Promise<ResourceServer>;
  /** The algorithms the library verifies, besides EdDSA which none of these does. */
  algs: Array<'ES256' | 'RS256'>;
  /** What users see today when Tessera signs with EdDSA, its default. */
  eddsaToday: {
    /** Describes the setup users have today (`algorithms: ['EdDSA']`, or the README's). */
    setup: string;
    start(options: VerifierOptions): Promise<ResourceServer>;
    status: number;
    message: RegExp;
  };
  /** How the setup of `start` answers a Tessera EdDSA token (during a rotation from EdDSA). */
  eddsaPinned: { status: number; message: RegExp };
  /** How it answers a token whose key it has not cached while Tessera's JWKS cannot be fetched. */
  unreachable: { status: number };
}

/** Listens on a free loopback port; the server's base URL. */
export async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

export async function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve, reject) => server.close((error) => (error ? reject(error) : resolve())));
}

/** `GET /me` with `Authorization: Bearer token`: the status and the JSON (or text) body. */
export async function getMe(server: ResourceServer, token: string | undefined): Promise<{ status: number; body: any }> {
  const res = await fetch(`${server.url}/me`, { headers: token === undefined ? {} : { authorization: `Bearer ${token}` } });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // a plain-text refusal (e.g. "Unauthorized")
  }
  return { status: res.status, body };
}

// ---- tokens ---------------------------------------------------------------------------

const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

export function headerOf(token: string): Record<string, any> {
  return JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString());
}

export function claimsOf(token: string): JWTPayload & Record<string, any> {
  return JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString());
}

/** The same header and signature over a payload with `patch` applied. */
export function tamperPayload(token: string, patch: Record<string, unknown>): string {
  const [header, , signature] = token.split('.');
  return `${header}.${part({ ...claimsOf(token), ...patch })}.${signature}`;
}

/** The same header and payload with one bit of the signature's 11th byte flipped. */
export function tamperSignature(token: string): string {
  const [header, payload, signature] = token.split('.');
  const bytes = Buffer.from(signature!, 'base64url');
  bytes[10]! ^= 0x01;
  return `${header}.${payload}.${bytes.toString('base64url')}`;
}

const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/**
 * Another spelling of the same token: the last character of the signature changed only in
 * its unused low bit, so it decodes to the very same bytes. Tessera's own verifier refuses
 * it; a verifier that accepts it shows that a token's text is no identity (key a deny-list
 * on `jti` or `sid`).
 */
export function respell(token: string): string {
  const last = BASE64URL.indexOf(token.at(-1)!);
  const respelt = token.slice(0, -1) + BASE64URL[last ^ 1];
  expect(Buffer.from(respelt.split('.')[2]!, 'base64url')).toEqual(Buffer.from(token.split('.')[2]!, 'base64url'));
  return respelt;
}

/** The genuine payload under `alg: none` and no signature. */
export function algNone(token: string): string {
  return `${part({ ...headerOf(token), alg: 'none' })}.${token.split('.')[1]}.`;
}

/** The genuine payload under `alg: HS256`, its MAC keyed with `pem`, the text of the published public key. */
export function hs256WithKey(token: string, pem: string): string {
  const input = `${part({ ...headerOf(token), alg: 'HS256' })}.${token.split('.')[1]}`;
  return `${input}.${createHmac('sha256', pem).update(input).digest('base64url')}`;
}

/**
 * The texts a verifier may use as the public key of `kid`, for the key-confusion attack
 * (HS256 keyed with the public key): the PEM jwks-rsa hands out, the PEM get-jwks
 * (jwk-to-pem) hands out, and Node's own export, each also without its final newline.
 */
export async function publicKeyTexts(issuer: LiveIssuer, kid: string): Promise<string[]> {
  const jwks = (await (await fetch(`${issuer.url}/.well-known/jwks.json`)).json()) as { keys: JWK[] };
  const jwk = jwks.keys.find((k) => k.kid === kid)!;
  const fromJwksRsa = (await jwksClient({ jwksUri: `${issuer.url}/.well-known/jwks.json`, cache: false }).getSigningKey(kid)).getPublicKey();
  const fromGetJwks = await buildGetJwks().getPublicKey({ domain: issuer.url, kid, alg: jwk.alg! });
  const fromNode = createPublicKey({ key: jwk as import('node:crypto').JsonWebKey, format: 'jwk' }).export({ type: 'spki', format: 'pem' }) as string;
  const texts = [fromJwksRsa, fromGetJwks, fromNode].flatMap((pem) => [pem, pem.trimEnd()]);
  return [...new Set(texts)];
}

/** The kids Tessera publishes now. */
export async function publishedKids(issuer: LiveIssuer): Promise<string[]> {
  const jwks = (await (await fetch(`${issuer.url}/.well-known/jwks.json`)).json()) as { keys: JWK[] };
  return jwks.keys.map((k) => k.kid!);
}

/**
 * A token signed with the key Tessera signs with now, under its algorithm, with the claims
 * of `like` changed by `patch`: how the tests make an expired token, or one for another
 * audience or issuer, that only a claim check can refuse.
 */
export async function signWithIssuerKey(issuer: LiveIssuer, like: string, patch: Record<string, unknown>): Promise<string> {
  const key = issuer.app.tessera.keys.signingKey(new Date());
  return new SignJWT({ ...claimsOf(like), ...patch })
    .setProtectedHeader({ alg: key.alg, typ: 'at+jwt', kid: key.kid })
    .sign(key.privateKey);
}

/**
 * Rotates Tessera to a new key of `alg` that signs at once: `tessera keys rotate`'s use case
 * on a clock set back by the 60 s it waits (so that every verifier sees the key before its
 * first token), then a reload of the ring, which every node otherwise does within 10 s.
 * The previous key stays published. Returns the new key's kid.
 */
export async function rotateNow(issuer: LiveIssuer, alg: SigningAlg): Promise<string> {
  const { store, keys, config } = issuer.app.tessera;
  const clock = () => new Date(Date.now() - ROTATION_DELAY_SECONDS * 1000);
  const key = await rotateSigningKey({ store, secret: TEST_SECRET, accessTokenTtl: config.accessTokenTtl, clock }, alg);
  expect(key.signsFrom.getTime()).toBeLessThanOrEqual(Date.now());
  await keys.reload();
  expect(keys.signingKey(new Date()).kid).toBe(key.kid);
  return key.kid;
}

/**
 * Another issuer: its own key of `alg`, its own JWKS on loopback, and tokens naming it as
 * `iss` (and Tessera's audience), the way another tenant's or an attacker's server would.
 */
export async function startForeignIssuer(alg: 'ES256' | 'RS256') {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const kid = randomUUID();
  const jwks = { keys: [{ ...(await exportJWK(publicKey)), kid, alg, use: 'sig' }] };
  const server = createServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(req.url === '/.well-known/jwks.json' ? JSON.stringify(jwks) : '{}');
  });
  const url = await listen(server);
  return {
    url,
    /** A token with `claims` (sub, sid, aud, roles…) but issued here: `iss` is this server, signed with its key. */
    sign: (claims: Record<string, unknown>) =>
      new SignJWT({ ...claims, iss: url }).setProtectedHeader({ alg, typ: 'at+jwt', kid }).sign(privateKey),
    close: () => closeServer(server),
  };
}

/** A signed-in user whose refresh token is kept and rotated. */
export class User {
  private constructor(
    private readonly issuer: LiveIssuer,
    readonly email: string,
    readonly userId: string,
    readonly sessionId: string,
    private refreshToken: string,
    public accessToken: string,
  ) {}

  static async signUp(issuer: LiveIssuer): Promise<User> {
    const u = await issuer.signUp();
    return new User(issuer, u.email, u.userId, u.sessionId, u.refreshToken, u.accessToken);
  }

  /** Refreshes (body transport): a new access token, signed with the key Tessera signs with now. */
  async refresh(): Promise<string> {
    const pair = await this.issuer.refresh(this.refreshToken);
    this.refreshToken = pair.refreshToken;
    this.accessToken = pair.accessToken;
    return pair.accessToken;
  }
}

// ---- the suite ------------------------------------------------------------------------

/**
 * The checks every library must pass. One Tessera per file (SIGNING_ALG=ES256), shared by
 * every test, which run in order: ES256 first, then RS256 (a rotation to an RS256 key),
 * then EdDSA, Tessera's default (a rotation to an Ed25519 key), and last the way out of
 * EdDSA: a rotation from it to ES256.
 */
export function describeInterop(library: LibraryUnderTest): void {
  describe(library.name, () => {
    let issuer: LiveIssuer;
    let user: User;
    const options = (algorithms: string[]): VerifierOptions => ({
      issuer: issuer.url, audience: issuer.config.audience, jwksUri: `${issuer.url}/.well-known/jwks.json`, algorithms,
    });

    beforeAll(async () => {
      // PostgreSQL when there is one: it starts in half a second, PGlite in several under load.
      issuer = await startLiveIssuer(process.env.TEST_DATABASE_URL ? 'postgres' : 'pglite', { SIGNING_ALG: 'ES256' });
      user = await User.signUp(issuer);
    });
    afterAll(async () => {
      await issuer?.close();
    });

    for (const alg of library.algs) {
      describe(`Tessera signing with ${alg} (SIGNING_ALG=${alg})`, () => {
        let server: ResourceServer;
        beforeAll(async () => {
          if (issuer.app.tessera.keys.signingKey(new Date()).alg !== alg) await rotateNow(issuer, alg);
          await issuer.setRoles(user.email, []);
          await user.refresh();
          expect(headerOf(user.accessToken)).toMatchObject({ alg, typ: 'at+jwt', kid: expect.any(String) });
          server = await library.start(options([alg]));
        });
        afterAll(async () => {
          await server?.close();
        });

        it('accepts a genuine token and hands over its claims', async () => {
          const { status, body } = await getMe(server, user.accessToken);
          expect(status).toBe(200);
          expect(body).toMatchObject({ iss: issuer.url, aud: issuer.config.audience, sub: user.userId, sid: user.sessionId, amr: ['pwd'] });
          expect(body.roles).toBeUndefined(); // omitted while the user has none
        });

        it('reads the roles the user has after a refresh', async () => {
          await issuer.setRoles(user.email, ['billing:read', 'support']);
          const token = await user.refresh();
          const { status, body } = await getMe(server, token);
          expect(status).toBe(200);
          expect(body.roles).toEqual(['billing:read', 'support']);
        });

        it('refuses a request without a token', async () => {
          expect((await getMe(server, undefined)).status).toBe(401);
        });

        it('refuses a tampered payload', async () => {
          const forged = tamperPayload(user.accessToken, { roles: ['tessera:admin'] });
          expect((await getMe(server, forged)).status).toBe(401);
        });

        it('refuses a tampered signature', async () => {
          expect((await getMe(server, tamperSignature(user.accessToken))).status).toBe(401);
        });

        it('accepts another spelling of a genuine token (unused bits of its last character): key a deny-list on jti, never on the text', async () => {
          const respelt = respell(user.accessToken);
          expect(respelt).not.toBe(user.accessToken);
          const { status, body } = await getMe(server, respelt);
          expect(status).toBe(200);
          expect(body.jti).toBe(claimsOf(user.accessToken).jti);
        });

        it('refuses alg "none"', async () => {
          expect((await getMe(server, algNone(user.accessToken))).status).toBe(401);
        });

        it('refuses HS256 keyed with the published public key', async () => {
          const texts = await publicKeyTexts(issuer, headerOf(user.accessToken).kid);
          expect(texts.length).toBeGreaterThanOrEqual(2);
          for (const pem of texts) {
            expect((await getMe(server, hs256WithKey(user.accessToken, pem))).status, pem).toBe(401);
          }
        });

        it("refuses a token for another audience, or naming another issuer, even with Tessera's signature", async () => {
          const otherAudience = await signWithIssuerKey(issuer, user.accessToken, { aud: 'https://another-api.example' });
          const otherIssuer = await signWithIssuerKey(issuer, user.accessToken, { iss: 'https://another-tessera.example' });
          expect((await getMe(server, otherAudience)).status).toBe(401);
          expect((await getMe(server, otherIssuer)).status).toBe(401);
          // the same key and claims otherwise: only the audience or issuer check refused them
          expect((await getMe(server, await signWithIssuerKey(issuer, user.accessToken, {}))).status).toBe(200);
        });

        it('refuses a token of another issuer that serves its own JWKS', async () => {
          const foreign = await startForeignIssuer(alg);
          try {
            expect((await getMe(server, await foreign.sign(claimsOf(user.accessToken)))).status).toBe(401);
          } finally {
            await foreign.close();
          }
        });

        it('refuses an expired token', async () => {
          const now = Math.floor(Date.now() / 1000);
          const expired = await signWithIssuerKey(issuer, user.accessToken, { iat: now - 1200, exp: now - 300 });
          const { status, body } = await getMe(server, expired);
          expect(status).toBe(401);
          expect(String(body.message)).toMatch(/expired/i);
        });

        if (alg === library.algs[0]) {
          it(`answers ${library.unreachable.status} when the key is not cached and the JWKS cannot be fetched`, async () => {
            const down = `http://127.0.0.1:${await freePort()}`;
            const offline = await library.start({ ...options([alg]), issuer: down, jwksUri: `${down}/.well-known/jwks.json` });
            try {
              const token = await signWithIssuerKey(issuer, user.accessToken, { iss: down });
              expect((await getMe(offline, token)).status).toBe(library.unreachable.status);
            } finally {
              await offline.close();
            }
          });
        }

        it('picks up a rotated key by its kid, and still accepts tokens of the previous key', async () => {
          const before = user.accessToken;
          const oldKid = headerOf(before).kid;
          expect((await getMe(server, before)).status).toBe(200); // the old key is cached now

          const newKid = await rotateNow(issuer, alg);
          const after = await user.refresh();
          expect(headerOf(after)).toMatchObject({ alg, kid: newKid });
          expect(await publishedKids(issuer)).toEqual(expect.arrayContaining([oldKid, newKid]));

          const fresh = await getMe(server, after);
          expect(fresh.status).toBe(200);
          expect(fresh.body).toMatchObject({ sub: user.userId, roles: ['billing:read', 'support'] });
          const old = await getMe(server, before);
          expect(old.status).toBe(200);
          expect(old.body.sub).toBe(user.userId);
        });
      });
    }

    describe("Tessera's default, EdDSA, and the rotation away from it", () => {
      let eddsaToken: string;
      let today: ResourceServer;
      let pinned: ResourceServer;
      beforeAll(async () => {
        await rotateNow(issuer, 'EdDSA');
        eddsaToken = await user.refresh();
        expect(headerOf(eddsaToken)).toMatchObject({ alg: 'EdDSA', typ: 'at+jwt' });
        today = await library.eddsaToday.start(options(['EdDSA']));
        pinned = await library.start(options(['ES256']));
      });
      afterAll(async () => {
        await today?.close();
        await pinned?.close();
      });

      it(`cannot verify an EdDSA token: ${library.eddsaToday.setup}`, async () => {
        const { status, body } = await getMe(today, eddsaToken);
        expect(status).toBe(library.eddsaToday.status);
        expect(String(body.message)).toMatch(library.eddsaToday.message);
      });

      it('after a rotation from EdDSA to ES256 accepts the ES256 tokens, and never the EdDSA ones still published', async () => {
        const eddsaKid = headerOf(eddsaToken).kid;
        const refused = await getMe(pinned, eddsaToken);
        expect(refused.status).toBe(library.eddsaPinned.status);
        expect(String(refused.body.message)).toMatch(library.eddsaPinned.message);

        const es256Kid = await rotateNow(issuer, 'ES256');
        const es256Token = await user.refresh();
        expect(headerOf(es256Token)).toMatchObject({ alg: 'ES256', kid: es256Kid });
        expect(await publishedKids(issuer)).toEqual(expect.arrayContaining([eddsaKid, es256Kid]));

        const accepted = await getMe(pinned, es256Token);
        expect(accepted.status).toBe(200);
        expect(accepted.body).toMatchObject({ sub: user.userId, roles: ['billing:read', 'support'] });
        // Until it expires, the EdDSA token is refused: its holder refreshes and gets an ES256 one.
        expect((await getMe(pinned, eddsaToken)).status).toBe(library.eddsaPinned.status);
      });
    });
  });
}
