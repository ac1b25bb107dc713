import type { AuthenticationResponseJSON, RegistrationResponseJSON } from '@simplewebauthn/server';
import type { FastifyReply } from 'fastify';
import { Type } from 'typebox';
import { authenticate } from '../../auth/authenticate.js';
import { authenticateCaller } from '../../auth/mfa/recent-authentication.js';
import { addPasskey } from '../../auth/passkeys/add-passkey.js';
import { listPasskeys } from '../../auth/passkeys/list-passkeys.js';
import { passkeyLoginOptions } from '../../auth/passkeys/login-options.js';
import { passkeyRegistrationOptions } from '../../auth/passkeys/registration-options.js';
import { removePasskey } from '../../auth/passkeys/remove-passkey.js';
import { signInWithPasskey } from '../../auth/passkeys/sign-in-with-passkey.js';
import type { PasskeySummary } from '../../store/passkey-store.js';
import type { App, Request } from '../context.js';
import { deviceCookie, readRefreshCookie } from '../cookie-transport.js';
import {
  CeremonyOptions, Passkey, PasskeyIdParams, PasskeyList, PasskeyLoginBody, PasskeyRegisterBody,
} from '../passkey-schemas.js';
import { perIp } from '../per-ip-limits.js';
import { bearerToken, requestMeta } from '../request-meta.js';
import { Problem, TokenResponse } from '../schemas.js';
import { tokenResponse } from '../token-response.js';

const bearer = [{ bearerAuth: [] }];
const errors = { '4xx': Problem, '5xx': Problem };
const tags = ['passkeys'];

/**
 * Passkeys (SPEC §8, WebAuthn with @simplewebauthn/server). Registered only when there is a
 * relying party ID (not on an IP-address PUBLIC_URL): otherwise these paths are 404.
 */
export function passkeyRoutes(app: App) {
  const { limits } = app.tessera;
  app.post('/passkeys/register/options', {
    schema: {
      summary: 'Options to create a passkey (navigator.credentials.create)',
      description: 'Recent authentication (REAUTH_WINDOW; with a factor once the user has one), a verified email when email features are on.',
      tags, security: bearer, response: { 200: CeremonyOptions, ...errors },
    },
  }, postRegisterOptions);

  app.post<{ Body: PasskeyRegisterBody }>('/passkeys/register/verify', {
    schema: {
      summary: 'Add the passkey the browser created',
      description: '400 `invalid_code` for a response that does not verify (challenge forged, expired or used; origin; RP ID; no user verification).',
      tags, security: bearer, body: PasskeyRegisterBody, response: { 200: Passkey, ...errors },
    },
  }, postRegisterVerify);

  app.post('/passkeys/login/options', {
    schema: {
      summary: 'Options to sign in with a passkey (navigator.credentials.get); no email needed',
      tags, response: { 200: CeremonyOptions, ...errors },
    },
  }, postLoginOptions);

  app.post<{ Body: PasskeyLoginBody }>('/passkeys/login/verify', {
    schema: {
      summary: 'Sign in with a passkey, or finish a password sign-in answered mfa_required',
      description: 'Answers as POST /auth/login on the same transport. 400 `invalid_code` for an assertion refused (unknown or removed passkey, signature, origin, challenge expired or used, a sign counter that went backwards); 400 `invalid_token` for an mfaToken used, expired or spent.',
      tags, body: PasskeyLoginBody, response: { 200: TokenResponse, ...errors },
    },
    config: perIp(limits, 'login'),
  }, postLoginVerify);

  app.get('/passkeys', {
    schema: { summary: "The caller's passkeys", tags, security: bearer, response: { 200: PasskeyList, ...errors } },
  }, getPasskeys);

  app.delete<{ Params: PasskeyIdParams }>('/passkeys/:id', {
    schema: {
      summary: 'Remove a passkey',
      description: 'Recent authentication with a second factor (403 `reauthentication_required`); 404 if the caller has no such passkey.',
      tags, security: bearer, params: PasskeyIdParams, response: { 204: Type.Null({ description: 'Removed' }), ...errors },
    },
  }, deletePasskey);
}

async function postRegisterOptions(request: Request) {
  const { tessera } = request.server;
  return passkeyRegistrationOptions(tessera, await authenticateCaller(tessera, bearerToken(request)));
}

async function postRegisterVerify(request: Request<{ Body: PasskeyRegisterBody }>) {
  const { tessera } = request.server;
  const caller = await authenticateCaller(tessera, bearerToken(request));
  const { response, name } = request.body;
  return summary(await addPasskey(tessera, caller, { response: response as RegistrationResponseJSON, name }, requestMeta(request)));
}

async function postLoginOptions(request: Request) {
  return passkeyLoginOptions(request.server.tessera);
}

async function postLoginVerify(request: Request<{ Body: PasskeyLoginBody }>, reply: FastifyReply) {
  const { tessera } = request.server;
  const { transport = 'cookie', response, mfaToken } = request.body;
  const tokens = await signInWithPasskey(tessera, {
    response: response as AuthenticationResponseJSON, mfaToken, transport,
    cookieToken: readRefreshCookie(request),
    deviceCookie: deviceCookie(request, reply, tessera.config, transport),
    meta: requestMeta(request),
  });
  return tokenResponse(reply, tessera.config, tokens, transport);
}

async function getPasskeys(request: Request) {
  const { tessera } = request.server;
  const caller = await authenticate(tessera, bearerToken(request));
  return { passkeys: (await listPasskeys(tessera, caller)).map(summary) };
}

async function deletePasskey(request: Request<{ Params: PasskeyIdParams }>, reply: FastifyReply) {
  const { tessera } = request.server;
  await removePasskey(tessera, await authenticateCaller(tessera, bearerToken(request)), request.params.id, requestMeta(request));
  return reply.code(204).send(null);
}

function summary(passkey: PasskeySummary) {
  return { id: passkey.id, name: passkey.name, createdAt: passkey.createdAt.toISOString(), lastUsedAt: passkey.lastUsedAt?.toISOString() ?? null };
}
