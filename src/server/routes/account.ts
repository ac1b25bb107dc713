import type { FastifyReply } from 'fastify';
import { Type } from 'typebox';
import { changePassword } from '../../auth/change-password.js';
import { listEvents } from '../../auth/list-events.js';
import { listSessions } from '../../auth/list-sessions.js';
import { revokeSession } from '../../auth/revoke-session.js';
import type { App, Request } from '../context.js';
import { requestMeta } from '../request-meta.js';
import { caller, requireAuth } from '../require-auth.js';
import { EventList, PasswordBody, Problem, SessionIdParams, SessionList, User } from '../schemas.js';
import { publicUser } from '../token-response.js';

const bearer = [{ bearerAuth: [] }];
const errors = { '4xx': Problem, '5xx': Problem };

/** The signed-in user's own account: who am I, my sessions, my password, my security events. */
export function accountRoutes(app: App) {
  app.get('/me', {
    schema: { summary: 'The signed-in user', tags: ['account'], security: bearer, response: { 200: Type.Object({ user: User }), ...errors } },
    preHandler: requireAuth,
  }, getMe);

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

async function getSessions(request: Request) {
  const { user, sessionId } = caller(request);
  const sessions = await listSessions(request.server.tessera, user.id, sessionId);
  return {
    sessions: sessions.map((s) => ({
      ...s, createdAt: s.createdAt.toISOString(), lastUsedAt: s.lastUsedAt.toISOString(), expiresAt: s.expiresAt.toISOString(),
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
