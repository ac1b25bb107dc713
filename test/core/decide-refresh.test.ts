import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import {
  decideRefresh,
  type RefreshDecision,
  type RefreshPolicy,
  type SessionState,
} from '../../src/core/decide-refresh.js';
import type { RevokeReason } from '../../src/core/vocabulary.js';
import { RefreshTokenCodec } from '../../src/core/refresh-token.js';

const SEC = 1_000;
const MIN = 60 * SEC;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;

const T0 = new Date('2026-03-01T12:00:00.000Z');
const at = (ms: number) => new Date(T0.getTime() + ms);

const POLICY: RefreshPolicy = { graceMs: 10 * SEC, idleTtlMs: 7 * DAY };
const GRACE = POLICY.graceMs;

/** A live session at generation 5 that was rotated (from 4) at T0. */
function session(overrides: Partial<SessionState> = {}): SessionState {
  return {
    generation: 5,
    parentGeneration: 4,
    rotatedAt: T0,
    expiresAt: at(7 * DAY),
    absoluteExpiresAt: at(30 * DAY),
    revokedAt: null,
    revokedReason: null,
    userDisabled: false,
    ...overrides,
  };
}

/** A session straight after login: no rotation yet. */
function freshSession(overrides: Partial<SessionState> = {}): SessionState {
  return session({ generation: 0, parentGeneration: null, rotatedAt: null, ...overrides });
}

/** What the store does with a successful decision. */
function applyNext(s: SessionState, d: RefreshDecision): SessionState {
  if (d.action === 'rotate' || d.action === 'replay' || d.action === 'reissue') {
    const { generation, parentGeneration, rotatedAt, expiresAt } = d.next;
    return { ...s, generation, parentGeneration, rotatedAt, expiresAt };
  }
  throw new Error(`not a success: ${JSON.stringify(d)}`);
}

