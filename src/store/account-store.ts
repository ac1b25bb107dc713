import type { Kysely } from 'kysely';
import type { LinkPurpose } from '../core/link-token.js';
import type { MailMessage } from '../core/outbox-message.js';
import type { RequestMeta, SecurityEventType } from '../core/vocabulary.js';
import { enqueue, EventLog } from './event-log.js';
import { revokeWhere } from './rows.js';
import { deleteSecondFactors } from './second-factor-store.js';
import type { Database } from './schema.js';
import { inTransaction, type Executor } from './transaction.js';

/** An outstanding link, as stored: never its token. */
export interface LinkRequest {
  userId: string;
  purpose: LinkPurpose;
  requestId: string;
  email: string;
  now: Date;
  expiresAt: Date;
}

/** Everything stored about a user, for `GET /auth/me/export`. */
export interface AccountExport {
  user: Record<string, unknown>;
  sessions: Record<string, unknown>[];
  events: Record<string, unknown>[];
  knownDevices: Record<string, unknown>[];
  pendingLinks: Record<string, unknown>[];
}

/** A link's mail, as the use case writes it: the store adds the link's inputs. */
export type LinkMail = Omit<MailMessage, 'kind' | 'link'>;

/**
 * Writes a link request (replacing an earlier one of its purpose) and queues its mail, in the
 * caller's transaction: sign-up writes its verification link with the new account.
 */
export async function writeLinkRequest(db: Executor, request: LinkRequest, mail: LinkMail): Promise<void> {
  const { userId, purpose, requestId, email, now, expiresAt } = request;
  await db
    .insertInto('account_tokens')
    .values({ user_id: userId, purpose, request_id: requestId, email, created_at: now, expires_at: expiresAt })
    .onConflict((oc) => oc.columns(['user_id', 'purpose']).doUpdateSet({ request_id: requestId, email, created_at: now, expires_at: expiresAt }))
    .execute();
  await enqueue(db, userId, { kind: 'mail', ...mail, link: { purpose, userId, requestId, email, expiresAt: expiresAt.toISOString() } }, now);
}

/** Rolls a transaction back from inside it: the change found its precondition gone. */
class Abort extends Error {}

/**
 * The SQL of accounts (SPEC §7): links sent by mail, and what using one does, each in one
 * transaction with its event and mails; known devices; profile, export and deletion. Every
 * statement names the user id first: one shard on a distributed engine. An email's owner
 * (`user_emails`) is the one row keyed otherwise, by the address.
 */
export class AccountStore {
  constructor(readonly db: Kysely<Database>, readonly events = new EventLog()) {}

  /**
   * Records a link request and queues its mail (and `alsoMail`, such as the notice to an old
   * address), with `event` if any, in one transaction. The newer request replaces any earlier one of
   * the same purpose: its link stops working.
   */
  async requestLink(
    request: LinkRequest, mail: LinkMail, event: SecurityEventType | null, meta: RequestMeta, alsoMail?: Omit<MailMessage, 'kind'>,
  ): Promise<void> {
    await inTransaction(this.db, async (trx) => {
      await writeLinkRequest(trx, request, mail);
      if (alsoMail) await enqueue(trx, request.userId, { kind: 'mail', ...alsoMail }, request.now);
      if (event) await this.events.record(trx, request.userId, null, event, meta, request.now);
    });
  }

  /** The outstanding link of a purpose, if any: what a token's MAC is checked against. */
  async findLink(userId: string, purpose: LinkPurpose): Promise<{ requestId: string; email: string; expiresAt: Date } | undefined> {
    const row = await this.db
      .selectFrom('account_tokens')
      .select(['request_id', 'email', 'expires_at'])
      .where('user_id', '=', userId)
      .where('purpose', '=', purpose)
      .executeTakeFirst();
    return row && { requestId: row.request_id, email: row.email, expiresAt: row.expires_at };
  }

