import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { RefreshTokenCodec, newSessionSalt, type ParsedRefreshToken } from '../../src/core/refresh-token.js';

const SECRET = 'test-secret-0123456789abcdefghijklmnopqrstuvwxyz';
const OTHER_SECRET = 'another-secret-0123456789abcdefghijklmnopqrstuv';
const USER_ID = 'a1b2c3d4-e5f6-4789-8abc-def012345678';
const OTHER_USER_ID = 'a1b2c3d4-e5f6-4789-8abc-def012345679';
const SESSION_ID = '3f6c2b1a-9d8e-4f70-a1b2-c3d4e5f60718';
const SALT = Buffer.from('000102030405060708090a0b0c0d0e0f', 'hex');

const codec = new RefreshTokenCodec(SECRET);

/** Version 2: version (byte 0) ‖ user id (1–16) ‖ session id (17–32) ‖ generation (33–36) ‖ MAC (37–68). */
const VERSION_2 = 2;
const USER_AT = 1;
const SESSION_AT = 17;
const GENERATION_AT = 33;
const PAYLOAD_BYTES = 37;
const TOKEN_BYTES = 69;
const TOKEN_SHAPE = /^tsr_[A-Za-z0-9_-]{92}$/;

/** Version 1: session id (0–15) ‖ generation (16–19) ‖ MAC (20–51); no version byte. */
const V1_PAYLOAD_BYTES = 20;
const V1_TOKEN_BYTES = 52;
const V1_TOKEN_SHAPE = /^tsr_[A-Za-z0-9_-]{70}$/;

const ANY_TOKEN_SHAPE = /^tsr_(?:[A-Za-z0-9_-]{70}|[A-Za-z0-9_-]{92})$/;
const UUID_SHAPE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

const uuidArb = fc.uuid().map((u) => u.toLowerCase());
const saltArb = fc.uint8Array({ minLength: 16, maxLength: 16 }).map((a) => Buffer.from(a));
const generationArb = fc.oneof(fc.integer({ min: 0, max: 1000 }), fc.integer({ min: 0, max: 2 ** 32 - 1 }));

function bytesOf(token: string): Buffer {
  return Buffer.from(token.slice(4), 'base64url');
}

function tokenOf(bytes: Buffer): string {
  return 'tsr_' + bytes.toString('base64url');
}

function hexOf(uuid: string): string {
  return uuid.replaceAll('-', '');
}

/** parse and verify must never throw, and a bad token must fail one of them. */
function accepts(c: RefreshTokenCodec, token: unknown, salt: Buffer): ParsedRefreshToken | undefined {
  const parsed = c.parse(token);
  if (!parsed) return undefined;
  return c.verify(parsed, salt) ? parsed : undefined;
}

