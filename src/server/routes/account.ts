import type { FastifyReply } from 'fastify';
import { Type } from 'typebox';
import { changePassword } from '../../auth/change-password.js';
import { deleteAccount } from '../../auth/delete-account.js';
import { exportAccount } from '../../auth/export-account.js';
import { updateProfile } from '../../auth/update-profile.js';
import { listEvents } from '../../auth/list-events.js';
import { listSessions } from '../../auth/list-sessions.js';
import { revokeSession } from '../../auth/revoke-session.js';
import type { App, Request } from '../context.js';
import { clearRefreshCookie } from '../cookie-transport.js';
import { requestMeta } from '../request-meta.js';
import { caller, requireAuth } from '../require-auth.js';
import {
  AccountExport, DeleteAccountBody, EventList, PasswordBody, Problem, ProfileBody, SessionIdParams, SessionList, User,
} from '../schemas.js';
import { publicUser } from '../token-response.js';

const bearer = [{ bearerAuth: [] }];
const errors = { '4xx': Problem, '5xx': Problem };

/** The signed-in user's own account: who am I, my name, my data, my sessions, my password, my security events. */
export function accountRoutes(app: App) {
  app.get('/me', {
    schema: { summary: 'The signed-in user', tags: ['account'], security: bearer, response: { 200: Type.Object({ user: User }), ...errors } },
    preHandler: requireAuth,
  }, getMe);

  app.patch<{ Body: ProfileBody }>('/me', {
    schema: { summary: 'Change your name', tags: ['account'], security: bearer, body: ProfileBody, response: { 200: Type.Object({ user: User }), ...errors } },
    preHandler: requireAuth,
  }, patchMe);

  app.delete<{ Body: DeleteAccountBody }>('/me', {
    schema: {
      summary: 'Delete your account',
      description: 'Sessions and personal data are deleted; security events are kept without IP or user agent.',
      tags: ['account'], security: bearer, body: DeleteAccountBody,
      response: { 204: Type.Null({ description: 'Deleted' }), ...errors },
    },
    preHandler: requireAuth,
  }, deleteMe);

  app.get('/me/export', {
    schema: { summary: 'Everything stored about you, as JSON', tags: ['account'], security: bearer, response: { 200: AccountExport, ...errors } },
    preHandler: requireAuth,
  }, getExport);

  app.get('/sessions', {
    schema: { summary: "The user's active sessions, most recently used first", tags: ['account'], security: bearer, response: { 200: SessionList, ...errors } },
    preHandler: requireAuth,
  }, getSessions);

  app.delete<{ Params: SessionIdParams }>('/sessions/:id', {
    schema: {
      summary: 'Revoke one of your sessions',
      description: "404 unless `id` is one of the caller's active sessions.",
      tags: ['account'], security: bearer, params: SessionIdParams,
      response: { 204: Type.Null({ description: 'Revoked' }), ...errors },
    },
    preHandler: requireAuth,
  }, deleteSession);

  app.post<{ Body: PasswordBody }>('/password', {
    schema: {
      summary: "Change the password; every other session of the user is signed out",
      description: 'A wrong `currentPassword` is 403 `invalid_credentials` (not 401, which clients take for an expired token).',
      tags: ['account'], security: bearer, body: PasswordBody,
      response: { 204: Type.Null({ description: 'Changed' }), ...errors },
    },
    preHandler: requireAuth,
  }, postPassword);

  app.get('/events', {
    schema: { summary: "The user's recent security events, newest first", tags: ['account'], security: bearer, response: { 200: EventList, ...errors } },
    preHandler: requireAuth,
  }, getEvents);
}

async function getMe(request: Request) {
  return { user: publicUser(caller(request).user) };
}

async function patchMe(request: Request<{ Body: ProfileBody }>) {
  const user = await updateProfile(request.server.tessera, caller(request).user.id, request.body, requestMeta(request));
  return { user: publicUser(user) };
}

async function deleteMe(request: Request<{ Body: DeleteAccountBody }>, reply: FastifyReply) {
  const { tessera } = request.server;
  await deleteAccount(tessera, caller(request).user.id, request.body.currentPassword);
  clearRefreshCookie(reply, tessera.config);
  return reply.code(204).send(null);
}

async function getExport(request: Request, reply: FastifyReply) {
  const data = await exportAccount(request.server.tessera, caller(request).user.id);
  reply.header('content-disposition', 'attachment; filename="account.json"');
  return data;
}

async function getSessions(request: Request) {
  const { user, sessionId } = caller(request);
  const sessions = await listSessions(request.server.tessera, user.id, sessionId);
  return {
    sessions: sessions.map((s) => ({
      ...s, createdAt: s.createdAt.toISOString(), lastUsedAt: s.lastUsedAt.toISOString(), expiresAt: s.expiresAt.toISOString(),
      authTime: s.authTime.toISOString(),
    })),
  };
}

async function deleteSession(request: Request<{ Params: SessionIdParams }>, reply: FastifyReply) {
  await revokeSession(request.server.tessera, caller(request).user.id, request.params.id, requestMeta(request));
  return reply.code(204).send(null);
}

async function postPassword(request: Request<{ Body: PasswordBody }>, reply: FastifyReply) {
  const { user, sessionId } = caller(request);
  await changePassword(request.server.tessera, { ...request.body, userId: user.id, sessionId, meta: requestMeta(request) });
  return reply.code(204).send(null);
}

async function getEvents(request: Request) {
  const events = await listEvents(request.server.tessera, caller(request).user.id);
  return { events: events.map((e) => ({ ...e, createdAt: e.createdAt.toISOString() })) };
}
