import { sql, type Kysely } from 'kysely';
import type { RequestMeta, SecurityEventType } from '../core/vocabulary.js';
import { EventLog, NO_USER_ID } from './event-log.js';
import { revokeWhere, toUserRecord, USER_COLUMNS } from './rows.js';
import type { Database } from './schema.js';
import { deleteSecondFactors, listFactorRows, type FactorRow } from './second-factor-store.js';
import type { UserRecord } from './store.js';
import { inTransaction, type Executor } from './transaction.js';

/** A user as the admin API lists them: the record, and whether it is disabled. */
export interface AdminUserSummary extends UserRecord {
  disabled: boolean;
}

/** A user as `GET /admin/users/:id` shows them: also how many sessions are active. */
export interface AdminUserRecord extends AdminUserSummary {
  activeSessions: number;
}

/** Where a page of users starts: after this user, in email order. */
export interface UserPosition {
  email: string;
  id: string;
}

/** Where a page of events starts: before this event (newest first), or before a time. */
export type EventPosition = { createdAt: Date; id: string } | { createdAt: Date; id?: undefined };

/** A security event of any user, for operators: with its user, its id and an admin action's `detail`. */
export interface AdminEvent {
  id: string;
  /** null for events about no user (a signing key rotated) */
  userId: string | null;
  type: SecurityEventType;
  createdAt: Date;
  ip: string | null;
  userAgent: string | null;
  sessionId: string | null;
  detail: Record<string, unknown> | null;
}

/** A new user made by an operator, in stored form. */
export interface AdminNewUser {
  id: string;
  /** normalized */
  email: string;
  name: string;
  /** argon2id, or UNUSABLE_PASSWORD_HASH: the user sets one through a reset */
  passwordHash: string;
  roles: string[];
  orgId: string | null;
  /** a serialised JSON object */
  metadata: string;
}

/** What `PATCH /admin/users/:id` may change, in stored form; absent fields stay. */
export interface AdminUserChanges {
  name?: string;
  roles?: string[];
  orgId?: string | null;
  /** a serialised JSON object */
  metadata?: string;
  disabled?: boolean;
}

/** A second factor of a user as operators see it: the authenticator app, the set of recovery codes, each passkey. */
export type SecondFactorSummary = FactorRow;

/** Admin actions are recorded without an IP or user agent: the user's own log must not show the operator's. */
const NO_META: RequestMeta = Object.freeze({ ip: null, userAgent: null });

/**
 * The SQL of the admin API and CLI (SPEC §9): searching users and paging through them,
 * reading one with its counts, changing its fields, ending its sessions, and the security log
 * of every user. Each change is written with its `admin_action` event, in one transaction.
 *
 * Statements on one user name its id first (one shard on a distributed engine). The searches
 * (`searchUsers`, `listEvents` without a user) read every shard: they are for operators, not
 * for a hot path.
 */
export class AdminStore {
  constructor(readonly db: Kysely<Database>, readonly events = new EventLog()) {}

  /**
   * Users in email order, after `after`, whose email starts with `emailPrefix` or whose name
   * starts with `namePrefix` (case-insensitively); every user without either. At most `limit`.
   */
  async searchUsers(search: { emailPrefix?: string; namePrefix?: string; after?: UserPosition; limit: number }): Promise<AdminUserSummary[]> {
    let query = this.db.selectFrom('users').select(USER_COLUMNS);
    const { emailPrefix, namePrefix, after } = search;
    if (emailPrefix !== undefined || namePrefix !== undefined) {
      query = query.where((eb) => eb.or([
        ...(emailPrefix !== undefined ? [eb('users.email', 'like', `${escapeLike(emailPrefix)}%`)] : []),
        ...(namePrefix !== undefined ? [eb('users.name', 'ilike', `${escapeLike(namePrefix)}%`)] : []),
      ]));
    }
    if (after) query = query.where((eb) => eb(eb.refTuple('users.email', 'users.id'), '>', eb.tuple(after.email, after.id)));
    const rows = await query.orderBy('users.email').orderBy('users.id').limit(search.limit).execute();
    return rows.map((row) => ({ ...toUserRecord(row), disabled: row.disabled_at !== null }));
  }

