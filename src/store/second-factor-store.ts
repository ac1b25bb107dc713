import type { Kysely } from 'kysely';
import type { MailMessage } from '../core/outbox-message.js';
import type { RequestMeta, Transport } from '../core/vocabulary.js';
import { enqueue, EventLog } from './event-log.js';
import { deletePasskeys, hasPasskey, passkeyFactorRows, usePasskey, type PasskeyUse } from './passkey-store.js';
import { insertSession } from './rows.js';
import type { Database } from './schema.js';
import type { NewSession } from './store.js';
import { inTransaction, type Executor } from './transaction.js';

/** What second factors a user has: what a sign-in must ask for, and which `methods` it offers. */
export interface SecondFactors {
  /** a confirmed authenticator app */
  totp: boolean;
  /** recovery codes not used yet */
  recoveryCodes: number;
  passkeys: boolean;
}

/** A user's authenticator app as stored: confirmed, or still being set up. */
export interface StoredTotp {
  secretSealed: string;
  createdAt: Date;
  confirmedAt: Date | null;
}

/** A sign-in answered `mfa_required`, as written. */
export interface NewMfaLogin {
  userId: string;
  id: string;
  transport: Transport;
  now: Date;
  expiresAt: Date;
}

/**
 * A second-factor code that checked out, and how using it is recorded: the newest step it is
 * the code of (accepted only if no later or equal step was accepted before), or the stored
 * forms a recovery code may have (the current secret's, and the previous one's while it changes).
 */
export type CodeUse = { kind: 'totp'; step: number } | { kind: 'recovery_code'; hashes: string[] } | PasskeyUse;

/**
 * What became of a code's use: `done`; `wrong` (the step was already used, or the recovery
 * code: a replay, nothing written); `gone` (what it was for, the pending sign-in or the
 * session, ended meanwhile: nothing written, the code not spent).
 */
export type CodeOutcome = 'done' | 'wrong' | 'gone';

/** Rolls a transaction back from inside it, with the outcome to report. */
class Abort extends Error {
  constructor(readonly outcome: CodeOutcome) {
    super(outcome);
  }
}

/**
 * All the SQL of second factors (SPEC §8): authenticator apps, recovery codes, the pending
 * sign-ins of mfaTokens, and re-authentication's update of a session. Every statement names
 * the user id first (one shard on a distributed engine), and every "at most once" is a
 * conditional update decided by the database: a TOTP step (`last_step < $step`), a recovery
 * code (`used_at is null`), a pending sign-in (deleted by the request that finishes it), so
 * racing requests, on one node or many, cannot both succeed.
 */
export class SecondFactorStore {
  constructor(readonly db: Kysely<Database>, readonly events = new EventLog()) {}

  // ---- what a user has ----------------------------------------------------------

  /** The user's second factors, in one round trip. */
  async secondFactors(userId: string): Promise<SecondFactors> {
    const row = await this.db
      .selectNoFrom((eb) => [
        eb.selectFrom('totp_factors').select('confirmed_at').where('user_id', '=', userId).as('totp'),
        eb
          .selectFrom('recovery_codes')
          .select(eb.fn.countAll<string | number | bigint>().as('n'))
          .where('user_id', '=', userId)
          .where('used_at', 'is', null)
          .as('codes'),
      ])
      .executeTakeFirstOrThrow();
    return { totp: row.totp != null, recoveryCodes: Number(row.codes ?? 0), passkeys: await this.hasPasskeys(userId) };
  }

  /**
   * Whether the user has a passkey (passkey-store.ts). A passkey with user verification is a
   * second factor by itself, so once this is true a password sign-in asks for a second factor,
   * offers `passkey` among its methods, and changing factors needs re-authentication with one.
   */
  async hasPasskeys(userId: string): Promise<boolean> {
    return hasPasskey(this.db, userId);
  }

  /** The user's authenticator app, confirmed or being set up; undefined if none. */
  async findTotp(userId: string): Promise<StoredTotp | undefined> {
    const row = await this.db
      .selectFrom('totp_factors')
      .select(['secret_sealed', 'created_at', 'confirmed_at'])
      .where('user_id', '=', userId)
      .executeTakeFirst();
    return row && { secretSealed: row.secret_sealed, createdAt: row.created_at, confirmedAt: row.confirmed_at };
  }

  // ---- enrolment ------------------------------------------------------------------

