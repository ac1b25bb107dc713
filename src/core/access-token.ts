import { KeyObject, randomUUID, sign as signBytes, verify as verifyBytes } from 'node:crypto';
import type { CryptoKey } from 'jose';
import { TesseraError } from './errors.js';
import { SIGNING_ALGS, type SigningAlg } from './signing-alg.js';
import { isUuid } from './uuid.js';

export const ACCESS_TOKEN_TYP = 'at+jwt';
/** An access token larger than this is refused at issue (a claims hook that put too much in) and at verification. */
export const MAX_ACCESS_TOKEN_BYTES = 8 * 1024;
/** Claims Tessera sets: a claims hook may not override them. */
export const RESERVED_CLAIMS: ReadonlySet<string> = new Set([
  'iss', 'aud', 'sub', 'sid', 'iat', 'exp', 'nbf', 'jti', 'typ', 'amr', 'auth_time', 'roles', 'org_id',
]);
/** Clock skew allowed between Tessera and the services verifying its tokens, in seconds. */
const CLOCK_TOLERANCE = 30;

export interface AccessTokenOptions {
  issuer: string;
  audience: string;
  /** ACCESS_TOKEN_TTL, in seconds. */
  ttl: number;
}

/** The access-token options a configuration implies. */
export function accessTokenOptions(config: { publicUrl: string; audience: string; accessTokenTtl: number }): AccessTokenOptions {
  return { issuer: config.publicUrl, audience: config.audience, ttl: config.accessTokenTtl };
}

export interface AccessTokenClaims {
  sub: string;
  sid: string;
  iat: number;
  exp: number;
  jti: string;
  /** omitted when the user has none */
  roles?: string[];
  org_id?: string;
  /** how the session was authenticated (RFC 8176) */
  amr: string[];
  /** when the user authenticated, in seconds */
  auth_time: number;
  [claim: string]: unknown;
}

/** Who a token speaks for: the session, its user's roles and organisation, how they signed in. */
export interface AccessTokenSubject {
  userId: string;
  sessionId: string;
  roles: readonly string[];
  orgId: string | null;
  amr: readonly string[];
  authTime: Date;
}

/**
 * Signs an access token with a signing key, under that key's one algorithm. `extra` are
 * the claims of an embedding application's hook; they may not override Tessera's own.
 * Synchronous node:crypto: a signature takes tens of microseconds, less than handing it to
 * WebCrypto's thread pool and waiting for the answer would.
 *
 * @example
 * const token = signAccessToken(keys.signingKey(now), subject, options, now);
 */
