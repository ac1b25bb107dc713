import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import { authOf, requireAuth, requireRole, tesseraAuth, type AuthContext, type Verifier } from '../../src/resource/fastify.js';
import { TesseraAuthError } from '../../src/resource/verify.js';
import { fakeVerifier, freePort, runSnippet } from './kit.js';
import { describeResourceServer } from './suite.js';

// The Fastify 5 app of docs/resource-servers.md, run as written.
describeResourceServer('tessera/fastify on Fastify 5', (issuer) => runSnippet('fastify', issuer));


describe('tessera/fastify, in process', () => {
  it('is visible to every plugin of the app, as a preHandler hook too', async () => {
    const { verifier, closed } = fakeVerifier();
    const app = Fastify();
    await app.register(tesseraAuth, { verifier });
    await app.register(async (api) => {
      api.addHook('preHandler', requireAuth);
      api.get('/me', async (request) => authOf(request));
      api.get('/admin', { preHandler: requireRole('admin', 'owner') }, async (request) => ({ roles: authOf(request).roles }));
    }, { prefix: '/api' });
    app.get('/open', async (request) => ({ auth: request.getDecorator('auth') }));
    const get = (url: string, token?: string) => app.inject({ url, headers: token ? { authorization: `Bearer ${token}` } : {} });

    expect((await get('/open')).json()).toEqual({ auth: null });
    expect((await get('/api/me')).statusCode).toBe(401);
    expect((await get('/api/me')).headers['www-authenticate']).toBe('Bearer');
    expect((await get('/api/me', 'roles:a')).json()).toMatchObject({ userId: 'u', roles: ['a'] });
    expect((await get('/api/admin', 'roles:owner')).json()).toEqual({ roles: ['owner'] });
    const forbidden = await get('/api/admin', 'roles:a');
    expect(forbidden.statusCode).toBe(403);
    expect(forbidden.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(forbidden.json()).toMatchObject({ code: 'insufficient_role' });
    await app.close();
    expect(closed()).toBe(0); // a verifier passed in is the caller's to close
  });

  it('closes the verifier it created when the app closes; a route without its preHandlers has no caller', async () => {
    const app = Fastify();
    const nowhere = `http://127.0.0.1:${await freePort()}`;
    await app.register(tesseraAuth, { issuer: nowhere, revocations: true, logger: { warn: () => {} } });
    app.get('/who', async (request) => authOf(request));
    expect((await app.inject({ url: '/who' })).statusCode).toBe(500);
    expect(app.tesseraVerifier.status().revocations).not.toBe('closed');
    await app.close();
    expect(app.tesseraVerifier.status().revocations).toBe('closed');
  });

  it('requireRole() without a role is refused at start', () => {
    expect(() => requireRole()).toThrow(TypeError);
  });
});
