import { Type } from 'typebox';
import { deviceName } from '../../core/device-name.js';
import { TesseraError } from '../../core/errors.js';
import { assertPasswordPolicy, PASSWORD_MAX_LENGTH } from '../../core/password-policy.js';
import { isUuid } from '../../core/uuid.js';
import { requireAuth } from '../authenticate.js';
import type { App, Tessera } from '../context.js';
import { publicUser } from '../issue-tokens.js';
import { requestMeta } from '../request-meta.js';
import { EventList, PasswordBody, Problem, SessionIdParams, SessionList, User } from '../schemas.js';

const bearer = [{ bearerAuth: [] }];

/** The signed-in user's own account: who am I, my sessions, my password, my security events. */
export function accountRoutes(app: App, tessera: Tessera) {
  const { config, store, hasher, counters, clock } = tessera;
  const preHandler = requireAuth(tessera);
  const errors = { '4xx': Problem, '5xx': Problem };

  app.get('/auth/me', {
    schema: { summary: 'The signed-in user', tags: ['account'], security: bearer, response: { 200: Type.Object({ user: User }), ...errors } },
    preHandler,
  }, async (request) => ({ user: publicUser(request.auth!.user) }));

  app.get('/auth/sessions', {
    schema: { summary: "The user's active sessions, most recently used first", tags: ['account'], security: bearer, response: { 200: SessionList, ...errors } },
    preHandler,
  }, async (request) => {
    const { user, sessionId } = request.auth!;
    const sessions = await store.listActiveSessions(user.id, clock());
    return {
      sessions: sessions.map((s) => ({
        id: s.id,
        createdAt: s.createdAt.toISOString(),
        lastUsedAt: s.lastUsedAt.toISOString(),
        expiresAt: s.expiresAt.toISOString(),
        ip: s.ip,
        userAgent: s.userAgent,
        device: deviceName(s.userAgent),
        current: s.id === sessionId,
      })),
    };
  });

  app.delete('/auth/sessions/:id', {
    schema: {
      summary: 'Revoke one of your sessions',
      description: "404 unless `id` is one of the caller's active sessions.",
      tags: ['account'], security: bearer, params: SessionIdParams,
      response: { 204: Type.Null({ description: 'Revoked' }), ...errors },
    },
    preHandler,
  }, async (request, reply) => {
    const { user } = request.auth!;
    const { id } = request.params;
    const revoked = isUuid(id) && (await store.revokeSession(user.id, id.toLowerCase(), 'revoked', 'session_revoked', clock(), requestMeta(request)));
    if (!revoked) throw new TesseraError('not_found', { detail: 'No active session of yours has this id' });
    return reply.code(204).send(null);
  });

  app.post('/auth/password', {
    schema: {
      summary: "Change the password; every other session of the user is signed out",
      description: 'A wrong `currentPassword` is 403 `invalid_credentials` (not 401, which clients take for an expired token).',
      tags: ['account'], security: bearer, body: PasswordBody,
      response: { 204: Type.Null({ description: 'Changed' }), ...errors },
    },
    preHandler,
  }, async (request, reply) => {
    const { user, sessionId } = request.auth!;
    const { currentPassword, newPassword } = request.body;
    assertPasswordPolicy(newPassword);
    // A stolen access token must not become a password-guessing oracle: attempts are counted up
    // front (parallel guesses cannot slip past the check), and a success clears them.
    const key = `password:${user.id}`;
    const limit = config.rateLimits;
    if (config.rateLimitsEnabled) {
      const attempts = await counters.increment(key, limit.loginFailuresPerAccountIpWindow);
      if (attempts.count > limit.loginFailuresPerAccountIp) throw new TesseraError('rate_limited', { retryAfter: attempts.resetIn });
    }
    const current = await store.findUserById(user.id);
    // Longer than any password can be: wrong without spending a hash on it.
    const plausible = currentPassword.length <= PASSWORD_MAX_LENGTH * 2;
    if (!current || !plausible || !(await hasher.verify(current.passwordHash, currentPassword))) {
      throw new TesseraError('invalid_credentials', { status: 403, detail: 'The current password is incorrect' });
    }
    if (config.rateLimitsEnabled) await counters.reset(key);
    const passwordHash = await hasher.hash(newPassword);
    await store.changePassword(user.id, passwordHash, sessionId, clock(), requestMeta(request));
    return reply.code(204).send(null);
  });

  app.get('/auth/events', {
    schema: { summary: "The user's recent security events, newest first", tags: ['account'], security: bearer, response: { 200: EventList, ...errors } },
    preHandler,
  }, async (request) => {
    const events = await store.listEvents(request.auth!.user.id);
    return { events: events.map((e) => ({ ...e, createdAt: e.createdAt.toISOString() })) };
  });
}
