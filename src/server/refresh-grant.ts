import type { Config } from '../core/config.js';
import { decideRefresh, type NextState, type RefreshPolicy } from '../core/decide-refresh.js';
import { TesseraError } from '../core/errors.js';
import type { ParsedRefreshToken } from '../core/refresh-token.js';
import type { RefreshableSession, RequestMeta } from '../store/store.js';
import type { Tessera } from './context.js';

/** Bounded: each retry means another request moved the session first, which can only happen a few times in a row. */
const MAX_ATTEMPTS = 8;

export interface Recognised {
  parsed: ParsedRefreshToken;
  session: RefreshableSession;
}

export interface RefreshOutcome {
  session: RefreshableSession;
  generation: number;
  expiresAt: Date;
  now: Date;
}

/**
 * Recognises a refresh token and returns the session it belongs to, or throws
 * `invalid_refresh_token` without touching anything: malformed, unknown session
 * and bad MAC all look the same to the caller.
 */
export async function recognise(tessera: Tessera, token: unknown): Promise<Recognised> {
  const parsed = tessera.refreshTokens.parse(token);
  const session = parsed && (await tessera.store.findSessionForRefresh(parsed.sessionId));
  if (!parsed || !session || !tessera.refreshTokens.verify(parsed, session.salt)) {
    throw new TesseraError('invalid_refresh_token');
  }
  return { parsed, session };
}

/** `recognise`, or undefined for anything that is not a genuine token of a known session. */
export async function tryRecognise(tessera: Tessera, token: unknown): Promise<Recognised | undefined> {
  return token === undefined ? undefined : recognise(tessera, token).catch(unlessTesseraError);
}

export function unlessTesseraError(error: unknown): undefined {
  if (error instanceof TesseraError) return undefined;
  throw error;
}

export function refreshPolicy(config: Config): RefreshPolicy {
  return { graceMs: config.refreshReuseGrace * 1000, idleTtlMs: config.refreshTokenTtl * 1000 };
}

/**
 * SPEC §3 for a genuine token wherever one is presented (refresh, logout): returns the
 * state a rotate, replay or reissue would leave, or throws the rule's 401. An orphan or
 * older token revokes the session and records the theft first; if someone else ended the
 * session in the meantime, the decision is taken again on what is there now.
 */
export async function judge(
  tessera: Tessera, recognised: Recognised, meta: RequestMeta,
): Promise<{ session: RefreshableSession; next: NextState; now: Date }> {
  let { session } = recognised;
  for (;;) {
    const now = tessera.clock();
    const decision = decideRefresh(session, recognised.parsed.generation, now, refreshPolicy(tessera.config));
    if (decision.action === 'reject') throw new TesseraError(decision.code);
    if (decision.action !== 'revoke') return { session, next: decision.next, now };
    if (await tessera.store.revokeForReuse(session.id, now, meta)) throw new TesseraError(decision.code);
    session = await reread(tessera, session.id);
  }
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

/**
 * The refresh grant (SPEC §3): one primary-key read, one pure decision, one
 * conditional update. If a racing request changed the session between the read
 * and the update, the update misses and the decision is taken again on fresh state,
 * so two requests can never both rotate, and the loser sees a replay.
 */
export async function refreshGrant(tessera: Tessera, token: unknown, meta: RequestMeta): Promise<RefreshOutcome> {
  const recognised = await recognise(tessera, token);
  await spendSessionBudget(tessera, recognised.session.id);
  for (let attempt = 1; ; attempt++) {
    const { session, next, now } = await judge(tessera, recognised, meta);
    if (await tessera.store.applyRefresh(session.id, session, next, meta)) {
      return { session, generation: next.generation, expiresAt: next.expiresAt, now };
    }
    if (attempt >= MAX_ATTEMPTS) {
      throw new TesseraError('service_unavailable', { detail: 'The session is busy; try again', retryAfter: 1 });
    }
    recognised.session = await reread(tessera, session.id);
  }
}

async function reread(tessera: Tessera, sessionId: string): Promise<RefreshableSession> {
  const fresh = await tessera.store.findSessionForRefresh(sessionId);
  if (!fresh) throw new TesseraError('invalid_refresh_token');
  return fresh;
}
