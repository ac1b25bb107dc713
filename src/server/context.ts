import type { FastifyBaseLogger, FastifyInstance, RawReplyDefaultExpression, RawRequestDefaultExpression, RawServerDefault } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { Config } from '../core/config.js';
import type { RefreshTokenCodec } from '../core/refresh-token.js';
import type { Store } from '../store/store.js';
import type { WindowCounter } from './window-counter.js';
import type { KeyRing } from './key-ring.js';
import type { PasswordHasher } from './password-hasher.js';

/** Everything a route needs, built once by buildApp. */
export interface Tessera {
  config: Config;
  store: Store;
  keys: KeyRing;
  hasher: PasswordHasher;
  refreshTokens: RefreshTokenCodec;
  /** Failure and per-session counters, in memory or in Redis. */
  counters: WindowCounter;
  /** The only clock the server reads; tests freeze it. */
  clock: () => Date;
}

export type App = FastifyInstance<
  RawServerDefault,
  RawRequestDefaultExpression,
  RawReplyDefaultExpression,
  FastifyBaseLogger,
  TypeBoxTypeProvider
>;
