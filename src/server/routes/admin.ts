import type { FastifyReply } from 'fastify';
import { Type } from 'typebox';
import { createUser } from '../../auth/admin/create-user.js';
import { deleteUser } from '../../auth/admin/delete-user.js';
import { listAllEvents } from '../../auth/admin/list-all-events.js';
import { listUserSessions } from '../../auth/admin/list-user-sessions.js';
import { resetFactors } from '../../auth/admin/reset-factors.js';
import { revokeUserSession } from '../../auth/admin/revoke-user-session.js';
import { revokeUserSessions } from '../../auth/admin/revoke-user-sessions.js';
import { searchUsers } from '../../auth/admin/search-users.js';
import { showUser } from '../../auth/admin/show-user.js';
import { retireKeyAsAdmin, rotateKeyAsAdmin, type AdminSigningKeysDeps } from '../../auth/admin/signing-keys.js';
import { updateUser } from '../../auth/admin/update-user.js';
import { listSigningKeys } from '../../auth/signing-keys.js';
import { TesseraError } from '../../core/errors.js';
import type { AdminUserSummary } from '../../store/admin-store.js';
import { adminActor, requireAdmin } from '../admin-auth.js';
import {
  AdminSessionList, AdminUser, AdminUserDetail, CreateUserBody, EventPage, EventsQuery, KeyList, KeyParams, RetireKeyQuery, RotatedKey,
  RotateKeyBody, UpdateUserBody, UserPage, UserParams, UsersQuery, UserSessionParams,
} from '../admin-schemas.js';
import type { App, Request } from '../context.js';
import { Problem } from '../schemas.js';

const security = [{ bearerAuth: [] }];
const tags = ['admin'];
const errors = { '4xx': Problem, '5xx': Problem };
const done = (description: string) => ({ 204: Type.Null({ description }), ...errors });

/**
 * The admin API (SPEC §9), registered under `/admin` only when ADMIN_API_KEY is set. Every
 * route takes an admin key or an admin's access token (requireAdmin, before anything else is
 * read); answers are bare objects; each change is recorded as `admin_action`. `secret`
 * (TESSERA_SECRET) seals the keys `POST /keys/rotate` makes; it stays in this closure.
 */
export function adminRoutes(app: App, options: { secret: string }) {
  app.decorateRequest('adminActor', null);
  app.addHook('preValidation', requireAdmin);
  const keyDeps = (request: Request): AdminSigningKeysDeps => {
    const { store, admin, clock, config } = request.server.tessera;
    return { store, admin, clock, accessTokenTtl: config.accessTokenTtl, secret: options.secret };
  };

  app.get<{ Querystring: UsersQuery }>('/users', {
    schema: {
      summary: 'Search users by email or name prefix, in email order, a page at a time',
      description: 'A forged or malformed `cursor` is 400 `invalid_request`.',
      tags, security, querystring: UsersQuery, response: { 200: UserPage, ...errors },
    },
  }, getUsers);

  app.post<{ Body: CreateUserBody }>('/users', {
    schema: {
      summary: 'Create a user (no session); without `password` the user sets one through a password reset',
      description: '409 `email_taken` if the address has an account; 400 for a bad field, with the reason.',
      tags, security, body: CreateUserBody, response: { 201: AdminUser, ...errors },
    },
  }, postUser);

  app.get<{ Params: UserParams }>('/users/:id', {
    schema: { summary: 'A user, with its active sessions counted and its second factors', tags, security, params: UserParams, response: { 200: AdminUserDetail, ...errors } },
  }, getUser);

  app.patch<{ Params: UserParams; Body: UpdateUserBody }>('/users/:id', {
    schema: {
      summary: "Change a user's name, roles, organisation, metadata or disabled state",
      description: 'Only the fields given change; any other field is 400. Disabling stops every session of the user at once.',
      tags, security, params: UserParams, body: UpdateUserBody, response: { 200: AdminUser, ...errors },
    },
  }, patchUser);

  app.delete<{ Params: UserParams }>('/users/:id', {
    schema: {
      summary: 'Delete a user, as DELETE /auth/me does: sessions end, personal data goes, events stay without IP',
      tags, security, params: UserParams, response: done('Deleted'),
    },
  }, removeUser);

  app.get<{ Params: UserParams }>('/users/:id/sessions', {
    schema: { summary: "A user's active sessions, most recently used first", tags, security, params: UserParams, response: { 200: AdminSessionList, ...errors } },
  }, getUserSessions);

  app.delete<{ Params: UserParams }>('/users/:id/sessions', {
    schema: { summary: 'End every session of a user', tags, security, params: UserParams, response: done('Revoked') },
  }, removeUserSessions);

  app.delete<{ Params: UserSessionParams }>('/users/:id/sessions/:sid', {
    schema: {
      summary: 'End one session of a user', description: '404 unless `sid` is an active session of that user.',
      tags, security, params: UserSessionParams, response: done('Revoked'),
    },
  }, removeUserSession);

  app.delete<{ Params: UserParams }>('/users/:id/factors', {
    schema: { summary: "Remove a user's second factors and passkeys (a locked-out user)", tags, security, params: UserParams, response: done('Removed') },
  }, removeUserFactors);

  app.get<{ Querystring: EventsQuery }>('/events', {
    schema: {
      summary: 'Security events of every user (or one), newest first, a page at a time',
      description: '`admin_action` events carry `detail`: the actor, the action and its target. A forged or malformed cursor is 400.',
      tags, security, querystring: EventsQuery, response: { 200: EventPage, ...errors },
    },
  }, getEvents);

  app.get('/keys', {
    schema: { summary: 'The signing keys, newest first, with their status', tags, security, response: { 200: KeyList, ...errors } },
  }, (request) => getKeys(request, keyDeps(request)));

  app.post<{ Body: RotateKeyBody }>('/keys/rotate', {
    schema: {
      summary: 'Add a signing key (default SIGNING_ALG): published now, signing 60 s later',
      description: '400 `invalid_request` while SIGNING_KEYS is set: the keys then come from it.',
      tags, security, body: RotateKeyBody, response: { 201: RotatedKey, ...errors },
    },
  }, (request, reply) => postKeyRotate(request, reply, keyDeps(request)));

  app.delete<{ Params: KeyParams; Querystring: RetireKeyQuery }>('/keys/:kid', {
    schema: {
      summary: 'Stop publishing a signing key',
      description:
        '404 for no such key. 400 `invalid_request` for the signing key, for the next one, and (unless `force=true`) ' +
        'for a key whose tokens may still be alive: retiring it would make them fail at once.',
      tags, security, params: KeyParams, querystring: RetireKeyQuery, response: done('Retired'),
    },
  }, (request, reply) => removeKey(request, reply, keyDeps(request)));
}

