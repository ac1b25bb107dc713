import { CSRF_HEADER, SESSION_HINT_COOKIE, type SecurityEventType } from '../core/vocabulary.js';
import { MfaRequiredError, TesseraClientError } from './errors.js';

export interface User {
  id: string;
  email: string;
  name: string;
  createdAt: string;
  /** role names, as access tokens carry them in `roles` */
  roles: string[];
  orgId: string | null;
  emailVerified: boolean;
}

export interface SessionInfo {
  id: string;
  createdAt: string;
  lastUsedAt: string;
  expiresAt: string;
  ip: string | null;
  userAgent: string | null;
  device: string;
  current: boolean;
  /** How the session was signed in (RFC 8176): `pwd`; `pwd`, `otp`, `mfa` with an app code; `hwk`, `user` with a passkey. See `describeAmr`. */
  amr?: string[];
  /** When the user last authenticated in this session: sign-in or re-authentication. */
  authTime?: string;
}

/** A second factor that can finish a sign-in answered `mfa_required`. */
export type { MfaMethod } from './errors.js';

/** What `setupTotp()` returns: the new secret (to type in) and its `otpauth://` URI (for a QR code). */
export interface TotpSetup {
  secret: string;
  otpauthUri: string;
}

/** A token response as Tessera's sign-in routes answer it (`POST /auth/login`, `/auth/mfa/verify`, `/auth/passkeys/login/verify`, …). */
export interface TokenResponse {
  accessToken: string;
  expiresIn: number;
  tokenType?: string;
  refreshToken?: string;
  user?: User;
}

export interface SecurityEvent {
  type: SecurityEventType;
  createdAt: string;
  ip: string | null;
  userAgent: string | null;
  sessionId: string | null;
}

/**
 * Why the client became signed out: `logout` (here or in another tab), `session_expired`,
 * `invalid_refresh_token` (revoked elsewhere, or no session), `refresh_token_reused`
 * (the session was ended because its refresh token was used twice: show the user
 * "your session was ended for your security").
 */
export type SignOutReason = 'logout' | 'session_expired' | 'invalid_refresh_token' | 'refresh_token_reused';

export type AuthState =
  | { status: 'unknown'; user: null }
  | { status: 'signed_in'; user: User }
  | { status: 'signed_out'; user: null; reason?: SignOutReason };

export interface TesseraClientOptions {
  /** Where Tessera is, e.g. `https://auth.example.com`. Default: the page's own origin. */
  baseUrl?: string;
  /** The path of Tessera's auth routes under `baseUrl`: `/auth`, or the prefix it is embedded under, such as `/api/auth`. */
  authPath?: string;
  /** `cookie` (browsers, default there): the refresh token lives in an HttpOnly cookie. `body` (Node, mobile; default outside browsers). */
  transport?: 'cookie' | 'body';
  /** The fetch to use; default `globalThis.fetch`. */
  fetch?: typeof globalThis.fetch;
  /** Body transport: a refresh token saved earlier, to start from. */
  refreshToken?: string;
  /** Body transport: called with every new refresh token (and null on sign-out), to persist it securely. */
  onRefreshToken?: (token: string | null) => void;
  /** Refresh ahead of expiry at this fraction of the access token's lifetime. Default 0.8. */
  refreshAt?: number;
  /** Coordinate tabs with Web Locks and BroadcastChannel. Default: on in browsers. */
  crossTab?: boolean;
}

/** What `exportAccount()` returns: everything Tessera stores about the user (never a password hash or a token). */
export interface AccountExport {
  user: Record<string, unknown>;
  sessions: Record<string, unknown>[];
  events: Record<string, unknown>[];
  [part: string]: unknown;
}

/** What `verifyEmail()` found: whether the link moved the account to a new address, and the user when signed in here. */
export interface VerifyEmailResult {
  /** true for an email change's link (the account now uses the address the link was sent to); false for sign-up's verification */
  emailChanged: boolean;
  /** the signed-in user, read again after the change; null when this client is not signed in */
  user: User | null;
}

type Message =
  | { type: 'tokens'; accessToken: string; expiresAt: number; user: User | null }
  | { type: 'user'; user: User }
  | { type: 'signed_out'; reason: SignOutReason };