  /**
   * Stores a new secret being set up, replacing one not confirmed yet. False, and nothing
   * written, when the user has a confirmed one.
   */
  async startTotpSetup(userId: string, secretSealed: string, now: Date): Promise<boolean> {
    const row = await this.db
      .insertInto('totp_factors')
      .values({ user_id: userId, secret_sealed: secretSealed, created_at: now, confirmed_at: null })
      .onConflict((oc) =>
        oc.column('user_id').doUpdateSet({ secret_sealed: secretSealed, created_at: now }).where('totp_factors.confirmed_at', 'is', null),
      )
      .returning('user_id')
      .executeTakeFirst();
    return row !== undefined;
  }

  /**
   * Confirms the secret being set up with a code of `step`, and in the same transaction replaces
   * the recovery codes with `recoveryHashes` and records `mfa_enabled`. Only the secret the code
   * was checked against (a setup started again meanwhile is not confirmed by the old one's code),
   * only if not confirmed yet, and only if the step is newer than any accepted before. False, and
   * nothing written, otherwise.
   */
  async confirmTotp(
    userId: string, secretSealed: string, step: number, recoveryHashes: readonly string[], now: Date, meta: RequestMeta,
  ): Promise<boolean> {
    return inTransaction(this.db, async (trx) => {
      const row = await trx
        .updateTable('totp_factors')
        .set({ confirmed_at: now, last_step: step })
        .where('user_id', '=', userId)
        .where('confirmed_at', 'is', null)
        .where('secret_sealed', '=', secretSealed)
        .where('last_step', '<', step)
        .returning('user_id')
        .executeTakeFirst();
      if (!row) return false;
      await writeRecoveryCodes(trx, userId, recoveryHashes, now);
      await this.events.record(trx, userId, null, 'mfa_enabled', meta, now);
      return true;
    });
  }

  /**
   * Removes the user's authenticator app (confirmed or not), its recovery codes and pending
   * sign-ins, recording `mfa_disabled` if it was confirmed, in one transaction. False if there
   * was none.
   */
  async disableTotp(userId: string, sessionId: string, now: Date, meta: RequestMeta): Promise<boolean> {
    return inTransaction(this.db, async (trx) => {
      const removed = await deleteSecondFactors(trx, userId, { passkeys: false });
      if (removed.totp === 'none') return false;
      if (removed.totp === 'confirmed') await this.events.record(trx, userId, sessionId, 'mfa_disabled', meta, now);
      return true;
    });
  }

  /** Replaces every recovery code of the user, used or not, with `hashes`, in one transaction. */
  async replaceRecoveryCodes(userId: string, hashes: readonly string[], now: Date): Promise<void> {
    await inTransaction(this.db, (trx) => writeRecoveryCodes(trx, userId, hashes, now));
  }

  // ---- sign-in with a second factor ----------------------------------------------------

  /** Writes a pending sign-in, and forgets the user's expired ones (so they never pile up). */
  async createMfaLogin(login: NewMfaLogin): Promise<void> {
    await this.db.deleteFrom('mfa_logins').where('user_id', '=', login.userId).where('expires_at', '<=', login.now).execute();
    await this.db
      .insertInto('mfa_logins')
      .values({ user_id: login.userId, id: login.id, transport: login.transport, created_at: login.now, expires_at: login.expiresAt })
      .execute();
  }

  /**
   * Counts one attempt at a pending sign-in before its code is checked (so parallel guesses
   * cannot all slip past the limit): only on the transport it began on, unexpired, and while it
   * has had fewer than `maxFailures`. The attempt's number (1…maxFailures), or undefined when
   * there is no such pending sign-in: finished, expired, spent, another transport, or none.
   */
  async countMfaAttempt(userId: string, id: string, transport: Transport, now: Date, maxFailures: number): Promise<number | undefined> {
    const row = await this.db
      .updateTable('mfa_logins')
      .set((eb) => ({ failures: eb('failures', '+', 1) }))
      .where('user_id', '=', userId)
      .where('id', '=', id)
      .where('transport', '=', transport)
      .where('expires_at', '>', now)
      .where('failures', '<', maxFailures)
      .returning('failures')
      .executeTakeFirst();
    return row?.failures;
  }

