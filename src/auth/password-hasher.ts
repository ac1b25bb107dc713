import { hash, verify } from '@node-rs/argon2';
import bcrypt from 'bcrypt';
import { TesseraError } from '../core/errors.js';

/** OWASP's first argon2id profile: 19 MiB, 2 passes, 1 lane. */
export const ARGON2_PARAMS = Object.freeze({ algorithm: 2 /* Algorithm.Argon2id, a const enum */, memoryCost: 19_456, timeCost: 2, parallelism: 1 });

const PARAMS_PREFIX = `$argon2id$v=19$m=${ARGON2_PARAMS.memoryCost},t=${ARGON2_PARAMS.timeCost},p=${ARGON2_PARAMS.parallelism}$`;

/**
 * The stored hash of a user who has no password (imported without one): no password
 * verifies against it, and trying costs the same argon2 verification as an unknown email.
 * Any stored hash starting with `!` is treated so.
 */
export const UNUSABLE_PASSWORD_HASH = '!unusable';
const isUnusable = (passwordHash: string) => passwordHash.startsWith('!');
/** `$2a$`, `$2b$` (OpenBSD, node `bcrypt`, bcryptjs) and `$2y$` (PHP) are one algorithm; `$2x$` (a buggy PHP era) is not accepted. */
const isBcrypt = (passwordHash: string) => /^\$2[aby]\$/.test(passwordHash);

/**
 * The 503 of a full queue. The caller hears `service_unavailable` like any other; the metrics
 * count it apart (`hash_queue`), as the sign of more sign-ins than the CPUs can hash.
 */
export class HashQueueFull extends TesseraError {
  constructor() {
    super('service_unavailable', { detail: 'Too many sign-ins at once; try again shortly', retryAfter: 1 });
  }
}

/**
 * argon2id off the event loop with bounded concurrency: at most `concurrency`
 * hashes or verifications (bcrypt ones included) run and at most `queue` wait. Past that, callers get a fast 503, so a
 * login flood costs bounded memory (19 MiB per running hash) instead of a crash.
 */
export class PasswordHasher {
  #running = 0;
  #waiting: (() => void)[] = [];
  /** A real hash of a random password, verified against when the email is unknown, so both paths cost the same. */
  #dummyHash: Promise<string>;

  constructor(
    private readonly concurrency: number,
    private readonly queue: number,
  ) {
    this.#dummyHash = hash(crypto.randomUUID(), ARGON2_PARAMS);
  }

  /** Hashes and verifications running now (at most `concurrency`), for the metrics. */
  get inFlight(): number {
    return this.#running;
  }

  /** Those waiting for a slot (at most `queue`), for the metrics. */
  get queued(): number {
    return this.#waiting.length;
  }

  hash(password: string): Promise<string> {
    return this.#run(() => hash(password, ARGON2_PARAMS));
  }

  /**
   * Verifies against `passwordHash` (argon2 PHC, or bcrypt imported from another system),
   * or against a dummy argon2 hash when there is no user or no usable password, taking the
   * same time as a wrong password for an argon2 user. Both run off the event loop.
   */
  async verify(passwordHash: string | undefined, password: string): Promise<boolean> {
    const usable = passwordHash !== undefined && !isUnusable(passwordHash);
    if (usable && isBcrypt(passwordHash)) {
      // bcrypt compares only the first 72 bytes of the password: the argon2id hash that replaces it at login takes it whole.
      // `$2y$` (PHP) is the same algorithm as `$2b$`, under a name node's bcrypt does not read.
      const hash = passwordHash.replace(/^\$2y\$/, '$2b$');
      return this.#run(() => bcrypt.compare(password, hash).catch(() => false));
    }
    const target = usable ? passwordHash : await this.#dummyHash;
    const ok = await this.#run(() => verify(target, password).catch(() => false));
    return ok && usable;
  }

