import type { Selectable } from 'kysely';
import type { RequestMeta, RevokeReason } from '../core/vocabulary.js';
import type { UsersTable } from './schema.js';
import type { NewSession, UserRecord, UserWithCredentials } from './store.js';
import type { Executor } from './transaction.js';

/** Rows shared by the store's parts: a user as read, a session as written, sessions ended. */

/** What every read of a user selects: the record, without its credentials. */
export const USER_COLUMNS = [
  'users.id', 'users.email', 'users.name', 'users.created_at', 'users.roles', 'users.org_id', 'users.metadata', 'users.email_verified_at',
  'users.disabled_at',
] as const;

export type UserRow = Pick<Selectable<UsersTable>, 'id' | 'email' | 'name' | 'created_at' | 'roles' | 'org_id' | 'metadata' | 'email_verified_at'>;

export function toUserRecord(row: UserRow): UserRecord {
  return {
    id: row.id, email: row.email, name: row.name, createdAt: row.created_at, roles: row.roles, orgId: row.org_id, metadata: row.metadata,
    emailVerified: row.email_verified_at !== null,
  };
}

export function toUserWithCredentials(row: Selectable<UsersTable>): UserWithCredentials {
  return { ...toUserRecord(row), passwordHash: row.password_hash, disabled: row.disabled_at !== null };
}

export async function insertSession(db: Executor, s: NewSession, meta: RequestMeta): Promise<void> {
  await db
    .insertInto('sessions')
    .values({
      id: s.id,
      user_id: s.userId,
      salt: s.salt,
      generation: 1,
      parent_generation: null,
      rotated_at: null,
      created_at: s.now,
      last_used_at: s.now,
      expires_at: s.expiresAt,
      absolute_expires_at: s.absoluteExpiresAt,
      ip: meta.ip,
      user_agent: meta.userAgent,
      amr: s.amr,
    })
    .execute();
}

export async function revokeWhere(db: Executor, userId: string, exceptSessionId: string | null, reason: RevokeReason, now: Date): Promise<number> {
  let query = db
    .updateTable('sessions')
    .set({ revoked_at: now, revoked_reason: reason })
    .where('user_id', '=', userId)
    .where('revoked_at', 'is', null);
  if (exceptSessionId) query = query.where('id', '!=', exceptSessionId);
  const result = await query.executeTakeFirst();
  return Number(result.numUpdatedRows);
}
