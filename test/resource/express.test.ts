import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { describe, expect, it } from 'vitest';
import { authOf, requireRole, tesseraAuth, type AuthContext, type Verifier } from '../../src/resource/express.js';
import { TesseraAuthError } from '../../src/resource/verify.js';
import { expectRefused, runSnippet } from './kit.js';
import { describeResourceServer } from './suite.js';

// The Express 5 app of docs/resource-servers.md, run as written.
describeResourceServer('tessera/express on Express 5', (issuer) => runSnippet('express', issuer));

/** A verifier whose answer is the token: `roles:a,b` is a caller with those roles, `boom` a bug. */
const fake: Verifier = {
  async verify(token) {
    if (token === 'boom') throw new Error('a bug in the verifier');
    if (!token) throw new TesseraAuthError('unauthorized', 'An Authorization: Bearer access token is required', { tokenPresented: false });
    if (!token.startsWith('roles:')) throw new TesseraAuthError('unauthorized', 'The access token is not valid');
    const roles = token.slice(6).split(',').filter(Boolean);
    return { userId: 'u', sessionId: 's', roles, amr: [], claims: {} } satisfies AuthContext;
  },
  status: () => ({ revocations: 'off', revokedSessions: 0 }),
  close: () => {},
};

async function serve(app: express.Express) {
  const server = createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const get = (path: string, token?: string) => fetch(url + path, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  return { get, close: () => new Promise((resolve) => server.close(resolve)) };
}

describe('tessera/express, in process', () => {
  it('guards every route after app.use(auth); requireRole passes on any of its roles', async () => {
    const app = express();
    app.get('/open', (_req, res) => { res.json({ ok: true }); });
    const auth = tesseraAuth({ verifier: fake });
    expect(auth.verifier).toBe(fake);
    app.use(auth);
    app.get('/me', (req, res) => { res.json(authOf(req)); });
    app.get('/staff', requireRole('editor', 'admin'), (_req, res) => { res.json({ ok: true }); });
    const { get, close } = await serve(app);
    try {
      expect((await get('/open')).status).toBe(200);
      await expectRefused(await get('/me'), 401, 'unauthorized');
      expect(await (await get('/me', 'roles:a')).json()).toMatchObject({ userId: 'u', roles: ['a'] });
      expect((await get('/staff', 'roles:x,admin')).status).toBe(200);
      await expectRefused(await get('/staff', 'roles:x'), 403, 'insufficient_role');
    } finally {
      await close();
    }
  });

  it('without tesseraAuth: requireRole answers 401 and authOf is a 500; a verifier bug reaches the error handler', async () => {
    const app = express();
    app.get('/role', requireRole('admin'), (_req, res) => { res.json({ ok: true }); });
    app.get('/who', (req, res) => { res.json(authOf(req)); });
    app.get('/bug', tesseraAuth({ verifier: fake }), (_req, res) => { res.json({ ok: true }); });
    const errors: unknown[] = [];
    app.use((error: unknown, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
      errors.push(error);
      res.status(500).json({ error: 'internal' });
    });
    const { get, close } = await serve(app);
    try {
      const { challenge } = await expectRefused(await get('/role'), 401, 'unauthorized', 'An Authorization: Bearer access token is required');
      expect(challenge).toBe('Bearer');
      expect((await get('/who')).status).toBe(500);
      expect((await get('/bug', 'boom')).status).toBe(500);
      expect(errors.map((e) => (e as Error).message)).toEqual(['authOf(req) on a route without tesseraAuth()', 'a bug in the verifier']);
    } finally {
      await close();
    }
  });

  it('requireRole() without a role is refused at start, not at request time', () => {
    expect(() => requireRole()).toThrow(TypeError);
  });
});
