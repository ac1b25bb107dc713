import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BACKENDS } from '../helpers/backends.js';
import { startTestApp, type TestApp } from '../helpers/app.js';

describe.each(BACKENDS)('meta endpoints on %s', (backend) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(backend);
  });
  afterAll(() => t.close());

  it('answers liveness and readiness', async () => {
    expect((await t.app.inject('/healthz')).json()).toEqual({ status: 'ok' });
    const ready = await t.app.inject('/readyz');
    expect(ready.statusCode).toBe(200);
    expect(ready.json()).toEqual({ status: 'ready' });
    expect(ready.headers['cache-control']).toBe('no-store');
  });

  it('publishes public Ed25519 keys only', async () => {
    const { keys } = (await t.app.inject('/.well-known/jwks.json')).json();
    expect(keys).toHaveLength(1);
    expect(keys[0]).toMatchObject({ kty: 'OKP', crv: 'Ed25519', alg: 'EdDSA', use: 'sig' });
    expect(keys[0].d).toBeUndefined();
  });

  it('describes every route in an OpenAPI 3.1 document', async () => {
    const doc = (await t.app.inject('/openapi.json')).json();
    expect(doc.openapi).toBe('3.1.0');
    for (const path of ['/auth/register', '/auth/login', '/auth/refresh', '/auth/logout', '/auth/me', '/auth/sessions', '/auth/sessions/{id}', '/auth/password', '/auth/events', '/.well-known/jwks.json', '/healthz', '/readyz']) {
      expect(doc.paths, path).toHaveProperty([path]);
    }
  });
});
