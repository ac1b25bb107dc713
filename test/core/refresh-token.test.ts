import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { RefreshTokenCodec, newSessionSalt, type ParsedRefreshToken } from '../../src/core/refresh-token.js';

const SECRET = 'test-secret-0123456789abcdefghijklmnopqrstuvwxyz';
const OTHER_SECRET = 'another-secret-0123456789abcdefghijklmnopqrstuv';
const SESSION_ID = '3f6c2b1a-9d8e-4f70-a1b2-c3d4e5f60718';
const SALT = Buffer.from('000102030405060708090a0b0c0d0e0f', 'hex');

const codec = new RefreshTokenCodec(SECRET);

const TOKEN_SHAPE = /^tsr_[A-Za-z0-9_-]{70}$/;
const PAYLOAD_BYTES = 20;
const TOKEN_BYTES = 52;

const uuidArb = fc.uuid().map((u) => u.toLowerCase());
const saltArb = fc.uint8Array({ minLength: 16, maxLength: 16 }).map((a) => Buffer.from(a));
const generationArb = fc.oneof(fc.integer({ min: 0, max: 1000 }), fc.integer({ min: 0, max: 2 ** 32 - 1 }));

function bytesOf(token: string): Buffer {
  return Buffer.from(token.slice(4), 'base64url');
}

function tokenOf(bytes: Buffer): string {
  return 'tsr_' + bytes.toString('base64url');
}

/** parse and verify must never throw, and a bad token must fail one of them. */
function accepts(c: RefreshTokenCodec, token: unknown, salt: Buffer): ParsedRefreshToken | undefined {
  const parsed = c.parse(token);
  if (!parsed) return undefined;
  return c.verify(parsed, salt) ? parsed : undefined;
}

describe('RefreshTokenCodec — issue and parse', () => {
  it('round-trips session id and generation, and the MAC verifies', () => {
    const token = codec.issue(SESSION_ID, SALT, 7);
    expect(token).toMatch(TOKEN_SHAPE);
    const parsed = codec.parse(token);
    expect(parsed).toBeDefined();
    expect(parsed!.sessionId).toBe(SESSION_ID);
    expect(parsed!.generation).toBe(7);
    expect(parsed!.bytes.length).toBe(TOKEN_BYTES);
    expect(codec.verify(parsed!, SALT)).toBe(true);
  });

  it('lays the token out as session id ‖ generation (32-bit big-endian) ‖ 32-byte MAC', () => {
    const bytes = bytesOf(codec.issue(SESSION_ID, SALT, 0x01020304));
    expect(bytes.length).toBe(TOKEN_BYTES);
    expect(bytes.subarray(0, 16).toString('hex')).toBe(SESSION_ID.replaceAll('-', ''));
    expect([...bytes.subarray(16, 20)]).toEqual([1, 2, 3, 4]);
  });

  it('round-trips for any session id, salt and 32-bit generation', () => {
    fc.assert(
      fc.property(uuidArb, saltArb, generationArb, (id, salt, g) => {
        const token = codec.issue(id, salt, g);
        expect(token).toMatch(TOKEN_SHAPE);
        const parsed = codec.parse(token)!;
        expect(parsed).toMatchObject({ sessionId: id, generation: g });
        expect(codec.verify(parsed, salt)).toBe(true);
        // the canonical spelling: re-encoding the parsed bytes gives the token back
        expect(tokenOf(parsed.bytes)).toBe(token);
      }),
      { numRuns: 300 },
    );
  });

  it('handles the extremes of the generation range', () => {
    for (const g of [0, 1, 2 ** 31, 2 ** 32 - 1]) {
      const parsed = codec.parse(codec.issue(SESSION_ID, SALT, g))!;
      expect(parsed.generation).toBe(g);
      expect(codec.verify(parsed, SALT)).toBe(true);
    }
  });

  it('refuses to issue a generation outside 32 bits rather than wrapping it', () => {
    expect(() => codec.issue(SESSION_ID, SALT, 2 ** 32)).toThrow(RangeError);
    expect(() => codec.issue(SESSION_ID, SALT, -1)).toThrow(RangeError);
  });

  it('an upper-case session id gives the same token as its lower-case spelling', () => {
    expect(codec.issue(SESSION_ID.toUpperCase(), SALT, 3)).toBe(codec.issue(SESSION_ID, SALT, 3));
    expect(codec.parse(codec.issue(SESSION_ID.toUpperCase(), SALT, 3))!.sessionId).toBe(SESSION_ID);
  });

  it('newSessionSalt gives 16 fresh random bytes', () => {
    const a = newSessionSalt();
    const b = newSessionSalt();
    expect(a.length).toBe(16);
    expect(b.length).toBe(16);
    expect(a.equals(b)).toBe(false);
  });
});