  /** One user with whether it is disabled and how many of its sessions are active at `now`; undefined if none. */
  async findUser(userId: string, now: Date): Promise<AdminUserRecord | undefined> {
    const row = await this.db
      .selectFrom('users')
      .select(USER_COLUMNS)
      .select((eb) =>
        eb
          .selectFrom('sessions')
          .select(eb.fn.countAll<string | number | bigint>().as('n'))
          .where('sessions.user_id', '=', userId)
          .where('sessions.revoked_at', 'is', null)
          .where('sessions.expires_at', '>', now)
          .where('sessions.absolute_expires_at', '>', now)
          .as('active_sessions'),
      )
      .where('users.id', '=', userId)
      .executeTakeFirst();
    if (!row) return undefined;
    return { ...toUserRecord(row), disabled: row.disabled_at !== null, activeSessions: Number(row.active_sessions ?? 0) };
  }

  /**
   * Creates a user with its email's row (first, as at sign-up: the unique key) and records
   * `admin_action` with `detail`. No session. Undefined if the email is taken.
   */
  async createUser(user: AdminNewUser, now: Date, detail: Record<string, unknown>): Promise<AdminUserSummary | undefined> {
    try {
      return await inTransaction(this.db, async (trx) => {
        await trx.insertInto('user_emails').values({ email: user.email, user_id: user.id }).execute();
        await trx
          .insertInto('users')
          .values({
            id: user.id, email: user.email, name: user.name, password_hash: user.passwordHash, created_at: now,
            roles: user.roles, org_id: user.orgId, metadata: user.metadata,
          })
          .execute();
        await this.#record(trx, user.id, now, detail);
        return {
          id: user.id, email: user.email, name: user.name, createdAt: now, roles: user.roles, orgId: user.orgId,
          metadata: JSON.parse(user.metadata) as Record<string, unknown>, emailVerified: false, disabled: false,
        };
      });
    } catch (error) {
      if ((error as { code?: string }).code === '23505') return undefined;
      throw error;
    }
  }

  /**
   * Applies `changes` and records `admin_action` with `detail`, in one transaction. Disabling
   * keeps the time a user was first disabled (the revocation feed dates its sessions by it).
   * Nothing is written, and no event recorded, when `changes` is empty. Undefined if no such user.
   */
  async updateUser(userId: string, changes: AdminUserChanges, now: Date, detail: Record<string, unknown>): Promise<AdminUserSummary | undefined> {
    const { name, roles, orgId, metadata, disabled } = changes;
    const set = {
      ...(name !== undefined ? { name } : {}),
      ...(roles !== undefined ? { roles } : {}),
      ...(orgId !== undefined ? { org_id: orgId } : {}),
      ...(metadata !== undefined ? { metadata } : {}),
      ...(disabled !== undefined ? { disabled_at: disabled ? sql<Date>`coalesce(disabled_at, ${now})` : null } : {}),
    };
    if (Object.keys(set).length === 0) {
      const row = await this.db.selectFrom('users').select(USER_COLUMNS).where('users.id', '=', userId).executeTakeFirst();
      return row && { ...toUserRecord(row), disabled: row.disabled_at !== null };
    }
    return inTransaction(this.db, async (trx) => {
      const row = await trx.updateTable('users').set(set).where('users.id', '=', userId).returning(USER_COLUMNS).executeTakeFirst();
      if (!row) return undefined;
      await this.#record(trx, userId, now, detail);
      return { ...toUserRecord(row), disabled: row.disabled_at !== null };
    });
  }

  /**
   * Ends every session of a user (reason `admin`) and records `admin_action` with `detail` and
   * how many ended. Undefined if no such user.
   */
  async revokeSessions(userId: string, now: Date, detail: Record<string, unknown>): Promise<number | undefined> {
    return inTransaction(this.db, async (trx) => {
      if (!(await exists(trx, userId))) return undefined;
      const count = await revokeWhere(trx, userId, null, 'admin', now);
      await this.#record(trx, userId, now, { ...detail, sessions: count });
      return count;
    });
  }