  /**
   * Finishes a pending sign-in, in one transaction: uses the code (`wrong` if it was used
   * already), ends the pending sign-in (`gone` if another request finished it first, or it
   * expired), creates the session with `login_succeeded`, and `recovery_code_used` for a
   * recovery code. Nothing is written unless all of it is.
   */
  async completeMfaLogin(login: { userId: string; id: string }, use: CodeUse, session: NewSession, meta: RequestMeta): Promise<CodeOutcome> {
    return outcomeOf(inTransaction(this.db, async (trx) => {
      if (!(await useCode(trx, login.userId, use, session.now))) throw new Abort('wrong');
      const pending = await trx
        .deleteFrom('mfa_logins')
        .where('user_id', '=', login.userId)
        .where('id', '=', login.id)
        .where('expires_at', '>', session.now)
        .returning('id')
        .executeTakeFirst();
      if (!pending) throw new Abort('gone');
      await insertSession(trx, session, meta);
      await this.events.record(trx, login.userId, session.id, 'login_succeeded', meta, session.now);
      if (use.kind === 'recovery_code') await this.events.record(trx, login.userId, session.id, 'recovery_code_used', meta, session.now);
    }));
  }

  // ---- re-authentication ---------------------------------------------------------------

  /**
   * Sets an active session's `auth_time` to `now` and its `amr`, after using `use` (a code) if
   * given, in one transaction: `wrong` if the code was used already, `gone` if the session is
   * no longer active (nothing written, the code not spent).
   */
  async reauthenticate(userId: string, sessionId: string, amr: readonly string[], now: Date, meta: RequestMeta, use?: CodeUse): Promise<CodeOutcome> {
    return outcomeOf(inTransaction(this.db, async (trx) => {
      if (use && !(await useCode(trx, userId, use, now))) throw new Abort('wrong');
      const row = await trx
        .updateTable('sessions')
        .set({ auth_time: now, amr: [...amr] })
        .where('user_id', '=', userId)
        .where('id', '=', sessionId)
        .where('revoked_at', 'is', null)
        .where('expires_at', '>', now)
        .where('absolute_expires_at', '>', now)
        .returning('id')
        .executeTakeFirst();
      if (!row) throw new Abort('gone');
      if (use?.kind === 'recovery_code') await this.events.record(trx, userId, sessionId, 'recovery_code_used', meta, now);
    }));
  }

  // ---- wrong codes ---------------------------------------------------------------------

  /**
   * Records `mfa_failed` (a wrong code, or the attempt that went past the per-account budget).
   * With `locked` (that attempt), also mails the user `mfa_locked` when email features are on,
   * in the same transaction: it goes whatever NOTIFY says, since whoever is trying knows the password.
   */
  async recordCodeFailure(userId: string, sessionId: string | null, meta: RequestMeta, now: Date, locked = false): Promise<void> {
    const mail = locked && this.events.policy.mail;
    if (!mail && !this.events.writesMore('mfa_failed')) return this.events.record(this.db, userId, sessionId, 'mfa_failed', meta, now);
    await inTransaction(this.db, async (trx) => {
      await this.events.record(trx, userId, sessionId, 'mfa_failed', meta, now);
      if (!mail) return;
      const user = await trx.selectFrom('users').select(['email', 'name']).where('id', '=', userId).executeTakeFirst();
      if (!user) return;
      const message: MailMessage = {
        kind: 'mail', template: 'mfa_locked', to: user.email, name: user.name,
        event: { type: 'mfa_failed', at: now.toISOString(), ip: meta.ip, userAgent: meta.userAgent },
      };
      await enqueue(trx, userId, message, now);
    });
  }

  // ---- TESSERA_SECRET rotation -----------------------------------------------------------

  /**
   * For `tessera secrets rotate`: offers every sealed TOTP secret to `reseal` (with its user id)
   * and stores what it returns; undefined leaves the row as it is. A row is written only if it
   * still holds what was read, so a concurrent setup is never overwritten.
   */
  async resealTotpSecrets(reseal: (sealed: string, userId: string) => string | undefined): Promise<{ rows: number; resealed: number }> {
    const rows = await this.db.selectFrom('totp_factors').select(['user_id', 'secret_sealed']).orderBy('user_id').execute();
    let resealed = 0;
    for (const row of rows) {
      const next = reseal(row.secret_sealed, row.user_id);
      if (next === undefined) continue;
      const result = await this.db
        .updateTable('totp_factors')
        .set({ secret_sealed: next })
        .where('user_id', '=', row.user_id)
        .where('secret_sealed', '=', row.secret_sealed)
        .executeTakeFirst();
      if (result.numUpdatedRows > 0n) resealed++;
    }
    return { rows: rows.length, resealed };
  }
}

/** A second factor as operators see it (`GET /admin/users/:id`). */
export interface FactorRow {
  kind: 'totp' | 'recovery_codes' | 'passkey';
  id: string;
  name: string | null;
  createdAt: Date;
}