function expectSuccess(d: RefreshDecision, action: 'rotate' | 'replay' | 'reissue') {
  expect(d.action).toBe(action);
  if (d.action !== action) throw new Error('unreachable');
  return d.next;
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object' && !(o instanceof Date)) {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}

function snapshot(s: SessionState) {
  return JSON.stringify(s);
}

describe('decideRefresh — rule 1: rotate', () => {
  it('exchanges the current generation for the next one', () => {
    const now = at(1 * HOUR);
    const next = expectSuccess(decideRefresh(session(), 5, now, POLICY), 'rotate');
    expect(next.generation).toBe(6);
    expect(next.parentGeneration).toBe(5);
    expect(next.rotatedAt?.getTime()).toBe(now.getTime());
    expect(next.lastUsedAt.getTime()).toBe(now.getTime());
    expect(next.expiresAt.getTime()).toBe(now.getTime() + POLICY.idleTtlMs);
  });

  it('rotates the current token whether or not the grace window of the previous rotation is open', () => {
    for (const dt of [0, 1, GRACE - 1, GRACE, GRACE + 1, HOUR]) {
      const next = expectSuccess(decideRefresh(session(), 5, at(dt), POLICY), 'rotate');
      expect(next).toMatchObject({ generation: 6, parentGeneration: 5 });
      expect(next.rotatedAt?.getTime()).toBe(at(dt).getTime());
    }
  });

  it('does not mutate the session it is given', () => {
    const s = deepFreeze(session());
    const before = snapshot(s);
    for (const g of [0, 3, 4, 5, 6]) {
      for (const dt of [0, GRACE, GRACE + 1]) decideRefresh(s, g, at(dt), POLICY);
    }
    expect(snapshot(s)).toBe(before);
  });

  it('handles generations far from zero (up to the 32-bit range of the token)', () => {
    const big = 2 ** 32 - 2;
    const s = session({ generation: big, parentGeneration: big - 1 });
    expect(expectSuccess(decideRefresh(s, big, at(HOUR), POLICY), 'rotate').generation).toBe(big + 1);
    expect(decideRefresh(s, big - 2, at(HOUR), POLICY)).toEqual({ action: 'revoke', code: 'refresh_token_reused' });
  });

  it('two concurrent requests with the current token: the second, re-decided on the new state, replays (never a second rotation)', () => {
    const s = session();
    const now = at(HOUR);
    const first = decideRefresh(s, 5, now, POLICY);
    const afterFirst = applyNext(s, first);
    // The store's conditional update makes the loser re-read and re-decide.
    const second = expectSuccess(decideRefresh(afterFirst, 5, at(HOUR + 50), POLICY), 'replay');
    expect(second.generation).toBe(6);
    expect(applyNext(afterFirst, decideRefresh(afterFirst, 5, at(HOUR + 50), POLICY)).generation).toBe(6);
  });
});

describe('decideRefresh — rule 2: replay within the grace window', () => {
  it('returns the current generation unchanged for the parent token just after a rotation', () => {
    const now = at(3 * SEC);
    const next = expectSuccess(decideRefresh(session(), 4, now, POLICY), 'replay');
    expect(next.generation).toBe(5);
    expect(next.parentGeneration).toBe(4);
    expect(next.rotatedAt?.getTime()).toBe(T0.getTime());
    expect(next.lastUsedAt.getTime()).toBe(now.getTime());
    expect(next.expiresAt.getTime()).toBe(now.getTime() + POLICY.idleTtlMs);
  });

  it('replays at the very instant of the rotation', () => {
    expect(expectSuccess(decideRefresh(session(), 4, T0, POLICY), 'replay').generation).toBe(5);
  });

  it('replays exactly at the grace boundary (inclusive) and reissues one millisecond later', () => {
    expect(expectSuccess(decideRefresh(session(), 4, at(GRACE), POLICY), 'replay').generation).toBe(5);
    expect(expectSuccess(decideRefresh(session(), 4, at(GRACE + 1), POLICY), 'reissue').generation).toBe(6);
  });

  it('with a zero grace window, replays only at the instant of the rotation', () => {
    const policy = { ...POLICY, graceMs: 0 };
    expect(decideRefresh(session(), 4, T0, policy).action).toBe('replay');
    expect(decideRefresh(session(), 4, at(1), policy).action).toBe('reissue');
  });

  it('replay does not move rotatedAt: a stream of replays cannot keep the window open', () => {
    let s = session();
    for (let dt = 0; dt <= GRACE; dt += SEC) {
      const d = decideRefresh(s, 4, at(dt), POLICY);
      const next = expectSuccess(d, 'replay');
      expect(next.rotatedAt?.getTime()).toBe(T0.getTime());
      expect(next.generation).toBe(5);
      s = applyNext(s, d);
    }
    expect(s.rotatedAt?.getTime()).toBe(T0.getTime());
    // Measured from the rotation, not from the last replay.
    expect(decideRefresh(s, 4, at(GRACE + 1), POLICY).action).toBe('reissue');
  });

  it('many tabs presenting the parent converge on one token', () => {
    const codec = new RefreshTokenCodec('k'.repeat(48));
    const id = '0d9e6a3c-1f2b-4c5d-8e9f-a0b1c2d3e4f5';
    const userId = '6f1d2c3b-4a5e-4f60-8a7b-9c0d1e2f3a4b';
    const salt = Buffer.alloc(16, 7);
    const s = session();
    const current = codec.issue(userId, id, salt, s.generation);
    const tokens = new Set<string>();
    for (let i = 0; i < 20; i++) {
      const next = expectSuccess(decideRefresh(s, 4, at(i * 500), POLICY), 'replay');
      tokens.add(codec.issue(userId, id, salt, next.generation));
    }
    expect([...tokens]).toEqual([current]);
  });

  it('a clock step backwards (now before rotatedAt) counts as inside the window', () => {
    expect(expectSuccess(decideRefresh(session(), 4, at(-5 * SEC), POLICY), 'replay').generation).toBe(5);
  });

  it('extends the idle lifetime on replay', () => {
    const s = session({ expiresAt: at(1 * HOUR) });
    const next = expectSuccess(decideRefresh(s, 4, at(5 * SEC), POLICY), 'replay');
    expect(next.expiresAt.getTime()).toBe(at(5 * SEC).getTime() + POLICY.idleTtlMs);
  });
});

describe('decideRefresh — rule 3: reissue after the grace window', () => {
  it('issues a new generation whose parent is the presented one', () => {
    const now = at(GRACE + 1);
    const next = expectSuccess(decideRefresh(session(), 4, now, POLICY), 'reissue');
    expect(next.generation).toBe(6);
    expect(next.parentGeneration).toBe(4);
    expect(next.rotatedAt?.getTime()).toBe(now.getTime());
    expect(next.lastUsedAt.getTime()).toBe(now.getTime());
    expect(next.expiresAt.getTime()).toBe(now.getTime() + POLICY.idleTtlMs);
  });

  it('turns the skipped generation into an orphan that revokes the session', () => {
    const s = applyNext(session(), decideRefresh(session(), 4, at(HOUR), POLICY));
    expect(s).toMatchObject({ generation: 6, parentGeneration: 4 });
    // 5 (the response that was lost) is now an orphan.
    expect(decideRefresh(s, 5, at(HOUR + SEC), POLICY)).toEqual({ action: 'revoke', code: 'refresh_token_reused' });
    // The parent replays the new current token within the grace window of the reissue.
    expect(expectSuccess(decideRefresh(s, 4, at(HOUR + SEC), POLICY), 'replay').generation).toBe(6);
    // The new current token rotates.
    expect(expectSuccess(decideRefresh(s, 6, at(HOUR + SEC), POLICY), 'rotate').generation).toBe(7);
    // Older tokens still revoke.
    expect(decideRefresh(s, 3, at(HOUR + SEC), POLICY).action).toBe('revoke');
  });

  it('a second reissue makes every generation between parent and current an orphan', () => {
    let s = applyNext(session(), decideRefresh(session(), 4, at(HOUR), POLICY));
    s = applyNext(s, decideRefresh(s, 4, at(2 * HOUR), POLICY));
    expect(s).toMatchObject({ generation: 7, parentGeneration: 4 });
    expect(s.rotatedAt?.getTime()).toBe(at(2 * HOUR).getTime());
    for (const orphan of [5, 6]) {
      expect(decideRefresh(s, orphan, at(2 * HOUR + 1), POLICY)).toEqual({ action: 'revoke', code: 'refresh_token_reused' });
    }
    expect(decideRefresh(s, 7, at(2 * HOUR + 1), POLICY).action).toBe('rotate');
    expect(decideRefresh(s, 8, at(2 * HOUR + 1), POLICY)).toEqual({ action: 'reject', code: 'invalid_refresh_token' });
  });

  it('reissues when a parent is recorded but rotatedAt is not (no window to be inside of)', () => {
    const next = expectSuccess(decideRefresh(session({ rotatedAt: null }), 4, T0, POLICY), 'reissue');
    expect(next).toMatchObject({ generation: 6, parentGeneration: 4 });
  });
});

describe('decideRefresh — rule 4: reuse', () => {
  it('revokes for any generation older than the parent, inside or outside the grace window', () => {
    for (const g of [0, 1, 2, 3]) {
      for (const dt of [0, GRACE, GRACE + 1, DAY]) {
        expect(decideRefresh(session(), g, at(dt), POLICY)).toEqual({ action: 'revoke', code: 'refresh_token_reused' });
      }
    }
  });

  it('revokes for orphans (strictly between parent and current)', () => {
    const s = session({ generation: 9, parentGeneration: 5 });
    for (const g of [6, 7, 8]) {
      for (const dt of [0, GRACE, GRACE + 1]) {
        expect(decideRefresh(s, g, at(dt), POLICY)).toEqual({ action: 'revoke', code: 'refresh_token_reused' });
      }
    }
    expect(decideRefresh(s, 5, at(1), POLICY).action).toBe('replay');
    expect(decideRefresh(s, 9, at(1), POLICY).action).toBe('rotate');
  });

  it('the stolen-token scenario: thief rotates first, victim presents the old token, both are signed out', () => {
    let s = session();
    const d1 = decideRefresh(s, 5, at(HOUR), POLICY); // thief
    s = applyNext(s, d1);
    s = applyNext(s, decideRefresh(s, 6, at(2 * HOUR), POLICY)); // thief again
    // Victim presents 5 long after: older than parent 6.
    expect(decideRefresh(s, 5, at(3 * HOUR), POLICY)).toEqual({ action: 'revoke', code: 'refresh_token_reused' });
    s = { ...s, revokedAt: at(3 * HOUR), revokedReason: 'reuse' };
    // Now the thief's current token is refused too, with the reason.
    expect(decideRefresh(s, 7, at(3 * HOUR + 1), POLICY)).toEqual({ action: 'reject', code: 'refresh_token_reused' });
  });
});

describe('decideRefresh — rule 5: generation never issued', () => {
  it.each([6, 7, 100, 2 ** 31, 2 ** 32 - 1])('g = %d > generation → invalid_refresh_token', (g) => {
    expect(decideRefresh(session(), g, at(1), POLICY)).toEqual({ action: 'reject', code: 'invalid_refresh_token' });
  });

  it.each([-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, Number.MAX_SAFE_INTEGER + 2])(
    'g = %d (not a non-negative safe integer) → invalid_refresh_token',
    (g) => {
      expect(decideRefresh(session(), g, at(1), POLICY)).toEqual({ action: 'reject', code: 'invalid_refresh_token' });
    },
  );

  it('is decided before anything else, even on a session revoked for reuse, expired or of a disabled user', () => {
    // Such a token can only be minted with the secret, so it is treated as invalid rather than as "a token of the session".
    const cases: Partial<SessionState>[] = [
      { revokedAt: at(0), revokedReason: 'reuse' },
      { expiresAt: at(0) },
      { userDisabled: true },
    ];
    for (const c of cases) {
      expect(decideRefresh(session(c), 6, at(1), POLICY)).toEqual({ action: 'reject', code: 'invalid_refresh_token' });
    }
  });
});

describe('decideRefresh — rule 6: revoked, disabled, expired', () => {
  it('a session revoked for reuse answers refresh_token_reused to every genuine token', () => {
    const s = session({ revokedAt: at(1), revokedReason: 'reuse' });
    for (let g = 0; g <= 5; g++) {
      for (const dt of [1, GRACE, DAY, 60 * DAY]) {
        expect(decideRefresh(s, g, at(dt), POLICY)).toEqual({ action: 'reject', code: 'refresh_token_reused' });
      }
    }
  });

  it.each<RevokeReason>(['logout', 'revoked', 'password_changed', 'logout_others', 'logout_global'])(
    'a session revoked for %s answers invalid_refresh_token',
    (reason) => {
      const s = session({ revokedAt: at(1), revokedReason: reason });
      for (let g = 0; g <= 5; g++) {
        expect(decideRefresh(s, g, at(2), POLICY)).toEqual({ action: 'reject', code: 'invalid_refresh_token' });
      }
    },
  );

  it('a revoked session with no recorded reason answers invalid_refresh_token', () => {
    const s = session({ revokedAt: at(1), revokedReason: null });
    expect(decideRefresh(s, 5, at(2), POLICY)).toEqual({ action: 'reject', code: 'invalid_refresh_token' });
  });

  it('revocation for reuse is reported even once the session has also expired', () => {
    const s = session({ revokedAt: at(1), revokedReason: 'reuse', expiresAt: at(HOUR) });
    expect(decideRefresh(s, 5, at(2 * HOUR), POLICY)).toEqual({ action: 'reject', code: 'refresh_token_reused' });
    expect(decideRefresh(s, 5, at(31 * DAY), POLICY)).toEqual({ action: 'reject', code: 'refresh_token_reused' });
  });

  it('a disabled user: invalid_refresh_token for every token, and an orphan does not revoke', () => {
    const s = session({ userDisabled: true });
    for (let g = 0; g <= 5; g++) {
      for (const dt of [0, GRACE, HOUR]) {
        expect(decideRefresh(s, g, at(dt), POLICY)).toEqual({ action: 'reject', code: 'invalid_refresh_token' });
      }
    }
  });

  it('idle expiry: session_expired at and after expiresAt, rotate one millisecond before', () => {
    const s = session({ expiresAt: at(HOUR) });
    expect(decideRefresh(s, 5, at(HOUR - 1), POLICY).action).toBe('rotate');
    expect(decideRefresh(s, 5, at(HOUR), POLICY)).toEqual({ action: 'reject', code: 'session_expired' });
    expect(decideRefresh(s, 5, at(DAY), POLICY)).toEqual({ action: 'reject', code: 'session_expired' });
  });

  it('absolute expiry: session_expired at absoluteExpiresAt even if the idle expiry were later', () => {
    const s = session({ expiresAt: at(40 * DAY), absoluteExpiresAt: at(30 * DAY) });
    expect(decideRefresh(s, 5, at(30 * DAY - 1), POLICY).action).toBe('rotate');
    expect(decideRefresh(s, 5, at(30 * DAY), POLICY)).toEqual({ action: 'reject', code: 'session_expired' });
  });

  it('an expired session answers session_expired to every genuine token (no revoke, no replay)', () => {
    const s = session({ expiresAt: at(5 * SEC) });
    for (let g = 0; g <= 5; g++) {
      expect(decideRefresh(s, g, at(5 * SEC), POLICY)).toEqual({ action: 'reject', code: 'session_expired' });
    }
  });

  it('expiry is checked before the grace window: a replay inside the window of an expired session is refused', () => {
    const s = session({ expiresAt: at(2 * SEC) });
    expect(decideRefresh(s, 4, at(3 * SEC), POLICY)).toEqual({ action: 'reject', code: 'session_expired' });
  });

  it('a disabled user is reported as invalid_refresh_token, not session_expired, when both apply', () => {
    const s = session({ userDisabled: true, expiresAt: at(1) });
    expect(decideRefresh(s, 5, at(2), POLICY)).toEqual({ action: 'reject', code: 'invalid_refresh_token' });
  });
});

describe('decideRefresh — idle extension never past the absolute expiry', () => {
  const absolute = at(30 * DAY);
  const cases: [string, number, SessionState][] = [
    ['rotate', 5, session()],
    ['replay', 4, session()],
    ['reissue', 4, session()],
  ];

  for (const [action, g, base] of cases) {
    it(`${action}: expiresAt = now + idle TTL when that is before the absolute expiry`, () => {
      const rotatedAt = at(25 * DAY);
      const now = action === 'reissue' ? at(25 * DAY + HOUR) : at(25 * DAY + (action === 'replay' ? SEC : 0));
      const s = { ...base, rotatedAt, expiresAt: at(26 * DAY) };
      const policy = { ...POLICY, idleTtlMs: 2 * DAY };
      const next = expectSuccess(decideRefresh(s, g, now, policy), action as 'rotate');
      expect(next.expiresAt.getTime()).toBe(now.getTime() + 2 * DAY);
    });

    it(`${action}: expiresAt is clamped to the absolute expiry`, () => {
      const rotatedAt = at(28 * DAY);
      const now = action === 'reissue' ? at(28 * DAY + HOUR) : at(28 * DAY + (action === 'replay' ? SEC : 0));
      const s = { ...base, rotatedAt, expiresAt: at(29 * DAY) };
      const next = expectSuccess(decideRefresh(s, g, now, POLICY), action as 'rotate');
      expect(next.expiresAt.getTime()).toBe(absolute.getTime());
    });
  }

  it('exactly at the boundary (now + idle TTL == absolute) expiresAt is the absolute expiry', () => {
    const now = at(30 * DAY - POLICY.idleTtlMs);
    const s = session({ rotatedAt: now, expiresAt: at(30 * DAY - 1) });
    expect(expectSuccess(decideRefresh(s, 5, now, POLICY), 'rotate').expiresAt.getTime()).toBe(absolute.getTime());
  });

  it('one millisecond before the absolute expiry a refresh still succeeds and gets exactly that millisecond', () => {
    const now = at(30 * DAY - 1);
    const s = session({ expiresAt: absolute });
    const next = expectSuccess(decideRefresh(s, 5, now, POLICY), 'rotate');
    expect(next.expiresAt.getTime()).toBe(absolute.getTime());
    expect(decideRefresh(applyNext(s, decideRefresh(s, 5, now, POLICY)), 6, absolute, POLICY)).toEqual({
      action: 'reject',
      code: 'session_expired',
    });
  });
});

describe('decideRefresh — first use (no rotation yet)', () => {
  it('rotates generation 0 to 1 with parent 0', () => {
    const now = at(MIN);
    const next = expectSuccess(decideRefresh(freshSession(), 0, now, POLICY), 'rotate');
    expect(next.generation).toBe(1);
    expect(next.parentGeneration).toBe(0);
    expect(next.rotatedAt?.getTime()).toBe(now.getTime());
  });

  it('refuses generations not yet issued and never revokes', () => {
    for (const g of [1, 2, 50]) {
      expect(decideRefresh(freshSession(), g, at(MIN), POLICY)).toEqual({ action: 'reject', code: 'invalid_refresh_token' });
    }
  });

  it('after the first rotation, generation 0 replays within the window and reissues after it', () => {
    const s = applyNext(freshSession(), decideRefresh(freshSession(), 0, at(MIN), POLICY));
    expect(s).toMatchObject({ generation: 1, parentGeneration: 0 });
    expect(expectSuccess(decideRefresh(s, 0, at(MIN + GRACE), POLICY), 'replay').generation).toBe(1);
    const reissued = expectSuccess(decideRefresh(s, 0, at(MIN + GRACE + 1), POLICY), 'reissue');
    expect(reissued).toMatchObject({ generation: 2, parentGeneration: 0 });
  });

  it('a first-use session still honours expiry, revocation and disabled users', () => {
    expect(decideRefresh(freshSession({ expiresAt: at(1) }), 0, at(1), POLICY)).toEqual({ action: 'reject', code: 'session_expired' });
    expect(decideRefresh(freshSession({ revokedAt: at(0), revokedReason: 'reuse' }), 0, at(1), POLICY)).toEqual({
      action: 'reject',
      code: 'refresh_token_reused',
    });
    expect(decideRefresh(freshSession({ revokedAt: at(0), revokedReason: 'logout' }), 0, at(1), POLICY)).toEqual({
      action: 'reject',
      code: 'invalid_refresh_token',
    });
    expect(decideRefresh(freshSession({ userDisabled: true }), 0, at(1), POLICY)).toEqual({
      action: 'reject',
      code: 'invalid_refresh_token',
    });
  });
});

// ---------------------------------------------------------------------------
// Property-based: a session as a state machine driven by random presentations.
// ---------------------------------------------------------------------------

type Step =
  | { kind: 'present'; pick: 'current' | 'parent' | 'any'; r: number; dt: number }
  | { kind: 'logout'; dt: number }
  | { kind: 'disable'; dt: number };

const PROP_POLICY: RefreshPolicy = { graceMs: 10 * SEC, idleTtlMs: 2 * HOUR };
const PROP_ABSOLUTE_MS = 12 * HOUR;

const dtArb = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 0, max: PROP_POLICY.graceMs }) }, // inside the grace window
  { weight: 1, arbitrary: fc.constant(PROP_POLICY.graceMs) }, // its boundary
  { weight: 1, arbitrary: fc.constant(PROP_POLICY.graceMs + 1) },
  { weight: 3, arbitrary: fc.integer({ min: PROP_POLICY.graceMs + 1, max: 10 * MIN }) },
  { weight: 1, arbitrary: fc.integer({ min: 10 * MIN, max: 3 * HOUR }) }, // may pass the idle expiry
);

