import type { AuthenticationResponseJSON } from '@simplewebauthn/server';
import type { Config } from '../../core/config.js';
import { TesseraError } from '../../core/errors.js';
import type { PasskeyStore } from '../../store/passkey-store.js';
import type { SecondFactorStore } from '../../store/second-factor-store.js';
import type { Store } from '../../store/store.js';
import { mailOn } from '../account-links.js';
import { endReplacedSession } from '../end-replaced-session.js';
import { issueTokens, type Tokens } from '../issue-tokens.js';
import { noteDevice } from '../known-device.js';
import { wrongCode } from '../mfa/code-check.js';
import { finishMfaLogin, openMfaLogin, type FinishMfaLoginDeps, type MfaLoginContext, type OpenMfaLoginDeps } from '../mfa/verify-mfa-login.js';
import { newSession } from '../new-session.js';
import { tryRecognise } from '../recognise-refresh-token.js';
import { checkAssertion, type CheckAssertionDeps } from './check-assertion.js';

/** `amr` of a sign-in with a passkey and user verification alone (RFC 8176: a hardware key, a user present and verified). */
export const PASSKEY_LOGIN_AMR: readonly string[] = Object.freeze(['hwk', 'user']);
/** `amr` of a password sign-in finished with a passkey. */
export const PASSKEY_MFA_AMR: readonly string[] = Object.freeze(['pwd', 'hwk', 'user', 'mfa']);

export interface SignInWithPasskeyDeps extends CheckAssertionDeps, OpenMfaLoginDeps, FinishMfaLoginDeps {
  config: CheckAssertionDeps['config'] & FinishMfaLoginDeps['config'] & Pick<Config, 'requireVerifiedEmail' | 'mail'>;
  passkeys: Pick<PasskeyStore, 'findPasskey' | 'completePasskeyLogin'>;
  factors: Pick<SecondFactorStore, 'countMfaAttempt' | 'completeMfaLogin' | 'recordCodeFailure'>;
  store: Pick<Store, 'findUserById' | 'findSessionForRefresh' | 'revokeSession' | 'recordEvent'>;
}

export interface SignInWithPasskeyInput extends MfaLoginContext {
  response: AuthenticationResponseJSON;
  /** a password sign-in's mfaToken (403 `mfa_required`) this passkey finishes */
  mfaToken?: string | undefined;
}

/**
 * `POST /auth/passkeys/login/verify {response, mfaToken?}`: signs in with a passkey, answering as
 * `POST /auth/login` does on the transport. Alone, the passkey (with user verification) is the
 * sign-in: `amr` `["hwk","user"]`, no email needed. With an mfaToken it finishes that password
 * sign-in, checked exactly as `/auth/mfa/verify` checks it (once, 5 minutes, its transport, 5
 * attempts), and only with a passkey of the same user: `["pwd","hwk","user","mfa"]`. A refused
 * assertion is 400 `invalid_code` (`mfa_failed` recorded for a known passkey's owner); the
 * challenge and the counter are used in the transaction that creates the session.
 */
export async function signInWithPasskey(deps: SignInWithPasskeyDeps, input: SignInWithPasskeyInput): Promise<Tokens> {
  const failed = (userId: string, reason: string) => wrongCode(deps, userId, null, input.meta, reason).then(() => undefined);
  if (input.mfaToken !== undefined) {
    const login = await openMfaLogin(deps, input.mfaToken, input.transport);
    const checked = await checkAssertion(deps, input.response, failed);
    if (checked.userId !== login.userId) throw await wrongCode(deps, login.userId, null, input.meta, 'a passkey of another user');
    return finishMfaLogin(deps, login, checked.use, PASSKEY_MFA_AMR, input, deps.clock());
  }
  const checked = await checkAssertion(deps, input.response, failed);
  const found = await deps.store.findUserById(checked.userId);
  if (!found) throw new TesseraError('invalid_code', { cause: new Error('passkey: its user is gone') });
  if (found.disabled) throw new TesseraError('account_disabled');
  if (deps.config.requireVerifiedEmail && mailOn(deps.config) && !found.emailVerified) throw new TesseraError('email_not_verified');
  const { passwordHash: _hash, disabled: _disabled, ...user } = found;
  const now = deps.clock();
  const session = { ...newSession(deps.config, user.id, now), amr: [...PASSKEY_LOGIN_AMR] };
  if ((await deps.passkeys.completePasskeyLogin(user.id, checked.use, session, input.meta)) !== 'done') {
    throw await wrongCode(deps, user.id, null, input.meta, 'challenge used already, or the sign counter did not move forward');
  }
  await noteDevice(deps, user.id, session.id, { transport: input.transport, cookie: input.deviceCookie, meta: input.meta });
  if (input.transport === 'cookie') await endReplacedSession(deps, await tryRecognise(deps, input.cookieToken), now, input.meta);
  return issueTokens(deps, { session: { ...session, user, authTime: now }, generation: 1, expiresAt: session.expiresAt, now });
}
