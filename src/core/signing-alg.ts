/** The algorithms Tessera signs access tokens with (SIGNING_ALG). EdDSA is the default. */
export const SIGNING_ALGS = ['EdDSA', 'ES256', 'RS256'] as const;
export type SigningAlg = (typeof SIGNING_ALGS)[number];

/** `es256`, `ES256`… → `ES256`; undefined if it names none of SIGNING_ALGS. */
export function parseSigningAlg(text: string | undefined): SigningAlg | undefined {
  return SIGNING_ALGS.find((alg) => alg.toLowerCase() === text?.toLowerCase());
}

/** RSA keys shorter than this are refused (NIST SP 800-131A). */
export const RSA_MIN_BITS = 2048;

/** A private signing key as a JWK, as supplied in `SIGNING_KEYS` or kept sealed in the database. */
export interface PrivateJwk {
  kty: 'OKP' | 'EC' | 'RSA';
  kid: string;
  [member: string]: unknown;
}

/**
 * The one algorithm a key may be used with, from its type: a key never verifies under
 * another algorithm than the one it was made for (no RS256/HS256 confusion).
 */
export function algOfJwk(jwk: { kty?: unknown; crv?: unknown }): SigningAlg | undefined {
  if (jwk.kty === 'OKP' && jwk.crv === 'Ed25519') return 'EdDSA';
  if (jwk.kty === 'EC' && jwk.crv === 'P-256') return 'ES256';
  if (jwk.kty === 'RSA') return 'RS256';
  return undefined;
}

/** The members of a private key of this type, with its kid: anything else (`alg`, `use`, extensions) is dropped. */
export function privateJwkMembers(key: PrivateJwk): PrivateJwk {
  const members =
    key.kty === 'RSA' ? ['n', 'e', 'd', 'p', 'q', 'dp', 'dq', 'qi'] : key.kty === 'EC' ? ['crv', 'x', 'y', 'd'] : ['crv', 'x', 'd'];
  return { kty: key.kty, kid: key.kid, ...Object.fromEntries(members.map((m) => [m, key[m]])) };
}

/** Why a JWK is not a usable private signing key, or undefined if it is. */
export function privateJwkProblem(key: Record<string, unknown>): string | undefined {
  const bytes = (v: unknown) => (typeof v === 'string' && /^[A-Za-z0-9_-]+$/.test(v) ? Buffer.from(v, 'base64url').length : 0);
  if (typeof key.kid !== 'string' || key.kid === '') return 'needs a kid';
  switch (algOfJwk(key)) {
    case 'EdDSA':
      return bytes(key.x) === 32 && bytes(key.d) === 32 ? undefined : 'is an Ed25519 key without x and d of 32 bytes each';
    case 'ES256':
      return bytes(key.x) === 32 && bytes(key.y) === 32 && bytes(key.d) === 32 ? undefined : 'is a P-256 key without x, y and d of 32 bytes each';
    case 'RS256': {
      if (!['n', 'e', 'd', 'p', 'q', 'dp', 'dq', 'qi'].every((m) => bytes(key[m]) > 0)) return 'is an RSA key without all of n, e, d, p, q, dp, dq and qi';
      return bytes(key.n) * 8 >= RSA_MIN_BITS ? undefined : `is an RSA key shorter than ${RSA_MIN_BITS} bits`;
    }
    default:
      return 'is not an Ed25519 (kty "OKP"), P-256 (kty "EC") or RSA key';
  }
}
