import { isIP } from 'node:net';
import { availableParallelism } from 'node:os';
import { parseDuration } from './duration.js';
import { listsSeveralRedisAddresses, parseRedisClusterSeeds } from './redis-url.js';
import { NOTICE_NAMES, type NoticeName } from './outbox-message.js';
import { REFRESH_COOKIE_PATH } from './vocabulary.js';
import { SIGNING_ALGS, parseSigningAlg, privateJwkMembers, privateJwkProblem, type PrivateJwk, type SigningAlg } from './signing-alg.js';

export type { PrivateJwk } from './signing-alg.js';

export type SameSite = 'strict' | 'lax' | 'none';
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
/** `session`: PostgreSQL directly, or a session pooler; `transaction`: PgBouncer `pool_mode = transaction`. */
export type DatabasePooler = 'session' | 'transaction';


export interface RateLimitConfig {
  /** Login failures per account per IP per window. */
  loginFailuresPerAccountIp: number;
  loginFailuresPerAccountIpWindow: number;
  /** Login attempts (any outcome) per IP per window. */
  loginAttemptsPerIp: number;
  loginAttemptsPerIpWindow: number;
  /** Login failures per account from all IPs, after which only known IPs may keep trying. */
  loginFailuresPerAccount: number;
  loginFailuresPerAccountWindow: number;
  registerPerIp: number;
  registerPerIpWindow: number;
  /** reset mails per account (silent when exceeded) */
  passwordResetPerAccount: number;
  passwordResetPerAccountWindow: number;
  /** forgot-password requests per IP (silent when exceeded) */
  forgotPasswordPerIp: number;
  forgotPasswordPerIpWindow: number;
  /** verification and email-change mails per recipient address (silent when exceeded) */
  verificationPerRecipient: number;
  verificationPerRecipientWindow: number;
  refreshPerSession: number;
  refreshPerSessionWindow: number;
  refreshPerIp: number;
  refreshPerIpWindow: number;
  /** requests to the admin API per IP without a valid admin key or admin token (counted before the check) */
  adminFailuresPerIp: number;
  adminFailuresPerIpWindow: number;
  /** wrong second-factor codes per account (sign-in, re-authentication, enrolment); a correct password never resets it */
  mfaFailuresPerAccount: number;
  mfaFailuresPerAccountWindow: number;
}

