import { deviceName } from '../core/device-name.js';
import type { SessionSummary, Store } from '../store/store.js';

export interface SessionView extends SessionSummary {
  /** A readable name for the browser or app, from its user agent. */
  device: string;
  /** True for the session that asks. */
  current: boolean;
}

export interface ListSessionsDeps {
  store: Pick<Store, 'listActiveSessions'>;
  clock: () => Date;
}

/**
 * `GET /auth/sessions`: the user's active sessions, most recently used first, each with how
 * (`amr`) and when (`authTime`) the user last authenticated in it.
 */
export async function listSessions(deps: ListSessionsDeps, userId: string, currentSessionId: string): Promise<SessionView[]> {
  const sessions = await deps.store.listActiveSessions(userId, deps.clock());
  return sessions.map((s) => ({ ...s, device: deviceName(s.userAgent), current: s.id === currentSessionId }));
}
