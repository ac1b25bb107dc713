import { createRemoteJWKSet, errors as joseErrors, jwtVerify, type JWTHeaderParameters, type JWTPayload, type FlattenedJWSInput } from 'jose';
import { DETAILS, reasonOf, TesseraAuthError } from './errors.js';
import { RevocationFeed, type FeedState, type VerifierLogger } from './revocation-feed.js';

export { bearerToken, TesseraAuthError, type TesseraAuthErrorCode } from './errors.js';
export type { FeedState, VerifierLogger } from './revocation-feed.js';

/** The algorithms Tessera signs with (SIGNING_ALG). Anything else, `none` and HS256 included, is refused. */
export const ACCEPTED_ALGORITHMS: readonly string[] = Object.freeze(['EdDSA', 'ES256', 'RS256']);
/** Seconds of clock skew allowed on `exp` (and `nbf`) between Tessera and this server. */
const CLOCK_TOLERANCE = 60;
/** A JWKS refetch on an unknown `kid` happens at most this often. */
const JWKS_COOLDOWN_MS = 30_000;
/** Tessera's tokens are well under 8 KiB; anything far longer is refused before it is parsed. */
const MAX_TOKEN_LENGTH = 16_384;

/** Who is calling: what a route needs to authorise a request. */
export interface AuthContext {
  /** `sub`: the user's id. */
  userId: string;
  /** `sid`: the session's id, the one a sign-out ends. */
  sessionId: string;
  /** `roles`: empty when the user has none. */
  roles: string[];
  /** `org_id`, when the user belongs to an organisation. */
  orgId?: string;
  /** `amr`: how the user signed in, e.g. `["pwd"]`; empty when the token does not say. */
  amr: string[];
  /** `auth_time`: when the user last signed in with a credential, in seconds since the epoch. */
  authTime?: number;
  /** Every claim of the token, including any a `claims` hook added. */
  claims: JWTPayload;
}

export interface VerifierOptions {
  /** Tessera's PUBLIC_URL, e.g. `https://auth.example.com`: the `iss` every token must carry. */
  issuer: string;
  /** The `aud` every token must carry. Default: the issuer (Tessera's own default ACCESS_TOKEN_AUDIENCE). */
  audience?: string;
  /** Default: `{issuer}/.well-known/jwks.json`. */
  jwksUrl?: string;
  /**
   * Follow the revocation feed so a signed-out session is refused within about `pollIntervalMs`.
   * `true`: while the feed is down, keep serving from what is known (one warning per outage);
   * `'fail-closed'`: while it is down, refuse every token (503). Default: off.
   */
  revocations?: boolean | 'fail-closed';
  /** Default: `{issuer}/auth/revocations`. */
  revocationsUrl?: string;
  /** How long to wait between two polls of the feed, in ms. Default: 1000. */
  pollIntervalMs?: number;
  /** Default: `console`. */
  logger?: VerifierLogger;
}

export interface VerifierStatus {
  /** `off` without `revocations`; otherwise how the last poll of the feed went. */
  revocations: FeedState;
  /** Sessions remembered as ended (bounded by the sign-outs of one token lifetime). */
  revokedSessions: number;
}

export interface Verifier {
  /**
   * The caller of a token, or a `TesseraAuthError`: 401 `unauthorized` for a missing, invalid or
   * expired token or an ended session; 503 `service_unavailable` when it cannot be checked.
   */
  verify(token: string | undefined): Promise<AuthContext>;
  status(): VerifierStatus;
  /** Stops following the revocation feed. */
  close(): void;
}

/** The JWKS could not be fetched: the issuer's fault, not the token's. */
class KeysUnavailable extends Error {}

/**
 * A verifier of Tessera access tokens, checked locally against the issuer's JWKS: signature
 * (EdDSA, ES256 or RS256, with the key its `kid` names), `typ: at+jwt`, `iss`, `aud`, `exp`
 * (60 s leeway) and the presence of `iat`, `sub` and `sid`.
 *
 * @example
 * const verifier = createVerifier({ issuer: 'https://auth.example.com', revocations: true });
 * const { userId, roles } = await verifier.verify(token);
 */
