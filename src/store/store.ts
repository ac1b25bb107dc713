import { randomUUID } from 'node:crypto';
import { sql, type Compilable, type ExpressionBuilder, type Kysely } from 'kysely';
import type { NextState, SessionState } from '../core/decide-refresh.js';
import type { RequestMeta, RevokeReason, SecurityEventType } from '../core/vocabulary.js';
import { writeLinkRequest, type LinkMail, type LinkRequest } from './account-store.js';
import { EventLog, NO_USER_ID, type OutboxPolicy } from './event-log.js';
import { insertSession, revokeWhere, toUserRecord, toUserWithCredentials, USER_COLUMNS } from './rows.js';
import type { Database } from './schema.js';
import { inTransaction, MAX_TRANSACTION_ATTEMPTS, retrying, sleep } from './transaction.js';

export interface UserRecord {
  id: string;
  email: string;
  name: string;
  createdAt: Date;
  roles: string[];
  orgId: string | null;
  /** never in tokens unless a claims hook puts it there */
  metadata: Record<string, unknown>;
  emailVerified: boolean;
}

export interface UserWithCredentials extends UserRecord {
  passwordHash: string;
  disabled: boolean;
}

export interface NewSession {
  id: string;
  userId: string;
  salt: Buffer;
  now: Date;
  expiresAt: Date;
  absoluteExpiresAt: Date;
  /** how the user authenticated (RFC 8176); the column's default is `['pwd']`, a password */
  amr?: string[];
}

export interface RefreshableSession extends SessionState {
  id: string;
  salt: Buffer;
  user: UserRecord;
  amr: string[];
  /** when the user last authenticated: the session's start, or its latest re-authentication */
  authTime: Date;
}

export interface SessionSummary {
  id: string;
  createdAt: Date;
  lastUsedAt: Date;
  expiresAt: Date;
  ip: string | null;
  userAgent: string | null;
  /** how the user authenticated (RFC 8176), as of `authTime` */
  amr: string[];
  /** the session's start, or its latest re-authentication */
  authTime: Date;
}

/** A signing key as kept: the private part sealed under a key derived from TESSERA_SECRET. */
export interface StoredSigningKey {
  kid: string;
  /** EdDSA | ES256 | RS256 */
  alg: string;
  /** A rotated-in key is published at once and signs from here on. */
  signsFrom: Date;
  publicJwk: Record<string, unknown>;
  privateJwkSealed: string;
}

export type NewSigningKey = Omit<StoredSigningKey, 'alg' | 'signsFrom'> & Partial<Pick<StoredSigningKey, 'alg' | 'signsFrom'>>;

export interface SecurityEvent {
  type: SecurityEventType;
  createdAt: Date;
  ip: string | null;
  userAgent: string | null;
  sessionId: string | null;
}

/** A user brought in by `tessera users import`, validated and in stored form. */
export interface ImportedUser {
  id: string;
  /** normalized */
  email: string;
  name: string;
  /** argon2 or bcrypt, verbatim, or an unusable marker */
  passwordHash: string;
  roles: string[];
  orgId: string | null;
  /** a serialised JSON object */
  metadata: string;
  /** verified as of the import */
  emailVerified: boolean;
}

/** How long a purge may hold its lease before another node may take over (a node that died holding it). */
const PURGE_LEASE_SECONDS = 10 * 60;
const SIGNING_KEY_LEASE_SECONDS = 30;
/** Users per statement of an import: 10 parameters each, far below PostgreSQL's 65535 per statement. */
const IMPORT_BATCH = 1000;

/**
 * All of Tessera's SQL, shaped around the domain. The same statements run on
 * PostgreSQL and on PGlite. Every time is the caller's clock, never `now()`,
 * so tests can freeze time.
 *
 * Shard-ready: every statement on a hot path names its user id, and the tables
 * of a user are keyed by it first, so on Citus each touches one shard. Uniqueness of an
 * email is a row of `user_emails`, keyed by the email. No advisory locks: single-runner
 * jobs take a lease row.
 */
export class Store {
  // The reads on every request's path (refresh, and its version-1 form; Bearer-protected
  // routes), built and compiled once instead of on every call.
  readonly #sessionForRefresh;
  readonly #sessionForRefreshV1;
  readonly #activeSession;
  readonly #applyRefresh;

