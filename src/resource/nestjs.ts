import {
  Catch, createParamDecorator, HttpException, Inject, Injectable, Module, SetMetadata,
  type ArgumentsHost, type CanActivate, type DynamicModule, type ExceptionFilter, type ExecutionContext, type OnModuleDestroy,
} from '@nestjs/common';
import { APP_FILTER, APP_GUARD, Reflector } from '@nestjs/core';
import { bearerToken, checkRoles, missingRole, PROBLEM_CONTENT_TYPE, TesseraAuthError } from './errors.js';
import { createVerifier, type AuthContext, type Verifier, type VerifierOptions } from './verify.js';

export { createVerifier, TesseraAuthError, type AuthContext, type Verifier, type VerifierOptions } from './verify.js';

// This file applies Nest's decorators by calling them, and injects by explicit tokens only:
// it must not depend on `experimentalDecorators` or on emitted type metadata, so that it
// builds with our tsconfig and runs on NestJS 11 (CommonJS) and 12 (ESM) alike.

/** The injection token of the verifier `TesseraModule.forRoot` creates. */
export const TESSERA_VERIFIER = Symbol.for('tessera.verifier');
const PUBLIC_KEY = 'tessera:public';
const ROLES_KEY = 'tessera:roles';

/** The options of `createVerifier`, or a verifier of your own (the module closes it at shutdown). */
export type TesseraModuleOptions = VerifierOptions | { verifier: Verifier };

/**
 * A route (or every route of a controller) that needs no token.
 *
 * @example
 * @Public() @Get('health') health() { return { ok: true }; }
 */
export const Public = () => SetMetadata(PUBLIC_KEY, true);

/**
 * The caller must have any of `roles`, else 403 `insufficient_role`. On a method it replaces
 * the roles of its controller.
 *
 * @example
 * @Roles('admin', 'billing') @Get('invoices') invoices() { … }
 */
export const Roles = (...roles: string[]) => SetMetadata(ROLES_KEY, checkRoles(roles));

/**
 * The `AuthContext` of the caller, as a handler parameter; undefined on a `@Public()` route.
 *
 * @example
 * @Get('me') me(@CurrentUser() user: AuthContext) { return user; }
 */
export const CurrentUser = createParamDecorator((_data: unknown, context: ExecutionContext) => context.switchToHttp().getRequest<HttpRequest>().auth);

/** The part of Express's (or Fastify's) request the guard uses. */
interface HttpRequest {
  headers: Record<string, string | string[] | undefined>;
  auth?: AuthContext;
}

/** A Node response (platform-express) or a Fastify reply (platform-fastify): the part the guard and filter use. */
type HttpResponse =
  | { code(status: number): unknown; header(name: string, value: string): unknown; send(body: string): unknown }
  | { statusCode: number; setHeader(name: string, value: string): unknown; end(body: string): unknown };

/** A refusal on its way to `TesseraExceptionFilter`; a plain 401/403/503 JSON answer for any other filter. */
export class TesseraHttpException extends HttpException {
  readonly error: TesseraAuthError;

  constructor(error: TesseraAuthError) {
    super(error.toProblem(), error.status, { cause: error });
    this.error = error;
  }
}

/**
 * The global guard: every route needs a valid Bearer access token unless it (or its controller)
 * is `@Public()`; then `@Roles(...)`. Sets `request.auth`, which `@CurrentUser()` returns.
 */
export class TesseraGuard implements CanActivate, OnModuleDestroy {
  readonly #reflector: Reflector;
  readonly #verifier: Verifier;

  constructor(reflector: Reflector, verifier: Verifier) {
    this.#reflector = reflector;
    this.#verifier = verifier;
  }

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const targets = [context.getHandler(), context.getClass()];
    if (this.#reflector.getAllAndOverride<boolean | undefined>(PUBLIC_KEY, targets)) return true;
    // Only HTTP carries a Bearer header here: other transports are refused, not waved through.
    if (context.getType() !== 'http') return false;
    const http = context.switchToHttp();
    const request = http.getRequest<HttpRequest>();
    try {
      request.auth = await this.#verifier.verify(bearerToken(request.headers.authorization));
      const roles = this.#reflector.getAllAndOverride<string[] | undefined>(ROLES_KEY, targets);
      const refusal = roles && missingRole(request.auth.roles, roles);
      if (refusal) throw refusal;
      return true;
    } catch (error) {
      if (!(error instanceof TesseraAuthError)) throw error;
      // Set now, so the challenge survives an app's own catch-all exception filter.
      setHeaders(http.getResponse<HttpResponse>(), error.headers());
      throw new TesseraHttpException(error);
    }
  }

  onModuleDestroy(): void {
    this.#verifier.close();
  }
}
Injectable()(TesseraGuard);
Inject(Reflector)(TesseraGuard, undefined, 0);
Inject(TESSERA_VERIFIER)(TesseraGuard, undefined, 1);

/**
 * Writes a refusal as problem+json. Nest's own filter would rewrite the content type to
 * `application/json`, and the body is Tessera's, not Nest's `{statusCode, message}`.
 */
export class TesseraExceptionFilter implements ExceptionFilter<TesseraHttpException> {
  catch(exception: TesseraHttpException, host: ArgumentsHost): void {
    const response = host.switchToHttp().getResponse<HttpResponse>();
    const { error } = exception;
    setHeaders(response, { ...error.headers(), 'content-type': PROBLEM_CONTENT_TYPE });
    const body = JSON.stringify(error.toProblem());
    if ('code' in response) {
      response.code(error.status);
      response.send(body);
    } else {
      response.statusCode = error.status;
      response.end(body);
    }
  }
}
Catch(TesseraHttpException)(TesseraExceptionFilter);

function setHeaders(response: HttpResponse, headers: Record<string, string>): void {
  for (const [name, value] of Object.entries(headers)) {
    if ('code' in response) response.header(name, value);
    else response.setHeader(name, value);
  }
}

/**
 * A global module: `TesseraModule.forRoot(options)` in the root module's `imports` guards every
 * route of the app with `TesseraGuard` and answers refusals as problem+json.
 *
 * @example
 * Module({ imports: [TesseraModule.forRoot({ issuer: 'https://auth.example.com', revocations: true })] })
 */
export class TesseraModule {
  static forRoot(options: TesseraModuleOptions): DynamicModule {
    return {
      module: TesseraModule,
      global: true,
      providers: [
        { provide: TESSERA_VERIFIER, useFactory: () => ('verifier' in options ? options.verifier : createVerifier(options)) },
        { provide: APP_GUARD, useClass: TesseraGuard },
        { provide: APP_FILTER, useClass: TesseraExceptionFilter },
      ],
      exports: [TESSERA_VERIFIER],
    };
  }
}
Module({})(TesseraModule);