/** Validated, frozen configuration. Durations are in seconds. */
export interface Config {
  port: number;
  host: string;
  publicUrl: string;
  publicOrigin: string;
  /** undefined: embedded PGlite in `dataDir`; `memory://`: throwaway PGlite; else PostgreSQL. */
  databaseUrl: string | undefined;
  /** undefined: unqualified table names; else every statement names `schema.table`. */
  databaseSchema: string | undefined;
  /** `transaction`: no named prepared statements and nothing session-level. */
  databasePooler: DatabasePooler;
  dataDir: string;
  signingKeys: PrivateJwk[] | undefined;
  /** The algorithm of keys Tessera generates (SIGNING_KEYS bring their own). */
  signingAlg: SigningAlg;
  audience: string;
  /** undefined in development means "generate one into dataDir". */
  secret: string | undefined;
  /** TESSERA_SECRET_PREVIOUS: the secret TESSERA_SECRET replaced, still accepted to verify and unseal while everything moves over. */
  secretPrevious: string | undefined;
  accessTokenTtl: number;
  refreshTokenTtl: number;
  sessionMaxAge: number;
  refreshReuseGrace: number;
  sessionRetention: number;
  corsOrigins: string[];
  cookieSameSite: SameSite;
  cookieDomain: string | undefined;
  cookieSecure: boolean;
  /** Where the auth routes live, and the only path the refresh cookie is sent to: `/auth`, or the prefix Tessera is embedded under. */
  refreshCookiePath: string;
  trustProxy: boolean | number | string[];
  /** One Redis URL, or with `redisCluster` the comma-separated seed nodes of a Redis Cluster. */
  redisUrl: string | undefined;
  /** REDIS_CLUSTER=on: `redisUrl` names a Redis Cluster, reached with ioredis' cluster client. */
  redisCluster: boolean;
  rateLimitsEnabled: boolean;
  rateLimits: RateLimitConfig;
  passwordHashConcurrency: number;
  passwordHashQueue: number;
  /** METRICS_PORT: `GET /metrics` on its own listener (on `host`, no auth unless `metricsToken`); undefined: not. */
  metricsPort: number | undefined;
  /** METRICS_TOKEN: the Bearer token `GET /metrics` asks for (on the main port when there is no `metricsPort`). */
  metricsToken: string | undefined;
  /** ADMIN_API_KEY: the keys of the admin API (`/admin`), each at least 32 bytes; empty: the admin API is off. */
  adminApiKeys: readonly string[];
  logLevel: LogLevel;
  production: boolean;
  /**
   * How mails leave: `smtp` (SMTP_URL), `log` (no SMTP_URL, development on a loopback
   * PUBLIC_URL: each mail written to the log with its link) or `off` (every email feature off).
   */
  mail: 'smtp' | 'log' | 'off';
  /** Why email features are off, for the start-up warning; undefined when on or turned off with EMAIL=off. */
  mailOffReason: string | undefined;
  smtpUrl: string | undefined;
  mailFrom: string;
  appName: string;
  /** Where the links in mails point (`/reset-password#token=…`): APP_URL, default PUBLIC_URL. */
  appUrl: string;
  /** The notices mailed to users (NOTIFY). */
  notify: readonly NoticeName[];
  webhookUrl: string | undefined;
  /** Standard Webhooks secret: `whsec_` + base64, or raw bytes without the prefix. */
  webhookSecret: string | undefined;
  passwordResetTtl: number;
  emailVerificationTtl: number;
  requireVerifiedEmail: boolean;
  /** REAUTH_WINDOW: how recent a sign-in must be for sensitive actions (changing second factors). */
  reauthWindow: number;
  /** Passkeys' relying party ID (WEBAUTHN_RP_ID, default PUBLIC_URL's host); undefined: passkeys are off (an IP address cannot be one). */
  webauthnRpId: string | undefined;
  /** The origins a passkey ceremony may run on (WEBAUTHN_ORIGINS, default PUBLIC_URL's origin). */
  webauthnOrigins: readonly string[];
  /** Why passkeys are off, for the start-up warning; undefined when they are on. */
  webauthnOffReason: string | undefined;
}

export const DEFAULT_RATE_LIMITS: RateLimitConfig = Object.freeze({
  loginFailuresPerAccountIp: 10,
  loginFailuresPerAccountIpWindow: 15 * 60,
  loginAttemptsPerIp: 100,
  loginAttemptsPerIpWindow: 15 * 60,
  loginFailuresPerAccount: 100,
  loginFailuresPerAccountWindow: 60 * 60,
  registerPerIp: 20,
  registerPerIpWindow: 60 * 60,
  passwordResetPerAccount: 5,
  passwordResetPerAccountWindow: 60 * 60,
  forgotPasswordPerIp: 20,
  forgotPasswordPerIpWindow: 60 * 60,
  verificationPerRecipient: 5,
  verificationPerRecipientWindow: 60 * 60,
  refreshPerSession: 60,
  refreshPerSessionWindow: 60,
  refreshPerIp: 1000,
  refreshPerIpWindow: 60,
  adminFailuresPerIp: 20,
  adminFailuresPerIpWindow: 15 * 60,
  mfaFailuresPerAccount: 20,
  mfaFailuresPerAccountWindow: 24 * 60 * 60,
});

export type ConfigResult = { ok: true; config: Config } | { ok: false; errors: string[] };

const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/**
 * Reads and validates configuration from environment variables. Pure: it
 * reads nothing but `env`, and reports every bad value at once, one line each.
 *
 * @example
 * const result = loadConfig(process.env);
 * if (!result.ok) { for (const line of result.errors) console.error(line); process.exit(1); }
 */
