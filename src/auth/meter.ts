import type { RefreshDecision } from '../core/decide-refresh.js';
import type { IpBudget, KeyedBudget } from './rate-limits.js';

/** The rule a successful refresh took (SPEC §3): 1 `rotate`, 2 `replay`, 3 `reissue`. */
export type RefreshRule = Extract<RefreshDecision, { next: unknown }>['action'];

/**
 * What the use cases report for the server's metrics (src/server/metrics.ts), so that no
 * metrics library reaches src/auth. The few events only a use case can see: everything the
 * HTTP answer tells (a login's outcome, a refusal's code, a 503) is counted at the edge.
 * Each method is called once per event, on the refresh path too: it must be cheap and never throw.
 */
export interface AuthMeter {
  /** A refresh succeeded under `rule`. */
  refreshed(rule: RefreshRule): void;
  /** An orphan or older refresh token (rule 4) has just ended its session, on refresh or on sign-out. */
  reuseDetected(): void;
  /** A request was refused with 429 by `budget`. */
  rateLimited(budget: KeyedBudget | IpBudget): void;
}

/** The meter when metrics are off, and the default of every use case that takes one. */
export const NO_METER: AuthMeter = Object.freeze({ refreshed() {}, reuseDetected() {}, rateLimited() {} });
