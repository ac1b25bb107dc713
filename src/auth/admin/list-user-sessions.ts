import { deviceName } from '../../core/device-name.js';
import type { AdminStore } from '../../store/admin-store.js';
import type { SessionSummary, Store } from '../../store/store.js';
import { noSuchUser, targetUserId } from './target-user.js';

export interface ListUserSessionsDeps {
  admin: Pick<AdminStore, 'findUser'>;
  store: Pick<Store, 'listActiveSessions'>;
  clock: () => Date;
}

export interface AdminSessionView extends SessionSummary {
  /** A readable name for the browser or app, from its user agent. */
  device: string;
}

/** `GET /admin/users/:id/sessions` and `tessera users sessions`: the user's active sessions, most recently used first; 404 for no such user. */
export async function listUserSessions(deps: ListUserSessionsDeps, id: string): Promise<AdminSessionView[]> {
  const userId = targetUserId(id);
  const now = deps.clock();
  if (!(await deps.admin.findUser(userId, now))) throw noSuchUser();
  const sessions = await deps.store.listActiveSessions(userId, now);
  return sessions.map((s) => ({ ...s, device: deviceName(s.userAgent) }));
}