describe('RefreshTokenCodec — issue and parse', () => {
  it('round-trips user id, session id and generation, and the MAC verifies', () => {
    const token = codec.issue(USER_ID, SESSION_ID, SALT, 7);
    expect(token).toMatch(TOKEN_SHAPE);
    const parsed = codec.parse(token);
    expect(parsed).toBeDefined();
    expect(parsed!.version).toBe(2);
    expect(parsed!.userId).toBe(USER_ID);
    expect(parsed!.sessionId).toBe(SESSION_ID);
    expect(parsed!.generation).toBe(7);
    expect(parsed!.bytes.length).toBe(TOKEN_BYTES);
    expect(codec.verify(parsed!, SALT)).toBe(true);
  });

  it('lays the token out as version 2 ‖ user id ‖ session id ‖ generation (32-bit big-endian) ‖ 32-byte MAC', () => {
    const bytes = bytesOf(codec.issue(USER_ID, SESSION_ID, SALT, 0x01020304));
    expect(bytes.length).toBe(TOKEN_BYTES);
    expect(bytes[0]).toBe(VERSION_2);
    expect(bytes.subarray(USER_AT, SESSION_AT).toString('hex')).toBe(hexOf(USER_ID));
    expect(bytes.subarray(SESSION_AT, GENERATION_AT).toString('hex')).toBe(hexOf(SESSION_ID));
    expect([...bytes.subarray(GENERATION_AT, PAYLOAD_BYTES)]).toEqual([1, 2, 3, 4]);
    expect(bytes.length - PAYLOAD_BYTES).toBe(32);
  });

  it('round-trips for any user id, session id, salt and 32-bit generation', () => {
    fc.assert(
      fc.property(uuidArb, uuidArb, saltArb, generationArb, (user, id, salt, g) => {
        const token = codec.issue(user, id, salt, g);
        expect(token).toMatch(TOKEN_SHAPE);
        const parsed = codec.parse(token)!;
        expect(parsed).toMatchObject({ version: 2, userId: user, sessionId: id, generation: g });
        expect(codec.verify(parsed, salt)).toBe(true);
        // the canonical spelling: re-encoding the parsed bytes gives the token back
        expect(tokenOf(parsed.bytes)).toBe(token);
      }),
      { numRuns: 300 },
    );
  });

  it('handles the extremes of the generation range', () => {
    for (const g of [0, 1, 2 ** 31, 2 ** 32 - 1]) {
      const parsed = codec.parse(codec.issue(USER_ID, SESSION_ID, SALT, g))!;
      expect(parsed.generation).toBe(g);
      expect(codec.verify(parsed, SALT)).toBe(true);
    }
  });

  it('refuses to issue a generation outside 32 bits rather than wrapping it', () => {
    expect(() => codec.issue(USER_ID, SESSION_ID, SALT, 2 ** 32)).toThrow(RangeError);
    expect(() => codec.issue(USER_ID, SESSION_ID, SALT, -1)).toThrow(RangeError);
    expect(() => codec.issueVersion1(SESSION_ID, SALT, 2 ** 32)).toThrow(RangeError);
    expect(() => codec.issueVersion1(SESSION_ID, SALT, -1)).toThrow(RangeError);
  });

  it('upper-case user and session ids give the same token as their lower-case spelling', () => {
    const lower = codec.issue(USER_ID, SESSION_ID, SALT, 3);
    expect(codec.issue(USER_ID.toUpperCase(), SESSION_ID, SALT, 3)).toBe(lower);
    expect(codec.issue(USER_ID, SESSION_ID.toUpperCase(), SALT, 3)).toBe(lower);
    const parsed = codec.parse(codec.issue(USER_ID.toUpperCase(), SESSION_ID.toUpperCase(), SALT, 3))!;
    expect(parsed.userId).toBe(USER_ID);
    expect(parsed.sessionId).toBe(SESSION_ID);
    expect(codec.issueVersion1(SESSION_ID.toUpperCase(), SALT, 3)).toBe(codec.issueVersion1(SESSION_ID, SALT, 3));
  });

  it('newSessionSalt gives 16 fresh random bytes', () => {
    const a = newSessionSalt();
    const b = newSessionSalt();
    expect(a.length).toBe(16);
    expect(b.length).toBe(16);
    expect(a.equals(b)).toBe(false);
  });
});

