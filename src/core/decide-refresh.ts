/**
 * The rotation rules (docs/sessions.md) as one pure function: no I/O, no clock of its
 * own. The store reads a session, asks this function what to do, and applies
 * the answer with a conditional update, so a racing request that changed the
 * session first makes the update miss and the decision is taken again.
 */

import type { RevokeReason } from './vocabulary.js';

/** What the decision needs to know of a session. */
export interface SessionState {
  generation: number;
  /** The generation that was presented to obtain the current one; null before the first rotation. */
  parentGeneration: number | null;
  /** When `generation` last changed; null before the first rotation. */
  rotatedAt: Date | null;
  /** Idle expiry, never later than `absoluteExpiresAt`. */
  expiresAt: Date;
  absoluteExpiresAt: Date;
  revokedAt: Date | null;
  revokedReason: RevokeReason | null;
  userDisabled: boolean;
}

export interface RefreshPolicy {
  /** REFRESH_REUSE_GRACE, in milliseconds. */
  graceMs: number;
  /** REFRESH_TOKEN_TTL (the idle lifetime), in milliseconds. */
  idleTtlMs: number;
}

/** The state a successful refresh leaves behind. */
export interface NextState {
  generation: number;
  parentGeneration: number | null;
  rotatedAt: Date | null;
  expiresAt: Date;
  lastUsedAt: Date;
}

export type RefreshDecision =
  /** Rule 1: the current token; it is exchanged for the next generation. */
  | { action: 'rotate'; next: NextState }
  /** Rule 2: the parent token within the grace window; the current token is returned again. */
  | { action: 'replay'; next: NextState }
  /** Rule 3: the parent token after the grace window; the response was lost, a new generation is issued. */
  | { action: 'reissue'; next: NextState }
  /** Rule 4: an orphan or older token; the whole session is revoked. */
  | { action: 'revoke'; code: 'refresh_token_reused' }
  /** Rules 5 and 6: refused, nothing changes. */
  | { action: 'reject'; code: 'invalid_refresh_token' | 'session_expired' | 'refresh_token_reused' };

/**
 * Decides what presenting a genuine (MAC-verified) refresh token of generation
 * `g` does to `session` at `now`. Forged tokens never get here: a bad MAC is
 * refused before the session is considered, so it can never change state.
 *
 * @example
 * const decision = decideRefresh(session, 7, new Date(), { graceMs: 10_000, idleTtlMs: 7 * 86_400_000 });
 * if (decision.action === 'rotate') store.apply(decision.next);
 */
export function decideRefresh(session: SessionState, g: number, now: Date, policy: RefreshPolicy): RefreshDecision {
  // Rule 5: a generation never issued. Only possible with the secret, so it is refused, not treated as theft.
  if (!Number.isSafeInteger(g) || g < 0 || g > session.generation) {
    return { action: 'reject', code: 'invalid_refresh_token' };
  }

  // Rule 6: every holder of a token of a session ended for reuse learns why.
  if (session.revokedAt !== null) {
    return { action: 'reject', code: session.revokedReason === 'reuse' ? 'refresh_token_reused' : 'invalid_refresh_token' };
  }
  if (session.userDisabled) return { action: 'reject', code: 'invalid_refresh_token' };
  const t = now.getTime();
  if (t >= session.expiresAt.getTime() || t >= session.absoluteExpiresAt.getTime()) {
    return { action: 'reject', code: 'session_expired' };
  }

  // Every successful refresh extends the idle lifetime, never past the absolute one.
  const expiresAt = new Date(Math.min(t + policy.idleTtlMs, session.absoluteExpiresAt.getTime()));

  if (g === session.generation) {
    return {
      action: 'rotate',
      next: { generation: g + 1, parentGeneration: g, rotatedAt: now, expiresAt, lastUsedAt: now },
    };
  }

  if (g === session.parentGeneration) {
    const sinceRotation = session.rotatedAt === null ? Infinity : t - session.rotatedAt.getTime();
    // A clock step backwards (negative interval) counts as inside the window: replaying is the harmless answer.
    if (sinceRotation <= policy.graceMs) {
      return {
        action: 'replay',
        next: { ...pick(session), expiresAt, lastUsedAt: now },
      };
    }
    return {
      action: 'reissue',
      next: { generation: session.generation + 1, parentGeneration: g, rotatedAt: now, expiresAt, lastUsedAt: now },
    };
  }

  // Rule 4: an orphan (between parent and current) or anything older than the parent.
  return { action: 'revoke', code: 'refresh_token_reused' };
}

function pick(session: SessionState) {
  return { generation: session.generation, parentGeneration: session.parentGeneration, rotatedAt: session.rotatedAt };
}
