import type { PasskeyStore, PasskeySummary } from '../../store/passkey-store.js';
import type { Authenticated } from '../authenticate.js';

export interface ListPasskeysDeps {
  passkeys: Pick<PasskeyStore, 'listPasskeys'>;
}

/** `GET /auth/passkeys`: the caller's passkeys (id, name, when added, when last used), oldest first. */
export function listPasskeys(deps: ListPasskeysDeps, caller: Pick<Authenticated, 'user'>): Promise<PasskeySummary[]> {
  return deps.passkeys.listPasskeys(caller.user.id);
}