  /** Ends one active session of a user (reason `admin`) and records `admin_action`; false if it was not active, or not theirs. */
  async revokeSession(userId: string, sessionId: string, now: Date, detail: Record<string, unknown>): Promise<boolean> {
    return inTransaction(this.db, async (trx) => {
      const row = await trx
        .updateTable('sessions')
        .set({ revoked_at: now, revoked_reason: 'admin' })
        .where('user_id', '=', userId)
        .where('id', '=', sessionId)
        .where('revoked_at', 'is', null)
        .where('expires_at', '>', now)
        .where('absolute_expires_at', '>', now)
        .returning('id')
        .executeTakeFirst();
      if (row) await this.#record(trx, userId, now, detail);
      return row !== undefined;
    });
  }

  /** A user's second factors (second-factor-store.ts reads them: `totp_factors`, `recovery_codes`, `passkeys`). */
  async listSecondFactors(userId: string): Promise<SecondFactorSummary[]> {
    return listFactorRows(this.db, userId);
  }

  /**
   * Removes a user's second factors and passkeys (a locked-out user) and records
   * `admin_action`, in one transaction; how many were removed, or undefined if no such user.
   */
  async removeSecondFactors(userId: string, now: Date, detail: Record<string, unknown>): Promise<number | undefined> {
    return inTransaction(this.db, async (trx) => {
      if (!(await exists(trx, userId))) return undefined;
      // The authenticator app, the recovery codes, pending second-factor sign-ins and passkeys.
      const { removed } = await deleteSecondFactors(trx, userId);
      await this.#record(trx, userId, now, { ...detail, removed });
      return removed;
    });
  }

  /**
   * Records an admin action that wrote nothing here: against `userId`, or against NO_USER_ID
   * when it is about no user (a signing key rotated or retired).
   */
  async recordAction(userId: string, now: Date, detail: Record<string, unknown>): Promise<void> {
    if (!this.events.writesMore('admin_action')) return this.#record(this.db, userId, now, detail);
    await inTransaction(this.db, (trx) => this.#record(trx, userId, now, detail));
  }

  /**
   * Security events, newest first, of one user or of all, of one type or of all, strictly
   * before `before`. At most `limit`.
   */
  async listEvents(filter: { userId?: string; type?: SecurityEventType; before?: EventPosition; limit: number }): Promise<AdminEvent[]> {
    const { userId, type, before } = filter;
    let query = this.db
      .selectFrom('security_events')
      .select(['id', 'user_id', 'type', 'created_at', 'ip', 'user_agent', 'session_id', 'detail']);
    if (userId !== undefined) query = query.where('user_id', '=', userId);
    if (type !== undefined) query = query.where('type', '=', type);
    if (before?.id !== undefined) {
      const { createdAt, id } = before;
      query = query.where(sql<boolean>`(${sql.ref('created_at')}, ${sql.ref('id')}) < (${createdAt}, ${id})`);
    } else if (before) {
      query = query.where('created_at', '<', before.createdAt);
    }
    const rows = await query.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(filter.limit).execute();
    return rows.map((r) => ({
      id: String(r.id), userId: r.user_id === NO_USER_ID ? null : r.user_id, type: r.type, createdAt: r.created_at,
      ip: r.ip, userAgent: r.user_agent, sessionId: r.session_id, detail: r.detail,
    }));
  }

  #record(db: Executor, userId: string, now: Date, detail: Record<string, unknown>): Promise<void> {
    return this.events.record(db, userId, null, 'admin_action', NO_META, now, detail);
  }
}

async function exists(db: Executor, userId: string): Promise<boolean> {
  return (await db.selectFrom('users').select('id').where('id', '=', userId).executeTakeFirst()) !== undefined;
}

/** A LIKE pattern that matches `text` literally (PostgreSQL's default escape character is `\`). */
function escapeLike(text: string): string {
  return text.replace(/[\\%_]/g, (c) => `\\${c}`);
}