/** Attempts of one refresh, so a flaky network or a lost response does not sign anyone out. */
const REFRESH_ATTEMPTS = 3;
const RETRY_DELAYS_MS = [300, 1000];
/** Refreshes triggered by 401s with no authenticated success between them; past this a 401 is passed through. */
const MAX_REFRESHES_IN_A_ROW = 3;
/** Tokens closer than this to expiry are not used; a refresh comes first. At most a fifth of a short token's life. */
const EXPIRY_MARGIN_MS = 5_000;

/**
 * Keeps a user signed in: the access token in memory only, the refresh token in an
 * HttpOnly cookie (browsers) or handed to you to keep (Node, mobile). One refresh in
 * flight per tab, and one across tabs; refreshes ahead of expiry while the page is
 * visible; on 401, refreshes once and retries once.
 *
 * @example
 * const auth = new TesseraClient({ baseUrl: 'https://auth.example.com' });
 * auth.onChange((state) => render(state));
 * await auth.restore();                       // one refresh, from the cookie
 * const res = await auth.fetch('/api/orders'); // Bearer added, 401 handled
 */
export class TesseraClient {
  readonly #baseUrl: string;
  readonly #authPath: string;
  readonly #transport: 'cookie' | 'body';
  readonly #fetch: typeof globalThis.fetch;
  readonly #onRefreshToken: ((token: string | null) => void) | undefined;
  readonly #refreshAt: number;
  readonly #channel: BroadcastChannel | undefined;
  readonly #lockName: string;
  /** The page shares Tessera's origin, so the session hint cookie is in `document.cookie` whenever there is a session. */
  readonly #hintReadable: boolean;
  /** Where the hint is out of sight: this client's own "signed in" flag in localStorage (never a token). */
  readonly #flagKey: string;
  readonly #listeners = new Set<(state: AuthState) => void>();

  #state: AuthState = { status: 'unknown', user: null };
  /** `staleAt`: from then on the token is refreshed before use, a margin ahead of `expiresAt`. */
  #accessToken: { value: string; expiresAt: number; staleAt: number } | null = null;
  #refreshToken: string | null;
  /** Bumped whenever the access token changes, here or from another tab. */
  #version = 0;
  #inFlight: Promise<boolean> | null = null;
  #refreshesInARow = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #refreshDue = false;
  #onVisible = () => this.#whenVisible();
  /** The pending sign-in of the last `login()` answered `mfa_required`, for `verifyMfa`. */
  #mfaToken: string | null = null;

