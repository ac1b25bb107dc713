import 'reflect-metadata';
import { Controller, Get, Module, Req, UnauthorizedException } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { AuthContext } from '../../../src/resource/verify.js';
import { bearer, frameworkServer } from './common.js';

/**
 * NestJS 11 on platform-express, `GET /me` answering `{ sub, sid }`.
 * bare: the handler verifies the Bearer token itself with `createVerifier` (401 on failure);
 * helper: `TesseraModule.forRoot(...)` (its global `TesseraGuard`), the caller from `@CurrentUser()`.
 *
 * This repository's tsconfig has no `experimentalDecorators` and tsx (esbuild) emits no
 * decorator metadata, so, as in test/resource/nestjs.test.ts, the decorators are applied as
 * plain calls after each class and nothing is injected by type.
 */
const server = await frameworkServer();
const route = (cls: { prototype: object }, method: string) => Get('me')(cls.prototype, method, Object.getOwnPropertyDescriptor(cls.prototype, method)!);

class AppModule {}
if (server.variant === 'bare') {
  const { createVerifier } = (await import(server.resource('verify'))) as typeof import('../../../src/resource/verify.js');
  const verifier = createVerifier(server.verifierOptions);
  class MeController {
    async me(request: { headers: { authorization?: string } }) {
      let auth: AuthContext;
      try {
        auth = await verifier.verify(bearer(request.headers.authorization));
      } catch {
        throw new UnauthorizedException();
      }
      return { sub: auth.userId, sid: auth.sessionId };
    }
  }
  Controller()(MeController);
  route(MeController, 'me');
  Req()(MeController.prototype, 'me', 0);
  Module({ controllers: [MeController] })(AppModule);
} else {
  const { TesseraModule, CurrentUser } = (await import(server.resource('nestjs'))) as typeof import('../../../src/resource/nestjs.js');
  class MeController {
    me(user: AuthContext) {
      return { sub: user.userId, sid: user.sessionId };
    }
  }
  Controller()(MeController);
  route(MeController, 'me');
  CurrentUser()(MeController.prototype, 'me', 0);
  Module({ imports: [TesseraModule.forRoot(server.verifierOptions)], controllers: [MeController] })(AppModule);
}

const app = await NestFactory.create(AppModule, { logger: false });
await app.listen(server.port, server.host);
server.ready();
