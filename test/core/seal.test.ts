import { describe, expect, it } from 'vitest';
import { deriveKey, deriveKeys } from '../../src/core/derive-key.js';
import { Sealer, UnsealError, seal, unseal } from '../../src/core/seal.js';

const OLD = 'the-old-secret-0123456789abcdefghijklmnopqrstuvwxyz';
const NEW = 'the-new-secret-0123456789abcdefghijklmnopqrstuvwxyz';
const OTHER = 'some-other-secret-0123456789abcdefghijklmnopqrstuvw';
const PURPOSE = 'signing-key-encryption';

const sealerOf = (secret: string, previous?: string) => new Sealer(deriveKeys(secret, previous, PURPOSE));

function unsealError(run: () => unknown): UnsealError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(UnsealError);
    return error as UnsealError;
  }
  throw new Error('expected an UnsealError');
}

describe('deriveKeys', () => {
  it('derives the current key as deriveKey does, and the previous one only when given', () => {
    expect(deriveKeys(NEW, undefined, PURPOSE)).toEqual({ current: deriveKey(NEW, PURPOSE), previous: undefined });
    expect(deriveKeys(NEW, OLD, PURPOSE)).toEqual({ current: deriveKey(NEW, PURPOSE), previous: deriveKey(OLD, PURPOSE) });
  });

  it('gives each purpose its own key', () => {
    expect(deriveKey(NEW, 'refresh-token').equals(deriveKey(NEW, 'revocation-cursor'))).toBe(false);
  });
});

describe('Sealer', () => {
  it('seals under the current secret only, even with a previous one', () => {
    const sealed = sealerOf(NEW, OLD).seal('hello');
    expect(unseal(deriveKey(NEW, PURPOSE), sealed)).toBe('hello');
    expect(() => unseal(deriveKey(OLD, PURPOSE), sealed)).toThrow();
  });

  it('opens values sealed under the previous secret, and under the current one', () => {
    const underOld = sealerOf(OLD).seal('old value');
    const underNew = sealerOf(NEW).seal('new value');
    const sealer = sealerOf(NEW, OLD);
    expect(sealer.unseal(underOld)).toBe('old value');
    expect(sealer.unseal(underNew)).toBe('new value');
  });

  it('without the previous secret, a value sealed under it does not open, and says why', () => {
    const error = unsealError(() => sealerOf(NEW).unseal(sealerOf(OLD).seal('x')));
    expect(error.triedPrevious).toBe(false);
    expect(error.message).toBe('not sealed under TESSERA_SECRET');
  });

  it('a value sealed under neither secret does not open, nor does an altered or malformed one', () => {
    const sealer = sealerOf(NEW, OLD);
    expect(unsealError(() => sealer.unseal(sealerOf(OTHER).seal('x'))).triedPrevious).toBe(true);
    const sealed = sealerOf(OLD).seal('tamper with me');
    const bytes = Buffer.from(sealed, 'base64url');
    bytes[14]! ^= 1;
    expect(unsealError(() => sealer.unseal(bytes.toString('base64url'))).triedPrevious).toBe(true);
    for (const junk of ['', 'AA', 'not sealed at all']) unsealError(() => sealer.unseal(junk));
  });

  it('reseal moves a value from the previous secret to the current one, and is idempotent', () => {
    const sealer = sealerOf(NEW, OLD);
    const underOld = sealerOf(OLD).seal('{"kty":"OKP"}');
    const moved = sealer.reseal(underOld);
    expect(moved).toBeDefined();
    expect(unseal(deriveKey(NEW, PURPOSE), moved!)).toBe('{"kty":"OKP"}');
    // already under the current secret: left alone, so a second run changes nothing
    expect(sealer.reseal(moved!)).toBeUndefined();
    expect(sealerOf(NEW).reseal(moved!)).toBeUndefined();
    // and once moved, the previous secret is not needed to open it
    expect(sealerOf(NEW).unseal(moved!)).toBe('{"kty":"OKP"}');
  });

  it('reseal refuses a value neither secret opens', () => {
    expect(unsealError(() => sealerOf(NEW, OLD).reseal(sealerOf(OTHER).seal('x'))).triedPrevious).toBe(true);
    expect(unsealError(() => sealerOf(NEW).reseal(sealerOf(OLD).seal('x'))).triedPrevious).toBe(false);
  });

  it('keeps seal and unseal as they were: a value sealed before Sealer existed opens', () => {
    const legacy = seal(deriveKey(NEW, PURPOSE), 'before');
    expect(sealerOf(NEW).unseal(legacy)).toBe('before');
  });
});
