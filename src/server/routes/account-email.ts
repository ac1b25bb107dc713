import type { FastifyReply } from 'fastify';
import { Type } from 'typebox';
import { authenticate } from '../../auth/authenticate.js';
import { forgotPassword } from '../../auth/forgot-password.js';
import { requestEmailChange } from '../../auth/request-email-change.js';
import { resendVerification } from '../../auth/resend-verification.js';
import { resetPassword } from '../../auth/reset-password.js';
import { verifyEmail } from '../../auth/verify-email.js';
import { TesseraError } from '../../core/errors.js';
import { afterResponse } from '../after-response.js';
import type { App, Request } from '../context.js';
import { bearerToken, requestMeta } from '../request-meta.js';
import { caller, requireAuth } from '../require-auth.js';
import {
  EmailChangeBody, ForgotPasswordBody, Problem, ResendVerificationBody, ResetPasswordBody, VerifyEmailBody,
} from '../schemas.js';

const bearer = [{ bearerAuth: [] }];
const errors = { '4xx': Problem, '5xx': Problem };
const accepted = { 202: Type.Null({ description: 'Accepted: a mail is on its way if it should be' }), ...errors };
const done = { 204: Type.Null({ description: 'Done' }), ...errors };

/**
 * The routes that send mail (SPEC §7): password reset, email verification, email change.
 * Registered only when email features are on; otherwise each is 404 `not_found`.
 */
export function accountEmailRoutes(app: App) {
  app.post<{ Body: ForgotPasswordBody }>('/password/forgot', {
    schema: {
      summary: 'Ask for a password reset link',
      description: '202 whether or not the account exists, in the same time; past the limits, silently nothing is sent.',
      tags: ['recovery'], body: ForgotPasswordBody, response: accepted,
    },
  }, postForgot);

  app.post<{ Body: ResetPasswordBody }>('/password/reset', {
    schema: {
      summary: 'Set a new password with the link\'s token; every session of the account ends',
      tags: ['recovery'], body: ResetPasswordBody, response: done,
    },
  }, postReset);

  app.post<{ Body: VerifyEmailBody }>('/email/verify', {
    schema: {
      summary: 'Verify an address with the link\'s token (sign-up, or an email change)',
      description: 'An email change\'s link moves the account to the new address: 409 `email_taken` if it was taken meanwhile.',
      tags: ['recovery'], body: VerifyEmailBody, response: done,
    },
  }, postVerify);

  app.post<{ Body: ResendVerificationBody }>('/email/verify/resend', {
    schema: {
      summary: 'Send a new verification link',
      description: 'With a Bearer token, for the signed-in user; without, for `email`. 202 always.',
      tags: ['recovery'], body: ResendVerificationBody, response: accepted,
    },
  }, postResend);

  app.post<{ Body: EmailChangeBody }>('/email', {
    schema: {
      summary: 'Change the email address: a link goes to the new one, a notice to the old one',
      tags: ['account'], security: bearer, body: EmailChangeBody, response: accepted,
    },
    preHandler: requireAuth,
  }, postEmailChange);
}

async function postForgot(request: Request<{ Body: ForgotPasswordBody }>, reply: FastifyReply) {
  await forgotPassword(request.server.tessera, {
    email: request.body.email, meta: requestMeta(request), afterResponse: afterResponse(request, reply, 'a password reset request'),
  });
  return reply.code(202).send(null);
}

async function postReset(request: Request<{ Body: ResetPasswordBody }>, reply: FastifyReply) {
  await resetPassword(request.server.tessera, { ...request.body, meta: requestMeta(request) });
  return reply.code(204).send(null);
}

async function postVerify(request: Request<{ Body: VerifyEmailBody }>, reply: FastifyReply) {
  await verifyEmail(request.server.tessera, request.body.token, requestMeta(request));
  return reply.code(204).send(null);
}

async function postResend(request: Request<{ Body: ResendVerificationBody }>, reply: FastifyReply) {
  const { tessera } = request.server;
  const token = bearerToken(request);
  const { email } = request.body;
  if (token === undefined && email === undefined) {
    throw new TesseraError('invalid_request', { detail: 'Send a Bearer token, or {"email": …} without one' });
  }
  const who = token !== undefined ? { userId: (await authenticate(tessera, token)).user.id } : { email: email! };
  await resendVerification(tessera, who, requestMeta(request), afterResponse(request, reply, 'a verification link'));
  return reply.code(202).send(null);
}

async function postEmailChange(request: Request<{ Body: EmailChangeBody }>, reply: FastifyReply) {
  await requestEmailChange(request.server.tessera, { ...request.body, userId: caller(request).user.id, meta: requestMeta(request) });
  return reply.code(202).send(null);
}
