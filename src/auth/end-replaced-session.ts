import type { RequestMeta } from '../core/vocabulary.js';
import type { Store } from '../store/store.js';
import type { Recognised } from './recognise-refresh-token.js';

/**
 * Signing in again in a browser replaces its refresh cookie, so the session the old cookie
 * named could never be used from there again: end it rather than leave it alive (ASVS 7.2.4).
 */
export async function endReplacedSession(
  deps: { store: Pick<Store, 'revokeSession'> }, previous: Recognised | undefined, now: Date, meta: RequestMeta,
): Promise<void> {
  if (previous) await deps.store.revokeSession(previous.session.user.id, previous.session.id, 'logout', 'logout', now, meta);
}
