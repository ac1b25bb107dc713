import type { Kysely } from 'kysely';
import type { RequestMeta } from '../core/vocabulary.js';
import { EventLog } from './event-log.js';
import { insertSession } from './rows.js';
import type { Database } from './schema.js';
import type { NewSession } from './store.js';
import { inTransaction, type Executor } from './transaction.js';

/** A passkey as its owner sees it (`GET /auth/passkeys`). */
export interface PasskeySummary {
  /** the credential id, base64url */
  id: string;
  name: string;
  createdAt: Date;
  lastUsedAt: Date | null;
}

/** What verifying an assertion needs of a stored passkey. */
export interface StoredPasskey {
  id: string;
  publicKey: Uint8Array;
  /** the sign count last accepted; 0: the authenticator keeps none */
  counter: number;
  transports: string[];
}

/** A credential a registration verified, to be stored. */
export interface NewPasskey {
  id: string;
  publicKey: Uint8Array;
  counter: number;
  transports: string[];
  name: string;
}

/** A WebAuthn challenge being used: its random id and expiry (src/core/webauthn-challenge.ts). */
export interface ChallengeUse {
  id: string;
  expiresAt: Date;
}

/**
 * An assertion that verified, and how using it is recorded: its challenge written as used (for
 * this user), and the passkey's counter moved to `counter`, only forward (0 stays 0: "no
 * counter"). Both conditional, decided by the database: a replay or a cloned authenticator
 * racing the genuine one cannot both pass.
 */
export interface PasskeyUse {
  kind: 'passkey';
  credentialId: string;
  counter: number;
  challenge: ChallengeUse;
}

/**
 * All the SQL of passkeys (SPEC §8). Every statement on a passkey or a used challenge names the
 * user id first (one shard); the purge of expired challenges is the one that spans users.
 */
export class PasskeyStore {
  constructor(readonly db: Kysely<Database>, readonly events = new EventLog()) {}

  /** The user's passkeys, oldest first. */
  async listPasskeys(userId: string): Promise<PasskeySummary[]> {
    const rows = await this.db
      .selectFrom('passkeys')
      .select(['id', 'name', 'created_at', 'last_used_at'])
      .where('user_id', '=', userId)
      .orderBy('created_at')
      .orderBy('id')
      .execute();
    return rows.map((r) => ({ id: r.id, name: r.name, createdAt: r.created_at, lastUsedAt: r.last_used_at }));
  }

  /** The credential ids and transports of the user's passkeys (a registration's excludeCredentials). */
  async credentialsOf(userId: string): Promise<{ id: string; transports: string[] }[]> {
    return this.db.selectFrom('passkeys').select(['id', 'transports']).where('user_id', '=', userId).orderBy('id').execute();
  }

  /** One passkey of the user, by credential id; undefined if there is none (unknown, or removed). */
  async findPasskey(userId: string, id: string): Promise<StoredPasskey | undefined> {
    const row = await this.db
      .selectFrom('passkeys')
      .select(['id', 'public_key', 'counter', 'transports'])
      .where('user_id', '=', userId)
      .where('id', '=', id)
      .executeTakeFirst();
    return row && { id: row.id, publicKey: new Uint8Array(row.public_key), counter: Number(row.counter), transports: row.transports };
  }

  /**
   * Stores a registered passkey, using its challenge, with `passkey_added`, in one transaction:
   * `replayed` (the challenge was used already) or `exists` (the user has this credential)
   * and nothing written otherwise.
   */
  async addPasskey(
    userId: string, passkey: NewPasskey, challenge: ChallengeUse, sessionId: string, now: Date, meta: RequestMeta,
  ): Promise<'done' | 'replayed' | 'exists'> {
    return outcomeOf(inTransaction(this.db, async (trx) => {
      if (!(await useChallenge(trx, userId, challenge))) throw new Abort('replayed');
      const row = await trx
        .insertInto('passkeys')
        .values({
          user_id: userId, id: passkey.id, public_key: Buffer.from(passkey.publicKey), counter: passkey.counter, transports: passkey.transports,
          name: passkey.name, created_at: now, last_used_at: null,
        })
        .onConflict((oc) => oc.columns(['user_id', 'id']).doNothing())
        .returning('id')
        .executeTakeFirst();
      if (!row) throw new Abort('exists');
      await this.events.record(trx, userId, sessionId, 'passkey_added', meta, now);
    }));
  }

