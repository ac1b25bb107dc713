import { TesseraError } from '../core/errors.js';
import type { RefreshTokenCodec } from '../core/refresh-token.js';
import type { RequestMeta } from '../core/vocabulary.js';
import type { Store } from '../store/store.js';
import { issueTokens, type IssueDeps, type Tokens } from './issue-tokens.js';
import type { AuthMeter } from './meter.js';
import type { RateLimits } from './rate-limits.js';
import { judge, recognise, reread, type JudgeDeps, type RecogniseDeps } from './recognise-refresh-token.js';

/** Bounded: each retry means another request moved the session first, which can only happen a few times in a row. */
const MAX_ATTEMPTS = 8;

export interface RefreshGrantDeps extends RecogniseDeps, JudgeDeps, IssueDeps {
  refreshTokens: Pick<RefreshTokenCodec, 'parse' | 'verify' | 'issue'>;
  store: Pick<Store, 'findSessionForRefresh' | 'revokeForReuse' | 'applyRefresh'>;
  limits: Pick<RateLimits, 'take'>;
  /** Told the rule of each refresh and of each reuse detected; none: nothing is counted. */
  meter?: Pick<AuthMeter, 'refreshed' | 'reuseDetected'>;
}

/**
 * The refresh grant: one primary-key read, one pure decision, one
 * conditional update. If a racing request changed the session between the read
 * and the update, the update misses and the decision is taken again on fresh state,
 * so two requests can never both rotate, and the loser sees a replay.
 */
export async function refreshGrant(deps: RefreshGrantDeps, token: unknown, meta: RequestMeta): Promise<Tokens> {
  const recognised = await recognise(deps, token);
  await deps.limits.take('refresh_session', recognised.session.id);
  for (let attempt = 1; ; attempt++) {
    const { session, next, now, rule } = await judge(deps, recognised, meta);
    if (await deps.store.applyRefresh(session.user.id, session.id, session, next, meta)) {
      deps.meter?.refreshed(rule);
      return issueTokens(deps, { session, generation: next.generation, expiresAt: next.expiresAt, now });
    }
    if (attempt >= MAX_ATTEMPTS) {
      throw new TesseraError('service_unavailable', { detail: 'The session is busy; try again', retryAfter: 1 });
    }
    recognised.session = await reread(deps, session);
  }
}
