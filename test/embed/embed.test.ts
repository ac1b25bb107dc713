import 'reflect-metadata';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Controller, Get, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import express from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authOf, tesseraAuth } from '../../src/resource/express.js';
import { embedTessera, type EmbeddedTessera } from '../../src/server/embed.js';
import { freePort } from '../faults/helpers/free-port.js';
import { PASSWORD, TEST_SECRET, newEmail } from '../helpers/app.js';

/** Tessera mounted under /api/auth inside a host app, in its process, over real HTTP. */
async function embedded(url: string): Promise<EmbeddedTessera> {
  return embedTessera({
    prefix: '/api/auth',
    env: { TESSERA_SECRET: TEST_SECRET, DATABASE_URL: 'memory://', PUBLIC_URL: url, LOG_LEVEL: 'silent', RATE_LIMITS: 'off' },
  });
}

function cookieOf(res: Response): { value: string; attributes: string } {
  const line = res.headers.getSetCookie().find((c) => c.startsWith('tessera_refresh='))!;
  const [pair, ...attributes] = line.split('; ');
  return { value: pair!.slice('tessera_refresh='.length), attributes: attributes.join('; ') };
}

/** The same walk through both hosts: sign up, refresh by cookie, call a protected host route, sign out. */
function describeHost(name: string, start: (tessera: EmbeddedTessera, port: number) => Promise<{ close(): Promise<void> }>) {
  describe(`embedded in ${name} under /api/auth`, () => {
    let url: string;
    let tessera: EmbeddedTessera;
    let host: { close(): Promise<void> };
    beforeAll(async () => {
      const port = await freePort();
      url = `http://127.0.0.1:${port}`;
      tessera = await embedded(url);
      host = await start(tessera, port);
    });
    afterAll(async () => {
      await host?.close();
      await tessera?.close();
    });

    const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
      fetch(url + path, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });

    it('signs up, refreshes with the cookie (Path=/api/auth), reaches a protected host route and signs out', async () => {
      const registered = await post('/api/auth/register', { email: newEmail(), password: PASSWORD });
      expect(registered.status, await registered.clone().text()).toBe(201);
      const cookie = cookieOf(registered);
      expect(cookie.attributes).toContain('Path=/api/auth');

      const refreshed = await post('/api/auth/refresh', {}, { cookie: `tessera_refresh=${cookie.value}`, 'x-tessera-csrf': '1' });
      expect(refreshed.status).toBe(200);
      const { accessToken } = (await refreshed.json()) as { accessToken: string };

      const profile = await fetch(`${url}/profile`, { headers: { authorization: `Bearer ${accessToken}` } });
      expect(profile.status).toBe(200);
      expect(await profile.json()).toMatchObject({ sessionId: expect.any(String), roles: [] });
      expect((await fetch(`${url}/profile`)).status).toBe(401);

      const me = await fetch(`${url}/api/auth/me`, { headers: { authorization: `Bearer ${accessToken}` } });
      expect(me.status).toBe(200);
      const out = await post('/api/auth/logout', {}, { cookie: `tessera_refresh=${cookieOf(refreshed).value}`, 'x-tessera-csrf': '1' });
      expect(out.status).toBe(204);
      expect((await fetch(`${url}/api/auth/me`, { headers: { authorization: `Bearer ${accessToken}` } })).status).toBe(401);
    });

    it('publishes its keys and health under the prefix; the host keeps every other path', async () => {
      const jwks = (await (await fetch(`${url}/api/auth/.well-known/jwks.json`)).json()) as { keys: unknown[] };
      expect(jwks.keys.length).toBeGreaterThan(0);
      expect((await fetch(`${url}/api/auth/healthz`)).status).toBe(200);
      expect(await (await fetch(`${url}/hello`)).json()).toEqual({ hello: 'host' });
      // the host's own 404 for what is neither
      expect((await fetch(`${url}/auth/login`, { method: 'POST' })).headers.get('content-type') ?? '').not.toContain('problem+json');
      // Tessera's problem+json for what is under its prefix
      const unknown = await fetch(`${url}/api/auth/nope`);
      expect(unknown.status).toBe(404);
      expect(unknown.headers.get('content-type')).toContain('application/problem+json');
    });
  });
}

const listen = (server: Server) => ({
  close: () => new Promise<void>((resolve) => server.close(() => resolve())),
});

describeHost('Express 5', async (tessera, port) => {
  const app = express();
  app.use(tessera.middleware);
  app.use(express.json());
  app.get('/hello', (_req, res) => void res.json({ hello: 'host' }));
  const auth = tesseraAuth({ issuer: `http://127.0.0.1:${port}`, jwksUrl: `http://127.0.0.1:${port}/api/auth/.well-known/jwks.json` });
  app.get('/profile', auth, (req, res) => void res.json(authOf(req)));
  const server = await new Promise<Server>((resolve) => {
    const s = app.listen(port, '127.0.0.1', () => resolve(s));
  });
  return { close: async () => {
    auth.verifier.close();
    await listen(server).close();
  } };
});

describeHost('NestJS 11', async (tessera, port) => {
  const issuer = `http://127.0.0.1:${port}`;
  const auth = tesseraAuth({ issuer, jwksUrl: `${issuer}/api/auth/.well-known/jwks.json` });
  class HostController {
    hello() {
      return { hello: 'host' };
    }
  }
  Controller()(HostController);
  const hello = Object.getOwnPropertyDescriptor(HostController.prototype, 'hello')!;
  Get('hello')(HostController.prototype, 'hello', hello);
  class AppModule {}
  Module({ controllers: [HostController] })(AppModule);
  const app = await NestFactory.create(AppModule, { logger: false });
  app.use(tessera.middleware);
  app.use('/profile', auth, (req: express.Request, res: express.Response) => void res.json(authOf(req)));
  await app.listen(port, '127.0.0.1');
  return { close: async () => {
    auth.verifier.close();
    await app.close();
  } };
});

describe('embedding mistakes', () => {
  it('a body parser mounted before Tessera is named in the error, not a hang', async () => {
    const port = await freePort();
    const tessera = await embedded(`http://127.0.0.1:${port}`);
    const app = express();
    app.use(express.json());
    app.use(tessera.middleware);
    let seen: unknown;
    app.use((error: unknown, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
      seen = error;
      res.status(500).end();
    });
    const server = app.listen(port, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    const res = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/api/auth/login`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: newEmail(), password: PASSWORD }),
    });
    expect(res.status).toBe(500);
    expect(String(seen)).toContain('before any body parser');
    await new Promise((resolve) => server.close(resolve));
    await tessera.close();
  });

  it('refuses a prefix that is not a path, and a configuration without TESSERA_SECRET', async () => {
    await expect(embedTessera({ prefix: 'api/auth/', env: { TESSERA_SECRET: TEST_SECRET, DATABASE_URL: 'memory://', LOG_LEVEL: 'silent' } })).rejects.toThrow(/not a path/);
    await expect(embedTessera({ prefix: '/api/auth', env: { DATABASE_URL: 'memory://' } })).rejects.toThrow(/TESSERA_SECRET is required/);
  });
});