export function createVerifier(options: VerifierOptions): Verifier {
  if (typeof options.issuer !== 'string' || !URL.canParse(options.issuer)) {
    throw new TypeError("createVerifier needs the issuer: Tessera's PUBLIC_URL, e.g. https://auth.example.com");
  }
  // Tessera's PUBLIC_URL never ends with a slash, so neither does the `iss` of its tokens.
  const issuer = options.issuer.replace(/\/+$/, '');
  const audience = options.audience ?? issuer;
  // jose caches the set, refetches it on an unknown kid at most once per cooldown, and only
  // ever picks a key whose kty, alg and use fit the token's header.
  const jwksUrl = new URL(options.jwksUrl ?? `${issuer}/.well-known/jwks.json`);
  const jwks = createRemoteJWKSet(jwksUrl, { cooldownDuration: JWKS_COOLDOWN_MS });
  const logger = options.logger ?? console;
  const feed = options.revocations
    ? new RevocationFeed({
        url: options.revocationsUrl ?? `${issuer}/auth/revocations`,
        intervalMs: options.pollIntervalMs ?? 1000,
        failClosed: options.revocations === 'fail-closed',
        logger,
      })
    : undefined;

  // Whether the last look at the JWKS failed: one warning per outage, as for the feed.
  let jwksDown = false;
  const key = async (header: JWTHeaderParameters, token: FlattenedJWSInput) => {
    // The kid is the only way to name a key; a token without one is refused, not tried against every key.
    if (typeof header.kid !== 'string') throw new joseErrors.JWSInvalid('no kid');
    try {
      const found = await jwks(header, token);
      jwksDown = false;
      return found;
    } catch (error) {
      if (error instanceof joseErrors.JWKSNoMatchingKey || error instanceof joseErrors.JWKSMultipleMatchingKeys) throw error;
      if (!jwksDown) logger.warn(`tessera: the JWKS ${jwksUrl.href} could not be fetched (${reasonOf(error)}); tokens are answered 503 until it can`);
      jwksDown = true;
      throw new KeysUnavailable('the JWKS could not be fetched', { cause: error });
    }
  };

  return {
    async verify(token) {
      if (typeof token !== 'string' || token === '') throw new TesseraAuthError('unauthorized', DETAILS.missing, { tokenPresented: false });
      if (token.length > MAX_TOKEN_LENGTH) throw new TesseraAuthError('unauthorized', DETAILS.invalid);
      if (feed) {
        // A server that just started must not accept a token whose session ended before it did.
        await feed.ready;
        if (feed.refusing) throw new TesseraAuthError('service_unavailable', DETAILS.unavailable, { cause: new Error('the revocation feed is down') });
      }
      let payload: JWTPayload;
      try {
        ({ payload } = await jwtVerify(token, key, {
          algorithms: [...ACCEPTED_ALGORITHMS],
          typ: 'at+jwt',
          issuer,
          audience,
          clockTolerance: CLOCK_TOLERANCE,
          requiredClaims: ['exp', 'iat', 'sub', 'sid'],
        }));
      } catch (error) {
        throw refusal(error);
      }
      const auth = authContext(payload);
      const { iat, exp } = payload as { iat: number; exp: number };
      if (feed) {
        feed.noteLifetime(exp - iat);
        if (feed.isRevoked(auth.sessionId, iat)) throw new TesseraAuthError('unauthorized', DETAILS.ended);
      }
      return auth;
    },
    status() {
      return { revocations: feed?.state ?? 'off', revokedSessions: feed?.size ?? 0 };
    },
    close() {
      feed?.close();
    },
  };
}

/** The public face of a failed check; the jose error stays the cause. */
function refusal(error: unknown): TesseraAuthError {
  if (error instanceof KeysUnavailable) return new TesseraAuthError('service_unavailable', DETAILS.unavailable, { cause: error.cause });
  if (error instanceof joseErrors.JWTExpired) return new TesseraAuthError('unauthorized', DETAILS.expired, { cause: error });
  if (error instanceof joseErrors.JOSEError) return new TesseraAuthError('unauthorized', DETAILS.invalid, { cause: error });
  throw error;
}

/**
 * The claims a route authorises on, checked for their types: a signed token whose `roles` is
 * not a list of strings is refused rather than read half-way.
 */
function authContext(claims: JWTPayload): AuthContext {
  const { sub, sid, roles = [], org_id: orgId, amr = [], auth_time: authTime } = claims;
  const strings = (value: unknown): value is string[] => Array.isArray(value) && value.every((v) => typeof v === 'string');
  const valid =
    typeof sub === 'string' && typeof sid === 'string' && strings(roles) && strings(amr) &&
    (orgId === undefined || typeof orgId === 'string') && (authTime === undefined || typeof authTime === 'number');
  if (!valid) throw new TesseraAuthError('unauthorized', DETAILS.invalid, { cause: new Error('claims of the wrong type') });
  return {
    userId: sub,
    sessionId: sid,
    roles,
    ...(orgId !== undefined ? { orgId } : {}),
    amr,
    ...(authTime !== undefined ? { authTime } : {}),
    claims,
  };
}
