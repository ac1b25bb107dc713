import { assertPasswordPolicy } from '../core/password-policy.js';
import type { RequestMeta } from '../core/vocabulary.js';
import type { Store } from '../store/store.js';
import { confirmPassword, type ConfirmPasswordDeps } from './confirm-password.js';
import type { PasswordHasher } from './password-hasher.js';

export interface ChangePasswordDeps extends ConfirmPasswordDeps {
  store: Pick<Store, 'findUserById' | 'changePassword'>;
  hasher: Pick<PasswordHasher, 'verify' | 'hash'>;
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

/** `POST /auth/password`: every other session ends, and so does every outstanding reset link. */
export async function changePassword(deps: ChangePasswordDeps, input: ChangePasswordInput): Promise<void> {
  assertPasswordPolicy(input.newPassword);
  await confirmPassword(deps, input.userId, input.currentPassword);
  const passwordHash = await deps.hasher.hash(input.newPassword);
  await deps.store.changePassword(input.userId, passwordHash, input.sessionId, deps.clock(), input.meta);
}
