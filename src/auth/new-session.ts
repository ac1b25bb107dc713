import { randomUUID } from 'node:crypto';
import type { Config } from '../core/config.js';
import { newSessionSalt } from '../core/refresh-token.js';
import type { NewSession } from '../store/store.js';

export type SessionLifetimes = Pick<Config, 'refreshTokenTtl' | 'sessionMaxAge'>;

/** A new password session of `userId` at `now`: idle expiry never past the absolute one. */
export function newSession(lifetimes: SessionLifetimes, userId: string, now: Date): Required<NewSession> {
  const absoluteExpiresAt = new Date(now.getTime() + lifetimes.sessionMaxAge * 1000);
  const expiresAt = new Date(Math.min(now.getTime() + lifetimes.refreshTokenTtl * 1000, absoluteExpiresAt.getTime()));
  return { id: randomUUID(), userId, salt: newSessionSalt(), now, expiresAt, absoluteExpiresAt, amr: ['pwd'] };
}