describe('RefreshTokenCodec — version 1 tokens (before the upgrade)', () => {
  it('a version 1 token parses as version 1 without a user id, and verifies', () => {
    const token = codec.issueVersion1(SESSION_ID, SALT, 7);
    expect(token).toMatch(V1_TOKEN_SHAPE);
    const parsed = codec.parse(token)!;
    expect(parsed).toBeDefined();
    expect(parsed.version).toBe(1);
    expect(parsed.userId).toBeUndefined();
    expect(parsed.sessionId).toBe(SESSION_ID);
    expect(parsed.generation).toBe(7);
    expect(parsed.bytes.length).toBe(V1_TOKEN_BYTES);
    expect(codec.verify(parsed, SALT)).toBe(true);
  });

  it('lays a version 1 token out as session id ‖ generation ‖ MAC, with no version byte', () => {
    const bytes = bytesOf(codec.issueVersion1(SESSION_ID, SALT, 0x01020304));
    expect(bytes.length).toBe(V1_TOKEN_BYTES);
    expect(bytes.subarray(0, 16).toString('hex')).toBe(hexOf(SESSION_ID));
    expect([...bytes.subarray(16, V1_PAYLOAD_BYTES)]).toEqual([1, 2, 3, 4]);
  });

  it('round-trips and verifies for any session id, salt and 32-bit generation', () => {
    fc.assert(
      fc.property(uuidArb, saltArb, generationArb, (id, salt, g) => {
        const token = codec.issueVersion1(id, salt, g);
        expect(token).toMatch(V1_TOKEN_SHAPE);
        const parsed = codec.parse(token)!;
        expect(parsed).toMatchObject({ version: 1, userId: undefined, sessionId: id, generation: g });
        expect(codec.verify(parsed, salt)).toBe(true);
        expect(tokenOf(parsed.bytes)).toBe(token);
        // deterministic too, from any codec with the same secret
        expect(new RefreshTokenCodec(SECRET).issueVersion1(id, Buffer.from(salt), g)).toBe(token);
      }),
      { numRuns: 300 },
    );
  });

  it('handles the extremes of the generation range', () => {
    for (const g of [0, 1, 2 ** 31, 2 ** 32 - 1]) {
      const parsed = codec.parse(codec.issueVersion1(SESSION_ID, SALT, g))!;
      expect(parsed).toMatchObject({ version: 1, generation: g });
      expect(codec.verify(parsed, SALT)).toBe(true);
    }
  });

  it('a flipped bit in any byte of a version 1 token fails verify', () => {
    fc.assert(
      fc.property(
        uuidArb,
        saltArb,
        generationArb,
        fc.integer({ min: 0, max: V1_TOKEN_BYTES - 1 }),
        fc.integer({ min: 0, max: 7 }),
        (id, salt, g, position, bit) => {
          const bytes = bytesOf(codec.issueVersion1(id, salt, g));
          bytes[position]! ^= 1 << bit;
          const tampered = tokenOf(bytes);
          expect(accepts(codec, tampered, salt)).toBeUndefined();
          // Still a well-formed version 1 token (it has no version byte to break), so the MAC catches it.
          const parsed = codec.parse(tampered)!;
          expect(parsed).toBeDefined();
          expect(parsed.version).toBe(1);
          expect(codec.verify(parsed, salt)).toBe(false);
          if (position < 16) expect(parsed.sessionId).not.toBe(id);
          else if (position < V1_PAYLOAD_BYTES) expect(parsed.generation).not.toBe(g);
          else expect(parsed).toMatchObject({ sessionId: id, generation: g });
        },
      ),
      { numRuns: 500 },
    );
  });

  it('every single bit of a version 1 token is covered (exhaustive over one token)', () => {
    const token = codec.issueVersion1(SESSION_ID, SALT, 42);
    for (let position = 0; position < V1_TOKEN_BYTES; position++) {
      for (let bit = 0; bit < 8; bit++) {
        const bytes = bytesOf(token);
        bytes[position]! ^= 1 << bit;
        expect(accepts(codec, tokenOf(bytes), SALT), `byte ${position} bit ${bit}`).toBeUndefined();
      }
    }
  });

  it('changing any one character of a version 1 token fails parse or verify', () => {
    const token = codec.issueVersion1(SESSION_ID, SALT, 42);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: token.length - 1 }), fc.constantFrom(...alphabet), (i, ch) => {
        fc.pre(token[i] !== ch);
        const changed = token.slice(0, i) + ch + token.slice(i + 1);
        expect(accepts(codec, changed, SALT)).toBeUndefined();
      }),
      { numRuns: 500 },
    );
  });

  it('a version 1 generation bumped by the holder fails verify', () => {
    const bytes = bytesOf(codec.issueVersion1(SESSION_ID, SALT, 9));
    bytes.writeUInt32BE(10, 16);
    const parsed = codec.parse(tokenOf(bytes))!;
    expect(parsed).toMatchObject({ version: 1, generation: 10 });
    expect(codec.verify(parsed, SALT)).toBe(false);
  });

  it('a version 1 token fails verify with another salt or another secret', () => {
    fc.assert(
      fc.property(uuidArb, saltArb, saltArb, generationArb, (id, salt, other, g) => {
        fc.pre(!salt.equals(other));
        const token = codec.issueVersion1(id, salt, g);
        expect(codec.verify(codec.parse(token)!, other)).toBe(false);
        const foreign = new RefreshTokenCodec(OTHER_SECRET).issueVersion1(id, salt, g);
        const parsed = codec.parse(foreign)!;
        expect(parsed).toMatchObject({ version: 1, sessionId: id, generation: g });
        expect(codec.verify(parsed, salt)).toBe(false);
      }),
      { numRuns: 200 },
    );
  });

  it('version 1 and version 2 tokens of the same session and generation differ, MAC included', () => {
    fc.assert(
      fc.property(uuidArb, uuidArb, saltArb, generationArb, (user, id, salt, g) => {
        const v1 = codec.issueVersion1(id, salt, g);
        const v2 = codec.issue(user, id, salt, g);
        expect(v1).not.toBe(v2);
        expect(v1.length).not.toBe(v2.length);
        const p1 = codec.parse(v1)!;
        const p2 = codec.parse(v2)!;
        expect(p1).toMatchObject({ version: 1, sessionId: id, generation: g });
        expect(p2).toMatchObject({ version: 2, userId: user, sessionId: id, generation: g });
        expect(p1.bytes.subarray(V1_PAYLOAD_BYTES).equals(p2.bytes.subarray(PAYLOAD_BYTES))).toBe(false);
      }),
      { numRuns: 200 },
    );
  });
});

