import { createHmac, hkdfSync, randomUUID, sign, verify, type KeyObject } from 'node:crypto';

/**
 * The least code that signs and verifies Tessera's access tokens and refresh tokens with
 * node:crypto alone: synchronous Ed25519 and HMAC, hand-built JWTs, no library. It is a
 * floor to measure against, not an implementation to ship: it checks what SPEC §2
 * requires of a verifier and nothing else.
 */

const HEADER_CACHE = new Map<string, string>();

function b64json(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

export interface JwtOptions {
  issuer: string;
  audience: string;
  ttl: number;
}

export interface Claims {
  iss: string;
  aud: string | string[];
  sub: string;
  sid: string;
  iat: number;
  exp: number;
  jti: string;
  nbf?: number;
}

/** An EdDSA `at+jwt` with Tessera's claims. */
export function signAccessToken(key: { kid: string; privateKey: KeyObject }, sub: string, sid: string, options: JwtOptions, nowMs: number): string {
  let header = HEADER_CACHE.get(key.kid);
  if (!header) HEADER_CACHE.set(key.kid, (header = b64json({ alg: 'EdDSA', typ: 'at+jwt', kid: key.kid })));
  const iat = Math.floor(nowMs / 1000);
  const payload = b64json({ sid, iss: options.issuer, aud: options.audience, sub, iat, exp: iat + options.ttl, jti: randomUUID() });
  const input = `${header}.${payload}`;
  return `${input}.${sign(null, Buffer.from(input), key.privateKey).toString('base64url')}`;
}

const TOLERANCE = 30;

/** Verifies like SPEC §2 asks: EdDSA and at+jwt only, kid as a lookup key, no crit, signature, iss, aud, exp, iat, nbf. */
export function verifyAccessToken(token: string, keys: Map<string, KeyObject>, options: JwtOptions, nowMs: number): Claims | undefined {
  if (token.length > 4096) return undefined;
  const dot1 = token.indexOf('.');
  const dot2 = token.indexOf('.', dot1 + 1);
  if (dot1 < 0 || dot2 < 0 || token.indexOf('.', dot2 + 1) >= 0) return undefined;
  let header: { alg?: unknown; typ?: unknown; kid?: unknown; crit?: unknown };
  let claims: Claims;
  try {
    header = JSON.parse(Buffer.from(token.slice(0, dot1), 'base64url').toString());
    if (header.alg !== 'EdDSA' || header.typ !== 'at+jwt' || typeof header.kid !== 'string' || header.crit !== undefined) return undefined;
    const key = keys.get(header.kid);
    if (!key) return undefined;
    const ok = verify(null, Buffer.from(token.slice(0, dot2)), key, Buffer.from(token.slice(dot2 + 1), 'base64url'));
    if (!ok) return undefined;
    claims = JSON.parse(Buffer.from(token.slice(dot1 + 1, dot2), 'base64url').toString());
  } catch {
    return undefined;
  }
  const now = Math.floor(nowMs / 1000);
  const audOk = Array.isArray(claims.aud) ? claims.aud.includes(options.audience) : claims.aud === options.audience;
  if (claims.iss !== options.issuer || !audOk) return undefined;
  if (typeof claims.exp !== 'number' || claims.exp <= now - TOLERANCE) return undefined;
  if (typeof claims.iat !== 'number' || claims.iat > now + TOLERANCE || now - claims.iat > options.ttl + TOLERANCE) return undefined;
  if (claims.nbf !== undefined && (typeof claims.nbf !== 'number' || claims.nbf > now + TOLERANCE)) return undefined;
  if (typeof claims.sub !== 'string' || typeof claims.sid !== 'string' || typeof claims.jti !== 'string') return undefined;
  return claims;
}

// ---- refresh tokens: the same format and keys as Tessera's (SPEC §2), so chains carry over ----

const PREFIX = 'tsr_';
const ID_BYTES = 16;
/** Version 2: version ‖ user id ‖ session id ‖ generation. */
const GENERATION_AT = 1 + 2 * ID_BYTES;
const PAYLOAD_BYTES = GENERATION_AT + 4;
const MAC_BYTES = 32;

export function refreshRoot(secret: string): Buffer {
  return Buffer.from(hkdfSync('sha256', secret, 'tessera', 'tessera/refresh-token/v1', 32));
}

export interface ParsedRefresh {
  userId: string;
  sessionId: string;
  generation: number;
  payload: Buffer;
  mac: Buffer;
}

export function parseRefreshToken(token: unknown): ParsedRefresh | undefined {
  if (typeof token !== 'string' || !token.startsWith(PREFIX)) return undefined;
  const bytes = Buffer.from(token.slice(PREFIX.length), 'base64url');
  if (bytes.length !== PAYLOAD_BYTES + MAC_BYTES || bytes[0] !== 2) return undefined;
  return {
    userId: uuidAt(bytes, 1),
    sessionId: uuidAt(bytes, 1 + ID_BYTES),
    generation: bytes.readUInt32BE(GENERATION_AT),
    payload: bytes.subarray(0, PAYLOAD_BYTES),
    mac: bytes.subarray(PAYLOAD_BYTES),
  };
}

function uuidAt(bytes: Buffer, offset: number): string {
  const hex = bytes.toString('hex', offset, offset + ID_BYTES);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** K_session = HMAC(root, salt). */
export function sessionKey(root: Buffer, salt: Buffer): Buffer {
  return createHmac('sha256', root).update(salt).digest();
}

export function mac(key: Buffer, payload: Buffer): Buffer {
  return createHmac('sha256', key).update(payload).digest();
}

export function issueRefreshToken(key: Buffer, parsed: ParsedRefresh, generation: number): string {
  const payload = Buffer.from(parsed.payload);
  payload.writeUInt32BE(generation, GENERATION_AT);
  return PREFIX + Buffer.concat([payload, mac(key, payload)]).toString('base64url');
}