  /** `events` decides what recording an event also writes (webhooks, notices); by default, nothing. */
  constructor(readonly db: Kysely<Database>, readonly events = new EventLog()) {
    const refreshRead = () =>
      db
        .selectFrom('sessions')
        // co-located: both sides are keyed by the same user id
        .innerJoin('users', 'users.id', 'sessions.user_id')
        .select((eb) => [
          'sessions.id as session_id', 'sessions.salt', 'sessions.generation', 'sessions.parent_generation',
          'sessions.rotated_at', 'sessions.expires_at', 'sessions.absolute_expires_at', 'sessions.revoked_at',
          'sessions.revoked_reason', 'sessions.amr', authTime(eb), ...USER_COLUMNS,
        ]);
    this.#sessionForRefresh = precompiled(db, ['\u0000user', '\u0000id'], (userId: string, id: string) =>
      refreshRead().where('sessions.user_id', '=', userId).where('users.id', '=', userId).where('sessions.id', '=', id),
    );
    // Version 1 refresh tokens carry no user id: found by session id alone (every shard) until they rotate.
    this.#sessionForRefreshV1 = precompiled(db, ['\u0000id'], (id: string) => refreshRead().where('sessions.id', '=', id));
    this.#activeSession = precompiled(db, ['\u0000user', '\u0000id', new Date(0)], (userId: string, id: string, now: Date) =>
      db
        .selectFrom('sessions')
        .innerJoin('users', 'users.id', 'sessions.user_id')
        .select(['sessions.id as session_id', ...USER_COLUMNS])
        .where('sessions.user_id', '=', userId)
        .where('users.id', '=', userId)
        .where('sessions.id', '=', id)
        .where('sessions.revoked_at', 'is', null)
        .where('sessions.expires_at', '>', now)
        .where('sessions.absolute_expires_at', '>', now)
        .where('users.disabled_at', 'is', null),
    );
    // Every argument a distinct marker: a parameter is traced back to its argument by identity.
    const markers = ['\u0000user', '\u0000id', -1, '\u0000parent', -2, '\u0000next-parent', new Date(0), new Date(1), new Date(2), '\u0000ip', '\u0000ua'];
    this.#applyRefresh = precompiled(
      db,
      markers as unknown as [string, string, number, number | null, number, number | null, Date | null, Date, Date, string | null, string | null],
      (userId, id, generation, parentGeneration, nextGeneration, nextParent, rotatedAt, expiresAt, lastUsedAt, ip, userAgent) =>
        db
          .updateTable('sessions')
          .set({
            generation: nextGeneration,
            parent_generation: nextParent,
            rotated_at: rotatedAt,
            expires_at: expiresAt,
            last_used_at: lastUsedAt,
            ip,
            user_agent: userAgent,
          })
          .where('user_id', '=', userId)
          .where('id', '=', id)
          .where('generation', '=', generation)
          .where(sql<boolean>`parent_generation is not distinct from ${parentGeneration}`)
          .where('revoked_at', 'is', null)
          // a user disabled since the read cannot slip one more refresh through
          .where(({ not, exists, selectFrom }) =>
            not(exists(selectFrom('users').select('users.id').where('users.id', '=', userId).where('users.disabled_at', 'is not', null))),
          )
          .returning('sessions.id'),
    );
  }

  /** The same store, recording events with `policy`'s webhooks and notices. */
  withOutbox(policy: OutboxPolicy): Store {
    return new Store(this.db, new EventLog(policy));
  }

  async ping(): Promise<void> {
    await sql`select 1`.execute(this.db);
  }

  // ---- users -------------------------------------------------------------

  /** Creates a user and its first session at once; undefined if the email is taken. */
  async createUserWithSession(
    user: { id: string; email: string; name: string; passwordHash: string },
    session: NewSession,
    meta: RequestMeta,
    /** The verification link to mail, written with the account (email features on). */
    verification?: { request: LinkRequest; mail: LinkMail },
  ): Promise<UserRecord | undefined> {
    try {
      return await inTransaction(this.db, async (trx) => {
        // The email's row first: its primary key is what makes an address belong to one account.
        await trx.insertInto('user_emails').values({ email: user.email, user_id: user.id }).execute();
        await trx
          .insertInto('users')
          .values({ id: user.id, email: user.email, name: user.name, password_hash: user.passwordHash, created_at: session.now })
          .execute();
        await insertSession(trx, session, meta);
        await this.events.record(trx, user.id, session.id, 'registered', meta, session.now);
        if (verification) await writeLinkRequest(trx, verification.request, verification.mail);
        return { id: user.id, email: user.email, name: user.name, createdAt: session.now, roles: [], orgId: null, metadata: {}, emailVerified: false };
      });
    } catch (error) {
      if ((error as { code?: string }).code === '23505') return undefined;
      throw error;
    }
  }

  /**
   * Two single-shard reads: the email's owner, then the user (a join would span shards). An
   * unknown email makes the second read too, of an id no user has: sign-in answers an unknown
   * email and a wrong password in the same time, and a read less would tell them apart.
   */
  async findUserByEmail(email: string): Promise<UserWithCredentials | undefined> {
    const owner = await this.#ownerOf(email);
    const user = await this.findUserById(owner ?? NO_USER_ID);
    return owner === undefined ? undefined : user;
  }

  async #ownerOf(email: string): Promise<string | undefined> {
    const row = await this.db.selectFrom('user_emails').select('user_id').where('email', '=', email).executeTakeFirst();
    return row?.user_id;
  }

  async findUserById(id: string): Promise<UserWithCredentials | undefined> {
    const row = await this.db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst();
    return row && toUserWithCredentials(row);
  }

  /**
   * Sets a user's password hash; with `replacing`, only while the stored hash is still that
   * one, so a rehash at login never undoes a password change that committed meanwhile.
   */
  async updatePasswordHash(userId: string, passwordHash: string, replacing?: string): Promise<void> {
    let query = this.db.updateTable('users').set({ password_hash: passwordHash }).where('id', '=', userId);
    if (replacing !== undefined) query = query.where('password_hash', '=', replacing);
    await query.execute();
  }

  /** Disables or enables a user; false if no such email. A disabled user's sessions stop working at once. */
  async setUserDisabled(email: string, disabled: boolean, now: Date): Promise<boolean> {
    const owner = await this.#ownerOf(email);
    if (owner === undefined) return false;
    const result = await this.db
      .updateTable('users')
      .set({ disabled_at: disabled ? now : null })
      .where('id', '=', owner)
      .executeTakeFirst();
    return result.numUpdatedRows > 0n;
  }

  /** Sets a new password hash, revokes every other session of the user and ends outstanding links, in one transaction. */
  async changePassword(userId: string, passwordHash: string, keepSessionId: string, now: Date, meta: RequestMeta): Promise<void> {
    await inTransaction(this.db, async (trx) => {
      await trx.updateTable('users').set({ password_hash: passwordHash }).where('id', '=', userId).execute();
      await revokeWhere(trx, userId, keepSessionId, 'password_changed', now);
      // A reset link sent before the change must not undo it.
      await trx.deleteFrom('account_tokens').where('user_id', '=', userId).execute();
      await this.events.record(trx, userId, keepSessionId, 'password_changed', meta, now);
    });
  }

  // ---- sessions ------------------------------------------------------------

  /** Creates a session for a successful login and records it. */
  async createSession(session: NewSession, meta: RequestMeta): Promise<void> {
    await inTransaction(this.db, async (trx) => {
      await insertSession(trx, session, meta);
      await this.events.record(trx, session.userId, session.id, 'login_succeeded', meta, session.now);
    });
  }

  /**
   * One primary-key read (joined by primary key to its user): all a refresh needs, decision
   * and response. `userId` is undefined only for version 1 tokens.
   */
  async findSessionForRefresh(userId: string | undefined, id: string): Promise<RefreshableSession | undefined> {
    const row = await (userId === undefined ? this.#sessionForRefreshV1(id) : this.#sessionForRefresh(userId, id));
    if (!row) return undefined;
    return {
      id: row.session_id,
      user: toUserRecord(row),
      amr: row.amr,
      authTime: row.auth_time,
      salt: Buffer.from(row.salt),
      generation: row.generation,
      parentGeneration: row.parent_generation,
      rotatedAt: row.rotated_at,
      expiresAt: row.expires_at,
      absoluteExpiresAt: row.absolute_expires_at,
      revokedAt: row.revoked_at,
      revokedReason: row.revoked_reason,
      userDisabled: row.disabled_at !== null,
    };
  }

  /**
   * Applies a rotate, replay or reissue decision if, and only if, the session is
   * still exactly as it was read: one conditional update, so of two racing
   * requests only one can move a generation. False means "read again and decide again".
   */
  async applyRefresh(
    userId: string,
    id: string,
    seen: { generation: number; parentGeneration: number | null },
    next: NextState,
    meta: RequestMeta,
  ): Promise<boolean> {
    const row = await retrying(() => this.#applyRefresh(
      userId, id, seen.generation, seen.parentGeneration,
      next.generation, next.parentGeneration, next.rotatedAt, next.expiresAt, next.lastUsedAt, meta.ip, meta.userAgent,
    ));
    return row !== undefined;
  }

  /** Revokes a session whose old token came back, and records the theft. False if it was already revoked. */
  async revokeForReuse(userId: string, id: string, now: Date, meta: RequestMeta): Promise<boolean> {
    return inTransaction(this.db, async (trx) => {
      const row = await trx
        .updateTable('sessions')
        .set({ revoked_at: now, revoked_reason: 'reuse' })
        .where('user_id', '=', userId)
        .where('id', '=', id)
        .where('revoked_at', 'is', null)
        .returning('id')
        .executeTakeFirst();
      if (row) await this.events.record(trx, userId, id, 'reuse_detected', meta, now);
      return row !== undefined;
    });
  }

  /** The session behind an access token, if it is still active, with its user: one primary-key read. */
  async findActiveSession(userId: string, id: string, now: Date): Promise<{ sessionId: string; user: UserRecord } | undefined> {
    const row = await this.#activeSession(userId, id, now);
    if (!row) return undefined;
    return { sessionId: row.session_id, user: toUserRecord(row) };
  }

  async listActiveSessions(userId: string, now: Date): Promise<SessionSummary[]> {
    const rows = await this.db
      .selectFrom('sessions')
      .select((eb) => ['id', 'created_at', 'last_used_at', 'expires_at', 'ip', 'user_agent', 'amr', authTime(eb)])
      .where('user_id', '=', userId)
      .where('revoked_at', 'is', null)
      .where('expires_at', '>', now)
      .where('absolute_expires_at', '>', now)
      .orderBy('last_used_at', 'desc')
      .limit(1000)
      .execute();
    return rows.map((r) => ({
      id: r.id, createdAt: r.created_at, lastUsedAt: r.last_used_at, expiresAt: r.expires_at, ip: r.ip, userAgent: r.user_agent,
      amr: r.amr, authTime: r.auth_time,
    }));
  }

  /**
   * Revokes one session of a user, if it is active. Records `event` against it.
   * False if there was no such active session (already revoked, expired, or someone else's).
   */
  async revokeSession(
    userId: string, sessionId: string, reason: RevokeReason, event: SecurityEventType, now: Date, meta: RequestMeta,
  ): Promise<boolean> {
    return inTransaction(this.db, async (trx) => {
      const row = await trx
        .updateTable('sessions')
        .set({ revoked_at: now, revoked_reason: reason })
        .where('user_id', '=', userId)
        .where('id', '=', sessionId)
        .where('revoked_at', 'is', null)
        .where('expires_at', '>', now)
        .where('absolute_expires_at', '>', now)
        .returning('id')
        .executeTakeFirst();
      if (row) await this.events.record(trx, userId, sessionId, event, meta, now);
      return row !== undefined;
    });
  }

  /** Revokes all of a user's sessions, or all but `exceptSessionId`. Returns how many. */
  async revokeUserSessions(
    userId: string, exceptSessionId: string | null, reason: RevokeReason, actingSessionId: string | null, now: Date, meta: RequestMeta,
  ): Promise<number> {
    return inTransaction(this.db, async (trx) => {
      const count = await revokeWhere(trx, userId, exceptSessionId, reason, now);
      await this.events.record(trx, userId, actingSessionId, 'sessions_revoked', meta, now);
      return count;
    });
  }

  /**
   * Sessions ended since `since` (logout, revocation, reuse, password change), and the
   * live sessions of users disabled since then, with when: what the revocation feed lists.
   * Reads every shard on a distributed engine; the feed reads it once per node and caches it.
   */
  async listRevokedSince(since: Date, now: Date, limit: number): Promise<{ sessionId: string; revokedAt: Date }[]> {
    const rows = await this.db
      .selectFrom('sessions')
      .select(['id', 'revoked_at as at'])
      .where('revoked_at', '>', since)
      .unionAll((eb) =>
        eb
          .selectFrom('users')
          .innerJoin('sessions', 'sessions.user_id', 'users.id')
          .select(['sessions.id', 'users.disabled_at as at'])
          .where('users.disabled_at', '>', since)
          .where('sessions.revoked_at', 'is', null)
          .where('sessions.absolute_expires_at', '>', now),
      )
      .limit(limit)
      .execute();
    return rows.map((r) => ({ sessionId: r.id, revokedAt: r.at! }));
  }

  // ---- security events -----------------------------------------------------

  async recordEvent(
    userId: string, sessionId: string | null, type: SecurityEventType, meta: RequestMeta, now: Date, detail?: Record<string, unknown>,
  ): Promise<void> {
    if (!this.events.writesMore(type)) return this.events.record(this.db, userId, sessionId, type, meta, now, detail);
    await inTransaction(this.db, (trx) => this.events.record(trx, userId, sessionId, type, meta, now, detail));
  }

  async listEvents(userId: string, limit = 50): Promise<SecurityEvent[]> {
    const rows = await this.db
      .selectFrom('security_events')
      .select(['type', 'created_at', 'ip', 'user_agent', 'session_id'])
      .where('user_id', '=', userId)
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc')
      .limit(limit)
      .execute();
    return rows.map((r) => ({ type: r.type, createdAt: r.created_at, ip: r.ip, userAgent: r.user_agent, sessionId: r.session_id }));
  }

  /** Has this account ever signed in (or registered) from this IP? Consulted only for accounts under attack. */
  async hasSignedInFrom(userId: string, ip: string): Promise<boolean> {
    const row = await this.db
      .selectFrom('security_events')
      .select('id')
      .where('user_id', '=', userId)
      .where('ip', '=', ip)
      .where('type', 'in', ['login_succeeded', 'registered'])
      .limit(1)
      .executeTakeFirst();
    return row !== undefined;
  }

  // ---- signing keys ------------------------------------------------------------

  /** Every signing key, oldest first (by when it starts signing). */
  async listSigningKeys(): Promise<StoredSigningKey[]> {
    const rows = await this.db.selectFrom('signing_keys').selectAll().orderBy('signs_from').orderBy('kid').execute();
    return rows.map((r) => ({ kid: r.kid, alg: r.alg, signsFrom: r.signs_from, publicJwk: r.public_jwk, privateJwkSealed: r.private_jwk_sealed }));
  }

  /**
   * Adds a signing key made by `create` while `needed(keys)` holds (by default: while there
   * is none). Nodes starting together agree on one key: the node holding the `signing-key`
   * lease creates it, the others wait until it is there.
   */
  async ensureSigningKey(
    create: () => Promise<NewSigningKey>,
    now: Date,
    holder = randomUUID(),
    needed: (keys: StoredSigningKey[]) => boolean = (keys) => keys.length === 0,
  ): Promise<void> {
    const started = Date.now();
    const deadline = started + 2 * SIGNING_KEY_LEASE_SECONDS * 1000;
    while (needed(await this.listSigningKeys())) {
      // `now` moved on by the time waited: a lease left by a node that died expires for us too.
      const at = new Date(now.getTime() + (Date.now() - started));
      if (await this.claimLease('signing-key', holder, at, SIGNING_KEY_LEASE_SECONDS)) {
        try {
          if (!needed(await this.listSigningKeys())) return;
          await this.addSigningKey(await create(), now);
          return;
        } finally {
          await this.releaseLease('signing-key', holder);
        }
      }
      if (Date.now() > deadline) throw new Error('no signing key appeared while another node held the signing-key lease');
      await sleep(50);
    }
  }

  /** Publishes a key; it signs from `key.signsFrom` (default: `now`). */
  async addSigningKey(key: NewSigningKey, now: Date): Promise<void> {
    await this.db
      .insertInto('signing_keys')
      .values({
        kid: key.kid, alg: key.alg ?? 'EdDSA', public_jwk: JSON.stringify(key.publicJwk), private_jwk_sealed: key.privateJwkSealed,
        created_at: now, signs_from: key.signsFrom ?? now,
      })
      .execute();
  }

  /** Unpublishes a key for good; false if there was none. */
  async deleteSigningKey(kid: string): Promise<boolean> {
    const result = await this.db.deleteFrom('signing_keys').where('kid', '=', kid).executeTakeFirst();
    return result.numDeletedRows > 0n;
  }

  /**
   * For `tessera secrets rotate`: offers every key's sealed private part to `reseal` (with its
   * kid) and stores what it returns; undefined leaves the row as it is. A row is written only if
   * it still holds what was read, so a concurrent change is never overwritten.
   * `resealed`: rows written by this call.
   */
  async resealSigningKeys(reseal: (sealed: string, kid: string) => string | undefined): Promise<{ rows: number; resealed: number }> {
    const rows = await this.db.selectFrom('signing_keys').select(['kid', 'private_jwk_sealed']).orderBy('kid').execute();
    let resealed = 0;
    for (const row of rows) {
      const next = reseal(row.private_jwk_sealed, row.kid);
      if (next === undefined) continue;
      const result = await this.db
        .updateTable('signing_keys')
        .set({ private_jwk_sealed: next })
        .where('kid', '=', row.kid)
        .where('private_jwk_sealed', '=', row.private_jwk_sealed)
        .executeTakeFirst();
      if (result.numUpdatedRows > 0n) resealed++;
    }
    return { rows: rows.length, resealed };
  }

  // ---- moving users in; roles ---------------------------------------------------------

  /**
   * Writes imported users in one transaction: per user its email's row (first, as at
   * sign-up), its user row and an `imported` event, 1000 users per statement. If any email
   * already has an account, the unique key of `user_emails` refuses it, nothing is written,
   * and every email of the list that has an account is returned.
   */
  async importUsers(users: readonly ImportedUser[], now: Date, meta: RequestMeta): Promise<{ imported: number; taken: string[] }> {
    const emails = users.map((u) => u.email);
    for (let attempt = 1; ; attempt++) {
      try {
        await inTransaction(this.db, async (trx) => {
          for (let i = 0; i < users.length; i += IMPORT_BATCH) {
            const batch = users.slice(i, i + IMPORT_BATCH);
            await trx.insertInto('user_emails').values(batch.map((u) => ({ email: u.email, user_id: u.id }))).execute();
            await trx
              .insertInto('users')
              .values(batch.map((u) => ({
                id: u.id, email: u.email, name: u.name, password_hash: u.passwordHash, created_at: now,
                roles: u.roles, org_id: u.orgId, metadata: u.metadata, email_verified_at: u.emailVerified ? now : null,
              })))
              .execute();
            await trx
              .insertInto('security_events')
              .values(batch.map((u) => ({
                user_id: u.id, session_id: null, type: 'imported' as const, ip: meta.ip, user_agent: meta.userAgent, created_at: now,
              })))
              .execute();
          }
        });
        return { imported: users.length, taken: [] };
      } catch (error) {
        if ((error as { code?: string }).code !== '23505') throw error;
        const taken = await this.#takenEmails(emails);
        if (taken.length > 0) return { imported: 0, taken };
        // The email's holder was itself rolled back meanwhile (another import racing this one): try again.
        if (attempt >= MAX_TRANSACTION_ATTEMPTS) throw error;
      }
    }
  }

  async #takenEmails(emails: readonly string[]): Promise<string[]> {
    const taken: string[] = [];
    for (let i = 0; i < emails.length; i += IMPORT_BATCH) {
      const rows = await this.db.selectFrom('user_emails').select('email').where('email', 'in', emails.slice(i, i + IMPORT_BATCH)).execute();
      for (const row of rows) taken.push(row.email);
    }
    return taken;
  }

  /** Replaces a user's roles and records `roles_changed`; false if no user has this email. Tokens carry them from the next refresh. */
  async setUserRoles(email: string, roles: readonly string[], now: Date, meta: RequestMeta): Promise<boolean> {
    const owner = await this.#ownerOf(email);
    if (owner === undefined) return false;
    return inTransaction(this.db, async (trx) => {
      const result = await trx.updateTable('users').set({ roles: [...roles] }).where('id', '=', owner).executeTakeFirst();
      if (result.numUpdatedRows === 0n) return false;
      await this.events.record(trx, owner, null, 'roles_changed', meta, now);
      return true;
    });
  }

  // ---- leases: single-runner jobs on any PostgreSQL-wire engine ---------------------------

  /**
   * Claims the lease `name` for `holder` until `now + ttlSeconds`, if it is free, expired or
   * already theirs. One conditional update decides it, so of nodes racing for it one wins.
   */
  async claimLease(name: string, holder: string, now: Date, ttlSeconds: number): Promise<boolean> {
    await this.db
      .insertInto('leases')
      .values({ name, holder: null, expires_at: new Date(0) })
      .onConflict((oc) => oc.column('name').doNothing())
      .execute();
    const row = await this.db
      .updateTable('leases')
      .set({ holder, expires_at: new Date(now.getTime() + ttlSeconds * 1000) })
      .where('name', '=', name)
      .where((eb) => eb.or([eb('expires_at', '<=', now), eb('holder', '=', holder)]))
      .returning('name')
      .executeTakeFirst();
    return row !== undefined;
  }

  /** Gives a lease back early, if `holder` still has it: free at once, whatever another node's clock says. */
  async releaseLease(name: string, holder: string): Promise<void> {
    await this.db.updateTable('leases').set({ holder: null, expires_at: new Date(0) }).where('name', '=', name).where('holder', '=', holder).execute();
  }

  // ---- housekeeping ------------------------------------------------------------

  /**
   * Deletes sessions revoked or past their absolute lifetime more than `retentionSeconds`
   * ago, `batchSize` rows per transaction. Only one node purges at a time: the one holding
   * the `purge` lease; a node that cannot claim it does nothing this time.
   * Returns the number of sessions deleted.
   */
  async purgeSessions(now: Date, retentionSeconds: number, batchSize = 1000, holder = randomUUID()): Promise<number> {
    if (!(await this.claimLease('purge', holder, now, PURGE_LEASE_SECONDS))) return 0;
    const cutoff = new Date(now.getTime() - retentionSeconds * 1000);
    let total = 0;
    try {
      for (;;) {
        const deleted = await inTransaction(this.db, async (trx) => {
          const result = await trx
            .deleteFrom('sessions')
            .where((eb) =>
              eb(
                eb.refTuple('user_id', 'id'),
                'in',
                eb
                  .selectFrom('sessions')
                  .select(['user_id', 'id'])
                  .where((w) => w.or([w('absolute_expires_at', '<', cutoff), w('revoked_at', '<', cutoff)]))
                  .limit(batchSize)
                  .$asTuple('user_id', 'id'),
              ),
            )
            .executeTakeFirst();
          return Number(result.numDeletedRows);
        });
        total += deleted;
        if (deleted < batchSize) return total;
      }
    } finally {
      await this.releaseLease('purge', holder);
    }
  }
}

/** A session's `auth_time`: its latest re-authentication, else its start. */
function authTime(eb: ExpressionBuilder<Database, 'sessions'>) {
  return eb.fn.coalesce('sessions.auth_time', 'sessions.created_at').as('auth_time');
}

/**
 * Compiles a query once, with `markers` for arguments, and returns a function that runs
 * the same SQL with real ones: each compiled parameter is traced back, by identity, to the
 * marker it came from, so an argument may appear several times in the query.
 */
function precompiled<A extends unknown[], R>(
  db: Kysely<Database>,
  markers: A,
  build: (...args: A) => Compilable<R>,
): (...args: A) => Promise<R | undefined> {
  const compiled = build(...markers).compile();
  const sources = compiled.parameters.map((p) => markers.indexOf(p));
  if (sources.includes(-1)) throw new Error('precompiled: a parameter does not come from an argument');
  return async (...args) => (await db.executeQuery<R>({ ...compiled, parameters: sources.map((i) => args[i]) })).rows[0];
}