async function getUsers(request: Request<{ Querystring: UsersQuery }>) {
  const page = await searchUsers(request.server.tessera, request.query);
  return { users: page.users.map(userJson), nextCursor: page.nextCursor };
}

async function postUser(request: Request<{ Body: CreateUserBody }>, reply: FastifyReply) {
  const user = await createUser(request.server.tessera, adminActor(request), request.body);
  return reply.code(201).send(userJson(user));
}

async function getUser(request: Request<{ Params: UserParams }>) {
  const user = await showUser(request.server.tessera, request.params.id);
  return { ...userJson(user), activeSessions: user.activeSessions, factors: user.factors.map((f) => ({ ...f, createdAt: f.createdAt.toISOString() })) };
}

async function patchUser(request: Request<{ Params: UserParams; Body: UpdateUserBody }>) {
  return userJson(await updateUser(request.server.tessera, adminActor(request), request.params.id, request.body));
}

async function removeUser(request: Request<{ Params: UserParams }>, reply: FastifyReply) {
  await deleteUser(request.server.tessera, adminActor(request), request.params.id);
  return reply.code(204).send(null);
}

async function getUserSessions(request: Request<{ Params: UserParams }>) {
  const sessions = await listUserSessions(request.server.tessera, request.params.id);
  return {
    sessions: sessions.map((s) => ({
      ...s, createdAt: s.createdAt.toISOString(), lastUsedAt: s.lastUsedAt.toISOString(), expiresAt: s.expiresAt.toISOString(),
      authTime: s.authTime.toISOString(),
    })),
  };
}

async function removeUserSessions(request: Request<{ Params: UserParams }>, reply: FastifyReply) {
  await revokeUserSessions(request.server.tessera, adminActor(request), request.params.id);
  return reply.code(204).send(null);
}

async function removeUserSession(request: Request<{ Params: UserSessionParams }>, reply: FastifyReply) {
  await revokeUserSession(request.server.tessera, adminActor(request), request.params.id, request.params.sid);
  return reply.code(204).send(null);
}

async function removeUserFactors(request: Request<{ Params: UserParams }>, reply: FastifyReply) {
  await resetFactors(request.server.tessera, adminActor(request), request.params.id);
  return reply.code(204).send(null);
}

async function getEvents(request: Request<{ Querystring: EventsQuery }>) {
  const page = await listAllEvents(request.server.tessera, request.query);
  return { events: page.events.map((e) => ({ ...e, createdAt: e.createdAt.toISOString() })), nextCursor: page.nextCursor };
}

async function getKeys(_request: Request, deps: AdminSigningKeysDeps) {
  const keys = await listSigningKeys(deps);
  return { keys: keys.map((k) => ({ ...k, signsFrom: k.signsFrom.toISOString() })) };
}

async function postKeyRotate(request: Request<{ Body: RotateKeyBody }>, reply: FastifyReply, deps: AdminSigningKeysDeps) {
  const { config } = request.server.tessera;
  if (config.signingKeys) throw keysFromConfig();
  const key = await rotateKeyAsAdmin(deps, adminActor(request), request.body.alg ?? config.signingAlg);
  return reply.code(201).send({ ...key, signsFrom: key.signsFrom.toISOString() });
}

async function removeKey(request: Request<{ Params: KeyParams; Querystring: RetireKeyQuery }>, reply: FastifyReply, deps: AdminSigningKeysDeps) {
  if (request.server.tessera.config.signingKeys) throw keysFromConfig();
  await retireKeyAsAdmin(deps, adminActor(request), request.params.kid, request.query.force === 'true');
  return reply.code(204).send(null);
}

function keysFromConfig(): TesseraError {
  return new TesseraError('invalid_request', { detail: 'SIGNING_KEYS is set: the keys come from it, not from the database; rotate them there' });
}

function userJson(user: AdminUserSummary) {
  return {
    id: user.id, email: user.email, name: user.name, createdAt: user.createdAt.toISOString(), roles: user.roles, orgId: user.orgId,
    metadata: user.metadata, emailVerified: user.emailVerified, disabled: user.disabled,
  };
}
