import { hash, verify } from '@node-rs/argon2';
import { TesseraError } from '../core/errors.js';

/** OWASP's first argon2id profile: 19 MiB, 2 passes, 1 lane. */
export const ARGON2_PARAMS = Object.freeze({ algorithm: 2 /* Algorithm.Argon2id, a const enum */, memoryCost: 19_456, timeCost: 2, parallelism: 1 });

const PARAMS_PREFIX = `$argon2id$v=19$m=${ARGON2_PARAMS.memoryCost},t=${ARGON2_PARAMS.timeCost},p=${ARGON2_PARAMS.parallelism}$`;

/**
 * argon2id off the event loop with bounded concurrency: at most `concurrency`
 * hashes run and at most `queue` wait. Past that, callers get a fast 503, so a
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

  hash(password: string): Promise<string> {
    return this.#run(() => hash(password, ARGON2_PARAMS));
  }

  /** Verifies against `passwordHash`, or against a dummy when there is no user, taking the same time either way. */
  async verify(passwordHash: string | undefined, password: string): Promise<boolean> {
    const target = passwordHash ?? (await this.#dummyHash);
    const ok = await this.#run(() => verify(target, password).catch(() => false));
    return ok && passwordHash !== undefined;
  }

  /** True if the hash was made with other parameters and should be replaced on the next login. */
  needsRehash(passwordHash: string): boolean {
    return !passwordHash.startsWith(PARAMS_PREFIX);
  }

  async #run<T>(task: () => Promise<T>): Promise<T> {
    if (this.#running >= this.concurrency) {
      if (this.#waiting.length >= this.queue) {
        throw new TesseraError('service_unavailable', { detail: 'Too many sign-ins at once; try again shortly', retryAfter: 1 });
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
