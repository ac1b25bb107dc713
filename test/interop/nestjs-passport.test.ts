import 'reflect-metadata';
import type { AddressInfo } from 'node:net';
import { Controller, Get, Injectable, Module, Req, UnauthorizedException, UseGuards } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { AuthGuard, PassportStrategy } from '@nestjs/passport';
import type { Request } from 'express';
import { passportJwtSecret } from 'jwks-rsa';
import type { Algorithm } from 'jsonwebtoken';
import { ExtractJwt, Strategy } from 'passport-jwt';
import { describeInterop, type VerifierOptions } from './kit.js';

/**
 * "NestJS + passport-jwt", the stack of most hand-rolled backends docs/migrating.md starts
 * from: @nestjs/passport 11's `PassportStrategy(Strategy)` with jwks-rsa's
 * `passportJwtSecret` instead of `secretOrKey: JWT_SECRET`, behind `AuthGuard('jwt')`.
 * docs/migrating.md shows the same classes with decorators; this repository's tsconfig has
 * no `experimentalDecorators`, so here the decorators are applied as plain calls.
 *
 * Each server registers its strategy under a name of its own: @nestjs/passport registers
 * strategies on passport's one global instance, and two servers of this file run at once.
 */
let servers = 0;

function appModule(options: VerifierOptions) {
  const name = `tessera-jwt-${++servers}`;

  class JwtStrategy extends PassportStrategy(Strategy, name) {
    constructor() {
      super({
        secretOrKeyProvider: passportJwtSecret({
          cache: true,
          rateLimit: true,
          jwksRequestsPerMinute: 10,
          jwksUri: options.jwksUri,
        }),
        jwtFromRequest: ExtractJwt.fromAuthHeaderAsBearerToken(),
        issuer: options.issuer,
        audience: options.audience,
        algorithms: options.algorithms as Algorithm[],
      });
    }

    validate(payload: Record<string, unknown>) {
      return payload;
    }
  }
  Injectable()(JwtStrategy);

  // AuthGuard's refusal is a bare 401; this one says why, as NestJS's docs show with handleRequest.
  class JwtAuthGuard extends AuthGuard(name) {
    override handleRequest<User>(err: unknown, user: User, info?: Error): User {
      if (err || !user) throw err ?? new UnauthorizedException(info?.message);
      return user;
    }
  }
  Injectable()(JwtAuthGuard);

  class MeController {
    me(request: Request & { user?: unknown }) {
      return request.user;
    }
  }
  Controller()(MeController);
  UseGuards(JwtAuthGuard)(MeController);
  Get('me')(MeController.prototype, 'me', Object.getOwnPropertyDescriptor(MeController.prototype, 'me')!);
  Req()(MeController.prototype, 'me', 0);

  class AppModule {}
  Module({ controllers: [MeController], providers: [JwtStrategy, JwtAuthGuard] })(AppModule);
  return AppModule;
}

async function start(options: VerifierOptions) {
  const app = await NestFactory.create(appModule(options), { logger: false });
  await app.listen(0, '127.0.0.1');
  const { port } = app.getHttpServer().address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, close: () => app.close() };
}

describeInterop({
  name: '@nestjs/passport 11 + passport-jwt 4 + jwks-rsa 4 (passportJwtSecret) in NestJS 11',
  start,
  algs: ['ES256', 'RS256'],
  eddsaToday: {
    setup: "algorithms: ['EdDSA'] refuses the Ed25519 key: Unknown key type \"ed25519\"",
    start,
    status: 401,
    message: /^Unknown key type "ed25519"\.$/,
  },
  eddsaPinned: { status: 401, message: /^invalid algorithm$/ },
  unreachable: { status: 401 },
});
