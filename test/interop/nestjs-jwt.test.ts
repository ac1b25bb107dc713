import 'reflect-metadata';
import type { AddressInfo } from 'node:net';
import {
  Controller, Get, Inject, Injectable, Module, Req, UnauthorizedException, UseGuards, type CanActivate, type ExecutionContext,
} from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { JwtModule, JwtService } from '@nestjs/jwt';
import type { Request } from 'express';
import jwksRsa, { type JwksClient } from 'jwks-rsa';
import type { Algorithm } from 'jsonwebtoken';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeInterop, getMe, startForeignIssuer, type ResourceServer, type VerifierOptions } from './kit.js';

/**
 * @nestjs/jwt 11 in a NestJS 11 guard: the key comes from jwks-rsa's `getSigningKey(kid)`,
 * `JwtService.verifyAsync` checks it with the issuer, audience and algorithms given to
 * `JwtModule.register({ verifyOptions })`. docs/resource-servers.md shows the same code
 * with decorators; this repository's tsconfig has no `experimentalDecorators`, so here the
 * same decorators are applied as plain calls after each class.
 */
const JWKS_CLIENT = Symbol('JWKS_CLIENT');

class TesseraGuard implements CanActivate {
  constructor(
    private readonly jwtService: JwtService,
    private readonly jwks: JwksClient,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const request = context.switchToHttp().getRequest<Request & { user?: unknown }>();
    const [type, token] = request.headers.authorization?.split(' ') ?? [];
    if (type !== 'Bearer' || !token) throw new UnauthorizedException();
    try {
      const { header } = this.jwtService.decode(token, { complete: true }) ?? {};
      const key = await this.jwks.getSigningKey(header?.kid);
      request.user = await this.jwtService.verifyAsync(token, { publicKey: key.getPublicKey() });
    } catch (error) {
      throw new UnauthorizedException((error as Error).message);
    }
    return true;
  }
}
Injectable()(TesseraGuard);
Inject(JwtService)(TesseraGuard, undefined, 0);
Inject(JWKS_CLIENT)(TesseraGuard, undefined, 1);

class MeController {
  me(request: Request & { user?: unknown }) {
    return request.user;
  }
}
Controller()(MeController);
UseGuards(TesseraGuard)(MeController);
Get('me')(MeController.prototype, 'me', Object.getOwnPropertyDescriptor(MeController.prototype, 'me')!);
Req()(MeController.prototype, 'me', 0);

function appModule(options: VerifierOptions, leftover: { secret?: string } = {}) {
  class AppModule {}
  Module({
    imports: [
      JwtModule.register({
        ...leftover,
        verifyOptions: { issuer: options.issuer, audience: options.audience, algorithms: options.algorithms as Algorithm[] },
      }),
    ],
    controllers: [MeController],
    providers: [
      TesseraGuard,
      {
        provide: JWKS_CLIENT,
        useValue: jwksRsa({ cache: true, rateLimit: true, jwksRequestsPerMinute: 10, jwksUri: options.jwksUri }),
      },
    ],
  })(AppModule);
  return AppModule;
}

async function start(options: VerifierOptions, leftover: { secret?: string } = {}) {
  const app = await NestFactory.create(appModule(options, leftover), { logger: false });
  await app.listen(0, '127.0.0.1');
  const { port } = app.getHttpServer().address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, close: () => app.close() };
}

describeInterop({
  name: '@nestjs/jwt 11 (JwtService.verifyAsync) + jwks-rsa 4 in a NestJS 11 guard',
  start: (options) => start(options),
  algs: ['ES256', 'RS256'],
  eddsaToday: {
    setup: "algorithms: ['EdDSA'] refuses the Ed25519 key: Unknown key type \"ed25519\"",
    start: (options) => start(options),
    status: 401,
    message: /^Unknown key type "ed25519"\.$/,
  },
  eddsaPinned: { status: 401, message: /^invalid algorithm$/ },
  unreachable: { status: 401 },
});

describe('a JwtModule that still has the secret it signed with', () => {
  // An issuer of ES256 tokens with its own JWKS stands in for Tessera here.
  let issuer: Awaited<ReturnType<typeof startForeignIssuer>>;
  let withSecret: ResourceServer;
  let withoutSecret: ResourceServer;
  beforeAll(async () => {
    issuer = await startForeignIssuer('ES256');
    const options = { issuer: issuer.url, audience: issuer.url, jwksUri: `${issuer.url}/.well-known/jwks.json`, algorithms: ['ES256'] };
    withSecret = await start(options, { secret: 'the-old-JWT_SECRET' });
    withoutSecret = await start(options);
  });
  afterAll(async () => {
    await Promise.all([withSecret?.close(), withoutSecret?.close(), issuer?.close()]);
  });

  it('refuses every token: @nestjs/jwt prefers the module secret over the publicKey given to verifyAsync', async () => {
    const token = await issuer.sign({ sub: 'u1', aud: issuer.url, exp: Math.floor(Date.now() / 1000) + 900 });
    const refused = await getMe(withSecret, token);
    expect(refused.status).toBe(401);
    expect(refused.body.message).toBe('secretOrPublicKey must be an asymmetric key when using ES256');
    const accepted = await getMe(withoutSecret, token);
    expect(accepted.status).toBe(200);
    expect(accepted.body.sub).toBe('u1');
  });
});
