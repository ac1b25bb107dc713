import { availableParallelism } from 'node:os';
import { parseDuration } from './duration.js';
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
  refreshPerSession: number;
  refreshPerSessionWindow: number;
  refreshPerIp: number;
  refreshPerIpWindow: number;
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
  redisUrl: string | undefined;
  rateLimitsEnabled: boolean;
  rateLimits: RateLimitConfig;
  passwordHashConcurrency: number;
  passwordHashQueue: number;
  logLevel: LogLevel;
  production: boolean;
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
  refreshPerSession: 60,
  refreshPerSessionWindow: 60,
  refreshPerIp: 1000,
  refreshPerIpWindow: 60,
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
    rateLimitsEnabled: oneOf('RATE_LIMITS', ['on', 'off'], 'on') === 'on',
    rateLimits: DEFAULT_RATE_LIMITS,
    passwordHashConcurrency: integer('PASSWORD_HASH_CONCURRENCY', Math.max(1, availableParallelism()), 1, 256),
    passwordHashQueue: integer('PASSWORD_HASH_QUEUE', 32, 0, 10_000),
    logLevel: oneOf<LogLevel>('LOG_LEVEL', LOG_LEVELS, 'info'),
    production,
  };

  if (config.redisUrl && !/^rediss?:\/\//.test(config.redisUrl)) {
    errors.push('REDIS_URL must start with redis:// or rediss://');
  }

  return errors.length ? { ok: false, errors } : { ok: true, config: Object.freeze(config) };
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