const presentArb = fc.record({
  kind: fc.constant('present' as const),
  // Biased towards the tokens an honest client holds, so sequences go deep before a reuse ends them.
  pick: fc.constantFrom<('current' | 'parent' | 'any')[]>('current', 'current', 'parent', 'any', 'any'),
  r: fc.nat(),
  dt: dtArb,
});

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 40, arbitrary: presentArb },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('logout' as const), dt: dtArb }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('disable' as const), dt: dtArb }) },
);

const stepsArb = fc.array(stepArb, { minLength: 1, maxLength: 80 });
const startArb = fc.oneof(
  fc.constant({ generation: 0, parentGeneration: null as number | null, rotated: false }),
  fc.integer({ min: 1, max: 1000 }).map((generation) => ({ generation, parentGeneration: (generation - 1) as number | null, rotated: true })),
);

function chooseGeneration(s: SessionState, step: Extract<Step, { kind: 'present' }>): number {
  if (step.pick === 'current') return s.generation;
  if (step.pick === 'parent' && s.parentGeneration !== null) return s.parentGeneration;
  // uniform in [0, generation + 2]
  return step.r % (s.generation + 3);
}

function isLive(s: SessionState, now: Date): boolean {
  const t = now.getTime();
  return s.revokedAt === null && !s.userDisabled && t < s.expiresAt.getTime() && t < s.absoluteExpiresAt.getTime();
}

