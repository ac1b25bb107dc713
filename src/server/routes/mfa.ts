import type { FastifyReply } from 'fastify';
import { Type } from 'typebox';
import type { Tokens } from '../../auth/issue-tokens.js';
import { proofOf } from '../../auth/mfa/code-check.js';
import { confirmTotp } from '../../auth/mfa/confirm-totp.js';
import { disableTotp } from '../../auth/mfa/disable-totp.js';
import { reauthenticate, type ReauthProof } from '../../auth/mfa/reauthenticate.js';
import { authenticateCaller } from '../../auth/mfa/recent-authentication.js';
import { regenerateRecoveryCodes } from '../../auth/mfa/regenerate-recovery-codes.js';
import { setupTotp } from '../../auth/mfa/setup-totp.js';
import { verifyMfaLogin } from '../../auth/mfa/verify-mfa-login.js';
import { TesseraError } from '../../core/errors.js';
import type { App, Request } from '../context.js';
import { deviceCookie, readRefreshCookie } from '../cookie-transport.js';
import { perIp } from '../per-ip-limits.js';
import { bearerToken, requestMeta } from '../request-meta.js';
import {
  MfaVerifyBody, Problem, ReauthenticateBody, RecoveryCodes, TokenResponse, TotpConfirmBody, TotpSetup, type TokenResponse as TokenResponseBody,
} from '../schemas.js';
import { publicUser, tokenResponse } from '../token-response.js';

const bearer = [{ bearerAuth: [] }];
const errors = { '4xx': Problem, '5xx': Problem };
const tags = ['second factors'];

/**
 * Second factors (SPEC §8): an authenticator app (TOTP) and its recovery codes, finishing a
 * sign-in answered `mfa_required`, and re-authentication. The Bearer routes read the access
 * token's `amr` and `auth_time` (recent authentication: REAUTH_WINDOW).
 */
export function mfaRoutes(app: App) {
  const { limits } = app.tessera;
  app.post('/mfa/totp/setup', {
    schema: {
      summary: 'Start setting up an authenticator app: a new secret, not a factor until confirmed',
      description: 'Recent authentication (REAUTH_WINDOW; with a factor if the user has one), a verified email when email features are on (403 `email_not_verified`); 409 `totp_already_enabled` if one is set up.',
      tags, security: bearer, response: { 200: TotpSetup, ...errors },
    },
  }, postTotpSetup);

  app.post<{ Body: TotpConfirmBody }>('/mfa/totp/confirm', {
    schema: {
      summary: 'Confirm the authenticator app with a code: it becomes a second factor; ten recovery codes, shown once',
      tags, security: bearer, body: TotpConfirmBody, response: { 200: RecoveryCodes, ...errors },
    },
  }, postTotpConfirm);

  app.delete('/mfa/totp', {
    schema: {
      summary: 'Remove the authenticator app and the recovery codes',
      description: 'Recent authentication with a second factor (403 `reauthentication_required`); 404 if there is none.',
      tags, security: bearer, response: { 204: Type.Null({ description: 'Removed' }), ...errors },
    },
  }, deleteTotp);

  app.post('/mfa/recovery-codes', {
    schema: {
      summary: 'Replace the recovery codes with ten new ones, shown once',
      description: 'Recent authentication with a second factor; every earlier code stops working.',
      tags, security: bearer, response: { 200: RecoveryCodes, ...errors },
    },
  }, postRecoveryCodes);

  app.post<{ Body: MfaVerifyBody }>('/mfa/verify', {
    schema: {
      summary: 'Finish a sign-in answered 403 mfa_required, with a code or a recovery code',
      description: 'Answers as POST /auth/login on the same transport. 400 `invalid_code` for a wrong code, 400 `invalid_token` for an mfaToken used, expired, spent (5 wrong codes) or of the other transport; 429 past 20 wrong codes a day.',
      tags, body: MfaVerifyBody, response: { 200: TokenResponse, ...errors },
    },
    config: perIp(limits, 'login'),
  }, postMfaVerify);

  app.post<{ Body: ReauthenticateBody }>('/reauthenticate', {
    schema: {
      summary: 'Prove it is you again: a fresh auth_time for this session',
      description: 'Returns a new access token with a fresh `auth_time` and the `amr` of what was proven; the refresh token stays as it is.',
      tags, security: bearer, body: ReauthenticateBody, response: { 200: TokenResponse, ...errors },
    },
  }, postReauthenticate);
}

async function postTotpSetup(request: Request) {
  const { tessera } = request.server;
  return setupTotp(tessera, await authenticateCaller(tessera, bearerToken(request)));
}

async function postTotpConfirm(request: Request<{ Body: TotpConfirmBody }>) {
  const { tessera } = request.server;
  const caller = await authenticateCaller(tessera, bearerToken(request));
  return { recoveryCodes: await confirmTotp(tessera, caller, request.body.code, requestMeta(request)) };
}

async function deleteTotp(request: Request, reply: FastifyReply) {
  const { tessera } = request.server;
  await disableTotp(tessera, await authenticateCaller(tessera, bearerToken(request)), requestMeta(request));
  return reply.code(204).send(null);
}

async function postRecoveryCodes(request: Request) {
  const { tessera } = request.server;
  return { recoveryCodes: await regenerateRecoveryCodes(tessera, await authenticateCaller(tessera, bearerToken(request))) };
}

async function postMfaVerify(request: Request<{ Body: MfaVerifyBody }>, reply: FastifyReply) {
  const { tessera } = request.server;
  const { transport = 'cookie', ...body } = request.body;
  const tokens = await verifyMfaLogin(tessera, {
    ...body, transport,
    cookieToken: readRefreshCookie(request),
    deviceCookie: deviceCookie(request, reply, tessera.config, transport),
    meta: requestMeta(request),
  });
  return tokenResponse(reply, tessera.config, tokens, transport);
}

async function postReauthenticate(request: Request<{ Body: ReauthenticateBody }>) {
  const { tessera } = request.server;
  const caller = await authenticateCaller(tessera, bearerToken(request));
  const { password, ...codes } = request.body;
  if ([password, codes.code, codes.recoveryCode].filter((v) => v !== undefined).length !== 1) {
    throw new TesseraError('invalid_request', { detail: 'Send exactly one of password, code and recoveryCode' });
  }
  const proof: ReauthProof = password !== undefined ? { password } : proofOf(codes);
  return accessTokenOnly(await reauthenticate(tessera, caller, proof, requestMeta(request)));
}

/** A token response without the refresh token: re-authentication leaves it as it is, in the cookie or with the app. */
function accessTokenOnly(tokens: Tokens): TokenResponseBody {
  return { accessToken: tokens.accessToken, tokenType: 'Bearer', expiresIn: tokens.expiresIn, user: publicUser(tokens.user) };
}
