import { describe, expect, it } from 'vitest';
import {
  base32Decode, base32Encode, hotp, matchingSteps, normalizeTotpCode, otpauthUri, totpCode, totpStep, TOTP_PERIOD_SECONDS,
} from '../../src/core/totp.js';

/** The SHA-1 seed of RFC 6238 appendix B (and RFC 4226 appendix D): the ASCII bytes "12345678901234567890". */
const SEED = Buffer.from('12345678901234567890', 'ascii');
const at = (unixSeconds: number) => new Date(unixSeconds * 1000);

describe('HOTP (RFC 4226 appendix D)', () => {
  it.each([
    [0, '755224'], [1, '287082'], [2, '359152'], [3, '969429'], [4, '338314'],
    [5, '254676'], [6, '287922'], [7, '162583'], [8, '399871'], [9, '520489'],
  ])('counter %i → %s', (counter, code) => {
    expect(hotp(SEED, counter)).toBe(code);
  });
});

describe('TOTP (RFC 6238 appendix B, SHA-1)', () => {
  // The RFC lists 8-digit codes; a 6-digit code is the same number modulo 10⁶: its last six digits.
  it.each([
    [59, '94287082'],
    [1111111109, '07081804'],
    [1111111111, '14050471'],
    [1234567890, '89005924'],
    [2000000000, '69279037'],
    [20000000000, '65353130'],
  ])('T = %i s: %s in 8 digits, its last 6 in 6 digits', (seconds, eight) => {
    const step = totpStep(at(seconds));
    expect(totpCode(SEED, step, 8)).toBe(eight);
    expect(totpCode(SEED, step)).toBe(eight.slice(2));
    expect(matchingSteps(SEED, eight.slice(2), at(seconds))).toEqual([step]);
  });

  it('counts 30-second steps from the epoch', () => {
    expect(totpStep(at(0))).toBe(0);
    expect(totpStep(at(29))).toBe(0);
    expect(totpStep(at(30))).toBe(1);
    expect(totpStep(at(59))).toBe(1);
    expect(totpStep(at(1111111109))).toBe(0x23523ec);
    expect(TOTP_PERIOD_SECONDS).toBe(30);
  });
});

describe('the ±1 step window', () => {
  const now = at(1_800_000_015); // in the middle of a step
  const step = totpStep(now);

  it('accepts the codes of the previous, current and next step, and says which', () => {
    expect(matchingSteps(SEED, totpCode(SEED, step - 1), now)).toEqual([step - 1]);
    expect(matchingSteps(SEED, totpCode(SEED, step), now)).toEqual([step]);
    expect(matchingSteps(SEED, totpCode(SEED, step + 1), now)).toEqual([step + 1]);
  });

  it('refuses the codes of two steps away, either side', () => {
    for (const far of [step - 2, step + 2, step - 10, step + 10]) {
      const code = totpCode(SEED, far);
      // (unless that code happens to be the code of a step in the window too)
      const inWindow = [step - 1, step, step + 1].some((s) => totpCode(SEED, s) === code);
      if (!inWindow) expect(matchingSteps(SEED, code, now)).toEqual([]);
    }
  });

  it('a code is valid for 90 seconds at most: from the start of the step before to the end of the step after', () => {
    const code = totpCode(SEED, step);
    const start = step * 30;
    expect(matchingSteps(SEED, code, at(start - 30))).toEqual([step]);
    expect(matchingSteps(SEED, code, at(start + 59))).toEqual([step]);
    expect(matchingSteps(SEED, code, at(start - 31))).toEqual([]);
    expect(matchingSteps(SEED, code, at(start + 60))).toEqual([]);
  });

  it('malformed codes match nothing; spaces inside a code are ignored', () => {
    const code = totpCode(SEED, step);
    for (const bad of ['', '12345', '1234567', 'abcdef', '12 34 5', `${code}0`, `-${code.slice(1)}`, '１２３４５６', '+12345', '1e5000']) {
      expect(matchingSteps(SEED, bad, now), bad).toEqual([]);
    }
    expect(matchingSteps(SEED, `${code.slice(0, 3)} ${code.slice(3)}`, now)).toEqual([step]);
    expect(normalizeTotpCode(' 123 456 ')).toBe('123456');
    expect(normalizeTotpCode('12345a')).toBeUndefined();
  });

  it('another secret’s code is wrong', () => {
    const other = Buffer.from('another secret of 20b', 'ascii');
    const code = totpCode(other, step);
    if (![step - 1, step, step + 1].some((s) => totpCode(SEED, s) === code)) expect(matchingSteps(SEED, code, now)).toEqual([]);
  });
});

describe('base32 (RFC 4648 §10 vectors, no padding)', () => {
  it.each([
    ['', ''], ['f', 'MY'], ['fo', 'MZXQ'], ['foo', 'MZXW6'], ['foob', 'MZXW6YQ'], ['fooba', 'MZXW6YTB'], ['foobar', 'MZXW6YTBOI'],
  ])('%j ⇄ %s', (text, encoded) => {
    expect(base32Encode(Buffer.from(text))).toBe(encoded);
    expect(base32Decode(encoded)?.toString()).toBe(text);
  });

  it('encodes the RFC seed as authenticator apps expect', () => {
    expect(base32Encode(SEED)).toBe('GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ');
  });

  it('decodes as people type it: any case, spaces, padding', () => {
    expect(base32Decode('mzxw 6ytb oi======')?.toString()).toBe('foobar');
  });

  it('refuses what is not base32, or not the one spelling of its bytes', () => {
    for (const bad of ['MZXW1', 'MZXW8', 'MZ!W6', 'MZXW7', 'MZ', 'M', 'MZXW6YTBO']) expect(base32Decode(bad), bad).toBeUndefined();
  });

  it('round-trips random secrets', () => {
    for (let n = 0; n < 40; n++) {
      const bytes = Buffer.from(Array.from({ length: n }, (_, i) => (i * 37 + n) & 255));
      expect(base32Decode(base32Encode(bytes))).toEqual(bytes);
    }
  });
});

describe('otpauth URI', () => {
  it('names the issuer and the account, and carries the secret and the parameters', () => {
    expect(otpauthUri({ issuer: 'Tessera', account: 'ada@example.com', secret: SEED })).toBe(
      'otpauth://totp/Tessera:ada%40example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Tessera&algorithm=SHA1&digits=6&period=30',
    );
  });

  it('escapes what could change its structure: colons, ampersands, spaces, question marks, non-ASCII', () => {
    const uri = otpauthUri({ issuer: 'Acme & Co: Ünïcode?', account: 'a+b:c&d@example.com', secret: SEED });
    const url = new URL(uri);
    expect(url.protocol).toBe('otpauth:');
    expect(url.searchParams.get('issuer')).toBe('Acme & Co: Ünïcode?');
    expect(url.searchParams.get('secret')).toBe('GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ');
    expect([...url.searchParams.keys()]).toEqual(['secret', 'issuer', 'algorithm', 'digits', 'period']);
    const label = uri.slice('otpauth://totp/'.length, uri.indexOf('?'));
    expect(label.split(':')).toHaveLength(2);
    expect(label.split(':').map(decodeURIComponent)).toEqual(['Acme & Co: Ünïcode?', 'a+b:c&d@example.com']);
  });
});