describe('RefreshTokenCodec — telling the versions apart', () => {
  it('a version 2 token whose version byte is anything but 2 does not parse (all 255 other values)', () => {
    const token = codec.issue(USER_ID, SESSION_ID, SALT, 5);
    for (let version = 0; version < 256; version++) {
      const bytes = bytesOf(token);
      bytes[0] = version;
      const parsed = codec.parse(tokenOf(bytes));
      if (version === VERSION_2) expect(accepts(codec, tokenOf(bytes), SALT)).toBeDefined();
      else expect(parsed, `version byte ${version}`).toBeUndefined();
    }
  });

  it('a changed version byte never parses, for any token', () => {
    fc.assert(
      fc.property(uuidArb, uuidArb, saltArb, generationArb, fc.integer({ min: 0, max: 255 }), (user, id, salt, g, version) => {
        fc.pre(version !== VERSION_2);
        const bytes = bytesOf(codec.issue(user, id, salt, g));
        bytes[0] = version;
        expect(codec.parse(tokenOf(bytes))).toBeUndefined();
      }),
      { numRuns: 300 },
    );
  });

  it('a version 1 length token is always read as version 1, even when its first byte is 2', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: V1_TOKEN_BYTES, maxLength: V1_TOKEN_BYTES }), fc.boolean(), (raw, firstIs2) => {
        const bytes = Buffer.from(raw);
        if (firstIs2) bytes[0] = VERSION_2;
        const parsed = codec.parse(tokenOf(bytes))!;
        expect(parsed).toBeDefined();
        expect(parsed.version).toBe(1);
        expect(parsed.userId).toBeUndefined();
        expect(parsed.sessionId).toBe(bytes.subarray(0, 16).toString('hex').replace(/^(.{8})(.{4})(.{4})(.{4})/, '$1-$2-$3-$4-'));
        expect(codec.verify(parsed, SALT)).toBe(false);
      }),
      { numRuns: 300 },
    );
    // a genuine version 1 token whose session id starts with the byte 02 is still version 1, and genuine
    const id = '02c2b1a9-9d8e-4f70-a1b2-c3d4e5f60718';
    const parsed = codec.parse(codec.issueVersion1(id, SALT, 4))!;
    expect(parsed).toMatchObject({ version: 1, userId: undefined, sessionId: id, generation: 4 });
    expect(codec.verify(parsed, SALT)).toBe(true);
  });

  it('a version 2 length token is never read as version 1', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: TOKEN_BYTES, maxLength: TOKEN_BYTES }), fc.boolean(), (raw, versioned) => {
        const bytes = Buffer.from(raw);
        if (versioned) bytes[0] = VERSION_2;
        const parsed = codec.parse(tokenOf(bytes));
        if (bytes[0] === VERSION_2) {
          expect(parsed).toBeDefined();
          expect(parsed!.version).toBe(2);
          expect(parsed!.userId).toMatch(UUID_SHAPE);
          expect(codec.verify(parsed!, SALT)).toBe(false);
        } else {
          expect(parsed).toBeUndefined();
        }
      }),
      { numRuns: 300 },
    );
  });

  it('cutting the version byte and user id off a version 2 token gives a version 1 shape that fails verify', () => {
    fc.assert(
      fc.property(uuidArb, uuidArb, saltArb, generationArb, (user, id, salt, g) => {
        const bytes = bytesOf(codec.issue(user, id, salt, g));
        const cut = tokenOf(bytes.subarray(SESSION_AT));
        const parsed = codec.parse(cut)!;
        expect(parsed).toMatchObject({ version: 1, sessionId: id, generation: g });
        expect(codec.verify(parsed, salt)).toBe(false);
      }),
      { numRuns: 200 },
    );
  });

  it('putting a version byte and user id in front of a version 1 token gives a version 2 shape that fails verify', () => {
    fc.assert(
      fc.property(uuidArb, uuidArb, saltArb, generationArb, (user, id, salt, g) => {
        const v1 = bytesOf(codec.issueVersion1(id, salt, g));
        const upgraded = Buffer.concat([Buffer.from([VERSION_2]), Buffer.from(hexOf(user), 'hex'), v1]);
        expect(upgraded.length).toBe(TOKEN_BYTES);
        const parsed = codec.parse(tokenOf(upgraded))!;
        expect(parsed).toMatchObject({ version: 2, userId: user, sessionId: id, generation: g });
        expect(codec.verify(parsed, salt)).toBe(false);
      }),
      { numRuns: 200 },
    );
  });
});

