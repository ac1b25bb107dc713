import { TesseraError } from '../core/errors.js';
import { isUuid } from '../core/uuid.js';
import type { RequestMeta } from '../core/vocabulary.js';
import type { Store } from '../store/store.js';

export interface RevokeSessionDeps {
  store: Pick<Store, 'revokeSession'>;
  clock: () => Date;
}

/** `DELETE /auth/sessions/:id`: `not_found` unless `sessionId` is one of the user's active sessions. */
export async function revokeSession(deps: RevokeSessionDeps, userId: string, sessionId: string, meta: RequestMeta): Promise<void> {
  const revoked = isUuid(sessionId) && (await deps.store.revokeSession(userId, sessionId.toLowerCase(), 'revoked', 'session_revoked', deps.clock(), meta));
  if (!revoked) throw new TesseraError('not_found', { detail: 'No active session of yours has this id' });
}
