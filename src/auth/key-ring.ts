import { randomUUID } from 'node:crypto';
import { exportJWK, generateKeyPair, importJWK, type CryptoKey, type JWK } from 'jose';
import { deriveKey, deriveKeys } from '../core/derive-key.js';
import { Sealer, UnsealError, seal } from '../core/seal.js';
import { RSA_MIN_BITS, algOfJwk, type PrivateJwk, type SigningAlg } from '../core/signing-alg.js';
import type { NewSigningKey, Store, StoredSigningKey } from '../store/store.js';

/** The store methods the key ring uses. */
export type KeyStore = Pick<Store, 'listSigningKeys' | 'ensureSigningKey'>;

/** A key as the ring holds it. */
export interface SigningKey {
  kid: string;
  alg: SigningAlg;
  signsFrom: Date;
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  publicJwk: JWK;
}

/** How long a rotated-in key is published before it signs, so every verifier has seen it first. */
export const ROTATION_DELAY_SECONDS = 60;
/** Every node picks up keys added or retired elsewhere within this. */
const RELOAD_EVERY_MS = 5_000;
/** How often an unknown `kid` may make us look in the database for new keys. */
const UNKNOWN_KID_RELOAD_MS = 30_000;
/** Clock skew allowed to verifiers: a key stays published this long after its last token expired. */
const PUBLISH_LEEWAY_SECONDS = 60;

export interface KeyRingOptions {
  /** TESSERA_SECRET: the private parts are sealed under a key derived from it. */
  secret: string;
  /** TESSERA_SECRET_PREVIOUS: keys still sealed under it are opened too (until `tessera secrets rotate` re-seals them). */
  secretPrevious?: string | undefined;
  /** SIGNING_KEYS: keys managed by the operator, never written to the database. */
  configured: PrivateJwk[] | undefined;
  /** SIGNING_ALG: the algorithm of keys Tessera generates. */
  alg: SigningAlg;
  /** ACCESS_TOKEN_TTL in seconds: how long a key stays published after it stopped signing. */
  accessTokenTtl: number;
}

/**
 * The access-token signing keys: from `SIGNING_KEYS` (the first signs, all are published),
 * or generated and kept in the database with the private part sealed. Database keys rotate:
 * a new key is published at once and signs from its `signsFrom`; the key it replaced stays
 * published until every token it signed has expired. Changing SIGNING_ALG rotates the same way.
 */
export class KeyRing {
  /** Newest first, by when they start signing. */
  #keys: SigningKey[] = [];
  #lastReload = 0;
  #timer: NodeJS.Timeout | undefined;

  private constructor(
    private readonly store: KeyStore,
    private readonly options: KeyRingOptions,
    private readonly sealer: Sealer,
  ) {}

  static async load(store: KeyStore, options: KeyRingOptions, now: Date): Promise<KeyRing> {
    const ring = new KeyRing(store, options, signingKeySealer(options.secret, options.secretPrevious));
    if (options.configured) {
      ring.#keys = await Promise.all(options.configured.map((jwk) => loadKey(jwk, new Date(0))));
      return ring;
    }
    // The first key signs at once; a change of SIGNING_ALG rotates to a key of the new algorithm.
    await store.ensureSigningKey(() => generateSigningKey(options.alg, ring.sealer.keys.current), now);
    await store.ensureSigningKey(
      () => generateSigningKey(options.alg, ring.sealer.keys.current, new Date(now.getTime() + ROTATION_DELAY_SECONDS * 1000)),
      now,
      undefined,
      (keys) => keys.at(-1)?.alg !== options.alg,
    );
    await ring.reload();
    return ring;
  }

  /** Looks for keys added or retired by other nodes every few seconds, until `close()`. */
  watch(): this {
    if (!this.options.configured && !this.#timer) {
      // A failed look (database down) keeps the keys we have; the next one tries again.
      this.#timer = setInterval(() => this.reload().catch(() => {}), RELOAD_EVERY_MS).unref();
    }
    return this;
  }