function isSuccess(d: RefreshDecision): d is Extract<RefreshDecision, { next: unknown }> {
  return d.action === 'rotate' || d.action === 'replay' || d.action === 'reissue';
}

/** The model's transition: what the store does with a decision. */
function transition(s: SessionState, d: RefreshDecision, now: Date): SessionState {
  switch (d.action) {
    case 'rotate':
    case 'replay':
    case 'reissue':
      return applyNext(s, d);
    case 'revoke':
      return { ...s, revokedAt: now, revokedReason: 'reuse' };
    case 'reject':
      return s;
  }
}

interface Stats {
  [action: string]: number;
}

function runSequence(
  start: { generation: number; parentGeneration: number | null; rotated: boolean },
  steps: Step[],
  stats?: Stats,
): void {
  let now = T0;
  let s: SessionState = {
    generation: start.generation,
    parentGeneration: start.parentGeneration,
    rotatedAt: start.rotated ? T0 : null,
    expiresAt: new Date(T0.getTime() + PROP_POLICY.idleTtlMs),
    absoluteExpiresAt: new Date(T0.getTime() + PROP_ABSOLUTE_MS),
    revokedAt: null,
    revokedReason: null,
    userDisabled: false,
  };
  let revokedForReuse = false;

  for (const step of steps) {
    now = new Date(now.getTime() + step.dt);
    if (step.kind === 'logout') {
      if (s.revokedAt === null) s = { ...s, revokedAt: now, revokedReason: 'logout' };
      continue;
    }
    if (step.kind === 'disable') {
      s = { ...s, userDisabled: true };
      continue;
    }

    const g = chooseGeneration(s, step);
    const before = s;
    const beforeText = snapshot(before);
    const d = decideRefresh(deepFreeze({ ...before }), g, now, PROP_POLICY);
    if (stats) stats[d.action === 'reject' ? `reject:${d.code}` : d.action] = (stats[d.action === 'reject' ? `reject:${d.code}` : d.action] ?? 0) + 1;
    const after = transition(before, d, now);
    const live = isLive(before, now);
    const parent = before.parentGeneration;
    const sinceRotation = before.rotatedAt === null ? Infinity : now.getTime() - before.rotatedAt.getTime();

    // The decision is a pure function of its inputs.
    expect(snapshot(before)).toBe(beforeText);

    // generation never decreases; expiry never passes the absolute expiry.
    expect(after.generation).toBeGreaterThanOrEqual(before.generation);
    expect(after.expiresAt.getTime()).toBeLessThanOrEqual(after.absoluteExpiresAt.getTime());
    expect(after.absoluteExpiresAt.getTime()).toBe(before.absoluteExpiresAt.getTime());

    // Only the current token and the parent can ever succeed, and only on a live session.
    if (isSuccess(d)) {
      expect(live).toBe(true);
      expect(g === before.generation || g === parent).toBe(true);
      expect(d.next.expiresAt.getTime()).toBe(Math.min(now.getTime() + PROP_POLICY.idleTtlMs, before.absoluteExpiresAt.getTime()));
      expect(d.next.lastUsedAt.getTime()).toBe(now.getTime());
    }

    switch (d.action) {
      case 'rotate':
        expect(g).toBe(before.generation);
        expect(d.next.generation).toBe(before.generation + 1);
        expect(d.next.parentGeneration).toBe(before.generation);
        expect(d.next.rotatedAt?.getTime()).toBe(now.getTime());
        break;
      case 'replay':
        // The current token, returned again: no new generation, no fork, the window does not move.
        expect(g).toBe(parent);
        expect(sinceRotation).toBeLessThanOrEqual(PROP_POLICY.graceMs);
        expect(d.next.generation).toBe(before.generation);
        expect(d.next.parentGeneration).toBe(before.parentGeneration);
        expect(d.next.rotatedAt?.getTime()).toBe(before.rotatedAt?.getTime());
        break;
      case 'reissue':
        expect(g).toBe(parent);
        expect(sinceRotation).toBeGreaterThan(PROP_POLICY.graceMs);
        expect(d.next.generation).toBe(before.generation + 1);
        expect(d.next.parentGeneration).toBe(parent);
        expect(d.next.rotatedAt?.getTime()).toBe(now.getTime());
        break;
      case 'revoke':
        expect(d.code).toBe('refresh_token_reused');
        expect(live).toBe(true);
        break;
      case 'reject':
        // Rejects never change state.
        expect(snapshot(after)).toBe(beforeText);
        break;
    }

    // Every orphan or older-than-parent generation on a live session revokes.
    const orphanOrOlder = g < before.generation && g !== parent;
    if (live && orphanOrOlder) expect(d).toEqual({ action: 'revoke', code: 'refresh_token_reused' });

    // Never-issued generations are refused without effect.
    if (g > before.generation) expect(d).toEqual({ action: 'reject', code: 'invalid_refresh_token' });

    // After a revocation for reuse, every genuine token learns why.
    if (revokedForReuse && g <= before.generation) expect(d).toEqual({ action: 'reject', code: 'refresh_token_reused' });
    if (before.revokedAt !== null || before.userDisabled) expect(d.action).toBe('reject');
    if (before.revokedAt !== null && before.revokedReason !== 'reuse') {
      expect(d).toEqual({ action: 'reject', code: 'invalid_refresh_token' });
    }
    if (before.revokedAt === null && before.userDisabled) expect(d).toEqual({ action: 'reject', code: 'invalid_refresh_token' });
    if (before.revokedAt === null && !before.userDisabled && !live && g <= before.generation) {
      expect(d).toEqual({ action: 'reject', code: 'session_expired' });
    }

    if (d.action === 'revoke') revokedForReuse = true;
    s = after;

    // At most one live lineage: right now and just after the grace window, only current and parent can succeed.
    for (const probe of [now, new Date(now.getTime() + PROP_POLICY.graceMs + 1)]) {
      for (let h = 0; h <= s.generation + 2; h++) {
        const pd = decideRefresh(s, h, probe, PROP_POLICY);
        if (isSuccess(pd)) {
          expect(h === s.generation || h === s.parentGeneration).toBe(true);
          // and any success lands on the one lineage: the current token or its direct successor
          expect([s.generation, s.generation + 1]).toContain(pd.next.generation);
        }
      }
    }
  }
}