/**
 * A user's second factors for operators: the confirmed authenticator app, and the set of
 * recovery codes (named by how many are left), and each passkey (by its name).
 */
export async function listFactorRows(db: Executor, userId: string): Promise<FactorRow[]> {
  const [totp, codes] = await Promise.all([
    db.selectFrom('totp_factors').select('confirmed_at').where('user_id', '=', userId).where('confirmed_at', 'is not', null).executeTakeFirst(),
    db
      .selectFrom('recovery_codes')
      .select((eb) => [
        eb.fn.countAll<string | number | bigint>().as('total'),
        eb.fn.count<string | number | bigint>('used_at').as('used'),
        eb.fn.min('created_at').as('created_at'),
      ])
      .where('user_id', '=', userId)
      .executeTakeFirst(),
  ]);
  const rows: FactorRow[] = [];
  if (totp?.confirmed_at) rows.push({ kind: 'totp', id: 'totp', name: null, createdAt: totp.confirmed_at });
  const total = Number(codes?.total ?? 0);
  if (total > 0 && codes?.created_at) {
    const left = total - Number(codes.used ?? 0);
    rows.push({ kind: 'recovery_codes', id: 'recovery_codes', name: `${left} of ${total} unused`, createdAt: new Date(codes.created_at) });
  }
  rows.push(...(await passkeyFactorRows(db, userId)));
  return rows;
}

/**
 * Deletes every second factor of a user, in the caller's transaction: the authenticator app,
 * the recovery codes and the pending sign-ins (their mfaTokens stop working). What the app was
 * (`confirmed`, `pending` or `none`) and how many factors went (the app, and the set of
 * recovery codes, count one each; each passkey counts one).
 */
export async function deleteSecondFactors(
  db: Executor, userId: string, options: { passkeys?: boolean } = {},
): Promise<{ totp: 'confirmed' | 'pending' | 'none'; passkeys: number; removed: number }> {
  const totp = await db.deleteFrom('totp_factors').where('user_id', '=', userId).returning('confirmed_at').executeTakeFirst();
  const codes = await db.deleteFrom('recovery_codes').where('user_id', '=', userId).executeTakeFirst();
  await db.deleteFrom('mfa_logins').where('user_id', '=', userId).execute();
  // Passkeys go with every factor (an operator's reset, an unverified account's recovery), not
  // when the user turns the authenticator app off (DELETE /auth/mfa/totp passes passkeys: false).
  const passkeys = options.passkeys === false ? 0 : await deletePasskeys(db, userId);
  return {
    totp: !totp ? 'none' : totp.confirmed_at ? 'confirmed' : 'pending',
    passkeys,
    removed: (totp?.confirmed_at ? 1 : 0) + (codes.numDeletedRows > 0n ? 1 : 0) + passkeys,
  };
}

async function writeRecoveryCodes(db: Executor, userId: string, hashes: readonly string[], now: Date): Promise<void> {
  await db.deleteFrom('recovery_codes').where('user_id', '=', userId).execute();
  if (hashes.length === 0) return;
  await db.insertInto('recovery_codes').values(hashes.map((code_hash) => ({ user_id: userId, code_hash, created_at: now }))).execute();
}

/**
 * Uses a code, once: a TOTP step newer than the last accepted one (of a confirmed app), or an
 * unused recovery code. One conditional update each: of requests racing with the same code,
 * the database lets one through.
 */
async function useCode(db: Executor, userId: string, use: CodeUse, now: Date): Promise<boolean> {
  if (use.kind === 'passkey') return usePasskey(db, userId, use, now);
  if (use.kind === 'totp') {
    const row = await db
      .updateTable('totp_factors')
      .set({ last_step: use.step })
      .where('user_id', '=', userId)
      .where('confirmed_at', 'is not', null)
      .where('last_step', '<', use.step)
      .returning('user_id')
      .executeTakeFirst();
    return row !== undefined;
  }
  if (use.hashes.length === 0) return false;
  const row = await db
    .updateTable('recovery_codes')
    .set({ used_at: now })
    .where('user_id', '=', userId)
    .where('code_hash', 'in', use.hashes)
    .where('used_at', 'is', null)
    .returning('code_hash')
    .executeTakeFirst();
  return row !== undefined;
}

async function outcomeOf(transaction: Promise<void>): Promise<CodeOutcome> {
  try {
    await transaction;
    return 'done';
  } catch (error) {
    if (error instanceof Abort) return error.outcome;
    throw error;
  }
}
