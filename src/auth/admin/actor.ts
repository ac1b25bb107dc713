import { createHash } from 'node:crypto';

/**
 * Who did an admin action: `key:<first 8 hex of SHA-256(key)>` (an ADMIN_API_KEY, named
 * without revealing it), `user:<id>` (an access token with `tessera:admin` and `mfa`) or
 * `cli:<os user name>`; and from which IP, when it came over HTTP.
 */
export interface AdminActor {
  id: string;
  ip: string | null;
}

/** What the `action` of an `admin_action` event's detail says was done. */
export const ADMIN_ACTIONS = [
  'users.create', 'users.update', 'users.delete', 'sessions.revoke_all', 'sessions.revoke', 'factors.reset', 'keys.rotate', 'keys.retire',
] as const;
export type AdminAction = (typeof ADMIN_ACTIONS)[number];

/** The actor name of an admin key: its hash's first 8 hex digits, enough to tell keys apart in the log. */
export function keyActor(key: string): string {
  return `key:${createHash('sha256').update(key).digest('hex').slice(0, 8)}`;
}

/** The actor of the CLI, by the operating-system user running it. */
export function cliActor(userName: string): AdminActor {
  return { id: `cli:${userName}`, ip: null };
}

/**
 * The `detail` of an `admin_action` event: who, what, on what (a user id or a key id), from
 * where, and anything else the action adds (the fields changed, a session id).
 *
 * @example
 * adminDetail({ id: 'key:1a2b3c4d', ip: '203.0.113.9' }, 'users.update', userId, { fields: ['roles'] });
 */
export function adminDetail(actor: AdminActor, action: AdminAction, target: string, more: Record<string, unknown> = {}): Record<string, unknown> {
  return { actor: actor.id, action, target, ...more, ...(actor.ip !== null ? { ip: actor.ip } : {}) };
}
