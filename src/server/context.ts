import type {
  FastifyBaseLogger, FastifyInstance, FastifyRequest, FastifySchema, RawReplyDefaultExpression, RawRequestDefaultExpression, RawServerDefault,
  RouteGenericInterface,
} from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { AccessTokenOptions } from '../core/access-token.js';
import type { Config } from '../core/config.js';
import type { RefreshPolicy } from '../core/decide-refresh.js';
import type { RefreshTokenCodec } from '../core/refresh-token.js';
import type { AdminKeys } from '../auth/admin/authorize-admin.js';
import type { AdminCursors } from '../auth/admin/cursors.js';
import type { ClaimsHook } from '../auth/issue-tokens.js';
import type { KeyRing } from '../auth/key-ring.js';
import type { RevocationFeed } from '../auth/revocation-feed.js';
import type { PasswordHasher } from '../auth/password-hasher.js';
import type { AuthMeter } from '../auth/meter.js';
import type { RateLimits } from '../auth/rate-limits.js';
import type { PurposeKeys } from '../core/derive-key.js';
import type { LinkTokenCodec } from '../core/link-token.js';
import type { MfaTokenCodec } from '../core/mfa-token.js';
import type { Sealer } from '../core/seal.js';
import type { AccountStore } from '../store/account-store.js';
import type { AdminStore } from '../store/admin-store.js';
import type { SecondFactorStore } from '../store/second-factor-store.js';
import type { PasskeyStore } from '../store/passkey-store.js';
import type { WebAuthnChallengeCodec } from '../core/webauthn-challenge.js';
import type { Store } from '../store/store.js';

/**
 * What buildApp wires together once, from the frozen config. Route handlers pass it to
 * the use cases of src/auth, each of which declares and reads only the part it needs.
 */
export interface Tessera {
  config: Config;
  store: Store;
  keys: KeyRing;
  /** The embedding application's claims hook, if any. */
  claims: ClaimsHook | undefined;
  revocations: RevocationFeed;
  hasher: PasswordHasher;
  refreshTokens: RefreshTokenCodec;
  /** Accounts (SPEC §7): links by mail, devices, profile, export, deletion. */
  accounts: AccountStore;
  links: LinkTokenCodec;
  /** HMAC keys of known-device identifiers (current and previous secret). */
  deviceKeys: PurposeKeys;
  /** The admin API's SQL (SPEC §9), its keys (ADMIN_API_KEY; none: the API is off) and its page cursors. */
  admin: AdminStore;
  adminKeys: AdminKeys;
  adminCursors: AdminCursors;
  /** Second factors (SPEC §8): their SQL, the mfaTokens of pending sign-ins, TOTP secrets' sealer, the recovery codes' HMAC keys. */
  factors: SecondFactorStore;
  mfaTokens: MfaTokenCodec;
  totpSecrets: Sealer;
  recoveryCodeKeys: PurposeKeys;
  /** Passkeys (SPEC §8): their SQL, and the MAC of WebAuthn challenges (never stored when handed out). */
  passkeys: PasskeyStore;
  challenges: WebAuthnChallengeCodec;
  limits: RateLimits;
  /** Where use cases report what only they see (a refresh's rule, a reuse); a no-op when metrics are off. */
  meter: AuthMeter;
  refreshPolicy: RefreshPolicy;
  accessTokenOptions: AccessTokenOptions;
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

/** A request of one of our routes, as its handler sees it: `Request<{ Body: LoginBody }>`. */
export type Request<G extends RouteGenericInterface = RouteGenericInterface> = FastifyRequest<
  G, RawServerDefault, RawRequestDefaultExpression, FastifySchema, TypeBoxTypeProvider
>;

declare module 'fastify' {
  interface FastifyInstance {
    tessera: Tessera;
  }
}