export function signAccessToken(
  key: { kid: string; alg: SigningAlg; privateKey: CryptoKey | KeyObject },
  subject: AccessTokenSubject,
  options: AccessTokenOptions,
  now: Date,
  extra: Record<string, unknown> = {},
): string {
  const overridden = Object.keys(extra).filter((claim) => RESERVED_CLAIMS.has(claim));
  if (overridden.length) throw new Error(`the claims hook may not set ${overridden.join(', ')}: Tessera sets these claims itself`);
  const iat = Math.floor(now.getTime() / 1000);
  const claims = {
    ...extra,
    sid: subject.sessionId,
    ...(subject.roles.length ? { roles: subject.roles } : {}),
    ...(subject.orgId !== null ? { org_id: subject.orgId } : {}),
    amr: subject.amr,
    auth_time: Math.floor(subject.authTime.getTime() / 1000),
    iss: options.issuer,
    aud: options.audience,
    sub: subject.userId,
    iat,
    exp: iat + options.ttl,
    jti: randomUUID(),
  };
  const signer = signerOf(key);
  const signingInput = `${signer.header}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
  const token = `${signingInput}.${signer.sign(Buffer.from(signingInput)).toString('base64url')}`;
  if (token.length > MAX_ACCESS_TOKEN_BYTES) {
    throw new Error(`an access token of ${token.length} bytes was refused: the limit is ${MAX_ACCESS_TOKEN_BYTES} (the claims hook adds too much)`);
  }
  return token;
}

interface Signer {
  /** The protected header, encoded: the same for every token of the key. */
  header: string;
  sign(data: Buffer): Buffer;
}

/** Prepared once per key: its header and node:crypto key object. */
const signers = new WeakMap<object, Signer>();

function signerOf(key: { kid: string; alg: SigningAlg; privateKey: CryptoKey | KeyObject }): Signer {
  let signer = signers.get(key.privateKey);
  if (!signer) {
    const privateKey = key.privateKey instanceof KeyObject ? key.privateKey : KeyObject.from(key.privateKey);
    const header = Buffer.from(JSON.stringify({ alg: key.alg, typ: ACCESS_TOKEN_TYP, kid: key.kid })).toString('base64url');
    signer = {
      header,
      sign:
        key.alg === 'EdDSA' ? (data) => signBytes(null, data, privateKey)
        // JWS wants the raw r ‖ s of an ECDSA signature, not DER (RFC 7518 §3.4).
        : key.alg === 'ES256' ? (data) => signBytes('sha256', data, { key: privateKey, dsaEncoding: 'ieee-p1363' })
        : (data) => signBytes('sha256', data, privateKey),
    };
    signers.set(key.privateKey, signer);
  }
  return signer;
}

/**
 * Verifies an access token: only canonical base64url (no `=`, no `+` or `/`, unused bits
 * zero); `typ: at+jwt`, and only the algorithm of the key its `kid` names; `kid` is only a lookup key
 * into keys we hold (embedded `jwk`, `jku`, `x5u`, `x5c` are never consulted); signature
 * first, then `iss`, `aud`, `exp`, `iat` (not in the future) and `nbf`; any `crit` refused.
 * Any failure is a `TesseraError('unauthorized')`. The same checks as jose's `jwtVerify` with
 * these options, done with synchronous node:crypto: on a protected route, WebCrypto's
 * asynchronous verification cost more than the signature check itself.
 *
 * @example
 * const claims = await verifyAccessToken(token, (kid) => keys.publicKey(kid), options, new Date());
 */
export async function verifyAccessToken(
  token: string,
  publicKey: (kid: string) => Promise<{ key: CryptoKey | KeyObject; alg: SigningAlg } | undefined>,
  options: AccessTokenOptions,
  now: Date,
): Promise<AccessTokenClaims> {
  // One spelling per token (RFC 7515 §2): padded, standard-alphabet or dirty-bit variants of a
  // genuine token are other strings for the same signature, and would slip past any deny-list keyed on the text.
  if (token.length > MAX_ACCESS_TOKEN_BYTES || !isCanonicalCompactJws(token)) throw invalid('not a compact JWS');
  const [headerText, payloadText, signature] = token.split('.') as [string, string, string];
  const header = jsonObject(headerText);
  // Tessera never issues `crit`; refuse every extension, b64 included.
  if (!header || header.crit !== undefined) throw invalid('header');
  if (typeof header.alg !== 'string' || !(SIGNING_ALGS as readonly string[]).includes(header.alg)) throw invalid('alg');
  const found = typeof header.kid === 'string' ? await publicKey(header.kid) : undefined;
  if (!found) throw invalid('no key of that kid');
  // A key verifies only under the algorithm it was made for.
  if (header.alg !== found.alg) throw invalid('not the algorithm of this key');
  if (!signatureHolds(found, `${headerText}.${payloadText}`, signature)) throw invalid('signature');
  if (typeof header.typ !== 'string' || mediaType(header.typ) !== ACCESS_TOKEN_TYP) throw invalid('typ');
  const claims = jsonObject(payloadText);
  if (!claims) throw invalid('claims are not a JSON object');
  const { iss, aud, exp, iat, nbf } = claims;
  for (const claim of ['exp', 'iat', 'sub', 'sid', 'jti', 'iss', 'aud']) if (claims[claim] === undefined) throw invalid(`no ${claim}`);
  if (iss !== options.issuer) throw invalid('iss');
  if (!(Array.isArray(aud) ? aud.includes(options.audience) : aud === options.audience)) throw invalid('aud');
  if (typeof exp !== 'number' || typeof iat !== 'number' || (nbf !== undefined && typeof nbf !== 'number')) throw invalid('time claims of the wrong type');
  const seconds = Math.floor(now.getTime() / 1000);
  if (typeof nbf === 'number' && nbf > seconds + CLOCK_TOLERANCE) throw invalid('nbf');
  if (exp <= seconds - CLOCK_TOLERANCE) throw expired();
  // No older than the TTL allows, and not issued in the future.
  if (seconds - iat - CLOCK_TOLERANCE > options.ttl) throw expired();
  if (seconds - iat < -CLOCK_TOLERANCE) throw invalid('iat in the future');
  // sub and sid go into uuid columns: anything else would be a database error, not a 401.
  if (!isUuid(claims.sub) || !isUuid(claims.sid) || typeof claims.jti !== 'string') throw invalid('claims of the wrong type');
  return claims as AccessTokenClaims;
}

function invalid(why: string): TesseraError {
  return new TesseraError('unauthorized', { detail: 'The access token is not valid', cause: new Error(why) });
}

function expired(): TesseraError {
  return new TesseraError('unauthorized', { detail: 'The access token has expired', cause: new Error('exp') });
}

/** `application/at+jwt` and `at+jwt` are the same type (RFC 7515 §4.1.9), in any case. */
function mediaType(typ: string): string {
  const lower = typ.toLowerCase();
  return lower.startsWith('application/') ? lower.slice('application/'.length) : lower;
}

function jsonObject(segment: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

function signatureHolds(found: { key: CryptoKey | KeyObject; alg: SigningAlg }, signingInput: string, signature: string): boolean {
  try {
    return verifierOf(found)(Buffer.from(signingInput), Buffer.from(signature, 'base64url'));
  } catch {
    // node:crypto throws on some malformed signatures instead of answering false.
    return false;
  }
}

type Verify = (data: Buffer, signature: Buffer) => boolean;
/** Prepared once per key: its node:crypto key object and the check of its one algorithm. */
const verifiers = new WeakMap<object, Verify>();

function verifierOf(found: { key: CryptoKey | KeyObject; alg: SigningAlg }): Verify {
  let verify = verifiers.get(found.key);
  if (!verify) {
    const key = found.key instanceof KeyObject ? found.key : KeyObject.from(found.key);
    verify =
      found.alg === 'EdDSA' ? (data, signature) => verifyBytes(null, data, key, signature)
      : found.alg === 'ES256' ? (data, signature) => signature.length === 64 && verifyBytes('sha256', data, { key, dsaEncoding: 'ieee-p1363' }, signature)
      : (data, signature) => verifyBytes('sha256', data, key, signature);
    verifiers.set(found.key, verify);
  }
  return verify;
}

const BASE64URL = /^[A-Za-z0-9_-]*$/;
const BASE64URL_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/**
 * Three segments, each canonical base64url: only the alphabet (no `=`, `+`, `/`), no
 * impossible length, and the unused low bits of the last character zero, so that decoding
 * and re-encoding gives back the very same text.
 */
function isCanonicalCompactJws(token: string): boolean {
  const segments = token.split('.');
  return segments.length === 3 && segments.every(isCanonicalBase64url);
}

function isCanonicalBase64url(segment: string): boolean {
  if (!BASE64URL.test(segment)) return false;
  const tail = segment.length % 4;
  if (tail === 0) return true;
  if (tail === 1) return false;
  // 2 characters carry 1 byte (4 bits unused), 3 carry 2 bytes (2 bits unused).
  const unusedBits = tail === 2 ? 0b1111 : 0b11;
  return (BASE64URL_ALPHABET.indexOf(segment.at(-1)!) & unusedBits) === 0;
}