describe('RefreshTokenCodec — determinism', () => {
  it('the same inputs give the identical token, from the same or another codec with the same secret', () => {
    fc.assert(
      fc.property(uuidArb, saltArb, generationArb, (id, salt, g) => {
        const a = codec.issue(id, salt, g);
        expect(codec.issue(id, Buffer.from(salt), g)).toBe(a);
        expect(new RefreshTokenCodec(SECRET).issue(id, salt, g)).toBe(a);
      }),
      { numRuns: 200 },
    );
  });

  it('any change of input changes the token', () => {
    const base = codec.issue(SESSION_ID, SALT, 5);
    const tokens = [
      codec.issue(SESSION_ID, SALT, 6),
      codec.issue('3f6c2b1a-9d8e-4f70-a1b2-c3d4e5f60719', SALT, 5),
      codec.issue(SESSION_ID, Buffer.from('ff0102030405060708090a0b0c0d0e0f', 'hex'), 5),
      new RefreshTokenCodec(OTHER_SECRET).issue(SESSION_ID, SALT, 5),
    ];
    for (const t of tokens) expect(t).not.toBe(base);
    // same payload, different key: only the MAC differs
    const otherSalt = bytesOf(tokens[2]!);
    expect(otherSalt.subarray(0, PAYLOAD_BYTES).equals(bytesOf(base).subarray(0, PAYLOAD_BYTES))).toBe(true);
    expect(otherSalt.subarray(PAYLOAD_BYTES).equals(bytesOf(base).subarray(PAYLOAD_BYTES))).toBe(false);
  });
});

describe('RefreshTokenCodec — tampering', () => {
  it('a flipped bit in any byte of the payload or the MAC fails parse or verify', () => {
    fc.assert(
      fc.property(
        uuidArb,
        saltArb,
        generationArb,
        fc.integer({ min: 0, max: TOKEN_BYTES - 1 }),
        fc.integer({ min: 0, max: 7 }),
        (id, salt, g, position, bit) => {
          const bytes = bytesOf(codec.issue(id, salt, g));
          bytes[position]! ^= 1 << bit;
          const tampered = tokenOf(bytes);
          expect(accepts(codec, tampered, salt)).toBeUndefined();
          // It is still well formed, so it is verify (the MAC), not parse, that catches it.
          const parsed = codec.parse(tampered)!;
          expect(parsed).toBeDefined();
          expect(codec.verify(parsed, salt)).toBe(false);
          if (position < 16) expect(parsed.sessionId).not.toBe(id);
          else if (position < PAYLOAD_BYTES) expect(parsed.generation).not.toBe(g);
          else expect(parsed).toMatchObject({ sessionId: id, generation: g });
        },
      ),
      { numRuns: 500 },
    );
  });

  it('every single bit of a token is covered (exhaustive over one token)', () => {
    const token = codec.issue(SESSION_ID, SALT, 42);
    for (let position = 0; position < TOKEN_BYTES; position++) {
      for (let bit = 0; bit < 8; bit++) {
        const bytes = bytesOf(token);
        bytes[position]! ^= 1 << bit;
        expect(accepts(codec, tokenOf(bytes), SALT), `byte ${position} bit ${bit}`).toBeUndefined();
      }
    }
  });

  it('changing any one character of the token text fails parse or verify', () => {
    const token = codec.issue(SESSION_ID, SALT, 42);
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    fc.assert(
      fc.property(fc.integer({ min: 0, max: token.length - 1 }), fc.constantFrom(...alphabet), (i, ch) => {
        fc.pre(token[i] !== ch);
        const changed = token.slice(0, i) + ch + token.slice(i + 1);
        expect(accepts(codec, changed, SALT)).toBeUndefined();
      }),
      { numRuns: 500 },
    );
  });

  it('a generation bumped by the holder (without the secret) fails verify', () => {
    const bytes = bytesOf(codec.issue(SESSION_ID, SALT, 9));
    bytes.writeUInt32BE(10, 16);
    const parsed = codec.parse(tokenOf(bytes))!;
    expect(parsed.generation).toBe(10);
    expect(codec.verify(parsed, SALT)).toBe(false);
  });

  it('swapping MACs between two tokens of one session fails verify', () => {
    const a = bytesOf(codec.issue(SESSION_ID, SALT, 1));
    const b = bytesOf(codec.issue(SESSION_ID, SALT, 2));
    const mixed = Buffer.concat([a.subarray(0, PAYLOAD_BYTES), b.subarray(PAYLOAD_BYTES)]);
    expect(accepts(codec, tokenOf(mixed), SALT)).toBeUndefined();
  });

  it('a wrong salt fails verify', () => {
    fc.assert(
      fc.property(uuidArb, saltArb, saltArb, generationArb, (id, salt, other, g) => {
        fc.pre(!salt.equals(other));
        const parsed = codec.parse(codec.issue(id, salt, g))!;
        expect(codec.verify(parsed, other)).toBe(false);
        expect(codec.verify(parsed, salt)).toBe(true);
      }),
      { numRuns: 200 },
    );
    const parsed = codec.parse(codec.issue(SESSION_ID, SALT, 1))!;
    expect(codec.verify(parsed, Buffer.alloc(0))).toBe(false);
    expect(codec.verify(parsed, SALT.subarray(0, 15))).toBe(false);
  });

  it('a token from another secret parses (shape only) but fails verify', () => {
    const other = new RefreshTokenCodec(OTHER_SECRET);
    fc.assert(
      fc.property(uuidArb, saltArb, generationArb, (id, salt, g) => {
        const foreign = other.issue(id, salt, g);
        const parsed = codec.parse(foreign)!;
        expect(parsed).toMatchObject({ sessionId: id, generation: g });
        expect(codec.verify(parsed, salt)).toBe(false);
        expect(other.verify(other.parse(foreign)!, salt)).toBe(true);
      }),
      { numRuns: 200 },
    );
  });

  it('secrets differing in one character give unrelated keys', () => {
    const a = new RefreshTokenCodec(SECRET);
    const b = new RefreshTokenCodec(SECRET.slice(0, -1) + 'Z');
    expect(a.verify(a.parse(b.issue(SESSION_ID, SALT, 0))!, SALT)).toBe(false);
  });
});

