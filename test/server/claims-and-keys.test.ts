import { decodeJwt, decodeProtectedHeader } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listSigningKeys, retireSigningKey, rotateSigningKey } from '../../src/auth/signing-keys.js';
import { loadConfig } from '../../src/core/config.js';
import { buildApp } from '../../src/server/app.js';
import type { App } from '../../src/server/context.js';
import { BACKENDS } from '../helpers/backends.js';
import { FrozenClock, TEST_SECRET, login, refresh, register, startTestApp, type TestApp } from '../helpers/app.js';

const META = { ip: null, userAgent: null };
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

describe.each(BACKENDS)('claims and signing keys on %s', (backend) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(backend);
  });
  afterAll(() => t.close());

  describe('claims for authorisation', () => {
    it('tokens carry amr and auth_time; roles and org_id reach them at the next refresh, and /auth/me shows them', async () => {
      const { email, body } = await register(t.app);
      const registeredAt = Math.floor(t.clock.time / 1000);
      const first = decodeJwt(body.accessToken);
      expect(first).toMatchObject({ amr: ['pwd'], auth_time: registeredAt });
      expect(first).not.toHaveProperty('roles');
      expect(first).not.toHaveProperty('org_id');

      expect(await t.db.store.setUserRoles(email, ['editor', 'tessera:admin'], t.clock.now(), META)).toBe(true);
      await t.db.store.db.updateTable('users').set({ org_id: 'acme' }).where('email', '=', email).execute();
      t.clock.advance(30);
      const refreshed = (await refresh(t.app, body.refreshToken!)).json();
      // auth_time stays the time the user signed in, not the refresh
      expect(decodeJwt(refreshed.accessToken)).toMatchObject({ roles: ['editor', 'tessera:admin'], org_id: 'acme', amr: ['pwd'], auth_time: registeredAt });
      expect(refreshed.user).toMatchObject({ roles: ['editor', 'tessera:admin'], orgId: 'acme', emailVerified: false });

      const me = await t.app.inject({ method: 'GET', url: '/auth/me', headers: bearer(refreshed.accessToken) });
      expect(me.json().user).toMatchObject({ email, roles: ['editor', 'tessera:admin'], orgId: 'acme', emailVerified: false });
      expect(me.json().user).not.toHaveProperty('metadata');

      // a new sign-in is a new auth_time
      t.clock.advance(60);
      const again = (await login(t.app, email)).json();
      expect(decodeJwt(again.accessToken).auth_time).toBe(Math.floor(t.clock.time / 1000));
    });
  });

  describe('key rotation', () => {
    it('a rotated-in key is published at once, signs 60 s later; the old one stays published while its tokens live, then retires', async () => {
      const { store } = t.db;
      const keys = t.app.tessera.keys;
      const deps = { store, secret: TEST_SECRET, accessTokenTtl: t.config.accessTokenTtl, clock: t.clock.now };
      const { body } = await register(t.app);
      const oldKid = decodeProtectedHeader(body.accessToken).kid!;

      const added = await rotateSigningKey(deps, 'ES256');
      await keys.reload();
      const jwks = () => t.app.inject({ method: 'GET', url: '/.well-known/jwks.json' }).then((r) => r.json().keys as { kid: string; alg: string; use: string }[]);
      expect((await jwks()).map((k) => k.kid)).toEqual([added.kid, oldKid]);
      expect((await jwks())[0]).toMatchObject({ alg: 'ES256', use: 'sig', kty: 'EC', crv: 'P-256' });
      expect(JSON.stringify(await jwks())).not.toMatch(/"d"/);

      // not yet: the old key still signs
      const before = (await refresh(t.app, body.refreshToken!)).json();
      expect(decodeProtectedHeader(before.accessToken)).toMatchObject({ kid: oldKid });
      // a key about to sign cannot be retired, even forced
      await expect(retireSigningKey(deps, added.kid, true)).rejects.toMatchObject({ code: 'invalid_request' });

      t.clock.advance(61);
      const after = (await refresh(t.app, before.refreshToken)).json();
      expect(decodeProtectedHeader(after.accessToken)).toMatchObject({ kid: added.kid, alg: 'ES256' });
      // both verify: the old token by its own key, the new by the new
      for (const token of [before.accessToken, after.accessToken]) {
        expect((await t.app.inject({ method: 'GET', url: '/auth/me', headers: bearer(token) })).statusCode).toBe(200);
      }
      expect((await listSigningKeys(deps)).map((k) => k.status)).toEqual(['signing', 'published']);
      await expect(retireSigningKey(deps, oldKid, false)).rejects.toMatchObject({ code: 'invalid_request' });
      await expect(retireSigningKey(deps, added.kid, true)).rejects.toMatchObject({ code: 'invalid_request' });

      // ACCESS_TOKEN_TTL + 60 s after it stopped signing: every token it signed has expired
      t.clock.advance(t.config.accessTokenTtl + 60);
      expect((await jwks()).map((k) => k.kid)).toEqual([added.kid]);
      expect((await listSigningKeys(deps)).map((k) => k.status)).toEqual(['signing', 'expired']);
      await retireSigningKey(deps, oldKid, false);
      expect((await listSigningKeys(deps)).map((k) => k.kid)).toEqual([added.kid]);
    });
  });
});