describe('RefreshTokenCodec — determinism', () => {
  it('the same inputs give the identical token, from the same or another codec with the same secret', () => {
    fc.assert(
      fc.property(uuidArb, uuidArb, saltArb, generationArb, (user, id, salt, g) => {
        const a = codec.issue(user, id, salt, g);
        expect(codec.issue(user, id, Buffer.from(salt), g)).toBe(a);
        expect(new RefreshTokenCodec(SECRET).issue(user, id, salt, g)).toBe(a);
      }),
      { numRuns: 200 },
    );
  });

  it('any change of input changes the token', () => {
    const base = codec.issue(USER_ID, SESSION_ID, SALT, 5);
    const tokens = [
      codec.issue(USER_ID, SESSION_ID, SALT, 6),
      codec.issue(USER_ID, '3f6c2b1a-9d8e-4f70-a1b2-c3d4e5f60719', SALT, 5),
      codec.issue(USER_ID, SESSION_ID, Buffer.from('ff0102030405060708090a0b0c0d0e0f', 'hex'), 5),
      new RefreshTokenCodec(OTHER_SECRET).issue(USER_ID, SESSION_ID, SALT, 5),
      codec.issue(OTHER_USER_ID, SESSION_ID, SALT, 5),
      codec.issueVersion1(SESSION_ID, SALT, 5),
    ];
    expect(new Set([base, ...tokens]).size).toBe(tokens.length + 1);
    // same payload, different key: only the MAC differs
    const otherSalt = bytesOf(tokens[2]!);
    expect(otherSalt.subarray(0, PAYLOAD_BYTES).equals(bytesOf(base).subarray(0, PAYLOAD_BYTES))).toBe(true);
    expect(otherSalt.subarray(PAYLOAD_BYTES).equals(bytesOf(base).subarray(PAYLOAD_BYTES))).toBe(false);
    // another user: the user id bytes and the MAC differ, nothing else
    const otherUser = bytesOf(tokens[4]!);
    expect(otherUser.subarray(SESSION_AT, PAYLOAD_BYTES).equals(bytesOf(base).subarray(SESSION_AT, PAYLOAD_BYTES))).toBe(true);
    expect(otherUser.subarray(USER_AT, SESSION_AT).equals(bytesOf(base).subarray(USER_AT, SESSION_AT))).toBe(false);
    expect(otherUser.subarray(PAYLOAD_BYTES).equals(bytesOf(base).subarray(PAYLOAD_BYTES))).toBe(false);
  });
});