  constructor(options: TesseraClientOptions = {}) {
    const inBrowser = typeof window !== 'undefined' && typeof document !== 'undefined';
    this.#baseUrl = (options.baseUrl ?? (inBrowser ? window.location.origin : '')).replace(/\/+$/, '');
    this.#authPath = (options.authPath ?? '/auth').replace(/\/+$/, '');
    this.#transport = options.transport ?? (inBrowser ? 'cookie' : 'body');
    this.#fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
    this.#onRefreshToken = options.onRefreshToken;
    this.#refreshToken = options.refreshToken ?? null;
    this.#refreshAt = options.refreshAt ?? 0.8;
    this.#lockName = `tessera:refresh:${this.#baseUrl}`;
    this.#hintReadable = inBrowser && this.#baseUrl === window.location.origin;
    this.#flagKey = `tessera:session:${this.#baseUrl}`;
    if ((options.crossTab ?? inBrowser) && typeof BroadcastChannel !== 'undefined') {
      this.#channel = new BroadcastChannel(`tessera:${this.#baseUrl}`);
      this.#channel.onmessage = (event: MessageEvent<Message>) => this.#receive(event.data);
    }
    if (inBrowser) document.addEventListener('visibilitychange', this.#onVisible);
  }

  /** The current state; subscribe with `onChange`. */
  get state(): AuthState {
    return this.#state;
  }

  /** Calls `listener` on every change of state; returns the unsubscribe function. */
  onChange(listener: (state: AuthState) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * On page load: restores the session from the refresh cookie with one refresh. Without
   * any sign of a session (no hint cookie, no flag of ours, no refresh token to send) it makes
   * no request at all: a refresh could only fail, and a first visit must stay quiet.
   */
  async restore(): Promise<User | null> {
    if (this.#state.status !== 'signed_in' && !this.#maySignIn()) {
      this.#setState({ status: 'signed_out', user: null });
      return null;
    }
    await this.refresh();
    return this.#state.user;
  }

  async register(input: { email: string; password: string; name?: string }): Promise<User> {
    return this.#signIn(this.#auth('/register'), input);
  }

  /**
   * Signs in with a password. When the account has a second factor, rejects with an
   * `MfaRequiredError` (`code` `mfa_required`, `mfaRequired: true`, `methods`): ask for a code and
   * call `verifyMfa`, or `signInWithPasskey(client, { mfaToken: error.mfaToken })`.
   *
   * @example
   * try { await auth.login({ email, password }); }
   * catch (e) { if (e instanceof MfaRequiredError) showCodeForm(e.methods); else throw e; }
   */
  async login(input: { email: string; password: string }): Promise<User> {
    return this.#signIn(this.#auth('/login'), input);
  }

  /**
   * Finishes the sign-in that `login()` answered `mfa_required`, with a code from the
   * authenticator app or one of the recovery codes. A wrong code is `invalid_code` (try again:
   * five wrong codes spend the sign-in); a spent or expired sign-in is `invalid_token` (sign in
   * with the password again). Pass `mfaToken` to finish one started elsewhere.
   */
  async verifyMfa(proof: { code: string; mfaToken?: string } | { recoveryCode: string; mfaToken?: string }): Promise<User> {
    const { mfaToken = this.#mfaToken, ...codes } = proof;
    if (!mfaToken) throw new TesseraClientError('invalid_token', 400, 'No sign-in is waiting for a second factor: sign in with the password first');
    const user = await this.#signIn(this.#auth('/mfa/verify'), { mfaToken, ...codes });
    this.#mfaToken = null;
    return user;
  }

  /** True while a `login()` answered `mfa_required` waits for `verifyMfa`. */
  get mfaPending(): boolean {
    return this.#mfaToken !== null;
  }

  /**
   * Starts setting up an authenticator app: a new secret and its `otpauth://` URI (show it as a
   * QR code, and the secret as text for typing). Not a factor until `confirmTotp`. Needs recent
   * authentication (`reauthentication_required`: call `reauthenticate`, then retry);
   * `totp_already_enabled` if one is set up.
   */
  async setupTotp(): Promise<TotpSetup> {
    return this.#send<TotpSetup>('POST', '/mfa/totp/setup', {});
  }

  /** Confirms the app with a code from it: it becomes a second factor. Resolves to ten recovery codes, shown this once. */
  async confirmTotp(code: string): Promise<string[]> {
    return (await this.#send<{ recoveryCodes: string[] }>('POST', '/mfa/totp/confirm', { code })).recoveryCodes;
  }

  /** Removes the authenticator app and the recovery codes (recent authentication with a second factor). */
  async disableTotp(): Promise<void> {
    await this.#json(this.#auth('/mfa/totp'), { method: 'DELETE' });
  }

  /** Replaces the recovery codes with ten new ones, shown this once; the earlier ones stop working. */
  async regenerateRecoveryCodes(): Promise<string[]> {
    return (await this.#send<{ recoveryCodes: string[] }>('POST', '/mfa/recovery-codes', {})).recoveryCodes;
  }

  /**
   * Proves it is the user again, for actions that answer `reauthentication_required`: with the
   * password, an app code or a recovery code. The session's access token is replaced by one with
   * a fresh `auth_time` (a password alone leaves no second factor in it); the refresh token stays.
   * A wrong password is `invalid_credentials`, a wrong code `invalid_code`.
   */
  async reauthenticate(proof: { password: string } | { code: string } | { recoveryCode: string }): Promise<User> {
    const tokens = await this.#send<TokenResponse>('POST', '/reauthenticate', proof);
    return this.adoptTokenResponse(tokens);
  }

  /** This client's transport: send it as `transport` to any other sign-in route whose answer you pass to `adoptTokenResponse`. */
  get transport(): 'cookie' | 'body' {
    return this.#transport;
  }

  /**
   * Takes up a token response from a sign-in route this client did not call itself (a passkey
   * sign-in, a custom flow): the access token, the refresh token in body transport (the cookie
   * in cookie transport is already set), the refresh timer, and the other tabs. Resolves the user.
   */
  adoptTokenResponse(tokens: TokenResponse): User {
    if (typeof tokens?.accessToken !== 'string' || typeof tokens.expiresIn !== 'number') {
      throw new TesseraClientError('invalid_request', 0, 'Not a token response');
    }
    this.#mfaToken = null;
    this.#accept(tokens);
    const user = this.#state.user;
    if (!user) throw new TesseraClientError('invalid_request', 0, 'The token response has no user');
    return user;
  }

  /** Signs out this session (`local`, default), every other one (`others`), or all (`global`). */
  async logout(options: { scope?: 'local' | 'others' | 'global' } = {}): Promise<void> {
    const scope = options.scope ?? 'local';
    const token = this.#accessToken?.value;
    const response = await this.#call(this.#auth('/logout'), {
      method: 'POST',
      body: { scope, ...(this.#transport === 'body' && this.#refreshToken ? { refreshToken: this.#refreshToken } : {}) },
      headers: token ? { authorization: `Bearer ${token}` } : {},
    });
    if (!response.ok && scope !== 'local') throw await TesseraClientError.from(response);
    if (scope !== 'others') this.#signOut('logout', true);
  }

  /** The signed-in user, read from Tessera; `state.user` takes it too (a name or address changed elsewhere shows). */
  async me(): Promise<User> {
    const { user } = await this.#json<{ user: User }>(this.#auth('/me'));
    this.#updateUser(user, true);
    return user;
  }

  async sessions(): Promise<SessionInfo[]> {
    return (await this.#json<{ sessions: SessionInfo[] }>(this.#auth('/sessions'))).sessions;
  }

  async revokeSession(id: string): Promise<void> {
    await this.#json(this.#auth(`/sessions/${encodeURIComponent(id)}`), { method: 'DELETE' });
  }

  async changePassword(currentPassword: string, newPassword: string): Promise<void> {
    await this.#send('POST', '/password', { currentPassword, newPassword });
  }

  async events(): Promise<SecurityEvent[]> {
    return (await this.#json<{ events: SecurityEvent[] }>(this.#auth('/events'))).events;
  }

  /**
   * Asks for a password reset link for `email`. Resolves the same way whether or not an account
   * has that address (Tessera answers 202 either way), so say "if an account exists for this
   * address, a link is on its way". The link opens `APP_URL/reset-password#token=…`.
   */
  async forgotPassword(email: string): Promise<void> {
    await this.#public(this.#auth('/password/forgot'), { email });
  }

  /**
   * Sets a new password with a reset link's token (see `takeLinkToken`). Every session of the
   * account ends, so this client signs out too, and clears its cookie when it may hold one
   * (the browser that resets is usually not signed in; if it is, it cannot tell whose session
   * it holds without asking, and a sign-in costs less than a session left half-dead).
   * A used, expired or replaced link is `invalid_token`; a refused password `weak_password`.
   */
  async resetPassword(token: string, newPassword: string): Promise<void> {
    await this.#public(this.#auth('/password/reset'), { token, newPassword });
    if (this.#state.status === 'signed_in' || (this.#state.status === 'unknown' && this.#maySignIn())) {
      // `local` logout is idempotent: the ended session answers 204, and the cookies go.
      await this.logout().catch(() => this.#signOut('logout', true));
    }
  }

  /**
   * Uses a verification link's token (sign-up's, or an email change's: both open
   * `APP_URL/verify-email#token=…`). An email change's link moves the account to the new
   * address; `email_taken` if someone took it meanwhile. When signed in here, the user is read
   * again, so `state.user` shows `emailVerified` (and the new address) at once.
   */
  async verifyEmail(token: string): Promise<VerifyEmailResult> {
    await this.#public(this.#auth('/email/verify'), { token });
    const emailChanged = linkPurpose(token) === 'change_email';
    if (this.#state.status !== 'signed_in') return { emailChanged, user: null };
    try {
      return { emailChanged, user: await this.me() };
    } catch {
      // Verified all the same; the user shows at the next refresh.
      return { emailChanged, user: this.#state.user };
    }
  }

  /**
   * Sends a new verification link: to the signed-in user without `email`, or to `email` without
   * a session (a user who cannot sign in until verified). Resolves whether or not a mail goes
   * out (202 always; limited per recipient).
   */
  async resendVerification(email?: string): Promise<void> {
    if (email !== undefined) await this.#public(this.#auth('/email/verify/resend'), { email });
    else await this.#send('POST', '/email/verify/resend', {});
  }

  /**
   * Starts an email change: a link goes to `newEmail` (a notice to the current address), and the
   * address changes when that link is used (`verifyEmail`). A wrong current password is
   * `invalid_credentials` (403).
   */
  async changeEmail(newEmail: string, currentPassword: string): Promise<void> {
    await this.#send('POST', '/email', { newEmail, currentPassword });
  }

  /** Changes the user's name; `state.user` follows. */
  async updateProfile(changes: { name?: string }): Promise<User> {
    const { user } = await this.#send<{ user: User }>('PATCH', '/me', changes);
    this.#updateUser(user, true);
    return user;
  }

  /**
   * Deletes the account, its sessions and personal data, after checking the current password
   * (a wrong one is `invalid_credentials`, 403, and nothing changes). Then signs out here and in
   * every tab, as `logout` does.
   */
  async deleteAccount(currentPassword: string): Promise<void> {
    await this.#send('DELETE', '/me', { currentPassword });
    this.#signOut('logout', true);
  }

  /** Everything Tessera stores about the user, as one JSON document (offer it as a download). */
  async exportAccount(): Promise<AccountExport> {
    return this.#json<AccountExport>(this.#auth('/me/export'));
  }

  /**
   * `fetch` with the access token: adds `Authorization: Bearer`, and on a 401 refreshes
   * once and retries once. Bodies must be replayable (string, Blob, FormData, …), not streams.
   * A 401 that survives the retry is returned as it is; no loops.
   */
  async fetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response> {
    const request = new Request(this.#resolve(input), init);
    const token = await this.getAccessToken();
    const response = await this.#fetch(withBearer(request.clone(), token));
    if (response.status !== 401) {
      this.noteAuthorized();
      return response;
    }
    const retryToken = await this.tokenAfter401(token);
    if (!retryToken) return response;
    const retried = await this.#fetch(withBearer(request, retryToken));
    if (retried.status !== 401) this.noteAuthorized();
    return retried;
  }

  /**
   * For adapters (see `withAxios`): after a 401 to a request sent with `usedToken`, the token
   * to retry it with once, or null when the 401 should stand. If the token was replaced while
   * the request was out, no refresh is needed; callers joining a refresh under way share it;
   * after three refreshes in a row with no authorized answer between them, it stops refreshing.
   */
  async tokenAfter401(usedToken: string | null): Promise<string | null> {
    if (usedToken === null) return null;
    if (this.#accessToken?.value === usedToken) {
      if (this.#inFlight === null) {
        if (this.#refreshesInARow >= MAX_REFRESHES_IN_A_ROW) return null;
        this.#refreshesInARow++;
      }
      if (!(await this.refresh())) return null;
    }
    return this.#accessToken?.value ?? null;
  }

  /** For adapters: a request was answered with something other than 401, so refreshing works again. */
  noteAuthorized(): void {
    this.#refreshesInARow = 0;
  }

  /** A usable access token, refreshing first if there is none or it is about to expire; null when signed out. */
  async getAccessToken(): Promise<string | null> {
    if (this.#accessToken && this.#accessToken.staleAt > Date.now()) return this.#accessToken.value;
    if (this.#state.status === 'signed_out') return null;
    if (this.#state.status === 'unknown' && !this.#maySignIn()) {
      this.#setState({ status: 'signed_out', user: null });
      return null;
    }
    return (await this.refresh()) ? (this.#accessToken?.value ?? null) : null;
  }

  /**
   * Refreshes the tokens. Every caller in this tab shares one refresh; across tabs, a
   * Web Lock lets one tab refresh while the others wait and take its result.
   * Resolves true when signed in afterwards.
   */
  refresh(): Promise<boolean> {
    this.#inFlight ??= this.#refreshAcrossTabs().finally(() => {
      this.#inFlight = null;
    });
    return this.#inFlight;
  }

  /** Stops timers and listeners (tests, single-page app teardown). */
  close(): void {
    clearTimeout(this.#timer);
    this.#channel?.close();
    if (typeof document !== 'undefined') document.removeEventListener('visibilitychange', this.#onVisible);
    this.#listeners.clear();
  }

  /**
   * Whether a refresh could find a session. The hint cookie is set and cleared by Tessera with
   * the refresh cookie; it is only a hint, so when it lies the refresh gets a 401 and the
   * client is signed out as usual (and the 401 clears the hint).
   */
  #maySignIn(): boolean {
    if (this.#transport === 'body') return this.#refreshToken !== null;
    // Cookie transport outside a browser: no cookie jar to look into, so ask.
    if (typeof document === 'undefined') return true;
    if (hasCookie(document.cookie, SESSION_HINT_COOKIE)) return true;
    if (this.#hintReadable) return false;
    // A front end on another site may not see Tessera's hint: our own flag stands in for it,
    // and without web storage there is no knowing, so it asks as it always did.
    return readFlag(this.#flagKey) ?? true;
  }

  async #refreshAcrossTabs(): Promise<boolean> {
    const seen = this.#version;
    const startedAt = Date.now();
    const locks = this.#channel && typeof navigator !== 'undefined' ? navigator.locks : undefined;
    if (!locks) return this.#refreshNow();
    return locks.request(this.#lockName, async () => {
      // Another tab refreshed while we waited for the lock: take its token rather than rotating again.
      if (this.#version !== seen && this.#accessToken) return true;
      if (peerRefreshedSince(this.#lockName, startedAt) && (await this.#versionChanges(seen, 1_000))) return true;
      return this.#refreshNow();
    });
  }

  async #refreshNow(): Promise<boolean> {
    for (let attempt = 1; ; attempt++) {
      let response: Response;
      try {
        response = await this.#call(this.#auth('/refresh'), {
          method: 'POST',
          body: this.#transport === 'body' ? { refreshToken: this.#refreshToken ?? '' } : {},
        });
      } catch {
        // The response may have been lost after the server rotated: the retry presents the
        // same token again, which the server answers with the identical new one.
        if (attempt >= REFRESH_ATTEMPTS) return false;
        await delay(RETRY_DELAYS_MS[attempt - 1] ?? 1000);
        continue;
      }
      if (response.ok) {
        this.#accept((await response.json()) as TokenResponse);
        markRefreshed(this.#lockName);
        return true;
      }
      const error = await TesseraClientError.from(response);
      if (error.status === 401) {
        const reason = (['session_expired', 'refresh_token_reused'] as const).find((c) => c === error.code) ?? 'invalid_refresh_token';
        // Before anything was known, "no session" is just signed out, not an event to show.
        this.#signOut(this.#state.status === 'unknown' && reason !== 'refresh_token_reused' ? undefined : reason, true);
        return false;
      }
      if (error.status >= 500 && attempt < REFRESH_ATTEMPTS) {
        await delay(RETRY_DELAYS_MS[attempt - 1] ?? 1000);
        continue;
      }
      return false;
    }
  }

  async #signIn(path: string, input: Record<string, unknown>): Promise<User> {
    const response = await this.#call(path, { method: 'POST', body: { ...input, transport: this.#transport } });
    if (!response.ok) {
      const error = await TesseraClientError.from(response);
      if (error instanceof MfaRequiredError) this.#mfaToken = error.mfaToken;
      throw error;
    }
    const tokens = (await response.json()) as TokenResponse;
    this.#accept(tokens);
    return tokens.user!;
  }

  /** Takes a token response: remembers the tokens, schedules the next refresh, tells the other tabs. */
  #accept(tokens: TokenResponse): void {
    const expiresAt = Date.now() + tokens.expiresIn * 1000;
    if (tokens.refreshToken) {
      this.#refreshToken = tokens.refreshToken;
      this.#onRefreshToken?.(tokens.refreshToken);
    }
    const user = tokens.user ?? this.#state.user;
    if (this.#transport === 'cookie' && !this.#hintReadable) writeFlag(this.#flagKey, true);
    this.#setTokens(tokens.accessToken, expiresAt, user);
    this.#channel?.postMessage({ type: 'tokens', accessToken: tokens.accessToken, expiresAt, user } satisfies Message);
  }

  #setTokens(accessToken: string, expiresAt: number, user: User | null): void {
    const margin = Math.min(EXPIRY_MARGIN_MS, (expiresAt - Date.now()) / 5);
    this.#accessToken = { value: accessToken, expiresAt, staleAt: expiresAt - margin };
    this.#version++;
    this.#schedule(expiresAt);
    if (user) this.#setState({ status: 'signed_in', user });
  }

  #signOut(reason: SignOutReason | undefined, broadcast: boolean): void {
    this.#accessToken = null;
    if (this.#transport === 'cookie' && !this.#hintReadable) writeFlag(this.#flagKey, false);
    this.#version++;
    clearTimeout(this.#timer);
    if (this.#refreshToken !== null) {
      this.#refreshToken = null;
      this.#onRefreshToken?.(null);
    }
    this.#setState(reason ? { status: 'signed_out', user: null, reason } : { status: 'signed_out', user: null });
    if (broadcast && reason) this.#channel?.postMessage({ type: 'signed_out', reason } satisfies Message);
  }

  #receive(message: Message): void {
    if (message.type === 'tokens') this.#setTokens(message.accessToken, message.expiresAt, message.user);
    else if (message.type === 'user') this.#updateUser(message.user, false);
    else if (message.type === 'signed_out') this.#signOut(message.reason, false);
  }

  /** Refresh at `refreshAt` of the lifetime, counted from local receipt, never from the JWT's clock. */
  #schedule(expiresAt: number): void {
    clearTimeout(this.#timer);
    this.#refreshDue = false;
    const lifetime = expiresAt - Date.now();
    this.#timer = setTimeout(() => {
      this.#refreshDue = true;
      if (isVisible()) void this.refresh();
    }, Math.max(0, lifetime * this.#refreshAt));
    // Node: a pending refresh must not keep the process alive.
    (this.#timer as { unref?: () => void }).unref?.();
  }

  /** Back from the background (or from sleep, when timers did not run): refresh if one is due. */
  #whenVisible(): void {
    if (!isVisible() || this.#state.status !== 'signed_in') return;
    const expired = !this.#accessToken || this.#accessToken.staleAt <= Date.now();
    if (this.#refreshDue || expired) void this.refresh();
  }

  #versionChanges(seen: number, timeoutMs: number): Promise<boolean> {
    return new Promise((resolve) => {
      const started = Date.now();
      const check = () => {
        if (this.#version !== seen) resolve(this.#accessToken !== null);
        else if (Date.now() - started >= timeoutMs) resolve(false);
        else setTimeout(check, 20);
      };
      check();
    });
  }

  /** A newer copy of the signed-in user (same id): into the state, and to the other tabs. */
  #updateUser(user: User, broadcast: boolean): void {
    if (this.#state.status !== 'signed_in' || this.#state.user.id !== user.id) return;
    this.#setState({ status: 'signed_in', user });
    if (broadcast) this.#channel?.postMessage({ type: 'user', user } satisfies Message);
  }

  /** Listeners hear of sign-in, sign-out and a change in the user's details, never of a plain refresh. */
  #setState(state: AuthState): void {
    const previous = this.#state;
    this.#state = state;
    const same = previous.status === state.status && sameUser(previous.user, state.user) &&
      (previous as { reason?: string }).reason === (state as { reason?: string }).reason;
    if (!same) for (const listener of this.#listeners) listener(state);
  }

  #auth(path: string): string {
    return `${this.#authPath}${path}`;
  }

  async #json<T>(path: string, init: RequestInit = {}): Promise<T> {
    const response = await this.fetch(path, init);
    if (!response.ok) throw await TesseraClientError.from(response);
    return (response.status === 204 ? undefined : await response.json()) as T;
  }

  /** A call with the access token and a JSON body to one of Tessera's account routes. */
  #send<T = void>(method: 'POST' | 'PATCH' | 'DELETE', path: string, body: unknown): Promise<T> {
    return this.#json<T>(this.#auth(path), { method, body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
  }

  /** A call to a route that takes no credential (a link's token, or an address, is the proof). */
  async #public(path: string, body: unknown): Promise<void> {
    let response: Response;
    try {
      response = await this.#fetch(this.#resolve(path), {
        method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), credentials: 'omit',
      });
    } catch (error) {
      throw new TesseraClientError('network_error', 0, (error as Error).message);
    }
    if (!response.ok) throw await TesseraClientError.from(response);
    // Read to the end (a 202's `null`): a body left unread is reported as an aborted request.
    await response.arrayBuffer().catch(() => undefined);
  }

  /** A call to Tessera's own refresh-token endpoints: credentials and the CSRF header in cookie mode. */
  async #call(path: string, init: { method: string; body: unknown; headers?: Record<string, string> }): Promise<Response> {
    try {
      return await this.#fetch(this.#resolve(path), {
        method: init.method,
        headers: {
          'content-type': 'application/json',
          ...(this.#transport === 'cookie' ? { [CSRF_HEADER]: '1' } : {}),
          ...init.headers,
        },
        body: JSON.stringify(init.body),
        credentials: this.#transport === 'cookie' ? 'include' : 'omit',
      });
    } catch (error) {
      throw new TesseraClientError('network_error', 0, (error as Error).message);
    }
  }

  #resolve(input: RequestInfo | URL): RequestInfo | URL {
    return typeof input === 'string' && input.startsWith('/') ? `${this.#baseUrl}${input}` : input;
  }
}

/**
 * Words for a session's `amr`: "passkey", "password + app code", "password + passkey",
 * "password + recovery code", "password".
 */
export function describeAmr(amr: readonly string[] | undefined): string {
  if (!amr || amr.length === 0) return 'unknown';
  const has = (m: string) => amr.includes(m);
  const password = has('pwd');
  const factor = has('hwk') ? 'passkey' : has('otp') ? 'app code' : has('mfa') ? 'second factor' : null;
  if (password && factor) return `password + ${factor}`;
  if (factor) return factor;
  if (password) return 'password';
  return amr.join(' + ');
}

function withBearer(request: Request, token: string | null): Request {
  if (token) request.headers.set('authorization', `Bearer ${token}`);
  return request;
}

function sameUser(a: User | null, b: User | null): boolean {
  if (a === b) return true;
  if (!a || !b) return false;
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  return [...keys].every((key) => JSON.stringify((a as unknown as Record<string, unknown>)[key]) === JSON.stringify((b as unknown as Record<string, unknown>)[key]));
}

/**
 * Reads a mail link's token from the page's address (`…#token=…`) and takes it out of the
 * address with `history.replaceState`, so it stays in no history entry, bookmark or shared
 * URL (a fragment never goes to a server, nor into a Referer). Other fragment parameters stay.
 * Returns null when there is none. Call it once, before anything else reads the address.
 *
 * @example
 * const token = takeLinkToken(); // on /reset-password#token=…: the token; the address is now /reset-password
 * if (token) await auth.resetPassword(token, newPassword);
 */
export function takeLinkToken(): string | null {
  if (typeof location === 'undefined') return null;
  const params = new URLSearchParams(location.hash.replace(/^#/, ''));
  const token = params.get('token');
  if (token === null) return null;
  params.delete('token');
  const rest = params.toString();
  try {
    history.replaceState(history.state, '', `${location.pathname}${location.search}${rest ? `#${rest}` : ''}`);
  } catch {
    // No history to rewrite (an unusual embedding): the token is still read, once.
  }
  return token.trim() || null;
}

const LINK_PURPOSES = ['verify_email', 'reset_password', 'change_email'] as const;
const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/**
 * What a link's token is for. Its first byte names the purpose (src/core/link-token.ts); the
 * token is still checked by Tessera alone, this only picks the words to show.
 */
function linkPurpose(token: string): (typeof LINK_PURPOSES)[number] | undefined {
  if (token.length < 2) return undefined;
  const [high, low] = [BASE64URL.indexOf(token[0]!), BASE64URL.indexOf(token[1]!)];
  if (high < 0 || low < 0) return undefined;
  return LINK_PURPOSES[(high << 2) | (low >> 4)];
}

function isVisible(): boolean {
  return typeof document === 'undefined' || document.visibilityState === 'visible';
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** True when `cookies` (document.cookie) holds a non-empty cookie `name`. */
function hasCookie(cookies: string, name: string): boolean {
  return cookies.split(';').some((pair) => {
    const [key, value] = pair.trim().split('=');
    return key === name && value !== undefined && value !== '';
  });
}

// "Signed in" for a front end that cannot read the hint cookie: only '1', never a token.
function writeFlag(key: string, signedIn: boolean): void {
  try {
    if (signedIn) globalThis.localStorage?.setItem(key, '1');
    else globalThis.localStorage?.removeItem(key);
  } catch {
    // storage disabled: readFlag says it cannot know, and restore() asks the server
  }
}

/** The flag, or undefined when there is no web storage to hold it. */
function readFlag(key: string): boolean | undefined {
  try {
    const storage = globalThis.localStorage;
    return storage ? storage.getItem(key) === '1' : undefined;
  } catch {
    return undefined;
  }
}

// The time of the last refresh, shared by tabs through localStorage: only a timestamp, never a token.
function markRefreshed(key: string): void {
  try {
    globalThis.localStorage?.setItem(`${key}:at`, String(Date.now()));
  } catch {
    // storage disabled: tabs fall back to refreshing on their own, which is still safe
  }
}

function peerRefreshedSince(key: string, since: number): boolean {
  try {
    return Number(globalThis.localStorage?.getItem(`${key}:at`) ?? 0) >= since;
  } catch {
    return false;
  }
}
