import { TesseraError } from '../core/errors.js';
import type { SigningAlg } from '../core/signing-alg.js';
import type { Store } from '../store/store.js';
import { ROTATION_DELAY_SECONDS, generateSigningKey, keyStatuses, sealingKeyFor, type KeyStatus } from './key-ring.js';

/** The operator's view of the signing keys (`tessera keys …`; the admin API later). */
export interface SigningKeysDeps {
  store: Pick<Store, 'listSigningKeys' | 'addSigningKey' | 'deleteSigningKey'>;
  /** TESSERA_SECRET: new keys are sealed under a key derived from it. */
  secret: string;
  accessTokenTtl: number;
  clock: () => Date;
}

export interface KeySummary {
  kid: string;
  alg: string;
  signsFrom: Date;
  status: KeyStatus;
}

/** Every stored key, newest first, with where it stands now. */
export async function listSigningKeys(deps: Pick<SigningKeysDeps, 'store' | 'accessTokenTtl' | 'clock'>): Promise<KeySummary[]> {
  const keys = (await deps.store.listSigningKeys()).reverse();
  const statuses = keyStatuses(keys, deps.clock(), deps.accessTokenTtl);
  return keys.map((k, i) => ({ kid: k.kid, alg: k.alg, signsFrom: k.signsFrom, status: statuses[i]! }));
}

/**
 * Adds a key of `alg`, published at once (every node within 10 s) and signing
 * ROTATION_DELAY_SECONDS later, so that every verifier has it before the first token it signs.
 */
export async function rotateSigningKey(deps: SigningKeysDeps, alg: SigningAlg): Promise<{ kid: string; alg: SigningAlg; signsFrom: Date }> {
  const now = deps.clock();
  const signsFrom = new Date(now.getTime() + ROTATION_DELAY_SECONDS * 1000);
  const key = await generateSigningKey(alg, sealingKeyFor(deps.secret), signsFrom);
  await deps.store.addSigningKey(key, now);
  return { kid: key.kid, alg, signsFrom };
}

/**
 * Unpublishes a key for good. Refused for the signing key, for a key about to sign, and
 * (unless `force`) for a key whose tokens may still be alive: they would fail at once.
 */
export async function retireSigningKey(deps: SigningKeysDeps, kid: string, force: boolean): Promise<void> {
  const key = (await listSigningKeys(deps)).find((k) => k.kid === kid);
  if (!key) throw new TesseraError('not_found', { detail: `No signing key ${kid}` });
  if (key.status === 'signing' || key.status === 'next') {
    throw new TesseraError('invalid_request', { detail: `Key ${kid} is ${key.status === 'signing' ? 'signing new tokens' : 'about to sign'}: rotate to another key first` });
  }
  if (key.status === 'published' && !force) {
    throw new TesseraError('invalid_request', {
      detail: `Tokens signed by ${kid} may still be alive (for up to ACCESS_TOKEN_TTL + 60 s after it stopped signing); retiring it now makes them fail. Use --force to retire it anyway`,
    });
  }
  await deps.store.deleteSigningKey(kid);
}
