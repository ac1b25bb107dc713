import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { deriveKeys } from '../../src/core/derive-key.js';
import { MfaTokenCodec } from '../../src/core/mfa-token.js';
import { newRecoveryCodes, normalizeRecoveryCode, recoveryCodeHashes, RECOVERY_CODE_COUNT } from '../../src/core/recovery-code.js';

const SECRET = 'test-secret-that-is-at-least-32-bytes-long!';
const OTHER = 'another-secret-that-is-at-least-32-bytes-long';

describe('MfaTokenCodec', () => {
  const codec = new MfaTokenCodec(deriveKeys(SECRET, undefined, 'mfa-token'));
  const ref = { userId: randomUUID(), loginId: randomUUID(), transport: 'cookie' as const };

  it('makes a token that parses back to its ids and verifies for its transport only', () => {
    const token = codec.make(ref);
    expect(token).toMatch(/^[A-Za-z0-9_-]{87}$/);
    const parsed = codec.parse(token)!;
    expect(parsed).toMatchObject({ userId: ref.userId, loginId: ref.loginId });
    expect(codec.verify(parsed, 'cookie')).toBe(true);
    expect(codec.verify(parsed, 'body')).toBe(false);
  });

  it('refuses tokens of another secret, and accepts the previous secret’s while it changes', () => {
    const old = new MfaTokenCodec(deriveKeys(OTHER, undefined, 'mfa-token'));
    const token = old.make(ref);
    expect(codec.verify(codec.parse(token)!, 'cookie')).toBe(false);
    const rotating = new MfaTokenCodec(deriveKeys(SECRET, OTHER, 'mfa-token'));
    expect(rotating.verify(rotating.parse(token)!, 'cookie')).toBe(true);
    // the link tokens' key is another key: a link token's MAC never passes here
    const linkKeyed = new MfaTokenCodec(deriveKeys(SECRET, undefined, 'link-token'));
    expect(codec.verify(codec.parse(linkKeyed.make(ref))!, 'cookie')).toBe(false);
  });

  it('does not parse malformed, padded, re-spelled or other-version tokens', () => {
    const token = codec.make(ref);
    const bytes = Buffer.from(token, 'base64url');
    const other = Buffer.from(bytes);
    other[0] = 2;
    const standardAlphabet = token.replace(/-/g, '+').replace(/_/g, '/');
    for (const bad of ['', 'x', token.slice(1), `${token}A`, `${token}=`, other.toString('base64url'), `${token.slice(0, -1)}!`]) {
      expect(codec.parse(bad), bad).toBeUndefined();
    }
    if (standardAlphabet !== token) expect(codec.parse(standardAlphabet)).toBeUndefined();
    // a last character whose unused bits are set is another spelling of the same bytes
    const last = token.at(-1)!;
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const sibling = alphabet[alphabet.indexOf(last) ^ 1]!;
    expect(codec.parse(token.slice(0, -1) + sibling)).toBeUndefined();
  });

  it('a flipped MAC byte fails verification', () => {
    const bytes = Buffer.from(codec.make(ref), 'base64url');
    bytes[bytes.length - 5]! ^= 1;
    expect(codec.verify(codec.parse(bytes.toString('base64url'))!, 'cookie')).toBe(false);
  });
});

describe('recovery codes', () => {
  const keys = deriveKeys(SECRET, undefined, 'recovery-code');

  it('ten distinct codes of 10 Crockford base32 characters, shown as two groups of five', () => {
    const codes = newRecoveryCodes();
    expect(codes).toHaveLength(RECOVERY_CODE_COUNT);
    expect(new Set(codes).size).toBe(RECOVERY_CODE_COUNT);
    for (const code of codes) expect(code).toMatch(/^[0-9a-hjkmnp-tv-z]{5}-[0-9a-hjkmnp-tv-z]{5}$/);
  });

  it('are read as people type them: case, spaces, hyphens, and o/i/l for 0/1', () => {
    expect(normalizeRecoveryCode(' 7GQ4M-2XK9D ')).toBe('7gq4m2xk9d');
    expect(normalizeRecoveryCode('7gq4m 2xk9d')).toBe('7gq4m2xk9d');
    expect(normalizeRecoveryCode('o1lIO-abcde')).toBe('01110abcde');
    for (const bad of ['', '7gq4m', '7gq4m-2xk9d-1', '7gq4m-2xk9u', '7gq4m_2xk9d', 'ééééé-ééééé']) expect(normalizeRecoveryCode(bad), bad).toBeUndefined();
  });

  it('are stored as an HMAC bound to the user and the secret', () => {
    const user = randomUUID();
    const [hash] = recoveryCodeHashes(keys, user, '7gq4m-2xk9d')!;
    expect(recoveryCodeHashes(keys, user, '7GQ4M2XK9D')).toEqual([hash]);
    expect(recoveryCodeHashes(keys, randomUUID(), '7gq4m-2xk9d')).not.toEqual([hash]);
    expect(recoveryCodeHashes(deriveKeys(OTHER, undefined, 'recovery-code'), user, '7gq4m-2xk9d')).not.toEqual([hash]);
    expect(hash).not.toContain('7gq4m');
    // while TESSERA_SECRET changes, the previous secret's form is a candidate too
    expect(recoveryCodeHashes(deriveKeys(OTHER, SECRET, 'recovery-code'), user, '7gq4m-2xk9d')?.[1]).toBe(hash);
    expect(recoveryCodeHashes(keys, user, 'not a code')).toBeUndefined();
  });
});
