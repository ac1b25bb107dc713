import { TesseraError } from '../core/errors.js';
import { assertPasswordPolicy } from '../core/password-policy.js';
import { PASSWORD_MAX_LENGTH, type RequestMeta } from '../core/vocabulary.js';
import type { Store } from '../store/store.js';
import type { PasswordHasher } from './password-hasher.js';
import type { RateLimits } from './rate-limits.js';

export interface ChangePasswordDeps {
  store: Pick<Store, 'findUserById' | 'changePassword'>;
  hasher: Pick<PasswordHasher, 'verify' | 'hash'>;
  limits: Pick<RateLimits, 'take' | 'clear'>;
  clock: () => Date;
}

export interface ChangePasswordInput {
  userId: string;
  /** The caller's session: it stays signed in, every other one ends. */
  sessionId: string;
  currentPassword: string;
  newPassword: string;
  meta: RequestMeta;
}

/** `POST /auth/password`: a wrong current password is `invalid_credentials` in its 403 case. */
export async function changePassword(deps: ChangePasswordDeps, input: ChangePasswordInput): Promise<void> {
  const { store, hasher, limits } = deps;
  assertPasswordPolicy(input.newPassword);
  // A stolen access token must not become a password-guessing oracle: attempts are counted up
  // front (parallel guesses cannot slip past the check), and a success clears them.
  await limits.take('password_change', input.userId);
  const current = await store.findUserById(input.userId);
  // Longer than any password can be: wrong without spending a hash on it.
  const plausible = input.currentPassword.length <= PASSWORD_MAX_LENGTH * 2;
  if (!current || !plausible || !(await hasher.verify(current.passwordHash, input.currentPassword))) {
    throw new TesseraError('invalid_credentials', { case: 'current_password', detail: 'The current password is incorrect' });
  }
  await limits.clear('password_change', input.userId);
  const passwordHash = await hasher.hash(input.newPassword);
  await store.changePassword(input.userId, passwordHash, input.sessionId, deps.clock(), input.meta);
}