export function loadConfig(env: Record<string, string | undefined>): ConfigResult {
  const errors: string[] = [];
  const value = (name: string) => {
    const raw = env[name]?.trim();
    return raw === '' ? undefined : raw;
  };

  const integer = (name: string, fallback: number, min: number, max: number) => {
    const raw = value(name);
    if (raw === undefined) return fallback;
    const n = /^\d+$/.test(raw) ? Number(raw) : NaN;
    if (!(n >= min && n <= max)) {
      errors.push(`${name}=${JSON.stringify(raw)} is not valid: expected a whole number from ${min} to ${max}`);
      return fallback;
    }
    return n;
  };

  const duration = (name: string, fallback: string) => {
    const raw = value(name) ?? fallback;
    const seconds = parseDuration(raw);
    if (seconds === undefined) {
      errors.push(`${name}=${JSON.stringify(raw)} is not a duration: use seconds (900) or a number with s, m, h or d (15m, 7d), from 1 second to 10 years`);
      return parseDuration(fallback)!;
    }
    return seconds;
  };

  const oneOf = <T extends string>(name: string, allowed: readonly T[], fallback: T): T => {
    const raw = value(name)?.toLowerCase() ?? fallback;
    if (!(allowed as readonly string[]).includes(raw)) {
      errors.push(`${name}=${JSON.stringify(raw)} is not valid: expected one of ${allowed.join(', ')}`);
      return fallback;
    }
    return raw as T;
  };

  const production = value('NODE_ENV') === 'production';
  const port = integer('PORT', 3000, 0, 65535);
  const host = value('HOST') ?? '127.0.0.1';

  const rawPublicUrl = value('PUBLIC_URL') ?? `http://localhost:${port}`;
  let publicUrl = rawPublicUrl;
  let publicOrigin = rawPublicUrl;
  try {
    const url = new URL(rawPublicUrl);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error('protocol');
    if (url.username || url.password || url.search || url.hash) throw new Error('extras');
    // Normalised (lower-case scheme and host, no trailing slash): it becomes the `iss` claim.
    publicOrigin = url.origin;
    publicUrl = `${url.origin}${url.pathname}`.replace(/\/+$/, '');
  } catch {
    errors.push(`PUBLIC_URL=${JSON.stringify(rawPublicUrl)} is not valid: expected an http(s) URL without credentials, query or fragment`);
  }

  const databaseUrl = value('DATABASE_URL');
  if (databaseUrl && databaseUrl !== 'memory://' && !(/^postgres(ql)?:\/\//.test(databaseUrl) && URL.canParse(databaseUrl))) {
    // Never echo the value: it usually carries a password.
    errors.push('DATABASE_URL must be a postgres:// or postgresql:// URL, or memory:// for a throwaway embedded database');
  }

  // Interpolated into DDL and every statement as an identifier: a plain one only, no quoting games.
  let databaseSchema = value('DATABASE_SCHEMA');
  if (databaseSchema !== undefined && !/^[a-z_][a-z0-9_]{0,62}$/.test(databaseSchema)) {
    errors.push(`DATABASE_SCHEMA=${JSON.stringify(databaseSchema)} is not valid: expected a plain SQL identifier (lower-case letters, digits and _, not starting with a digit, at most 63 characters)`);
    databaseSchema = undefined;
  }

  const databasePooler = oneOf<DatabasePooler>('DATABASE_POOLER', ['session', 'transaction'], 'session');
  if (databasePooler === 'transaction' && !/^postgres(ql)?:\/\//.test(databaseUrl ?? '')) {
    errors.push('DATABASE_POOLER=transaction is for a PostgreSQL DATABASE_URL (postgres://…) behind PgBouncer in transaction mode; the embedded PGlite has no pooler');
  }

  let signingKeys: PrivateJwk[] | undefined;
  const rawKeys = value('SIGNING_KEYS');
  if (rawKeys !== undefined) {
    signingKeys = parseSigningKeys(rawKeys, errors);
  }

  const rawAlg = value('SIGNING_ALG') ?? 'EdDSA';
  const parsedAlg = parseSigningAlg(rawAlg);
  if (parsedAlg === undefined) {
    errors.push(`SIGNING_ALG=${JSON.stringify(rawAlg)} is not valid: expected one of ${SIGNING_ALGS.join(', ')}`);
  }
  const signingAlg = parsedAlg ?? 'EdDSA';

  const secret = value('TESSERA_SECRET');
  if (secret !== undefined && Buffer.byteLength(secret) < 32) {
    errors.push('TESSERA_SECRET is too short: it must be at least 32 bytes (try: openssl rand -base64 48)');
  } else if (secret === undefined && production) {
    errors.push('TESSERA_SECRET is required when NODE_ENV=production: set at least 32 random bytes (try: openssl rand -base64 48)');
  }
  // Never echo either value: both are root secrets.
  const secretPrevious = value('TESSERA_SECRET_PREVIOUS');
  if (secretPrevious !== undefined && Buffer.byteLength(secretPrevious) < 32) {
    errors.push('TESSERA_SECRET_PREVIOUS is too short: it must be at least 32 bytes, as it must be the TESSERA_SECRET you are replacing');
  } else if (secretPrevious !== undefined && secret === undefined) {
    errors.push('TESSERA_SECRET_PREVIOUS is set but TESSERA_SECRET is not: put the new secret in TESSERA_SECRET and the one it replaces (in development: the contents of DATA_DIR/secret) in TESSERA_SECRET_PREVIOUS; see docs/operations.md');
  } else if (secretPrevious !== undefined && secretPrevious === secret) {
    errors.push('TESSERA_SECRET_PREVIOUS is the same as TESSERA_SECRET: it must be the secret TESSERA_SECRET replaced, or unset');
  }

  const corsOrigins: string[] = [];
  for (const origin of (value('CORS_ORIGINS') ?? '').split(',').map((o) => o.trim()).filter(Boolean)) {
    try {
      const url = new URL(origin);
      if (!/^https?:$/.test(url.protocol) || url.pathname !== '/' || url.search || url.hash || url.username || /\/$/.test(origin)) {
        throw new Error('not an origin');
      }
      corsOrigins.push(url.origin);
    } catch {
      errors.push(`CORS_ORIGINS: ${JSON.stringify(origin)} is not an origin (scheme://host[:port], no path or trailing slash)`);
    }
  }

  const cookieSameSite = oneOf<SameSite>('COOKIE_SAMESITE', ['strict', 'lax', 'none'], 'strict');
  const cookieSecure = publicOrigin.startsWith('https:') || production;
  if (cookieSameSite === 'none' && !cookieSecure) {
    errors.push('COOKIE_SAMESITE=none needs a Secure cookie: use an https PUBLIC_URL (browsers refuse SameSite=None without Secure)');
  }

  const email = emailSettings(value, oneOf, errors, { production, publicUrl, publicOrigin });

  const config: Config = {
    port,
    host,
    publicUrl,
    publicOrigin,
    databaseUrl,
    databaseSchema,
    databasePooler,
    dataDir: value('DATA_DIR') ?? './.tessera',
    signingKeys,
    signingAlg,
    audience: value('ACCESS_TOKEN_AUDIENCE') ?? publicUrl,
    secret,
    secretPrevious,
    accessTokenTtl: duration('ACCESS_TOKEN_TTL', '15m'),
    refreshTokenTtl: duration('REFRESH_TOKEN_TTL', '7d'),
    sessionMaxAge: duration('SESSION_MAX_AGE', '30d'),
    refreshReuseGrace: duration('REFRESH_REUSE_GRACE', '10s'),
    sessionRetention: duration('SESSION_RETENTION', '7d'),
    corsOrigins,
    cookieSameSite,
    cookieDomain: value('COOKIE_DOMAIN'),
    cookieSecure,
    refreshCookiePath: REFRESH_COOKIE_PATH,
    trustProxy: parseTrustProxy(value('TRUST_PROXY')),
    redisUrl: value('REDIS_URL'),
    redisCluster: oneOf('REDIS_CLUSTER', ['on', 'off'], 'off') === 'on',
    rateLimitsEnabled: oneOf('RATE_LIMITS', ['on', 'off'], 'on') === 'on',
    rateLimits: DEFAULT_RATE_LIMITS,
    passwordHashConcurrency: integer('PASSWORD_HASH_CONCURRENCY', Math.max(1, availableParallelism()), 1, 256),
    passwordHashQueue: integer('PASSWORD_HASH_QUEUE', 32, 0, 10_000),
    metricsPort: value('METRICS_PORT') === undefined ? undefined : integer('METRICS_PORT', 0, 0, 65535),
    metricsToken: value('METRICS_TOKEN'),
    adminApiKeys: adminApiKeys(value('ADMIN_API_KEY'), errors),
    logLevel: oneOf<LogLevel>('LOG_LEVEL', LOG_LEVELS, 'info'),
    production,
    ...email,
    passwordResetTtl: duration('PASSWORD_RESET_TTL', '30m'),
    emailVerificationTtl: duration('EMAIL_VERIFICATION_TTL', '24h'),
    requireVerifiedEmail: oneOf('REQUIRE_VERIFIED_EMAIL', ['on', 'off'], 'off') === 'on',
    reauthWindow: duration('REAUTH_WINDOW', '10m'),
    ...webauthnSettings(value, errors, publicOrigin),
  };

  if (config.redisCluster) {
    if (!config.redisUrl) errors.push('REDIS_CLUSTER=on needs REDIS_URL: one or more nodes of the cluster, as redis://host:port,redis://host:port');
    else errors.push(...parseRedisClusterSeeds(config.redisUrl).problems);
  } else if (config.redisUrl && listsSeveralRedisAddresses(config.redisUrl)) {
    errors.push('REDIS_URL lists several addresses, but a single Redis takes one: set REDIS_CLUSTER=on to use them as the seed nodes of a Redis Cluster');
  } else if (config.redisUrl && !/^rediss?:\/\//.test(config.redisUrl)) {
    errors.push('REDIS_URL must start with redis:// or rediss://');
  }

  // Never echo the token: whoever reads it can read the metrics.
  if (config.metricsToken !== undefined && Buffer.byteLength(config.metricsToken) < 32) {
    errors.push('METRICS_TOKEN is too short: it must be at least 32 bytes (try: openssl rand -base64 48)');
  }
  if (config.metricsPort !== undefined && config.metricsPort !== 0 && config.metricsPort === config.port) {
    errors.push(`METRICS_PORT=${config.metricsPort} is the same as PORT: the metrics need a port of their own (or unset METRICS_PORT and use METRICS_TOKEN)`);
  }

  return errors.length ? { ok: false, errors } : { ok: true, config: Object.freeze(config) };
}

/**
 * ADMIN_API_KEY: one key, or several separated by commas (to change keys without a gap), each
 * at least 32 bytes of visible ASCII. Never echoed: whoever reads a key administers every account.
 */
function adminApiKeys(raw: string | undefined, errors: string[]): readonly string[] {
  if (raw === undefined) return Object.freeze([]);
  const keys = raw.split(',').map((key) => key.trim());
  keys.forEach((key, i) => {
    const which = keys.length === 1 ? 'ADMIN_API_KEY' : `ADMIN_API_KEY: key ${i + 1} of ${keys.length}`;
    if (key === '') errors.push(`${which} is empty: separate keys with single commas`);
    else if (!/^[\x21-\x7e]+$/.test(key)) errors.push(`${which} holds a space or a character outside visible ASCII: it must be sent as a Bearer token (try: openssl rand -base64 48)`);
    else if (Buffer.byteLength(key) < 32) errors.push(`${which} is too short: each key must be at least 32 bytes (try: openssl rand -base64 48)`);
  });
  return Object.freeze(keys);
}

type EmailSettings = Pick<
  Config, 'mail' | 'mailOffReason' | 'smtpUrl' | 'mailFrom' | 'appName' | 'appUrl' | 'notify' | 'webhookUrl' | 'webhookSecret'
>;

/** SMTP_URL, MAIL_FROM, EMAIL, APP_NAME, APP_URL, NOTIFY, WEBHOOK_URL and WEBHOOK_SECRET. */
function emailSettings(
  value: (name: string) => string | undefined,
  oneOf: <T extends string>(name: string, allowed: readonly T[], fallback: T) => T,
  errors: string[],
  site: { production: boolean; publicUrl: string; publicOrigin: string },
): EmailSettings {
  const smtpUrl = value('SMTP_URL');
  if (smtpUrl !== undefined && !(/^smtps?:\/\//.test(smtpUrl) && URL.canParse(smtpUrl))) {
    // Never echo the value: it may carry a password.
    errors.push('SMTP_URL must be an smtp:// or smtps:// URL, such as smtps://user:password@smtp.example.com:465');
  }
  const enabled = oneOf('EMAIL', ['on', 'off'], 'on') === 'on';
  const loopback = isLoopbackUrl(site.publicOrigin);
  const mail: Config['mail'] = !enabled ? 'off' : smtpUrl ? 'smtp' : !site.production && loopback ? 'log' : 'off';
  const mailOffReason = !enabled || mail !== 'off' ? undefined
    : site.production ? 'no SMTP_URL is set (NODE_ENV=production)'
    : 'no SMTP_URL is set and PUBLIC_URL is not a loopback address';

  const appName = value('APP_NAME') ?? 'Tessera';
  if (/[\r\n]/.test(appName) || appName.length > 100) errors.push('APP_NAME must be one line of at most 100 characters');
  const host = URL.canParse(site.publicOrigin) ? new URL(site.publicOrigin).hostname : 'localhost';
  const mailFrom = value('MAIL_FROM') ?? `${appName.replace(/["\\]/g, '')} <no-reply@${host.includes('.') ? host : `${host}.localdomain`}>`;
  // One address, with or without a display name: "Example <no-reply@example.com>" or no-reply@example.com.
  if (!/^(?:[^<>\r\n]*<[^\s<>@]+@[^\s<>@]+>|[^\s<>@]+@[^\s<>@]+)$/.test(mailFrom)) {
    errors.push('MAIL_FROM is not an address such as "Example <no-reply@example.com>" or no-reply@example.com');
  }

  let appUrl = site.publicUrl;
  const rawAppUrl = value('APP_URL');
  if (rawAppUrl !== undefined) {
    if (/^https?:\/\//.test(rawAppUrl) && URL.canParse(rawAppUrl)) appUrl = rawAppUrl.replace(/\/+$/, '');
    else errors.push(`APP_URL=${JSON.stringify(rawAppUrl)} is not valid: expected the http(s) URL of your front end, where /reset-password lives`);
  }

  const rawNotify = value('NOTIFY') ?? 'all';
  let notify: NoticeName[] = [];
  if (rawNotify === 'all') notify = [...NOTICE_NAMES];
  else if (rawNotify !== 'none') {
    for (const name of rawNotify.split(',').map((n) => n.trim()).filter(Boolean)) {
      if ((NOTICE_NAMES as string[]).includes(name)) notify.push(name as NoticeName);
      else errors.push(`NOTIFY: ${JSON.stringify(name)} is not a notice: expected all, none, or a comma list of ${NOTICE_NAMES.join(', ')}`);
    }
  }

  const webhookUrl = value('WEBHOOK_URL');
  const webhookSecret = value('WEBHOOK_SECRET');
  if (webhookUrl !== undefined && !(/^https?:\/\//.test(webhookUrl) && URL.canParse(webhookUrl))) {
    errors.push('WEBHOOK_URL must be an http(s) URL');
  }
  if (webhookUrl !== undefined && webhookSecret === undefined) {
    errors.push('WEBHOOK_URL needs WEBHOOK_SECRET: the receiver checks every delivery with it (try: echo whsec_$(openssl rand -base64 32))');
  } else if (webhookSecret !== undefined && webhookSecretBytes(webhookSecret).length < 24) {
    errors.push('WEBHOOK_SECRET is too short: use whsec_ followed by at least 24 random bytes in base64 (try: echo whsec_$(openssl rand -base64 32))');
  }
  return { mail, mailOffReason, smtpUrl, mailFrom, appName, appUrl, notify, webhookUrl, webhookSecret };
}

/** A Standard Webhooks secret's key: `whsec_` + base64 is decoded; anything else is used as its bytes. */
export function webhookSecretBytes(secret: string): Buffer {
  return secret.startsWith('whsec_') ? Buffer.from(secret.slice('whsec_'.length), 'base64') : Buffer.from(secret, 'utf8');
}

function isLoopbackUrl(origin: string): boolean {
  if (!URL.canParse(origin)) return false;
  const host = new URL(origin).hostname;
  return host === 'localhost' || host.endsWith('.localhost') || /^127\.\d+\.\d+\.\d+$/.test(host) || host === '[::1]';
}

function parseTrustProxy(raw: string | undefined): boolean | number | string[] {
  if (raw === undefined || /^(off|false|0|no)$/i.test(raw)) return false;
  if (/^(on|true|yes)$/i.test(raw)) return true;
  if (/^\d+$/.test(raw)) return Number(raw);
  return raw.split(',').map((a) => a.trim()).filter(Boolean);
}

function parseSigningKeys(raw: string, errors: string[]): PrivateJwk[] | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    errors.push('SIGNING_KEYS is not valid JSON: expected a JWKS like {"keys":[{"kty":"OKP","crv":"Ed25519","x":"…","d":"…","kid":"…"}]}');
    return undefined;
  }
  const keys = (parsed as { keys?: unknown })?.keys;
  if (!Array.isArray(keys) || keys.length === 0) {
    errors.push('SIGNING_KEYS must be a JWKS with a non-empty "keys" array');
    return undefined;
  }
  const valid: PrivateJwk[] = [];
  keys.forEach((key: Record<string, unknown>, i) => {
    const problem = key && typeof key === 'object' ? privateJwkProblem(key) : 'is not an object';
    if (problem) {
      errors.push(`SIGNING_KEYS key ${i} ${problem}: expected a private JWK with a kid (Ed25519, P-256 or RSA of 2048 bits or more)`);
    } else if (valid.some((k) => k.kid === key.kid)) {
      errors.push(`SIGNING_KEYS key ${i} repeats kid ${JSON.stringify(key.kid)}: every key needs its own kid`);
    } else {
      valid.push(privateJwkMembers(key as PrivateJwk));
    }
  });
  return valid;
}

/**
 * Passkeys' relying party (SPEC §8): WEBAUTHN_RP_ID (default PUBLIC_URL's host) and
 * WEBAUTHN_ORIGINS (default PUBLIC_URL's origin), each origin's host the RP ID or under it.
 * Browsers refuse an IP address as RP ID, so with one (the default on an IP PUBLIC_URL)
 * passkeys are off, and `tessera serve` warns once.
 */
function webauthnSettings(
  value: (name: string) => string | undefined, errors: string[], publicOrigin: string,
): Pick<Config, 'webauthnRpId' | 'webauthnOrigins' | 'webauthnOffReason'> {
  const rawOrigins = value('WEBAUTHN_ORIGINS');
  const origins: string[] = [];
  for (const raw of rawOrigins === undefined ? [publicOrigin] : rawOrigins.split(',').map((o) => o.trim()).filter(Boolean)) {
    const origin = URL.canParse(raw) ? new URL(raw) : undefined;
    if (!origin || (origin.protocol !== 'https:' && origin.protocol !== 'http:') || origin.origin !== raw.replace(/\/+$/, '')) {
      // A bad PUBLIC_URL has its own error already; only a bad WEBAUTHN_ORIGINS gets this one.
      if (rawOrigins !== undefined) errors.push(`WEBAUTHN_ORIGINS: ${JSON.stringify(raw)} is not an origin such as https://example.com (scheme, host and port only)`);
      continue;
    }
    origins.push(origin.origin);
  }
  const configured = value('WEBAUTHN_RP_ID');
  let rpId = configured ?? (URL.canParse(publicOrigin) ? new URL(publicOrigin).hostname : '');
  rpId = rpId.replace(/^\[|\]$/g, '').toLowerCase();
  const off = (reason: string) => ({ webauthnRpId: undefined, webauthnOrigins: Object.freeze(origins), webauthnOffReason: reason });
  if (isIP(rpId) !== 0) {
    if (configured !== undefined) errors.push(`WEBAUTHN_RP_ID=${JSON.stringify(configured)} is an IP address, which browsers refuse as a relying party ID: use a domain name`);
    return off(`the relying party ID would be the IP address ${rpId} (PUBLIC_URL's host), which browsers refuse; serve Tessera under a domain name (localhost works for development) or set WEBAUTHN_RP_ID`);
  }
  if (!/^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/.test(rpId)) {
    if (configured !== undefined) errors.push(`WEBAUTHN_RP_ID=${JSON.stringify(rpId)} is not a domain name`);
    return off('no valid relying party ID');
  }
  for (const origin of origins) {
    const host = new URL(origin).hostname;
    if (host !== rpId && !host.endsWith(`.${rpId}`)) {
      errors.push(`WEBAUTHN_ORIGINS: ${origin} is not on the relying party ID ${rpId} or a subdomain of it (WEBAUTHN_RP_ID)`);
    }
  }
  return { webauthnRpId: rpId, webauthnOrigins: Object.freeze(origins), webauthnOffReason: undefined };
}