  /** Removes one passkey of the user, with `passkey_removed`; false if there was none. */
  async removePasskey(userId: string, id: string, sessionId: string, now: Date, meta: RequestMeta): Promise<boolean> {
    return inTransaction(this.db, async (trx) => {
      const row = await trx.deleteFrom('passkeys').where('user_id', '=', userId).where('id', '=', id).returning('id').executeTakeFirst();
      if (!row) return false;
      await this.events.record(trx, userId, sessionId, 'passkey_removed', meta, now);
      return true;
    });
  }

  /**
   * A sign-in with a passkey alone, in one transaction: the assertion used (`wrong` if its
   * challenge was used already or its counter did not move forward, nothing written), the
   * session created with `login_succeeded`.
   */
  async completePasskeyLogin(userId: string, use: PasskeyUse, session: NewSession, meta: RequestMeta): Promise<'done' | 'wrong'> {
    return outcomeOf(inTransaction(this.db, async (trx) => {
      if (!(await usePasskey(trx, userId, use, session.now))) throw new Abort('wrong');
      await insertSession(trx, session, meta);
      await this.events.record(trx, userId, session.id, 'login_succeeded', meta, session.now);
    }));
  }

  /** Forgets used challenges that have expired (they fail their expiry check anyway); how many went. */
  async purgeUsedChallenges(now: Date): Promise<number> {
    const result = await this.db.deleteFrom('used_challenges').where('expires_at', '<=', now).executeTakeFirst();
    return Number(result.numDeletedRows);
  }
}

/** Whether the user has a passkey (a second factor by itself). */
export async function hasPasskey(db: Executor, userId: string): Promise<boolean> {
  const row = await db.selectFrom('passkeys').select('id').where('user_id', '=', userId).limit(1).executeTakeFirst();
  return row !== undefined;
}

/** The user's passkeys as operators see them, among the second factors (`GET /admin/users/:id`). */
export async function passkeyFactorRows(db: Executor, userId: string): Promise<{ kind: 'passkey'; id: string; name: string; createdAt: Date }[]> {
  const rows = await db.selectFrom('passkeys').select(['id', 'name', 'created_at']).where('user_id', '=', userId).orderBy('created_at').execute();
  return rows.map((r) => ({ kind: 'passkey' as const, id: r.id, name: r.name, createdAt: r.created_at }));
}

/** Deletes every passkey of the user, in the caller's transaction; how many. */
export async function deletePasskeys(db: Executor, userId: string): Promise<number> {
  const result = await db.deleteFrom('passkeys').where('user_id', '=', userId).executeTakeFirst();
  return Number(result.numDeletedRows);
}

/**
 * Uses an assertion, in the caller's transaction: writes its challenge as used (false on a
 * replay), then moves the passkey's counter forward (false if the passkey is gone, or the
 * counter did not increase: a cloned authenticator). A counter of 0 after 0 passes: the
 * authenticator keeps none. The caller rolls back on false.
 */
export async function usePasskey(db: Executor, userId: string, use: PasskeyUse, now: Date): Promise<boolean> {
  if (!(await useChallenge(db, userId, use.challenge))) return false;
  let update = db
    .updateTable('passkeys')
    .set({ counter: use.counter, last_used_at: now })
    .where('user_id', '=', userId)
    .where('id', '=', use.credentialId);
  update = use.counter === 0 ? update.where('counter', '=', 0) : update.where('counter', '<', use.counter);
  const row = await update.returning('id').executeTakeFirst();
  return row !== undefined;
}

async function useChallenge(db: Executor, userId: string, challenge: ChallengeUse): Promise<boolean> {
  const row = await db
    .insertInto('used_challenges')
    .values({ user_id: userId, id: challenge.id, expires_at: challenge.expiresAt })
    .onConflict((oc) => oc.columns(['user_id', 'id']).doNothing())
    .returning('id')
    .executeTakeFirst();
  return row !== undefined;
}

/** Rolls a transaction back from inside it, with the outcome to report. */
class Abort<T extends string> extends Error {
  constructor(readonly outcome: T) {
    super(outcome);
  }
}

async function outcomeOf<T extends string>(transaction: Promise<void>): Promise<T | 'done'> {
  try {
    await transaction;
    return 'done';
  } catch (error) {
    if (error instanceof Abort) return error.outcome as T;
    throw error;
  }
}
