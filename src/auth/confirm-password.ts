import { TesseraError } from '../core/errors.js';
import { PASSWORD_MAX_LENGTH } from '../core/vocabulary.js';
import type { Store } from '../store/store.js';
import type { PasswordHasher } from './password-hasher.js';
import type { RateLimits } from './rate-limits.js';

export interface ConfirmPasswordDeps {
  store: Pick<Store, 'findUserById'>;
  hasher: Pick<PasswordHasher, 'verify'>;
  limits: Pick<RateLimits, 'take' | 'clear'>;
}

/**
 * A signed-in user's `currentPassword`, checked before a sensitive change (password, email,
 * deletion). A wrong one is `invalid_credentials` in its 403 case (clients take a 401 for
 * "refresh and retry"). A stolen access token must not become a password-guessing oracle:
 * attempts are counted up front (parallel guesses cannot slip past the check), and a success
 * clears them.
 */
export async function confirmPassword(deps: ConfirmPasswordDeps, userId: string, currentPassword: string) {
  await deps.limits.take('password_change', userId);
  const user = await deps.store.findUserById(userId);
  // Longer than any password can be: wrong without spending a hash on it.
  const plausible = currentPassword.length <= PASSWORD_MAX_LENGTH * 2;
  if (!user || !plausible || !(await deps.hasher.verify(user.passwordHash, currentPassword))) {
    throw new TesseraError('invalid_credentials', { case: 'current_password', detail: 'The current password is incorrect' });
  }
  await deps.limits.clear('password_change', userId);
  return user;
}
