import { randomUUID } from 'node:crypto';
import type { Config } from '../core/config.js';
import { TesseraError } from '../core/errors.js';
import { assertPasswordPolicy, normalizeEmail } from '../core/password-policy.js';
import type { RequestMeta, Transport } from '../core/vocabulary.js';
import type { RefreshTokenCodec } from '../core/refresh-token.js';
import type { Store } from '../store/store.js';
import { mailOn, newLinkRequest } from './account-links.js';
import { endReplacedSession } from './end-replaced-session.js';
import { noteDevice, type KnownDeviceDeps } from './known-device.js';
import { issueTokens, type IssueDeps, type Tokens } from './issue-tokens.js';
import { newSession, type SessionLifetimes } from './new-session.js';
import type { PasswordHasher } from './password-hasher.js';
import { tryRecognise, type RecogniseDeps } from './recognise-refresh-token.js';

export interface RegisterDeps extends RecogniseDeps, IssueDeps, KnownDeviceDeps {
  refreshTokens: Pick<RefreshTokenCodec, 'parse' | 'verify' | 'issue'>;
  store: Pick<Store, 'createUserWithSession' | 'findSessionForRefresh' | 'revokeSession' | 'recordEvent'>;
  hasher: Pick<PasswordHasher, 'hash'>;
  config: SessionLifetimes & Pick<Config, 'mail' | 'emailVerificationTtl'>;
  clock: () => Date;
}

export interface RegisterInput {
  email: string;
  password: string;
  name?: string;
  transport: Transport;
  /** The browser's refresh cookie, if it sent one: with the cookie transport its session is replaced. */
  cookieToken?: string;
  /** The browser's device cookie (cookie transport): the account's first known device. */
  deviceCookie?: string;
  meta: RequestMeta;
}

/**
 * Creates an account and its first session (`POST /auth/register`); `email_taken` if the
 * address has one. With email features on, the verification link is written with the account.
 */
export async function register(deps: RegisterDeps, input: RegisterInput): Promise<Tokens> {
  assertPasswordPolicy(input.password);
  const email = normalizeEmail(input.email);
  const passwordHash = await deps.hasher.hash(input.password);
  const now = deps.clock();
  const session = newSession(deps.config, randomUUID(), now);
  const name = input.name?.trim() ?? '';
  const verification = mailOn(deps.config)
    ? {
      request: newLinkRequest('verify_email', session.userId, email, now, deps.config.emailVerificationTtl),
      mail: { template: 'verify_email' as const, to: email, name },
    }
    : undefined;
  const user = await deps.store.createUserWithSession({ id: session.userId, email, name, passwordHash }, session, input.meta, verification);
  if (!user) throw new TesseraError('email_taken');
  await noteDevice(deps, user.id, session.id, { transport: input.transport, cookie: input.deviceCookie, meta: input.meta });
  if (input.transport === 'cookie') await endReplacedSession(deps, await tryRecognise(deps, input.cookieToken), now, input.meta);
  return issueTokens(deps, { session: { ...session, user, authTime: now }, generation: 1, expiresAt: session.expiresAt, now });
}
