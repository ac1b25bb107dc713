/**
 * RefreshTokenCodec while TESSERA_SECRET changes: tokens made under TESSERA_SECRET_PREVIOUS
 * still verify, every token is issued under TESSERA_SECRET, and a token under the current
 * secret costs what it cost before (the previous secret is tried only after it failed).
 */
import * as crypto from 'node:crypto';
import fc from 'fast-check';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { RefreshTokenCodec, newSessionSalt } from '../../src/core/refresh-token.js';

// A pass-through, so the test can count the HMACs a verification computes.
vi.mock('node:crypto', async (importOriginal) => {
  const original = await importOriginal<typeof import('node:crypto')>();
  return { ...original, createHmac: vi.fn(original.createHmac) };
});

const OLD = 'the-old-secret-0123456789abcdefghijklmnopqrstuvwxyz';
const NEW = 'the-new-secret-0123456789abcdefghijklmnopqrstuvwxyz';
const OTHER = 'some-other-secret-0123456789abcdefghijklmnopqrstuvw';
const USER_ID = 'a1b2c3d4-e5f6-4789-8abc-def012345678';
const SESSION_ID = '3f6c2b1a-9d8e-4f70-a1b2-c3d4e5f60718';

const uuidArb = fc.uuid().map((u) => u.toLowerCase());
const saltArb = fc.uint8Array({ minLength: 16, maxLength: 16 }).map((a) => Buffer.from(a));
const generationArb = fc.integer({ min: 0, max: 2 ** 32 - 1 });

const before = new RefreshTokenCodec(OLD);
const during = new RefreshTokenCodec(NEW, OLD);
const after = new RefreshTokenCodec(NEW);

const accepts = (codec: RefreshTokenCodec, token: string, salt: Buffer) => codec.verify(codec.parse(token)!, salt);

describe('RefreshTokenCodec with TESSERA_SECRET_PREVIOUS', () => {
  it('verifies tokens made under the previous secret and under the current one', () => {
    fc.assert(
      fc.property(uuidArb, uuidArb, saltArb, generationArb, (user, id, salt, g) => {
        expect(accepts(during, before.issue(user, id, salt, g), salt)).toBe(true);
        expect(accepts(during, before.issueVersion1(id, salt, g), salt)).toBe(true);
        expect(accepts(during, after.issue(user, id, salt, g), salt)).toBe(true);
      }),
      { numRuns: 200 },
    );
  });

  it('issues under the current secret only: the same token as without a previous secret', () => {
    fc.assert(
      fc.property(uuidArb, uuidArb, saltArb, generationArb, (user, id, salt, g) => {
        const token = during.issue(user, id, salt, g);
        expect(token).toBe(after.issue(user, id, salt, g));
        expect(token).not.toBe(before.issue(user, id, salt, g));
        expect(accepts(before, token, salt)).toBe(false);
      }),
      { numRuns: 200 },
    );
  });

  it('issues the identical successor whichever secret the presented token was made with (what a replay returns)', () => {
    const salt = newSessionSalt();
    const presentedOld = during.parse(before.issue(USER_ID, SESSION_ID, salt, 4))!;
    const presentedNew = during.parse(after.issue(USER_ID, SESSION_ID, salt, 4))!;
    expect(during.verify(presentedOld, salt) && during.verify(presentedNew, salt)).toBe(true);
    // a token carries nothing of the secret that made it: the successor is a function of the current secret and the session
    expect(presentedOld).toMatchObject({ userId: USER_ID, sessionId: SESSION_ID, generation: 4 });
    expect(during.issue(USER_ID, SESSION_ID, salt, 5)).toBe(after.issue(USER_ID, SESSION_ID, salt, 5));
  });

  it('refuses tokens of any other secret, and tampered ones', () => {
    const salt = newSessionSalt();
    expect(accepts(during, new RefreshTokenCodec(OTHER).issue(USER_ID, SESSION_ID, salt, 1), salt)).toBe(false);
    const token = before.issue(USER_ID, SESSION_ID, salt, 1);
    const bytes = Buffer.from(token.slice(4), 'base64url');
    bytes[bytes.length - 1]! ^= 1;
    expect(accepts(during, `tsr_${bytes.toString('base64url')}`, salt)).toBe(false);
    // the right token with another session's salt
    expect(accepts(during, token, newSessionSalt())).toBe(false);
  });

  it('without the previous secret, its tokens are refused (what dropping it too early does)', () => {
    const salt = newSessionSalt();
    expect(accepts(after, before.issue(USER_ID, SESSION_ID, salt, 1), salt)).toBe(false);
  });

  it('a previous secret that is configured as the "new" one, and the old as previous, accepts both ways (a two-step roll)', () => {
    const salt = newSessionSalt();
    const aheadOfTime = new RefreshTokenCodec(OLD, NEW);
    expect(accepts(aheadOfTime, during.issue(USER_ID, SESSION_ID, salt, 2), salt)).toBe(true);
    expect(accepts(during, aheadOfTime.issue(USER_ID, SESSION_ID, salt, 2), salt)).toBe(true);
  });
});

describe('the cost of a verification', () => {
  const hmacs = vi.mocked(crypto.createHmac);
  beforeEach(() => {
    hmacs.mockClear();
  });

  /** HMACs computed to verify `token` with a fresh salt (so K_session is derived too). */
  function cost(codec: RefreshTokenCodec, issuer: RefreshTokenCodec): number {
    const salt = newSessionSalt();
    const parsed = codec.parse(issuer.issue(USER_ID, SESSION_ID, salt, 9))!;
    const asRead = Buffer.from(salt); // as a refresh reads it: a new Buffer, so K_session is not cached yet
    hmacs.mockClear();
    codec.verify(parsed, asRead);
    return hmacs.mock.calls.length;
  }

  it('is unchanged for a token under the current secret, whether a previous secret is set or not', () => {
    expect(cost(after, after)).toBe(2); // K_session, then the MAC
    expect(cost(during, after)).toBe(2);
  });

  it('tries the previous secret only after the current one failed', () => {
    expect(cost(during, before)).toBe(4);
    // and a forged token costs no more than that
    expect(cost(during, new RefreshTokenCodec(OTHER))).toBe(4);
    expect(cost(after, before)).toBe(2);
  });
});
