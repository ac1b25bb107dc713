import type { SecurityEvent, Store } from '../store/store.js';

/** `GET /auth/events`: the user's recent security events, newest first. */
export function listEvents(deps: { store: Pick<Store, 'listEvents'> }, userId: string): Promise<SecurityEvent[]> {
  return deps.store.listEvents(userId);
}