  /**
   * True if the hash should be replaced by an argon2id hash of today's parameters at the next
   * successful login: bcrypt, and argon2 of any other variant or parameters.
   */
  needsRehash(passwordHash: string): boolean {
    return !isUnusable(passwordHash) && !passwordHash.startsWith(PARAMS_PREFIX);
  }

  async #run<T>(task: () => Promise<T>): Promise<T> {
    if (this.#running >= this.concurrency) {
      if (this.#waiting.length >= this.queue) {
        throw new HashQueueFull();
      }
      await new Promise<void>((resolve) => this.#waiting.push(resolve));
    } else {
      this.#running++;
    }
    try {
      return await task();
    } finally {
      // Hand the slot straight to the next waiter, or free it.
      const next = this.#waiting.shift();
      if (next) next();
      else this.#running--;
    }
  }
}

/**
 * Bounds on hashes brought in from another system: each verification holds one of the
 * hasher's slots, so a hash that takes seconds or gigabytes would starve every sign-in.
 * They are generous for real deployments (bcrypt 16 is about 3 s; argon2 libraries
 * default to 64 MiB) and apply only until the first login replaces the hash.
 */
export const IMPORTED_HASH_LIMITS = Object.freeze({ bcryptCostMin: 4, bcryptCostMax: 16, argon2MemoryKiBMax: 262_144, argon2TimeMax: 16, argon2ParallelismMax: 16 });

// bcrypt's modular crypt form: version, two-digit cost, 22 characters of salt and 31 of hash (60 in all).
const BCRYPT_HASH = /^\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}$/;
// argon2's PHC string, with or without the version (argon2 1.0 wrote none); salt ≥ 8 bytes, hash ≥ 16 bytes, no key id or data.
const ARGON2_HASH = /^\$argon2(?:id|i|d)\$(?:v=(?:16|19)\$)?m=(\d{1,10}),t=(\d{1,10}),p=(\d{1,3})\$[A-Za-z0-9+/]{11,128}\$[A-Za-z0-9+/]{22,512}$/;

/**
 * Why `passwordHash` cannot be imported, or undefined if `verify` takes it: an argon2 PHC
 * string or a bcrypt `$2a$`/`$2b$`/`$2y$` hash, within `IMPORTED_HASH_LIMITS`.
 *
 * @example
 * importedHashProblem('$2y$10$' + 'a'.repeat(53)); // undefined
 * importedHashProblem('5f4dcc3b5aa765d61d8327deb882cf99'); // 'passwordHash is neither …'
 */
export function importedHashProblem(passwordHash: string): string | undefined {
  const limits = IMPORTED_HASH_LIMITS;
  const bcrypt = BCRYPT_HASH.exec(passwordHash);
  if (bcrypt) {
    const cost = Number(bcrypt[1]);
    if (cost < limits.bcryptCostMin || cost > limits.bcryptCostMax) {
      return `passwordHash has bcrypt cost ${cost}; accepted are ${limits.bcryptCostMin} to ${limits.bcryptCostMax}`;
    }
    return undefined;
  }
  const argon2 = ARGON2_HASH.exec(passwordHash);
  if (argon2) {
    const [m, t, p] = [Number(argon2[1]), Number(argon2[2]), Number(argon2[3])];
    if (t < 1 || p < 1 || m < 8 * p) return 'passwordHash has argon2 parameters no argon2 implementation produces';
    if (m > limits.argon2MemoryKiBMax || t > limits.argon2TimeMax || p > limits.argon2ParallelismMax) {
      return `passwordHash has argon2 parameters m=${m},t=${t},p=${p}; accepted are at most m=${limits.argon2MemoryKiBMax},t=${limits.argon2TimeMax},p=${limits.argon2ParallelismMax}`;
    }
    return undefined;
  }
  return 'passwordHash is neither an argon2 PHC string ($argon2id$…) nor a bcrypt hash ($2a$, $2b$ or $2y$, 60 characters)';
}
