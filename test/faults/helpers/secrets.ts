/**
 * Collects every credential a test sees (passwords it sent; access tokens, refresh tokens
 * and cookie values it received) and checks that a text (a log, a database dump) holds
 * none of them, in any of the encodings a careless implementation would store them in.
 */
import { createHash } from 'node:crypto';
import { expect } from 'vitest';
import type { HttpResponse } from './http.js';

export class SecretBag {
  readonly passwords = new Set<string>();
  readonly refreshTokens = new Set<string>();
  readonly accessTokens = new Set<string>();
  readonly cookies = new Set<string>();
  readonly other = new Set<string>();

  password(value: string): string {
    this.passwords.add(value);
    return value;
  }

  /** Takes the tokens out of a response body and its Set-Cookie headers. */
  fromResponse(res: HttpResponse): HttpResponse {
    try {
      const body = JSON.parse(res.text) as { accessToken?: unknown; refreshToken?: unknown };
      if (typeof body.accessToken === 'string') this.accessTokens.add(body.accessToken);
      if (typeof body.refreshToken === 'string') this.refreshTokens.add(body.refreshToken);
    } catch {
      // not JSON
    }
    for (const cookie of [res.headers['set-cookie'] ?? []].flat()) {
      const value = /^tessera_refresh=([^;]*)/.exec(cookie)?.[1];
      if (value) {
        this.cookies.add(value);
        this.refreshTokens.add(value);
      }
    }
    return res;
  }

  get size(): number {
    return this.passwords.size + this.refreshTokens.size + this.accessTokens.size + this.other.size;
  }

  /** Every form each secret must not appear in: itself, and for refresh tokens their MAC and hashes. */
  forms(): { what: string; text: string }[] {
    const forms: { what: string; text: string }[] = [];
    const hashes = (what: string, value: string) => {
      const sha = createHash('sha256').update(value).digest();
      forms.push({ what: `sha256 hex of ${what}`, text: sha.toString('hex') });
      forms.push({ what: `sha256 base64 of ${what}`, text: sha.toString('base64') });
      forms.push({ what: `sha256 base64url of ${what}`, text: sha.toString('base64url') });
    };
    for (const p of this.passwords) {
      forms.push({ what: 'a password', text: p });
      forms.push({ what: 'a password (hex)', text: Buffer.from(p).toString('hex') });
      forms.push({ what: 'a password (base64)', text: Buffer.from(p).toString('base64') });
      hashes('a password', p);
    }
    for (const token of this.refreshTokens) {
      const bytes = Buffer.from(token.slice(4), 'base64url');
      const mac = bytes.subarray(20);
      forms.push({ what: 'a refresh token', text: token });
      forms.push({ what: 'a refresh token without its prefix', text: token.slice(4) });
      forms.push({ what: 'a refresh token MAC (hex)', text: mac.toString('hex') });
      forms.push({ what: 'a refresh token MAC (base64)', text: mac.toString('base64') });
      forms.push({ what: 'a refresh token MAC (base64url)', text: mac.toString('base64url') });
      hashes('a refresh token', token);
    }
    for (const token of this.accessTokens) {
      forms.push({ what: 'an access token', text: token });
      forms.push({ what: 'an access token signature', text: token.split('.')[2]! });
      hashes('an access token', token);
    }
    for (const value of this.other) forms.push({ what: 'a secret', text: value });
    return forms;
  }

  /** Fails, naming the kind of secret (never printing it), if `text` contains any. */
  expectAbsentFrom(text: string, where: string): void {
    const lower = text.toLowerCase();
    const found = this.forms().filter((f) => f.text.length >= 8 && (text.includes(f.text) || (/^[0-9a-f]+$/.test(f.text) && lower.includes(f.text))));
    expect(found.map((f) => f.what), `${where} contains secrets`).toEqual([]);
  }
}

/** Shapes of credentials that must never reach a log line, whoever they belong to. */
export function expectNoCredentialShapes(log: string, where: string): void {
  expect(log.match(/tsr_[A-Za-z0-9_-]{40,}/g) ?? [], `${where}: refresh tokens`).toEqual([]);
  expect(log.match(/eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{20,}/g) ?? [], `${where}: JWTs`).toEqual([]);
  expect(log.match(/tessera_refresh=[^;\s"]+/g) ?? [], `${where}: cookie values`).toEqual([]);
  expect(log.match(/"password"\s*:\s*"[^"]/g) ?? [], `${where}: password fields`).toEqual([]);
}