describe('decideRefresh — properties over random presentation sequences', () => {
  it('holds every invariant of SPEC §3', () => {
    const stats: Stats = {};
    fc.assert(
      fc.property(startArb, stepsArb, (start, steps) => {
        runSequence(start, steps, stats);
      }),
      { numRuns: 400 },
    );
    // The generators reach every outcome, so the invariants above were actually exercised.
    for (const outcome of [
      'rotate',
      'replay',
      'reissue',
      'revoke',
      'reject:refresh_token_reused',
      'reject:invalid_refresh_token',
      'reject:session_expired',
    ]) {
      expect(stats[outcome] ?? 0, outcome).toBeGreaterThan(0);
    }
  });

  it('a honest single client (always the current token, any pace within the session) never fails', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: PROP_POLICY.idleTtlMs - 1 }), { maxLength: 50 }), (gaps) => {
        let s = freshSession({
          expiresAt: new Date(T0.getTime() + PROP_POLICY.idleTtlMs),
          absoluteExpiresAt: new Date(8.64e15),
        });
        let now = T0;
        for (const gap of gaps) {
          now = new Date(now.getTime() + gap);
          const d = decideRefresh(s, s.generation, now, PROP_POLICY);
          expect(d.action).toBe('rotate');
          s = applyNext(s, d);
        }
        expect(s.generation).toBe(gaps.length);
      }),
      { numRuns: 200 },
    );
  });

  it('concurrent presentations of the same token within the grace window converge on one generation', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 1000 }),
        fc.array(fc.integer({ min: 0, max: PROP_POLICY.graceMs }), { minLength: 1, maxLength: 30 }),
        (g0, offsets) => {
          let s = session({ generation: g0, parentGeneration: g0 === 0 ? null : g0 - 1, rotatedAt: g0 === 0 ? null : at(-HOUR) });
          // Each request is decided against the latest state, as the store's conditional update forces.
          const sorted = [...offsets].sort((a, b) => a - b);
          const results: number[] = [];
          for (const off of sorted) {
            const d = decideRefresh(s, g0, at(off), POLICY);
            if (!isSuccess(d)) throw new Error(`unexpected ${JSON.stringify(d)}`);
            s = applyNext(s, d);
            results.push(d.next.generation);
          }
          expect(new Set(results)).toEqual(new Set([g0 + 1]));
          expect(s.generation).toBe(g0 + 1);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('after a revocation for reuse, every genuine token at any later time is refused with refresh_token_reused', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: 500 }),
        fc.nat(),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 60 * DAY })), { minLength: 1, maxLength: 30 }),
        (gen, r, probes) => {
          const s0 = session({ generation: gen, parentGeneration: gen - 1 });
          const stale = r % (gen - 1); // strictly older than the parent
          const d = decideRefresh(s0, stale, at(HOUR), POLICY);
          expect(d).toEqual({ action: 'revoke', code: 'refresh_token_reused' });
          const s = transition(s0, d, at(HOUR));
          for (const [pg, dt] of probes) {
            const g = pg % (gen + 1);
            expect(decideRefresh(s, g, at(HOUR + dt), POLICY)).toEqual({ action: 'reject', code: 'refresh_token_reused' });
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});
