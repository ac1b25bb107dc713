import { createHash, timingSafeEqual } from 'node:crypto';
import { verifyAccessToken, type AccessTokenOptions } from '../../core/access-token.js';
import { TesseraError } from '../../core/errors.js';
import { ADMIN_ROLE } from '../../core/user-fields.js';
import type { Store } from '../../store/store.js';
import type { KeyRing } from '../key-ring.js';
import type { RateLimits } from '../rate-limits.js';
import { keyActor, type AdminActor } from './actor.js';

/**
 * The ADMIN_API_KEY keys, kept as SHA-256 digests. A presented key is hashed too and compared
 * with every digest in constant time: hashing both sides makes every comparison 32 bytes
 * against 32 bytes, so neither a key's bytes nor its length leak through timing, and no key
 * is skipped once one matched.
 */
export class AdminKeys {
  readonly #keys: readonly { digest: Buffer; actor: string }[];

  constructor(keys: readonly string[]) {
    this.#keys = Object.freeze(keys.map((key) => ({ digest: sha256(key), actor: keyActor(key) })));
  }

  /** Is the admin API on (ADMIN_API_KEY set)? */
  get enabled(): boolean {
    return this.#keys.length > 0;
  }

  /** The actor name of the key presented, or undefined when it is none of them. */
  match(presented: string): string | undefined {
    const digest = sha256(presented);
    let found: string | undefined;
    for (const key of this.#keys) {
      // constant-time, and every key compared: a timing oracle must not tell how close a guess came, nor which key it was near
      const equal = timingSafeEqual(digest, key.digest);
      found = equal ? key.actor : found;
    }
    return found;
  }
}

export interface AuthorizeAdminDeps {
  adminKeys: Pick<AdminKeys, 'match'>;
  keys: Pick<KeyRing, 'publicKey'>;
  accessTokenOptions: AccessTokenOptions;
  store: Pick<Store, 'findActiveSession'>;
  limits: Pick<RateLimits, 'spend' | 'refund' | 'refuse'>;
  clock: () => Date;
}

const REFUSED_DETAIL = 'The admin API takes an admin key, or an access token of a user with the role tessera:admin who signed in with a second factor';

/**
 * Who calls the admin API: a Bearer that is one of the admin keys, or an access token of an
 * active session whose user has `tessera:admin` (in the token and still now) and whose `amr`
 * has `mfa`. An application's own `admin` role grants nothing.
 *
 * Every request counts against the IP's `admin_ip` budget before the check, so guesses sent in
 * parallel cannot all pass it; an authenticated caller gets its count back. A missing, wrong
 * or invalid Bearer is 401 `unauthorized`; a valid token without those rights is 403 `forbidden`.
 *
 * @example
 * const actor = await authorizeAdmin(tessera, bearerToken(request), request.ip); // { id: 'key:1a2b3c4d', ip }
 */
export async function authorizeAdmin(deps: AuthorizeAdminDeps, bearer: string | undefined, ip: string): Promise<AdminActor> {
  const spent = await deps.limits.spend('admin_ip', ip);
  if (spent.exceeded) throw deps.limits.refuse('admin_ip', spent.retryAfter);
  if (!bearer) throw new TesseraError('unauthorized', { detail: 'An Authorization: Bearer admin key or access token is required' });

  const key = deps.adminKeys.match(bearer);
  if (key !== undefined) {
    await deps.limits.refund('admin_ip', ip);
    return { id: key, ip };
  }

  const now = deps.clock();
  let claims;
  try {
    claims = await verifyAccessToken(bearer, (kid) => deps.keys.publicKey(kid), deps.accessTokenOptions, now);
  } catch (error) {
    // A wrong key and a bad token look the same to the caller; a key lookup that failed (the database) is not a 401.
    if (!(error instanceof TesseraError)) throw error;
    throw new TesseraError('unauthorized', { detail: 'The admin key or access token is not valid', cause: error });
  }
  const active = await deps.store.findActiveSession(claims.sub, claims.sid, now);
  if (!active) throw new TesseraError('unauthorized', { detail: 'The session has ended' });
  await deps.limits.refund('admin_ip', ip);

  const tokenRoles = Array.isArray(claims.roles) ? claims.roles : [];
  const amr = Array.isArray(claims.amr) ? claims.amr : [];
  // The role in the token and still on the user (a role taken away counts at once); `mfa` as the session was signed in.
  if (!tokenRoles.includes(ADMIN_ROLE) || !active.user.roles.includes(ADMIN_ROLE) || !amr.includes('mfa')) {
    throw new TesseraError('forbidden', { detail: REFUSED_DETAIL });
  }
  return { id: `user:${active.user.id}`, ip };
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}
