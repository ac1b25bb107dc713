import { randomUUID } from 'node:crypto';
import { exportJWK, generateKeyPair, importJWK, type CryptoKey, type JWK } from 'jose';
import type { PrivateJwk } from '../core/config.js';
import { deriveKey } from '../core/derive-key.js';
import { seal, unseal } from '../core/seal.js';
import type { Store } from '../store/store.js';

/** The store methods the key ring uses. */
export type KeyStore = Pick<Store, 'listSigningKeys' | 'ensureSigningKey'>;

interface LoadedKey {
  kid: string;
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  publicJwk: JWK;
}

/** How often an unknown `kid` may make us look in the database for new keys. */
const RELOAD_INTERVAL_MS = 30_000;

/**
 * The access-token signing keys: from `SIGNING_KEYS`, or generated on first
 * start and kept in the database with the private part sealed under a key
 * derived from TESSERA_SECRET. The first key signs; all are published.
 */
export class KeyRing {
  #keys: LoadedKey[] = [];
  #lastReload = 0;

  private constructor(
    private readonly store: KeyStore,
    private readonly fromConfig: boolean,
    private readonly sealingKey: Buffer,
  ) {}

  static async load(store: KeyStore, secret: string, configured: PrivateJwk[] | undefined, now: Date): Promise<KeyRing> {
    const ring = new KeyRing(store, configured !== undefined, deriveKey(secret, 'signing-key-encryption'));
    if (configured) {
      ring.#keys = await Promise.all(configured.map((jwk) => loadKey(jwk)));
    } else {
      await store.ensureSigningKey(async () => {
        const { privateKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519', extractable: true });
        const kid = randomUUID();
        const jwk = { ...(await exportJWK(privateKey)), kid };
        const { d: _private, ...publicJwk } = jwk;
        return { kid, publicJwk, privateJwkSealed: seal(ring.sealingKey, JSON.stringify(jwk)) };
      }, now);
      await ring.#reloadFromStore();
    }
    return ring;
  }

  /** The key new tokens are signed with. */
  get current(): { kid: string; privateKey: CryptoKey } {
    return this.#keys[0]!;
  }

  /** The public JWKS, as served at /.well-known/jwks.json. */
  jwks(): { keys: JWK[] } {
    return { keys: this.#keys.map((k) => k.publicJwk) };
  }

  /** The public key for a `kid`; `kid` is only ever a lookup key, never a URL or a key. */
  async publicKey(kid: string): Promise<CryptoKey | undefined> {
    const found = this.#keys.find((k) => k.kid === kid);
    if (found || this.fromConfig) return found?.publicKey;
    // Another node may have added a key since we loaded: look again, but not on every bad token.
    if (Date.now() - this.#lastReload < RELOAD_INTERVAL_MS) return undefined;
    await this.#reloadFromStore();
    return this.#keys.find((k) => k.kid === kid)?.publicKey;
  }

  async #reloadFromStore(): Promise<void> {
    this.#lastReload = Date.now();
    const rows = await this.store.listSigningKeys();
    this.#keys = await Promise.all(rows.map((row) => loadKey(JSON.parse(this.#unseal(row.kid, row.privateJwkSealed)))));
  }

  #unseal(kid: string, sealed: string): string {
    try {
      return unseal(this.sealingKey, sealed);
    } catch {
      throw new Error(
        `the signing key ${kid} in the database was sealed with a different TESSERA_SECRET; ` +
          'start with the secret it was created with (in development: DATA_DIR/secret), or supply keys with SIGNING_KEYS',
      );
    }
  }
}

async function loadKey(jwk: PrivateJwk | JWK): Promise<LoadedKey> {
  const { d: _private, ...pub } = jwk;
  const publicJwk: JWK = { kty: pub.kty, crv: pub.crv, x: pub.x, kid: pub.kid, alg: 'EdDSA', use: 'sig' };
  return {
    kid: jwk.kid!,
    privateKey: (await importJWK({ ...jwk, alg: 'EdDSA' }, 'EdDSA')) as CryptoKey,
    publicKey: (await importJWK(publicJwk, 'EdDSA')) as CryptoKey,
    publicJwk,
  };
}
