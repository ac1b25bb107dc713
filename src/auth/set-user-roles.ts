import { TesseraError } from '../core/errors.js';
import { normalizeEmail } from '../core/password-policy.js';
import { parseRoles } from '../core/user-fields.js';
import type { RequestMeta } from '../core/vocabulary.js';
import type { Store } from '../store/store.js';

export interface SetUserRolesDeps {
  store: Pick<Store, 'setUserRoles'>;
  clock: () => Date;
}

/**
 * `tessera users roles EMAIL a,b`: replaces the user's set of roles with the
 * comma-separated list (an empty list clears it) and records `roles_changed`. The CLI may
 * give `tessera:admin`. Access tokens carry the new roles from the session's next refresh.
 * Returns the normalised email and the stored roles, or undefined if no user has the email;
 * a bad list is `invalid_request` with the reason.
 *
 * @example
 * await setUserRoles({ store, clock }, 'ada@example.com', 'editor,billing:read', { ip: null, userAgent: null });
 */
export async function setUserRoles(
  deps: SetUserRolesDeps, email: string, list: string, meta: RequestMeta,
): Promise<{ email: string; roles: string[] } | undefined> {
  const names = list.trim() === '' ? [] : list.split(',').map((name) => name.trim());
  const roles = parseRoles(names, { allowAdmin: true });
  if (!roles.ok) throw new TesseraError('invalid_request', { detail: roles.reason });
  const normalized = normalizeEmail(email);
  return (await deps.store.setUserRoles(normalized, roles.value, deps.clock(), meta)) ? { email: normalized, roles: roles.value } : undefined;
}