  close(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** The key new tokens are signed with at `now`: the newest whose time has come. */
  signingKey(now: Date): SigningKey {
    return this.#keys.find((k) => k.signsFrom <= now) ?? this.#keys.at(-1)!;
  }

  /** The public JWKS, as served at /.well-known/jwks.json: every key a live token may name, and the next one. */
  jwks(now: Date): { keys: JWK[] } {
    return { keys: this.#published(now).map((k) => k.publicJwk) };
  }

  /** The public key and its one algorithm for a `kid`; `kid` is only ever a lookup key, never a URL or a key. */
  async publicKey(kid: string): Promise<{ key: CryptoKey; alg: SigningAlg } | undefined> {
    let found = this.#keys.find((k) => k.kid === kid);
    // Another node may have added a key since we looked: look again, but not on every bad token.
    if (!found && !this.options.configured && Date.now() - this.#lastReload >= UNKNOWN_KID_RELOAD_MS) {
      await this.reload();
      found = this.#keys.find((k) => k.kid === kid);
    }
    return found && { key: found.publicKey, alg: found.alg };
  }

  /** Reads the keys again from the database; keys already held are not imported twice. */
  async reload(): Promise<void> {
    if (this.options.configured) return;
    this.#lastReload = Date.now();
    const rows = await this.store.listSigningKeys();
    const held = new Map(this.#keys.map((k) => [k.kid, k]));
    const keys = await Promise.all(rows.map((row) => held.get(row.kid) ?? loadKey(JSON.parse(this.#unseal(row)), row.signsFrom)));
    this.#keys = keys.reverse();
  }

  /** Keys a token may still name at `now`, and keys about to sign. */
  #published(now: Date): SigningKey[] {
    if (this.options.configured) return this.#keys;
    const statuses = keyStatuses(this.#keys, now, this.options.accessTokenTtl);
    return this.#keys.filter((_key, i) => statuses[i] !== 'expired');
  }

  #unseal(row: StoredSigningKey): string {
    try {
      return this.sealer.unseal(row.privateJwkSealed);
    } catch (error) {
      if (!(error instanceof UnsealError)) throw error;
      throw new Error(
        error.triedPrevious
          ? `the signing key ${row.kid} in the database was sealed with neither TESSERA_SECRET nor TESSERA_SECRET_PREVIOUS; ` +
              'set TESSERA_SECRET_PREVIOUS to the secret it was created with, or supply keys with SIGNING_KEYS'
          : `the signing key ${row.kid} in the database was sealed with a different TESSERA_SECRET; ` +
              'start with the secret it was created with (in development: DATA_DIR/secret), or, to change the secret, ' +
              'set that one as TESSERA_SECRET_PREVIOUS until `tessera secrets rotate` has re-sealed the keys (docs/operations.md); ' +
              'or supply keys with SIGNING_KEYS',
      );
    }
  }
}

/**
 * Where each key stands at `now` (keys newest first): `next` is published and not signing
 * yet; `signing` signs new tokens; `published` stopped signing but tokens it signed may be
 * alive; `expired` signed only tokens that have all expired: no longer published, and safe to retire.
 */
export type KeyStatus = 'next' | 'signing' | 'published' | 'expired';

export function keyStatuses(keys: readonly { signsFrom: Date }[], now: Date, accessTokenTtl: number): KeyStatus[] {
  const lifetime = (accessTokenTtl + PUBLISH_LEEWAY_SECONDS) * 1000;
  const signing = keys.findIndex((k) => k.signsFrom <= now);
  return keys.map((_key, i) => {
    if (signing === -1 || i < signing) return 'next';
    if (i === signing) return 'signing';
    // A key stopped signing when the next one started; its tokens are dead `lifetime` after that.
    return keys[i - 1]!.signsFrom.getTime() + lifetime > now.getTime() ? 'published' : 'expired';
  });
}

export function sealingKeyFor(secret: string): Buffer {
  return deriveKey(secret, 'signing-key-encryption');
}

/** Seals signing keys under TESSERA_SECRET; opens them under it or TESSERA_SECRET_PREVIOUS (the key ring, `tessera secrets rotate`). */
export function signingKeySealer(secret: string, previous: string | undefined): Sealer {
  return new Sealer(deriveKeys(secret, previous, 'signing-key-encryption'));
}

/**
 * A new key of `alg`, its private part sealed, signing from `signsFrom` (default: as soon
 * as it is stored). Used at first start, by rotation and by `tessera keys rotate`.
 */
export async function generateSigningKey(alg: SigningAlg, sealingKey: Buffer, signsFrom?: Date): Promise<NewSigningKey> {
  const { privateKey } = await generateKeyPair(alg, {
    extractable: true,
    ...(alg === 'EdDSA' ? { crv: 'Ed25519' } : alg === 'RS256' ? { modulusLength: RSA_MIN_BITS } : {}),
  });
  const kid = randomUUID();
  const jwk = { ...(await exportJWK(privateKey)), kid };
  return { kid, alg, signsFrom, publicJwk: publicPart(jwk, alg), privateJwkSealed: seal(sealingKey, JSON.stringify(jwk)) };
}

async function loadKey(jwk: PrivateJwk | JWK, signsFrom: Date): Promise<SigningKey> {
  const alg = algOfJwk(jwk);
  if (!alg) throw new Error(`signing key ${String(jwk.kid)} is of an unsupported type`);
  const publicJwk = publicPart(jwk, alg);
  return {
    kid: jwk.kid as string,
    alg,
    signsFrom,
    privateKey: (await importJWK({ ...jwk, alg } as JWK, alg)) as CryptoKey,
    publicKey: (await importJWK(publicJwk, alg)) as CryptoKey,
    publicJwk,
  };
}

/** The public members of a key, with its `kid`, its one `alg` and `use: "sig"`. */
function publicPart(jwk: PrivateJwk | JWK, alg: SigningAlg): JWK {
  const members = jwk.kty === 'RSA' ? ['kty', 'n', 'e'] : jwk.kty === 'EC' ? ['kty', 'crv', 'x', 'y'] : ['kty', 'crv', 'x'];
  return { ...Object.fromEntries(members.map((m) => [m, jwk[m as keyof typeof jwk]])), kid: jwk.kid as string, alg, use: 'sig' };
}