  /** Marks the address verified, if the link is still the outstanding one; false if not. */
  async verifyEmail(userId: string, requestId: string, email: string, now: Date, meta: RequestMeta): Promise<boolean> {
    return this.#usingLink(userId, 'verify_email', requestId, email, now, async (trx) => {
      const row = await trx
        .updateTable('users')
        .set({ email_verified_at: now })
        .where('id', '=', userId)
        .where('email', '=', email)
        .returning('id')
        .executeTakeFirst();
      if (!row) throw new Abort();
      await this.events.record(trx, userId, null, 'email_verified', meta, now);
    });
  }

  /**
   * Sets a new password through a reset link, marks the address verified and ends every
   * session, in one transaction: a refresh racing with it either commits first and is ended
   * here, or finds its session revoked (its update is conditional on `revoked_at is null`).
   * Every other outstanding link of the user stops working. Returns false if the link is not
   * the outstanding one, or the account's address changed since it was sent.
   */
  async resetPassword(
    userId: string, requestId: string, email: string, passwordHash: string, now: Date, meta: RequestMeta,
  ): Promise<{ wasVerified: boolean } | undefined> {
    let wasVerified = false;
    const done = await this.#usingLink(userId, 'reset_password', requestId, email, now, async (trx) => {
      const before = await trx.selectFrom('users').select('email_verified_at').where('id', '=', userId).where('email', '=', email).executeTakeFirst();
      if (!before) throw new Abort();
      wasVerified = before.email_verified_at !== null;
      await trx
        .updateTable('users')
        .set({ password_hash: passwordHash, email_verified_at: before.email_verified_at ?? now })
        .where('id', '=', userId)
        .execute();
      await revokeWhere(trx, userId, null, 'password_reset', now);
      await trx.deleteFrom('account_tokens').where('user_id', '=', userId).execute();
      // An account pre-registered by someone else is handed back clean: its second factors
      // go with the reset (the owner of the address had never proven it before).
      if (!wasVerified) {
        const removed = await deleteSecondFactors(trx, userId);
        if (removed.totp === 'confirmed') await this.events.record(trx, userId, null, 'mfa_disabled', meta, now);
        if (removed.passkeys > 0) await this.events.record(trx, userId, null, 'passkey_removed', meta, now);
      }
      await this.events.record(trx, userId, null, 'password_reset', meta, now);
    });
    return done ? { wasVerified } : undefined;
  }

  /**
   * Moves the account to the address the link was sent to: its `user_emails` row first (the
   * unique key; `'taken'` if someone has it now), then the user; the old address is released
   * and told. Sessions stay. Every other outstanding link stops working.
   */
  async changeEmail(userId: string, requestId: string, newEmail: string, now: Date, meta: RequestMeta): Promise<'changed' | 'taken' | 'invalid'> {
    try {
      const done = await this.#usingLink(userId, 'change_email', requestId, newEmail, now, async (trx) => {
        const user = await trx.selectFrom('users').select('email').where('id', '=', userId).executeTakeFirst();
        if (!user) throw new Abort();
        await trx.insertInto('user_emails').values({ email: newEmail, user_id: userId }).execute();
        // Recorded before the address moves: the notice goes to the old address.
        await this.events.record(trx, userId, null, 'email_changed', meta, now, undefined, { newEmail });
        await trx.deleteFrom('user_emails').where('email', '=', user.email).where('user_id', '=', userId).execute();
        await trx.updateTable('users').set({ email: newEmail, email_verified_at: now }).where('id', '=', userId).execute();
        await trx.deleteFrom('account_tokens').where('user_id', '=', userId).execute();
      });
      return done ? 'changed' : 'invalid';
    } catch (error) {
      if ((error as { code?: string }).code === '23505') return 'taken';
      throw error;
    }
  }

  /**
   * Remembers a device the user signed in from; true if it was not known before while
   * another one was (a sign-in from a new device; a first device is no news). `formerly`:
   * what the same device was called under TESSERA_SECRET_PREVIOUS, so changing the secret
   * does not make every device look new.
   */
  async rememberDevice(userId: string, device: string, now: Date, formerly?: string): Promise<boolean> {
    const inserted = await this.db
      .insertInto('known_devices')
      .values({ user_id: userId, device, created_at: now, last_seen_at: now })
      .onConflict((oc) => oc.columns(['user_id', 'device']).doNothing())
      .returning('device')
      .executeTakeFirst();
    if (!inserted) {
      await this.db.updateTable('known_devices').set({ last_seen_at: now }).where('user_id', '=', userId).where('device', '=', device).execute();
      return false;
    }
    const others = await this.db
      .selectFrom('known_devices')
      .select('device')
      .where('user_id', '=', userId)
      .where('device', '!=', device)
      .limit(formerly === undefined ? 1 : 1000)
      .execute();
    return others.length > 0 && !others.some((row) => row.device === formerly);
  }

  /** Sets the display name; false if there is no such user. */
  async updateName(userId: string, name: string, now: Date, meta: RequestMeta): Promise<boolean> {
    return inTransaction(this.db, async (trx) => {
      const row = await trx.updateTable('users').set({ name }).where('id', '=', userId).returning('id').executeTakeFirst();
      if (row) await this.events.record(trx, userId, null, 'profile_updated', meta, now);
      return row !== undefined;
    });
  }

  /**
   * Deletes an account: its sessions end (revoked, so the revocation feed carries them, and
   * stripped of their IP and user agent; the purge removes them later), its user row, email,
   * devices and second factors go, pending mails to it are dropped, and its events stay without
   * the IP and user agent. `account_deleted` is recorded, naming `detail`'s actor when an admin did it.
   * False if there is no such user.
   */
  async deleteUser(userId: string, now: Date, detail?: Record<string, unknown>): Promise<boolean> {
    return inTransaction(this.db, async (trx) => {
      const user = await trx.deleteFrom('users').where('id', '=', userId).returning('email').executeTakeFirst();
      if (!user) return false;
      await trx.deleteFrom('user_emails').where('email', '=', user.email).where('user_id', '=', userId).execute();
      await revokeWhere(trx, userId, null, 'account_deleted', now);
      await trx.updateTable('sessions').set({ ip: null, user_agent: null }).where('user_id', '=', userId).execute();
      await trx.updateTable('security_events').set({ ip: null, user_agent: null }).where('user_id', '=', userId).execute();
      await trx.deleteFrom('account_tokens').where('user_id', '=', userId).execute();
      await trx.deleteFrom('known_devices').where('user_id', '=', userId).execute();
      // its authenticator app's sealed secret, recovery codes' HMACs, pending sign-ins (and passkeys)
      await deleteSecondFactors(trx, userId);
      await trx.deleteFrom('outbox').where('user_id', '=', userId).where('kind', '=', 'mail').execute();
      await this.events.record(trx, userId, null, 'account_deleted', { ip: null, userAgent: null }, now, detail);
      return true;
    });
  }

  /** Everything stored about a user (never a password hash, a session salt or a link's request id), or undefined. */
  async exportUser(userId: string): Promise<AccountExport | undefined> {
    const user = await this.db
      .selectFrom('users')
      .select(['id', 'email', 'name', 'created_at', 'roles', 'org_id', 'metadata', 'email_verified_at', 'disabled_at'])
      .where('id', '=', userId)
      .executeTakeFirst();
    if (!user) return undefined;
    const [sessions, events, knownDevices, pendingLinks] = await Promise.all([
      this.db
        .selectFrom('sessions')
        .select(['id', 'created_at', 'last_used_at', 'expires_at', 'absolute_expires_at', 'revoked_at', 'revoked_reason', 'ip', 'user_agent', 'amr'])
        .where('user_id', '=', userId)
        .orderBy('created_at')
        .execute(),
      this.db
        .selectFrom('security_events')
        .select(['type', 'created_at', 'session_id', 'ip', 'user_agent'])
        .where('user_id', '=', userId)
        .orderBy('created_at')
        .orderBy('id')
        .execute(),
      this.db.selectFrom('known_devices').select(['created_at', 'last_seen_at']).where('user_id', '=', userId).orderBy('created_at').execute(),
      this.db.selectFrom('account_tokens').select(['purpose', 'email', 'created_at', 'expires_at']).where('user_id', '=', userId).execute(),
    ]);
    return { user: camel(user), sessions: sessions.map(camel), events: events.map(camel), knownDevices: knownDevices.map(camel), pendingLinks: pendingLinks.map(camel) };
  }

  /**
   * Runs `effect` in one transaction with the link's use: the outstanding request of this
   * purpose, for this address, unexpired, is deleted (so a link works once, even when two
   * requests race with it). False, and nothing written, if there was none or `effect` aborted.
   */
  async #usingLink(
    userId: string, purpose: LinkPurpose, requestId: string, email: string, now: Date,
    effect: (trx: Executor) => Promise<void>,
  ): Promise<boolean> {
    try {
      return await inTransaction(this.db, async (trx) => {
        const used = await trx
          .deleteFrom('account_tokens')
          .where('user_id', '=', userId)
          .where('purpose', '=', purpose)
          .where('request_id', '=', requestId)
          .where('email', '=', email)
          .where('expires_at', '>', now)
          .returning('request_id')
          .executeTakeFirst();
        if (!used) throw new Abort();
        await effect(trx);
        return true;
      });
    } catch (error) {
      if (error instanceof Abort) return false;
      throw error;
    }
  }
}

const camel = (row: object): Record<string, unknown> =>
  Object.fromEntries(Object.entries(row).map(([k, v]) => [k.replace(/_([a-z])/g, (_m, c: string) => c.toUpperCase()), v]));