describe('RefreshTokenCodec — tampering', () => {
  it('a flipped bit in any byte of the payload or the MAC fails parse or verify', () => {
    fc.assert(
      fc.property(
        uuidArb,
        uuidArb,
        saltArb,
        generationArb,
        fc.integer({ min: 0, max: TOKEN_BYTES - 1 }),
        fc.integer({ min: 0, max: 7 }),
        (user, id, salt, g, position, bit) => {
          const bytes = bytesOf(codec.issue(user, id, salt, g));
          bytes[position]! ^= 1 << bit;
          const tampered = tokenOf(bytes);
          expect(accepts(codec, tampered, salt)).toBeUndefined();
          const parsed = codec.parse(tampered);
          if (position === 0) {
            // the version byte: parse refuses it
            expect(parsed).toBeUndefined();
            return;
          }
          // Otherwise it is still well formed, so it is verify (the MAC), not parse, that catches it.
          expect(parsed).toBeDefined();
          expect(parsed!.version).toBe(2);
          expect(codec.verify(parsed!, salt)).toBe(false);
          if (position < SESSION_AT) expect(parsed!.userId).not.toBe(user);
          else if (position < GENERATION_AT) expect(parsed!.sessionId).not.toBe(id);
          else if (position < PAYLOAD_BYTES) expect(parsed!.generation).not.toBe(g);
          else expect(parsed).toMatchObject({ userId: user, sessionId: id, generation: g });
        },
      ),
      { numRuns: 500 },
    );
  });

  it('every single bit of a token is covered (exhaustive over one token)', () => {
    const token = codec.issue(USER_ID, SESSION_ID, SALT, 42);
    for (let position = 0; position < TOKEN_BYTES; position++) {
      for (let bit = 0; bit < 8; bit++) {
        const bytes = bytesOf(token);
        bytes[position]! ^= 1 << bit;
        expect(accepts(codec, tokenOf(bytes), SALT), `byte ${position} bit ${bit}`).toBeUndefined();
      }
    }
  });

  it('changing any one character of the token text fails parse or verify', () => {
    const token = codec.issue(USER_ID, SESSION_ID, SALT, 42);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: token.length - 1 }), fc.constantFrom(...alphabet), (i, ch) => {
        fc.pre(token[i] !== ch);
        const changed = token.slice(0, i) + ch + token.slice(i + 1);
        expect(accepts(codec, changed, SALT)).toBeUndefined();
      }),
      { numRuns: 500 },
    );
  });

  it('changing any one character of the token text, exhaustively over one token', () => {
    const token = codec.issue(USER_ID, SESSION_ID, SALT, 42);
    for (let i = 0; i < token.length; i++) {
      for (const ch of alphabet) {
        if (token[i] === ch) continue;
        const changed = token.slice(0, i) + ch + token.slice(i + 1);
        expect(accepts(codec, changed, SALT), `character ${i} → ${ch}`).toBeUndefined();
      }
    }
  });

  it('a generation bumped by the holder (without the secret) fails verify', () => {
    const bytes = bytesOf(codec.issue(USER_ID, SESSION_ID, SALT, 9));
    bytes.writeUInt32BE(10, GENERATION_AT);
    const parsed = codec.parse(tokenOf(bytes))!;
    expect(parsed.generation).toBe(10);
    expect(codec.verify(parsed, SALT)).toBe(false);
  });

  it('swapping the user id of a genuine token fails verify: the MAC covers it', () => {
    fc.assert(
      fc.property(uuidArb, uuidArb, uuidArb, saltArb, generationArb, (user, other, id, salt, g) => {
        fc.pre(user !== other);
        const bytes = bytesOf(codec.issue(user, id, salt, g));
        bytes.write(hexOf(other), USER_AT, 16, 'hex');
        const parsed = codec.parse(tokenOf(bytes))!;
        expect(parsed).toMatchObject({ version: 2, userId: other, sessionId: id, generation: g });
        expect(codec.verify(parsed, salt)).toBe(false);
      }),
      { numRuns: 200 },
    );
  });

  it('swapping MACs between two tokens of one session fails verify', () => {
    const a = bytesOf(codec.issue(USER_ID, SESSION_ID, SALT, 1));
    const b = bytesOf(codec.issue(USER_ID, SESSION_ID, SALT, 2));
    const mixed = Buffer.concat([a.subarray(0, PAYLOAD_BYTES), b.subarray(PAYLOAD_BYTES)]);
    expect(accepts(codec, tokenOf(mixed), SALT)).toBeUndefined();
    // nor between two users' tokens of one session id and generation
    const c = bytesOf(codec.issue(OTHER_USER_ID, SESSION_ID, SALT, 1));
    const mixedUser = Buffer.concat([c.subarray(0, PAYLOAD_BYTES), a.subarray(PAYLOAD_BYTES)]);
    expect(accepts(codec, tokenOf(mixedUser), SALT)).toBeUndefined();
  });

  it('a wrong salt fails verify', () => {
    fc.assert(
      fc.property(uuidArb, uuidArb, saltArb, saltArb, generationArb, (user, id, salt, other, g) => {
        fc.pre(!salt.equals(other));
        const parsed = codec.parse(codec.issue(user, id, salt, g))!;
        expect(codec.verify(parsed, other)).toBe(false);
        expect(codec.verify(parsed, salt)).toBe(true);
      }),
      { numRuns: 200 },
    );
    const parsed = codec.parse(codec.issue(USER_ID, SESSION_ID, SALT, 1))!;
    expect(codec.verify(parsed, Buffer.alloc(0))).toBe(false);
    expect(codec.verify(parsed, SALT.subarray(0, 15))).toBe(false);
    const parsedV1 = codec.parse(codec.issueVersion1(SESSION_ID, SALT, 1))!;
    expect(codec.verify(parsedV1, Buffer.alloc(0))).toBe(false);
    expect(codec.verify(parsedV1, SALT.subarray(0, 15))).toBe(false);
  });

  it('a token from another secret parses (shape only) but fails verify', () => {
    const other = new RefreshTokenCodec(OTHER_SECRET);
    fc.assert(
      fc.property(uuidArb, uuidArb, saltArb, generationArb, (user, id, salt, g) => {
        const foreign = other.issue(user, id, salt, g);
        const parsed = codec.parse(foreign)!;
        expect(parsed).toMatchObject({ version: 2, userId: user, sessionId: id, generation: g });
        expect(codec.verify(parsed, salt)).toBe(false);
        expect(other.verify(other.parse(foreign)!, salt)).toBe(true);
      }),
      { numRuns: 200 },
    );
  });

  it('secrets differing in one character give unrelated keys', () => {
    const a = new RefreshTokenCodec(SECRET);
    const b = new RefreshTokenCodec(SECRET.slice(0, -1) + 'Z');
    expect(a.verify(a.parse(b.issue(USER_ID, SESSION_ID, SALT, 0))!, SALT)).toBe(false);
    expect(a.verify(a.parse(b.issueVersion1(SESSION_ID, SALT, 0))!, SALT)).toBe(false);
  });
});

