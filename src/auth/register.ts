import { randomUUID } from 'node:crypto';
import { TesseraError } from '../core/errors.js';
import { assertPasswordPolicy, normalizeEmail } from '../core/password-policy.js';
import type { RequestMeta, Transport } from '../core/vocabulary.js';
import type { RefreshTokenCodec } from '../core/refresh-token.js';
import type { Store } from '../store/store.js';
import { endReplacedSession } from './end-replaced-session.js';
import { issueTokens, type IssueDeps, type Tokens } from './issue-tokens.js';
import { newSession, type SessionLifetimes } from './new-session.js';
import type { PasswordHasher } from './password-hasher.js';
import { tryRecognise, type RecogniseDeps } from './recognise-refresh-token.js';

export interface RegisterDeps extends RecogniseDeps, IssueDeps {
  refreshTokens: Pick<RefreshTokenCodec, 'parse' | 'verify' | 'issue'>;
  store: Pick<Store, 'createUserWithSession' | 'findSessionForRefresh' | 'revokeSession'>;
  hasher: Pick<PasswordHasher, 'hash'>;
  config: SessionLifetimes;
  clock: () => Date;
}

export interface RegisterInput {
  email: string;
  password: string;
  name?: string;
  transport: Transport;
  /** The browser's refresh cookie, if it sent one: with the cookie transport its session is replaced. */
  cookieToken?: string;
  meta: RequestMeta;
}

/** Creates an account and its first session (`POST /auth/register`); `email_taken` if the address has one. */
export async function register(deps: RegisterDeps, input: RegisterInput): Promise<Tokens> {
  assertPasswordPolicy(input.password);
  const email = normalizeEmail(input.email);
  const passwordHash = await deps.hasher.hash(input.password);
  const now = deps.clock();
  const session = newSession(deps.config, randomUUID(), now);
  const user = await deps.store.createUserWithSession(
    { id: session.userId, email, name: input.name?.trim() ?? '', passwordHash },
    session,
    input.meta,
  );
  if (!user) throw new TesseraError('email_taken');
  if (input.transport === 'cookie') await endReplacedSession(deps, await tryRecognise(deps, input.cookieToken), now, input.meta);
  return issueTokens(deps, { session: { ...session, user, authTime: now }, generation: 1, expiresAt: session.expiresAt, now });
}
