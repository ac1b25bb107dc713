import type { Config } from '../core/config.js';
import { decideRefresh, type RefreshPolicy } from '../core/decide-refresh.js';
import { TesseraError } from '../core/errors.js';
import type { ParsedRefreshToken } from '../core/refresh-token.js';
import type { RefreshableSession, RequestMeta } from '../store/store.js';
import type { Tessera } from './context.js';

/** Bounded: each retry means another request moved the session first, which can only happen a few times in a row. */
const MAX_ATTEMPTS = 8;

export type RefreshOutcome = { session: RefreshableSession; generation: number; expiresAt: Date; now: Date };

/**
 * Recognises a refresh token and returns the session it belongs to, or throws
 * `invalid_refresh_token` without touching anything: malformed, unknown session
 * and bad MAC all look the same to the caller.
 */
export async function recognise(tessera: Tessera, token: unknown): Promise<{ parsed: ParsedRefreshToken; session: RefreshableSession }> {
  const parsed = tessera.refreshTokens.parse(token);
  const session = parsed && (await tessera.store.findSessionForRefresh(parsed.sessionId));
  if (!parsed || !session || !tessera.refreshTokens.verify(parsed, session.salt)) {
    throw new TesseraError('invalid_refresh_token');
  }
  return { parsed, session };
}

/**
 * Refreshes per session per window (SPEC §4). Counted only for genuine tokens, after
 * the MAC check: the session id is visible in every access token, and forged tokens
 * must not be able to spend a victim's budget.
 */
async function spendSessionBudget(tessera: Tessera, sessionId: string): Promise<void> {
  const { config, counters } = tessera;
  if (!config.rateLimitsEnabled) return;
  const { refreshPerSession, refreshPerSessionWindow } = config.rateLimits;
  const window = await counters.increment(`refresh:${sessionId}`, refreshPerSessionWindow);
  if (window.count > refreshPerSession) throw new TesseraError('rate_limited', { retryAfter: window.resetIn });
}

export function refreshPolicy(config: Config): RefreshPolicy {
  return { graceMs: config.refreshReuseGrace * 1000, idleTtlMs: config.refreshTokenTtl * 1000 };
}

/**
 * The refresh grant (SPEC §3): one primary-key read, one pure decision, one
 * conditional update. If a racing request changed the session between the read
 * and the update, the update misses and the decision is taken again on fresh state,
 * so two requests can never both rotate, and the loser sees a replay.
 */
export async function refreshGrant(tessera: Tessera, token: unknown, meta: RequestMeta): Promise<RefreshOutcome> {
  const { store, clock } = tessera;
  let { parsed, session } = await recognise(tessera, token);
  await spendSessionBudget(tessera, session.id);
  const policy = refreshPolicy(tessera.config);

  for (let attempt = 1; ; attempt++) {
    const now = clock();
    const decision = decideRefresh(session, parsed.generation, now, policy);
    if (decision.action === 'reject') throw new TesseraError(decision.code);
    if (decision.action === 'revoke') {
      await store.revokeForReuse(session.id, now, meta);
      throw new TesseraError(decision.code);
    }
    if (await store.applyRefresh(session.id, session, decision.next, meta)) {
      return { session, generation: decision.next.generation, expiresAt: decision.next.expiresAt, now };
    }
    if (attempt >= MAX_ATTEMPTS) {
      throw new TesseraError('service_unavailable', { detail: 'The session is busy; try again', retryAfter: 1 });
    }
    const fresh = await store.findSessionForRefresh(session.id);
    if (!fresh) throw new TesseraError('invalid_refresh_token');
    session = fresh;
  }
}