describe('RefreshTokenCodec — parse of garbage returns undefined and never throws', () => {
  const valid = codec.issue(USER_ID, SESSION_ID, SALT, 3);
  const body = valid.slice(4);
  const validV1 = codec.issueVersion1(SESSION_ID, SALT, 3);
  const bodyV1 = validV1.slice(4);

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
    ['String object of a version 1 token', new String(validV1)],
    ['Buffer of the token', Buffer.from(valid)],
    ['object with toString', { toString: () => valid }],
    ['object with length 96', { length: 96, startsWith: () => true, slice: () => body }],
    ['object with length 74', { length: 74, startsWith: () => true, slice: () => bodyV1 }],
    ['Date', new Date(0)],
    ['Map', new Map()],
  ];
  it.each(nonStrings)('non-string: %s', (_name, input) => {
    expect(() => codec.parse(input)).not.toThrow();
    expect(codec.parse(input)).toBeUndefined();
  });

  // The last character of a 52-byte (version 1) body carries 2 bits; the other 4 must be zero.
  // A 69-byte (version 2) body fills its 92 characters exactly, so it has no spare bits.
  const lastV1 = alphabet.indexOf(bodyV1.at(-1)!);
  const nonCanonicalLastV1 = alphabet[lastV1 | 1]!;

  const strings: [string, string][] = [
    ['empty', ''],
    ['prefix only', 'tsr_'],
    ['body only', body],
    ['version 1 body only', bodyV1],
    ['wrong prefix (tsx_)', 'tsx_' + body],
    ['upper-case prefix', 'TSR_' + body],
    ['prefix with a hyphen', 'tsr-' + body],
    ['one character short', valid.slice(0, -1)],
    ['one character long', valid + 'A'],
    ['version 1: one character short', validV1.slice(0, -1)],
    ['version 1: one character long', validV1 + 'A'],
    ['two tokens', valid + valid],
    ['two version 1 tokens', validV1 + validV1],
    ['padding', valid.slice(0, -2) + '=='],
    ['trailing =', valid.slice(0, -1) + '='],
    ['version 1: padding', validV1.slice(0, -2) + '=='],
    ['version 1: trailing =', validV1.slice(0, -1) + '='],
    ['standard base64 +', valid.slice(0, 10) + '+' + valid.slice(11)],
    ['standard base64 /', valid.slice(0, 10) + '/' + valid.slice(11)],
    ['version 1: standard base64 +', validV1.slice(0, 10) + '+' + validV1.slice(11)],
    ['version 1: non-canonical last character', validV1.slice(0, -1) + nonCanonicalLastV1],
    ['space inside', valid.slice(0, 20) + ' ' + valid.slice(21)],
    ['leading space', ' ' + valid.slice(0, -1)],
    ['trailing newline', valid.slice(0, -1) + '\n'],
    ['version 1: trailing newline', validV1.slice(0, -1) + '\n'],
    ['NUL inside', valid.slice(0, 20) + '\0' + valid.slice(21)],
    ['percent-encoded', valid.slice(0, 20) + '%' + valid.slice(21)],
    ['é inside', valid.slice(0, 20) + 'é' + valid.slice(21)],
    ['Cyrillic А look-alike', valid.slice(0, 20) + 'А' + valid.slice(21)],
    ['full-width Ａ', valid.slice(0, 20) + 'Ａ' + valid.slice(21)],
    ['emoji (2 code units)', valid.slice(0, 20) + '😀' + valid.slice(22)],
    ['zero-width space', valid.slice(0, 20) + '\u200b' + valid.slice(21)],
    ['combining accent', valid.slice(0, 20) + '\u0301' + valid.slice(21)],
    ['lone surrogate', valid.slice(0, 20) + '\ud800' + valid.slice(21)],
    ['version 1: lone surrogate', validV1.slice(0, 20) + '\ud800' + validV1.slice(21)],
    ['all A: 69 zero bytes (version byte 0)', 'tsr_' + 'A'.repeat(92)],
    ['all _: 69 0xff bytes (version byte 255)', 'tsr_' + '_'.repeat(92)],
    ['the prefix repeated inside the body', 'tsr_tsr_' + body.slice(4)],
    ['a JWT', 'eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl'],
  ];
  it.each(strings)('string: %s', (_name, input) => {
    expect(() => codec.parse(input)).not.toThrow();
    expect(codec.parse(input)).toBeUndefined();
  });

  // Well formed, so parse (which only splits) returns parts, but no MAC matches: verify is the gate.
  it.each<[string, string, 1 | 2, number]>([
    ['version 1, all A: 52 zero bytes', 'tsr_' + 'A'.repeat(70), 1, V1_TOKEN_BYTES],
    ['version 1, all _ but a canonical last character', 'tsr_' + '_'.repeat(69) + 'w', 1, V1_TOKEN_BYTES],
    ['version 1, the prefix repeated inside the body', 'tsr_tsr_' + bodyV1.slice(4), 1, V1_TOKEN_BYTES],
    ['version 2, the version byte then zero bytes', tokenOf(Buffer.concat([Buffer.from([2]), Buffer.alloc(68)])), 2, TOKEN_BYTES],
    ['version 2, the version byte then 0xff bytes', tokenOf(Buffer.concat([Buffer.from([2]), Buffer.alloc(68, 0xff)])), 2, TOKEN_BYTES],
    ['version 2, a genuine payload with an all-zero MAC', tokenOf(Buffer.concat([bytesOf(valid).subarray(0, PAYLOAD_BYTES), Buffer.alloc(32)])), 2, TOKEN_BYTES],
  ])('well-formed but not genuine: %s parses and fails verify', (_name, input, version, length) => {
    const parsed = codec.parse(input);
    expect(parsed).toBeDefined();
    expect(parsed!.version).toBe(version);
    expect(parsed!.bytes.length).toBe(length);
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
        unitArb.chain((unit) => fc.string({ unit, minLength: 0, maxLength: 100 })),
        fc.boolean(),
        (text, prefixed) => {
          const input = prefixed ? 'tsr_' + text : text;
          let parsed: ParsedRefreshToken | undefined;
          expect(() => {
            parsed = codec.parse(input);
          }).not.toThrow();
          if (parsed) {
            expect(input).toMatch(ANY_TOKEN_SHAPE);
            expect(tokenOf(parsed.bytes)).toBe(input);
          }
        },
      ),
      { numRuns: 500 },
    );
  });

  it('random strings over the token alphabet at either length: a parse is always canonical and of the right version, and verify fails', () => {
    const alphabetChars = (alphabet + '+/=. ').split('');
    fc.assert(
      fc.property(
        fc.constantFrom(70, 92).chain((n) => fc.array(fc.constantFrom(...alphabetChars), { minLength: n, maxLength: n })),
        fc.boolean(),
        (chars, forceVersion2) => {
          // 'A' then one of 'g'–'v' spells a first byte of 2, so version 2 bodies are not vanishingly rare
          if (forceVersion2 && chars.length === 92) {
            chars[0] = 'A';
            chars[1] = 'ghijklmnopqrstuv'[alphabet.indexOf(chars[1]!) & 15]!;
          }
          const input = 'tsr_' + chars.join('');
          let parsed: ParsedRefreshToken | undefined;
          expect(() => {
            parsed = codec.parse(input);
          }).not.toThrow();
          if (parsed) {
            expect(tokenOf(parsed.bytes)).toBe(input);
            expect(parsed.sessionId).toMatch(UUID_SHAPE);
            if (chars.length === 70) {
              expect(parsed.version).toBe(1);
              expect(parsed.userId).toBeUndefined();
            } else {
              expect(parsed.version).toBe(2);
              expect(parsed.bytes[0]).toBe(VERSION_2);
              expect(parsed.userId).toMatch(UUID_SHAPE);
            }
            expect(codec.verify(parsed, SALT)).toBe(false);
          }
        },
      ),
      { numRuns: 500 },
    );
  });

  it('every non-canonical spelling of a genuine version 1 token is refused (one token has exactly one spelling)', () => {
    fc.assert(
      fc.property(uuidArb, saltArb, generationArb, fc.integer({ min: 1, max: 15 }), (id, salt, g, noise) => {
        const token = codec.issueVersion1(id, salt, g);
        const lastIndex = alphabet.indexOf(token.at(-1)!);
        expect(lastIndex & 15).toBe(0);
        const respelled = token.slice(0, -1) + alphabet[lastIndex | noise]!;
        expect(Buffer.from(respelled.slice(4), 'base64url').equals(bytesOf(token))).toBe(true); // same bytes…
        expect(codec.parse(respelled)).toBeUndefined(); // …but refused
      }),
      { numRuns: 200 },
    );
  });

  it('a version 2 token has exactly one spelling: every character carries 6 bits, so any change changes the bytes', () => {
    fc.assert(
      fc.property(uuidArb, uuidArb, saltArb, generationArb, fc.nat(), fc.constantFrom(...alphabet), (user, id, salt, g, at, ch) => {
        const token = codec.issue(user, id, salt, g);
        expect(token.length - 4).toBe((TOKEN_BYTES * 4) / 3);
        const i = 4 + (at % (token.length - 4));
        fc.pre(token[i] !== ch);
        const respelled = token.slice(0, i) + ch + token.slice(i + 1);
        expect(bytesOf(respelled).equals(bytesOf(token))).toBe(false);
        expect(accepts(codec, respelled, salt)).toBeUndefined();
      }),
      { numRuns: 200 },
    );
  });
});
