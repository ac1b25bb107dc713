import { TesseraError } from '../../core/errors.js';
import { normalizeEmail } from '../../core/password-policy.js';
import { isUuid } from '../../core/uuid.js';
import type { Store } from '../../store/store.js';

/**
 * The user id of an admin route's `:id`, lower-cased; 404 `not_found` when it is no UUID, as
 * when no user has it (a non-UUID never reaches a `uuid` column, which would make it a 500).
 */
export function targetUserId(id: string): string {
  if (!isUuid(id)) throw noSuchUser();
  return id.toLowerCase();
}

/** The 404 of a user id or email that names no user. */
export function noSuchUser(): TesseraError {
  return new TesseraError('not_found', { detail: 'No user has this id' });
}

/**
 * For the CLI, which names users by email or id (`tessera users show ada@example.com`): the
 * user's id, or undefined if no user has it. A UUID is taken as an id, anything else as an email.
 */
export async function resolveUser(deps: { store: Pick<Store, 'findUserByEmail' | 'findUserById'> }, ref: string): Promise<string | undefined> {
  const text = ref.trim();
  if (isUuid(text)) return (await deps.store.findUserById(text.toLowerCase()))?.id;
  return (await deps.store.findUserByEmail(normalizeEmail(text)))?.id;
}
