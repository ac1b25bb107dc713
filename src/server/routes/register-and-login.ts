import type { FastifyReply } from 'fastify';
import { register } from '../../auth/register.js';
import { signIn } from '../../auth/sign-in.js';
import type { App, Request } from '../context.js';
import { afterResponse } from '../after-response.js';
import { deviceCookie, readRefreshCookie } from '../cookie-transport.js';
import { perIp } from '../per-ip-limits.js';
import { requestMeta } from '../request-meta.js';
import { LoginBody, Problem, RegisterBody, TokenResponse } from '../schemas.js';
import { tokenResponse } from '../token-response.js';

/** POST /auth/register and POST /auth/login: the two ways a session begins. */
export function registerAndLoginRoutes(app: App) {
  const { limits } = app.tessera;
  app.post('/register', {
    schema: {
      summary: 'Create an account and sign in',
      tags: ['sessions'],
      body: RegisterBody,
      response: { 201: TokenResponse, '4xx': Problem, '5xx': Problem },
    },
    config: perIp(limits, 'register'),
  }, postRegister);

  app.post('/login', {
    schema: {
      summary: 'Sign in with email and password',
      tags: ['sessions'],
      body: LoginBody,
      response: { 200: TokenResponse, '4xx': Problem, '5xx': Problem },
    },
    config: perIp(limits, 'login'),
  }, postLogin);
}

async function postRegister(request: Request<{ Body: RegisterBody }>, reply: FastifyReply) {
  const { tessera } = request.server;
  const { transport = 'cookie', ...body } = request.body;
  const tokens = await register(tessera, {
    ...body, transport, cookieToken: readRefreshCookie(request), deviceCookie: deviceCookie(request, reply, tessera.config, transport),
    meta: requestMeta(request),
  });
  reply.code(201);
  return tokenResponse(reply, tessera.config, tokens, transport);
}

async function postLogin(request: Request<{ Body: LoginBody }>, reply: FastifyReply) {
  const { tessera } = request.server;
  const { transport = 'cookie', email, password } = request.body;
  const tokens = await signIn(tessera, {
    email, password, transport,
    cookieToken: readRefreshCookie(request),
    deviceCookie: deviceCookie(request, reply, tessera.config, transport),
    meta: requestMeta(request),
    afterResponse: afterResponse(request, reply, 'login_failed'),
  });
  return tokenResponse(reply, tessera.config, tokens, transport);
}