describe.each(BACKENDS)('a change of SIGNING_ALG on %s', (backend) => {
  it('rotates once, however many nodes start with it: EdDSA signs 60 s more, then ES256', async () => {
    const t = await startTestApp(backend);
    const nodes: App[] = [];
    try {
      const { body } = await register(t.app);
      expect(decodeProtectedHeader(body.accessToken).alg).toBe('EdDSA');
      const loaded = loadConfig({ TESSERA_SECRET: TEST_SECRET, LOG_LEVEL: 'silent', SIGNING_ALG: 'ES256', RATE_LIMITS: 'off' });
      if (!loaded.ok) throw new Error(loaded.errors.join());
      const clock = new FrozenClock(t.clock.time);
      nodes.push(...(await Promise.all([1, 2, 3].map(() => buildApp({ config: loaded.config, store: t.db.store, secret: TEST_SECRET, clock: clock.now })))));
      const keys = await t.db.store.listSigningKeys();
      expect(keys.map((k) => k.alg)).toEqual(['EdDSA', 'ES256']);

      const node = nodes[0]!;
      expect(decodeProtectedHeader((await refresh(node, body.refreshToken!)).json().accessToken).alg).toBe('EdDSA');
      clock.advance(61);
      const { body: later } = await register(node);
      expect(decodeProtectedHeader(later.accessToken).alg).toBe('ES256');
      // the node still on EdDSA's configuration verifies it once it has looked again
      await t.app.tessera.keys.reload();
      t.clock.advance(61);
      expect((await t.app.inject({ method: 'GET', url: '/auth/me', headers: bearer(later.accessToken) })).statusCode).toBe(200);
    } finally {
      await Promise.all(nodes.map((n) => n.close()));
      await t.close();
    }
  });
});

describe('a claims hook (embedding)', () => {
  const start = async (claims: Parameters<typeof buildApp>[0]['claims']) => {
    const t = await startTestApp('pglite');
    const app = await buildApp({ config: t.config, store: t.db.store, secret: TEST_SECRET, clock: t.clock.now, claims });
    return { t, app };
  };

  it('adds claims, from metadata too; it sees the user and the session', async () => {
    const seen: unknown[] = [];
    const { t, app } = await start(({ user, session }) => {
      seen.push({ user: user.email, amr: session.amr });
      return { plan: user.metadata.plan ?? 'free', tenant: 'acme' };
    });
    try {
      const { email, body } = await register(app);
      expect(decodeJwt(body.accessToken)).toMatchObject({ plan: 'free', tenant: 'acme' });
      await t.db.store.db.updateTable('users').set({ metadata: JSON.stringify({ plan: 'pro' }) }).where('email', '=', email).execute();
      expect(decodeJwt((await refresh(app, body.refreshToken!)).json().accessToken)).toMatchObject({ plan: 'pro' });
      expect(seen).toContainEqual({ user: email, amr: ['pwd'] });
    } finally {
      await app.close();
      await t.close();
    }
  });

  it('may not override a reserved claim, nor make a token over 8 KiB: 500, and the log names the reason', async () => {
    for (const claims of [() => ({ sub: 'someone-else' }), () => ({ roles: ['tessera:admin'] }), () => ({ blob: 'x'.repeat(9000) })]) {
      const { t, app } = await start(claims);
      try {
        const res = await register(app).catch((error: Error) => error);
        expect(String(res)).toContain('500');
        expect(String(res)).not.toContain('someone-else');
      } finally {
        await app.close();
        await t.close();
      }
    }
  });
});
