import { randomUUID } from 'node:crypto';
import { SignJWT, errors as joseErrors, jwtVerify, type CryptoKey, type JWTHeaderParameters } from 'jose';
import { TesseraError } from './errors.js';
import { isUuid } from './uuid.js';

export const ACCESS_TOKEN_ALG = 'EdDSA';
export const ACCESS_TOKEN_TYP = 'at+jwt';
/** Tokens are a few hundred bytes; anything far longer is refused before it is parsed. */
const MAX_TOKEN_LENGTH = 4096;
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
}

/**
 * Signs an access token with the current signing key.
 *
 * @example
 * const token = await signAccessToken(key, { sub: user.id, sid: session.id }, options, new Date());
 */
export async function signAccessToken(
  key: { kid: string; privateKey: CryptoKey },
  subject: { sub: string; sid: string },
  options: AccessTokenOptions,
  now: Date,
): Promise<string> {
  const iat = Math.floor(now.getTime() / 1000);
  return new SignJWT({ sid: subject.sid })
    .setProtectedHeader({ alg: ACCESS_TOKEN_ALG, typ: ACCESS_TOKEN_TYP, kid: key.kid })
    .setIssuer(options.issuer)
    .setAudience(options.audience)
    .setSubject(subject.sub)
    .setIssuedAt(iat)
    .setExpirationTime(iat + options.ttl)
    .setJti(randomUUID())
    .sign(key.privateKey);
}

/**
 * Verifies an access token: only canonical base64url (no `=`, no `+` or `/`, unused bits
 * zero); only EdDSA and `typ: at+jwt`; `kid` is only a lookup key
 * into keys we hold (embedded `jwk`, `jku`, `x5u`, `x5c` are never consulted); signature
 * first, then `iss`, `aud`, `exp`, `iat` (not in the future) and `nbf`; any `crit` refused.
 * Any failure is a `TesseraError('unauthorized')`.
 *
 * @example
 * const claims = await verifyAccessToken(token, (kid) => keys.publicKey(kid), options, new Date());
 */
export async function verifyAccessToken(
  token: string,
  publicKey: (kid: string) => Promise<CryptoKey | undefined>,
  options: AccessTokenOptions,
  now: Date,
): Promise<AccessTokenClaims> {
  // One spelling per token (RFC 7515 §2): padded, standard-alphabet or dirty-bit variants of a
  // genuine token are other strings for the same signature, and would slip past any deny-list keyed on the text.
  if (token.length > MAX_TOKEN_LENGTH || !isCanonicalCompactJws(token)) {
    throw new TesseraError('unauthorized', { detail: 'The access token is not valid' });
  }
  try {
    const { payload } = await jwtVerify(
      token,
      async (header: JWTHeaderParameters) => {
        // Tessera never issues `crit`; jose would accept extensions it knows (b64), so refuse them all.
        if (header.crit !== undefined) throw new joseErrors.JWSInvalid('crit header');
        const key = typeof header.kid === 'string' ? await publicKey(header.kid) : undefined;
        if (!key) throw new joseErrors.JWKSNoMatchingKey();
        return key;
      },
      {
        algorithms: [ACCESS_TOKEN_ALG],
        typ: ACCESS_TOKEN_TYP,
        issuer: options.issuer,
        audience: options.audience,
        requiredClaims: ['exp', 'iat', 'sub', 'sid', 'jti'],
        // maxTokenAge makes jose refuse an `iat` in the future as well as one too old.
        maxTokenAge: options.ttl,
        clockTolerance: CLOCK_TOLERANCE,
        currentDate: now,
      },
    );
    // sub and sid go into uuid columns: anything else would be a database error, not a 401.
    if (!isUuid(payload.sub) || !isUuid(payload.sid) || typeof payload.jti !== 'string') {
      throw new joseErrors.JWTInvalid('claims of the wrong type');
    }
    return payload as unknown as AccessTokenClaims;
  } catch (error) {
    // A key lookup that failed (the database is down) is not the token's fault.
    if (!(error instanceof joseErrors.JOSEError)) throw error;
    const expired = error instanceof joseErrors.JWTExpired;
    throw new TesseraError('unauthorized', {
      detail: expired ? 'The access token has expired' : 'The access token is not valid',
      cause: error,
    });
  }
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
