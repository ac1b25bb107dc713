import { normalizeEmail } from '../core/password-policy.js';
import type { Store } from '../store/store.js';

/**
 * `tessera users disable|enable EMAIL`: a disabled user cannot sign in, and every one of
 * their sessions stops refreshing at once. Returns the normalised email, or undefined if no
 * user has it.
 */
export async function setUserDisabled(
  deps: { store: Pick<Store, 'setUserDisabled'>; clock: () => Date }, email: string, disabled: boolean,
): Promise<string | undefined> {
  const normalized = normalizeEmail(email);
  return (await deps.store.setUserDisabled(normalized, disabled, deps.clock())) ? normalized : undefined;
}
