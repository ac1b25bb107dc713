import 'reflect-metadata';
import type { AddressInfo } from 'node:net';
import { Catch, Controller, Get, HttpException, Module, type ArgumentsHost, type ExceptionFilter, type ExecutionContext, type INestApplication } from '@nestjs/common';
import { NestFactory, Reflector } from '@nestjs/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CurrentUser, Public, Roles, TesseraGuard, TesseraHttpException, TesseraModule, type AuthContext, type Verifier } from '../../src/resource/nestjs.js';
import { TesseraAuthError } from '../../src/resource/verify.js';
import { expectRefused, fakeVerifier, runSnippet } from './kit.js';
import { describeResourceServer } from './suite.js';

// The NestJS app of docs/resource-servers.md, compiled as Nest projects compile (legacy
// decorators with metadata) and run as written, on the NestJS 11 of the repo's node_modules.
describeResourceServer('tessera/nestjs on NestJS 11', (issuer) => runSnippet('nestjs', issuer));


// esbuild (vitest) has no legacy decorators: they are applied by calling them.
type Decorator = (target: object, key: string, descriptor: PropertyDescriptor) => unknown;
function decorate(cls: { prototype: object }, method: string, ...decorators: Decorator[]) {
  const descriptor = Object.getOwnPropertyDescriptor(cls.prototype, method)!;
  for (const d of decorators) d(cls.prototype, method, descriptor);
}

class StaffController {
  staff() {
    return { ok: true };
  }
  admin() {
    return { ok: true };
  }
  open(user: AuthContext | undefined) {
    return { user: user ?? null };
  }
  me(user: AuthContext) {
    return user;
  }
}
Controller('staff')(StaffController);
Roles('staff')(StaffController);
decorate(StaffController, 'staff', Get('staff'));
decorate(StaffController, 'admin', Get('admin'), Roles('admin'));
decorate(StaffController, 'open', Get('open'), Public());
CurrentUser()(StaffController.prototype, 'open', 0);
decorate(StaffController, 'me', Get('me'), Roles('staff', 'admin'));
CurrentUser()(StaffController.prototype, 'me', 0);

async function start(verifier: Verifier, setup: (app: INestApplication) => void = () => {}) {
  class AppModule {}
  Module({ imports: [TesseraModule.forRoot({ verifier })], controllers: [StaffController] })(AppModule);
  const app = await NestFactory.create(AppModule, { logger: false });
  setup(app);
  await app.listen(0, '127.0.0.1');
  const url = `http://127.0.0.1:${(app.getHttpServer().address() as AddressInfo).port}`;
  const get = (path: string, token?: string) => fetch(url + path, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  return { app, get };
}

describe('tessera/nestjs on NestJS 11, in process', () => {
  const fake = fakeVerifier();
  let nest: Awaited<ReturnType<typeof start>>;
  beforeAll(async () => {
    nest = await start(fake.verifier);
  });
  afterAll(() => nest?.app.close());

  it("applies a controller's @Roles, replaced by a handler's own", async () => {
    expect((await nest.get('/staff/staff', 'roles:staff')).status).toBe(200);
    await expectRefused(await nest.get('/staff/staff', 'roles:admin'), 403, 'insufficient_role');
    expect((await nest.get('/staff/admin', 'roles:admin')).status).toBe(200);
    await expectRefused(await nest.get('/staff/admin', 'roles:staff'), 403, 'insufficient_role');
    expect(await (await nest.get('/staff/me', 'roles:admin')).json()).toMatchObject({ userId: 'u', roles: ['admin'] });
    await expectRefused(await nest.get('/staff/me'), 401, 'unauthorized', 'An Authorization: Bearer access token is required');
  });

  it('lets a @Public() route through without a token, with no current user', async () => {
    expect(await (await nest.get('/staff/open')).json()).toEqual({ user: null });
  });

  it('refuses a non-HTTP call unless @Public()', async () => {
    const guard = new TesseraGuard(new Reflector(), fake.verifier);
    const rpc = (handler: (...args: never[]) => unknown) => ({ getType: () => 'rpc', getHandler: () => handler, getClass: () => StaffController }) as unknown as ExecutionContext;
    expect(await guard.canActivate(rpc(StaffController.prototype.me))).toBe(false);
    expect(await guard.canActivate(rpc(StaffController.prototype.open))).toBe(true);
  });

  it("keeps the challenge under an app's own catch-all filter, which gets the problem as the exception's response", async () => {
    class CatchAll implements ExceptionFilter {
      catch(exception: unknown, host: ArgumentsHost) {
        const res = host.switchToHttp().getResponse();
        const isHttp = exception instanceof HttpException;
        res.status(isHttp ? exception.getStatus() : 500).json({ mine: true, tessera: exception instanceof TesseraHttpException, response: isHttp ? exception.getResponse() : null });
      }
    }
    Catch()(CatchAll);
    const own = await start(fakeVerifier().verifier, (app) => app.useGlobalFilters(new CatchAll()));
    try {
      const res = await own.get('/staff/me', 'nonsense');
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toBe('Bearer error="invalid_token", error_description="The access token is not valid"');
      expect(await res.json()).toEqual({
        mine: true,
        tessera: true,
        response: { type: 'urn:tessera:error:unauthorized', title: 'A valid access token is required', status: 401, code: 'unauthorized', detail: 'The access token is not valid' },
      });
    } finally {
      await own.app.close();
    }
  });

  it('closes the verifier when the app closes', async () => {
    const other = fakeVerifier();
    const { app } = await start(other.verifier);
    expect(other.closed()).toBe(0);
    await app.close();
    expect(other.closed()).toBeGreaterThanOrEqual(1);
  });
});