describe('RefreshTokenCodec — parse of garbage returns undefined and never throws', () => {
  const valid = codec.issue(SESSION_ID, SALT, 3);
  const body = valid.slice(4);

  const nonStrings: [string, unknown][] = [
    ['undefined', undefined],
    ['null', null],
    ['0', 0],
    ['NaN', Number.NaN],
    ['bigint', 10n],
    ['true', true],
    ['symbol', Symbol('tsr_')],
    ['function', () => valid],
    ['plain object', {}],
    ['array', []],
    ['array holding the token', [valid]],
    ['String object', new String(valid)],
    ['Buffer of the token', Buffer.from(valid)],
    ['object with toString', { toString: () => valid }],
    ['object with length 74', { length: 74, startsWith: () => true, slice: () => body }],
    ['Date', new Date(0)],
    ['Map', new Map()],
  ];
  it.each(nonStrings)('non-string: %s', (_name, input) => {
    expect(() => codec.parse(input)).not.toThrow();
    expect(codec.parse(input)).toBeUndefined();
  });

  // the last character of a 52-byte body carries 2 bits; the other 4 must be zero
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  const last = alphabet.indexOf(body.at(-1)!);
  const nonCanonicalLast = alphabet[last | 1]!;

  const strings: [string, string][] = [
    ['empty', ''],
    ['prefix only', 'tsr_'],
    ['body only', body],
    ['wrong prefix (tsx_)', 'tsx_' + body],
    ['upper-case prefix', 'TSR_' + body],
    ['prefix with a hyphen', 'tsr-' + body],
    ['one character short', valid.slice(0, -1)],
    ['one character long', valid + 'A'],
    ['two tokens', valid + valid],
    ['padding', valid.slice(0, -2) + '=='],
    ['trailing =', valid.slice(0, -1) + '='],
    ['standard base64 +', valid.slice(0, 10) + '+' + valid.slice(11)],
    ['standard base64 /', valid.slice(0, 10) + '/' + valid.slice(11)],
    ['non-canonical last character', valid.slice(0, -1) + nonCanonicalLast],
    ['space inside', valid.slice(0, 20) + ' ' + valid.slice(21)],
    ['leading space', ' ' + valid.slice(0, -1)],
    ['trailing newline', valid.slice(0, -1) + '\n'],
    ['NUL inside', valid.slice(0, 20) + '\0' + valid.slice(21)],
    ['percent-encoded', valid.slice(0, 20) + '%' + valid.slice(21)],
    ['é inside', valid.slice(0, 20) + 'é' + valid.slice(21)],
    ['Cyrillic А look-alike', valid.slice(0, 20) + 'А' + valid.slice(21)],
    ['full-width Ａ', valid.slice(0, 20) + 'Ａ' + valid.slice(21)],
    ['emoji (2 code units)', valid.slice(0, 20) + '😀' + valid.slice(22)],
    ['zero-width space', valid.slice(0, 20) + '\u200b' + valid.slice(21)],
    ['combining accent', valid.slice(0, 20) + '\u0301' + valid.slice(21)],
    ['lone surrogate', valid.slice(0, 20) + '\ud800' + valid.slice(21)],
    ['a JWT', 'eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl'],
  ];
  it.each(strings)('string: %s', (_name, input) => {
    expect(() => codec.parse(input)).not.toThrow();
    expect(codec.parse(input)).toBeUndefined();
  });

  // Well formed, so parse (which only splits) returns parts, but no MAC matches: verify is the gate.
  it.each<[string, string]>([
    ['all A: 52 zero bytes', 'tsr_' + 'A'.repeat(70)],
    ['all _ but a canonical last character', 'tsr_' + '_'.repeat(69) + 'w'],
    ['the prefix repeated inside the body', 'tsr_tsr_' + body.slice(4)],
  ])('well-formed but not genuine: %s parses and fails verify', (_name, input) => {
    const parsed = codec.parse(input);
    expect(parsed).toBeDefined();
    expect(parsed!.bytes.length).toBe(TOKEN_BYTES);
    expect(codec.verify(parsed!, SALT)).toBe(false);
  });

  it('never throws for anything at all', () => {
    fc.assert(
      fc.property(fc.anything({ withBigInt: true, withDate: true, withMap: true, withSet: true, withTypedArray: true }), (input) => {
        expect(() => codec.parse(input)).not.toThrow();
        if (typeof input !== 'string') expect(codec.parse(input)).toBeUndefined();
      }),
      { numRuns: 300 },
    );
  });

  it('random strings of any unit: undefined or a canonical, well-formed parse; never a throw', () => {
    const unitArb = fc.constantFrom('grapheme', 'grapheme-composite', 'grapheme-ascii', 'binary', 'binary-ascii') as fc.Arbitrary<
      'grapheme' | 'grapheme-composite' | 'grapheme-ascii' | 'binary' | 'binary-ascii'
    >;
    fc.assert(
      fc.property(
        unitArb.chain((unit) => fc.string({ unit, minLength: 0, maxLength: 90 })),
        fc.boolean(),
        (text, prefixed) => {
          const input = prefixed ? 'tsr_' + text : text;
          let parsed: ParsedRefreshToken | undefined;
          expect(() => {
            parsed = codec.parse(input);
          }).not.toThrow();
          if (parsed) {
            expect(input).toMatch(TOKEN_SHAPE);
            expect(tokenOf(parsed.bytes)).toBe(input);
          }
        },
      ),
      { numRuns: 500 },
    );
  });

  it('random strings over the token alphabet at the right length: a parse is always canonical, and verify fails', () => {
    const alphabetChars = (alphabet + '+/=. ').split('');
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...alphabetChars), { minLength: 70, maxLength: 70 }), (chars) => {
        const input = 'tsr_' + chars.join('');
        let parsed: ParsedRefreshToken | undefined;
        expect(() => {
          parsed = codec.parse(input);
        }).not.toThrow();
        if (parsed) {
          expect(tokenOf(parsed.bytes)).toBe(input);
          expect(parsed.sessionId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
          expect(codec.verify(parsed, SALT)).toBe(false);
        }
      }),
      { numRuns: 500 },
    );
  });

  it('every non-canonical spelling of a genuine token is refused (one token has exactly one spelling)', () => {
    fc.assert(
      fc.property(uuidArb, saltArb, generationArb, fc.integer({ min: 1, max: 15 }), (id, salt, g, noise) => {
        const token = codec.issue(id, salt, g);
        const lastIndex = alphabet.indexOf(token.at(-1)!);
        expect(lastIndex & 15).toBe(0);
        const respelled = token.slice(0, -1) + alphabet[lastIndex | noise]!;
        expect(Buffer.from(respelled.slice(4), 'base64url').equals(bytesOf(token))).toBe(true); // same bytes…
        expect(codec.parse(respelled)).toBeUndefined(); // …but refused
      }),
      { numRuns: 200 },
    );
  });
});
