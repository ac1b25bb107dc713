import type { RequestMeta } from '../core/vocabulary.js';
import { TesseraError } from '../core/errors.js';
import type { Store } from '../store/store.js';
import { authenticate, verifyBearer, type AuthenticateDeps } from './authenticate.js';
import { judge, recognise, tryRecognise, unlessTesseraError, type JudgeDeps, type RecogniseDeps } from './recognise-refresh-token.js';

export type SignOutScope = 'local' | 'others' | 'global';

export interface SignOutDeps extends RecogniseDeps, JudgeDeps, AuthenticateDeps {
  store: Pick<Store, 'findSessionForRefresh' | 'revokeForReuse' | 'findActiveSession' | 'revokeSession' | 'revokeUserSessions'>;
}

export interface SignOutInput {
  scope: SignOutScope;
  /** The refresh token presented (body, else cookie); it names the session when present. */
  refreshToken?: string;
  /** The Bearer access token, consulted when no refresh token was presented. */
  accessToken?: string;
  meta: RequestMeta;
}

/**
 * Sign-out (`POST /auth/logout`). `local` is idempotent: whatever names a session of
 * ours ends it, and anything else changes nothing. `others` and `global` need a credential that
 * would still work, so an old token cannot become a remote kill switch; an old refresh token
 * there is theft evidence like anywhere else (§3 rule 4).
 */
export async function signOut(deps: SignOutDeps, input: SignOutInput): Promise<void> {
  const { store, clock } = deps;
  const { scope, meta } = input;
  if (scope === 'local') {
    const session = await sessionToEnd(deps, input);
    if (session) await store.revokeSession(session.userId, session.id, 'logout', 'logout', clock(), meta);
    return;
  }
  const session = input.refreshToken !== undefined
    ? (await judge(deps, await recognise(deps, input.refreshToken), meta)).session
    : await authenticate(deps, input.accessToken).then((auth) => ({ id: auth.sessionId, user: auth.user }));
  const others = scope === 'others';
  await store.revokeUserSessions(session.user.id, others ? session.id : null, others ? 'logout_others' : 'logout_global', session.id, clock(), meta);
}

/**
 * The session a local sign-out ends: the one a genuine refresh token names, else the one a
 * valid Bearer names. An old refresh token is theft evidence here too (§3 rule 4): `judge`
 * revokes the session for reuse and records it, and there is nothing left to end.
 */
async function sessionToEnd(deps: SignOutDeps, input: SignOutInput): Promise<{ id: string; userId: string } | undefined> {
  if (input.refreshToken === undefined) {
    const bearer = await verifyBearer(deps, input.accessToken).catch(unlessTesseraError);
    return bearer && { id: bearer.sessionId, userId: bearer.userId };
  }
  const named = await tryRecognise(deps, input.refreshToken);
  if (!named) return undefined;
  try {
    await judge(deps, named, input.meta);
  } catch (error) {
    if (error instanceof TesseraError && error.code === 'refresh_token_reused') return undefined;
    // Other refusals (expired, user disabled): ending the session anyway is harmless.
    unlessTesseraError(error);
  }
  return { id: named.session.id, userId: named.session.user.id };
}
