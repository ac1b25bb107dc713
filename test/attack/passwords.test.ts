/**
 * Passwords as an attacker guesses them and as a user types them (SPEC §2 "Passwords",
 * ASVS 5.0 V6.2), over real HTTP: verified exactly as sent (no truncation, no case or
 * whitespace folding), any composition and long passphrases accepted, and the passwords
 * every credential-stuffing list starts with refused at registration and password change.
 *
 * Length limits (7 and 1025 characters refused, 8 and 1024 accepted) are in
 * test/server/auth-flow.test.ts; oversized passwords in ./input-abuse.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bearer, codeOf } from '../faults/helpers/http.js';
import { newEmail } from '../helpers/app.js';
import { registerAccount, snapshot, startLiveApp, type LiveApp } from './helpers/live-app.js';

let t: LiveApp;

beforeAll(async () => {
  t = await startLiveApp({ RATE_LIMITS: 'off' });
});
afterAll(() => t?.close());

const login = (email: string, password: string) => t.http.post('/auth/login', { email, password, transport: 'body' });

describe('verified exactly as received', () => {
  // 1024 characters, mixed case, inner and outer spaces, and a long common prefix (bcrypt would stop at 72 bytes)
  const password = ` Correct Horse ${'Battery Staple '.repeat(70)}`.slice(0, 1023) + 'X';

  it('the full 1024-character password signs in; truncated, case-folded or trimmed forms do not', async () => {
    expect([...password]).toHaveLength(1024);
    const account = await registerAccount(t.http, { password });
    expect((await login(account.email, password)).status).toBe(200);
    const variants = {
      'first 72 characters': password.slice(0, 72),
      'first 1023 characters': password.slice(0, 1023),
      'lower case': password.toLowerCase(),
      'upper case': password.toUpperCase(),
      trimmed: password.trim(),
      'spaces removed': password.replace(/ /g, ''),
      'last character changed': `${password.slice(0, -1)}Y`,
    };
    for (const [name, variant] of Object.entries(variants)) {
      if (variant === password || [...variant].length < 8) continue;
      const res = await login(account.email, variant);
      expect(res.status, name).toBe(401);
      expect(codeOf(res), name).toBe('invalid_credentials');
    }
  });

  it('any composition works: spaces only, emoji, right-to-left text, symbols, 64 characters and more', async () => {
    for (const password of ['        ', '🔑🔑🔑🔑🔑🔑🔑🔑', 'كلمة السر الطويلة', '!@#$%^&*()_+{}|:"<>?', 'ñ'.repeat(64), 'a'.repeat(200)]) {
      const account = await registerAccount(t.http, { password });
      const res = await login(account.email, password);
      expect(res.status, JSON.stringify(password)).toBe(200);
    }
  });
});

describe('the passwords an attacker tries first cannot be set (ASVS 5.0 V6.2.4)', () => {
  // From the top of every public list of common passwords, each long enough for the 8-character minimum.
  const common = ['password', '12345678', '123456789', '1234567890', 'password1', 'qwertyuiop', 'iloveyou', '11111111', 'sunshine', 'princess', 'football', 'baseball', 'welcome1', 'Password1', 'PASSWORD'];

  it('registering with any of them → 400 weak_password, nothing created', async () => {
    const before = await snapshot(t);
    const accepted: string[] = [];
    for (const password of common) {
      const res = await t.http.post('/auth/register', { email: newEmail(), password, transport: 'body' });
      if (res.status !== 400 || codeOf(res) !== 'weak_password') accepted.push(`${password} → ${res.status}`);
    }
    expect(accepted, 'common passwords that could be set').toEqual([]);
    expect(await snapshot(t)).toEqual(before);
  });

  it('changing to a common password → 400 weak_password; the old password still works', async () => {
    const account = await registerAccount(t.http);
    const res = await t.http.post('/auth/password', { currentPassword: account.password, newPassword: 'password1' }, { headers: bearer(account.tokens.accessToken) });
    expect(res.status, res.text).toBe(400);
    expect(codeOf(res)).toBe('weak_password');
    expect((await login(account.email, account.password)).status).toBe(200);
  });
});
