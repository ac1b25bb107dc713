import { decideRefresh, type NextState, type RefreshPolicy } from '../core/decide-refresh.js';
import { TesseraError } from '../core/errors.js';
import type { ParsedRefreshToken, RefreshTokenCodec } from '../core/refresh-token.js';
import type { RequestMeta } from '../core/vocabulary.js';
import type { RefreshableSession, Store } from '../store/store.js';
import type { AuthMeter, RefreshRule } from './meter.js';

/**
 * The two steps every use case that is handed a refresh token takes (refresh, sign-out, and
 * sign-in or register replacing a browser's session): recognise it as a genuine token of a
 * known session, then judge it by the rotation rules (decide-refresh.ts).
 */

export interface Recognised {
  parsed: ParsedRefreshToken;
  session: RefreshableSession;
}

export interface RecogniseDeps {
  store: Pick<Store, 'findSessionForRefresh'>;
  refreshTokens: Pick<RefreshTokenCodec, 'parse' | 'verify'>;
}

export interface JudgeDeps {
  store: Pick<Store, 'findSessionForRefresh' | 'revokeForReuse'>;
  refreshPolicy: RefreshPolicy;
  clock: () => Date;
  /** Told of each session ended for reuse; none: nothing is counted. */
  meter?: Pick<AuthMeter, 'reuseDetected'>;
}

/**
 * Rule 4's refusal. The caller hears `refresh_token_reused`, exactly as for any token of a
 * session already ended for reuse (rule 6); the metrics tell the two apart: this request ended it.
 */
export class ReuseDetected extends TesseraError {
  constructor() {
    super('refresh_token_reused');
  }
}

/**
 * Recognises a refresh token and returns the session it belongs to, or throws
 * `invalid_refresh_token` without touching anything: malformed, unknown session
 * and bad MAC all look the same to the caller.
 */
export async function recognise(deps: RecogniseDeps, token: unknown): Promise<Recognised> {
  const parsed = deps.refreshTokens.parse(token);
  const session = parsed && (await deps.store.findSessionForRefresh(parsed.userId, parsed.sessionId));
  if (!parsed || !session || !deps.refreshTokens.verify(parsed, session.salt)) {
    throw new TesseraError('invalid_refresh_token');
  }
  return { parsed, session };
}

/** `recognise`, or undefined for anything that is not a genuine token of a known session. */
export async function tryRecognise(deps: RecogniseDeps, token: unknown): Promise<Recognised | undefined> {
  return token === undefined ? undefined : recognise(deps, token).catch(unlessTesseraError);
}

export function unlessTesseraError(error: unknown): undefined {
  if (error instanceof TesseraError) return undefined;
  throw error;
}

/**
 * The rotation rules for a genuine token wherever one is presented (refresh, logout): returns the
 * state a rotate, replay or reissue would leave, or throws the rule's 401. An orphan or
 * older token revokes the session and records the theft first; if someone else ended the
 * session in the meantime, the decision is taken again on what is there now.
 */
export async function judge(
  deps: JudgeDeps, recognised: Recognised, meta: RequestMeta,
): Promise<{ session: RefreshableSession; next: NextState; now: Date; rule: RefreshRule }> {
  let { session } = recognised;
  for (;;) {
    const now = deps.clock();
    const decision = decideRefresh(session, recognised.parsed.generation, now, deps.refreshPolicy);
    if (decision.action === 'reject') throw new TesseraError(decision.code);
    if (decision.action !== 'revoke') return { session, next: decision.next, now, rule: decision.action };
    if (await deps.store.revokeForReuse(session.user.id, session.id, now, meta)) {
      deps.meter?.reuseDetected();
      throw new ReuseDetected();
    }
    session = await reread(deps, session);
  }
}

export async function reread(deps: { store: Pick<Store, 'findSessionForRefresh'> }, session: RefreshableSession): Promise<RefreshableSession> {
  const fresh = await deps.store.findSessionForRefresh(session.user.id, session.id);
  if (!fresh) throw new TesseraError('invalid_refresh_token');
  return fresh;
}
