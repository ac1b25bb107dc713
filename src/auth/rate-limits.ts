import type { RateLimitConfig } from '../core/config.js';
import { TesseraError } from '../core/errors.js';
import { NO_METER, type AuthMeter } from './meter.js';
import type { WindowCounter } from './window-counter.js';

/**
 * Every rate limit, in one vocabulary: a **budget** is a number of events per
 * fixed window, spent on a **key**. `RATE_LIMITS=off` turns all of them off here, and only here.
 *
 * Per-IP budgets count every request and are enforced by the HTTP layer before the body
 * is read (`perIp`). The others are spent by the use cases, because only they know the key
 * and the right moment:
 *
 * | budget             | keyed by     | counted                                   | why then |
 * |--------------------|--------------|-------------------------------------------|----------|
 * | `login_account_ip` | email and IP | before the password check; success clears | guesses sent in parallel cannot all pass a check made before they count |
 * | `login_account`    | email        | before the check; success refunds its one | past it, only known clients may keep trying (the real user is not locked out) |
 * | `password_change`  | user id      | before the check; success clears          | a stolen access token must not become a password-guessing oracle |
 * | `refresh_session`  | session id   | after the MAC check                       | the session id is in every access token: forged tokens must not spend a victim's budget |
 * | `admin_ip`         | IP           | every admin API request, before the key or token check; success refunds | guesses sent in parallel cannot all pass a check made before they count |
 * | `reset_account`    | email        | every forgot-password request; silent      | 5 reset mails an hour: a mailbox cannot be flooded |
 * | `forgot_ip`        | IP           | every forgot-password request; silent      | one client cannot probe or flood many accounts |
 * | `verification`     | address      | every verification or email-change mail; silent | an address cannot be flooded with links |
 * | `mfa_account`      | user id      | every second-factor code, before the check; a right one refunds its own | 20 wrong codes a day: 6-digit codes stay unguessable, and a correct password never resets it |
 *
 * The last three are "silent": past them the request still answers 202 and sends nothing,
 * so the answer never tells whether an account exists.
 */
export type KeyedBudget =
  'login_account_ip' | 'login_account' | 'password_change' | 'refresh_session' | 'reset_account' | 'forgot_ip' | 'verification'
  | 'admin_ip' | 'mfa_account';

/** Budgets per client IP, enforced at the HTTP edge. */
export type IpBudget = 'register' | 'login' | 'refresh';

export interface Budget {
  max: number;
  windowSeconds: number;
}

/** One count against a budget: over it or not, and when its window ends. */
export interface Spent {
  exceeded: boolean;
  retryAfter: number;
  /** This event is the first over the budget in its window: the one moment to tell someone, once. */
  crossed: boolean;
}

const WITHIN: Spent = Object.freeze({ exceeded: false, retryAfter: 0, crossed: false });

export class RateLimits {
  readonly #keyed: Record<KeyedBudget, Budget>;
  readonly #perIp: Record<IpBudget, Budget>;

  constructor(
    readonly enabled: boolean,
    limits: RateLimitConfig,
    private readonly counter: WindowCounter,
    /** Told of every refusal, per-IP ones included, by budget. */
    private readonly meter: Pick<AuthMeter, 'rateLimited'> = NO_METER,
  ) {
    const budget = (max: number, windowSeconds: number): Budget => Object.freeze({ max, windowSeconds });
    this.#keyed = Object.freeze({
      login_account_ip: budget(limits.loginFailuresPerAccountIp, limits.loginFailuresPerAccountIpWindow),
      login_account: budget(limits.loginFailuresPerAccount, limits.loginFailuresPerAccountWindow),
      // Password checks by a signed-in user get the same allowance as sign-in guesses from one place.
      password_change: budget(limits.loginFailuresPerAccountIp, limits.loginFailuresPerAccountIpWindow),
      refresh_session: budget(limits.refreshPerSession, limits.refreshPerSessionWindow),
      reset_account: budget(limits.passwordResetPerAccount, limits.passwordResetPerAccountWindow),
      forgot_ip: budget(limits.forgotPasswordPerIp, limits.forgotPasswordPerIpWindow),
      verification: budget(limits.verificationPerRecipient, limits.verificationPerRecipientWindow),
      admin_ip: budget(limits.adminFailuresPerIp, limits.adminFailuresPerIpWindow),
      mfa_account: budget(limits.mfaFailuresPerAccount, limits.mfaFailuresPerAccountWindow),
    });
    this.#perIp = Object.freeze({
      register: budget(limits.registerPerIp, limits.registerPerIpWindow),
      login: budget(limits.loginAttemptsPerIp, limits.loginAttemptsPerIpWindow),
      refresh: budget(limits.refreshPerIp, limits.refreshPerIpWindow),
    });
  }

  /** The per-IP budget the HTTP layer enforces for a route, or undefined when limits are off. */
  perIp(budget: IpBudget): Budget | undefined {
    return this.enabled ? this.#perIp[budget] : undefined;
  }

  /** Counts one event against `budget` for `key`. */
  async spend(budget: KeyedBudget, key: string): Promise<Spent> {
    if (!this.enabled) return WITHIN;
    const { max, windowSeconds } = this.#keyed[budget];
    const window = await this.counter.increment(`${budget}:${key}`, windowSeconds);
    return { exceeded: window.count > max, retryAfter: window.resetIn, crossed: window.count === max + 1 };
  }

  /** Counts one event and refuses it with 429 `rate_limited` when over the budget. */
  async take(budget: KeyedBudget, key: string): Promise<void> {
    const spent = await this.spend(budget, key);
    if (spent.exceeded) throw this.refuse(budget, spent.retryAfter);
  }

  /**
   * The 429 that refuses an event over `budget`, counted for the metrics: `take` throws it, and
   * so do a caller that decides after `spend` and the per-IP limits of the HTTP layer.
   */
  refuse(budget: KeyedBudget | IpBudget, retryAfter: number): TesseraError {
    this.meter.rateLimited(budget);
    return rateLimited(retryAfter);
  }

  /** Gives one event back (an attempt counted up front that succeeded). */
  async refund(budget: KeyedBudget, key: string): Promise<void> {
    if (this.enabled) await this.counter.decrement(`${budget}:${key}`);
  }

  /** Forgets every event of `key` in the current window. */
  async clear(budget: KeyedBudget, key: string): Promise<void> {
    if (this.enabled) await this.counter.reset(`${budget}:${key}`);
  }

  close(): Promise<void> {
    return this.counter.close();
  }
}

/** Every 429 is `rate_limited` with the seconds until the window ends. */
export function rateLimited(retryAfter: number): TesseraError {
  return new TesseraError('rate_limited', { retryAfter: Math.max(1, Math.ceil(retryAfter)) });
}
