import fastifyJwt, { type FastifyJWTOptions, type TokenOrHeader } from '@fastify/jwt';
import Fastify, { type FastifyRequest } from 'fastify';
import buildGetJwks from 'get-jwks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeInterop, getMe, startForeignIssuer, type ResourceServer, type VerifierOptions } from './kit.js';

type Decoded = { header: { kid: string; alg: string }; payload: { iss: string } };

/**
 * @fastify/jwt 10 with get-jwks 11 in Fastify 5, set up as the get-jwks README shows, with
 * two changes that docs/resource-servers.md ("Keeping your JWT library", same code)
 * explains: `issuersWhitelist` goes to `buildGetJwks` (the README also passes it to
 * @fastify/jwt, which ignores it), and the claims checks go to `verify`; get-jwks's errors
 * (no status of their own) are answered 401 when the token has no key, 503 when the JWKS is
 * out of reach, instead of 500.
 */
async function start(options: VerifierOptions): Promise<ResourceServer> {
  const fastify = Fastify();
  const getJwks = buildGetJwks({ issuersWhitelist: [options.issuer] });

  fastify.register(fastifyJwt, {
    decode: { complete: true },
    secret: (request: FastifyRequest, token: TokenOrHeader) => {
      const { header: { kid, alg }, payload: { iss } } = token as Decoded;
      return getJwks.getPublicKey({ kid, domain: iss, alg });
    },
    verify: { algorithms: options.algorithms as NonNullable<FastifyJWTOptions['verify']>['algorithms'], allowedIss: options.issuer, allowedAud: options.audience },
  });

  fastify.addHook('onRequest', async (request, reply) => {
    try {
      await request.jwtVerify();
    } catch (err) {
      // get-jwks's errors have no status code. No key for this token (unknown kid or issuer, an
      // Ed25519 key) is the token's fault: 401. A JWKS out of reach is not: 503.
      const { statusCode, code, message } = err as { statusCode?: number; code?: string; message: string };
      const noKey = code === 'JWK_NOT_FOUND' || code === 'DOMAIN_NOT_ALLOWED' || /^Unsupported key type/.test(message);
      return reply.code(statusCode ?? (noKey ? 401 : 503)).send(err);
    }
  });

  fastify.get('/me', async (request) => request.user);

  await fastify.listen({ port: 0, host: '127.0.0.1' });
  const { port } = fastify.server.address() as { port: number };
  return { url: `http://127.0.0.1:${port}`, close: () => fastify.close() };
}

/** Exactly the get-jwks README's @fastify/jwt example: no algorithms, issuer or audience checked by @fastify/jwt. */
async function startAsTheReadme(allowed: string[]): Promise<ResourceServer> {
  const fastify = Fastify();
  const getJwks = buildGetJwks();

  // The README passes these to @fastify/jwt, which has no such options and ignores them.
  const readmeOptions = {
    decode: { complete: true },
    issuersWhitelist: allowed,
    checkIssuer: (issuer: string) => allowed.includes(issuer),
    secret: (request: FastifyRequest, token: TokenOrHeader, callback: (e: Error | null, secret: string | undefined) => void) => {
      const { header: { kid, alg }, payload: { iss } } = token as Decoded;
      getJwks.getPublicKey({ kid, domain: iss, alg }).then((publicKey) => callback(null, publicKey), (error: Error) => callback(error, undefined));
    },
  };
  fastify.register(fastifyJwt, readmeOptions);

  fastify.addHook('onRequest', async (request, reply) => {
    try {
      await request.jwtVerify();
    } catch (err) {
      return reply.send(err);
    }
  });

  fastify.get('/me', async (request) => request.user);

  await fastify.listen({ port: 0, host: '127.0.0.1' });
  const { port } = fastify.server.address() as { port: number };
  return { url: `http://127.0.0.1:${port}`, close: () => fastify.close() };
}

describeInterop({
  name: '@fastify/jwt 10 + get-jwks 11 in Fastify 5',
  start,
  algs: ['ES256', 'RS256'],
  eddsaToday: {
    // jwk-to-pem, which get-jwks turns JWKs into PEM with, knows RSA and EC keys only.
    setup: 'the README setup answers 500: Unsupported key type "OKP"',
    start: (options) => startAsTheReadme([options.issuer]),
    status: 500,
    message: /^Unsupported key type "OKP"$/,
  },
  eddsaPinned: { status: 401, message: /^Unsupported key type "OKP"$/ },
  unreachable: { status: 503 },
});

describe('the get-jwks README setup, copied as it is', () => {
  let readme: ResourceServer;
  let ours: ResourceServer;
  let foreign: Awaited<ReturnType<typeof startForeignIssuer>>;
  const tessera = 'https://auth.example.com';
  const claims = { sub: '3aa92392-42b9-49be-9dc5-77d95835ecfb', aud: tessera, exp: Math.floor(Date.now() / 1000) + 900, roles: ['tessera:admin'] };

  beforeAll(async () => {
    foreign = await startForeignIssuer('ES256');
    readme = await startAsTheReadme([tessera]);
    ours = await start({ issuer: tessera, audience: tessera, jwksUri: `${tessera}/.well-known/jwks.json`, algorithms: ['ES256'] });
  });
  afterAll(async () => {
    await Promise.all([readme?.close(), ours?.close(), foreign?.close()]);
  });

  it('trusts a token from any server that names itself in `iss` and serves a JWKS: the whitelist given to @fastify/jwt is ignored', async () => {
    const token = await foreign.sign(claims);
    const { status, body } = await getMe(readme, token);
    expect(status).toBe(200);
    expect(body).toMatchObject({ iss: foreign.url, roles: ['tessera:admin'] });
  });

  it('refuses that token once `issuersWhitelist` goes to buildGetJwks, as docs/resource-servers.md does', async () => {
    const { status, body } = await getMe(ours, await foreign.sign(claims));
    expect(status).toBe(401);
    expect(body.message).toBe('The domain is not allowed.');
  });
});
