import { startAuthentication, startRegistration } from '@simplewebauthn/browser';
import { CSRF_HEADER } from '../core/vocabulary.js';
import { TesseraClientError } from './errors.js';
import type { TesseraClient, TokenResponse, User } from './tessera-client.js';

/** A passkey as `GET /auth/passkeys` lists it. */
export interface PasskeyInfo {
  /** the credential id (base64url) */
  id: string;
  name: string;
  createdAt: string;
  lastUsedAt: string | null;
}

/** Where Tessera's routes are, as given to the client (`authPath`, default `/auth`). */
export interface PasskeyOptions {
  authPath?: string;
}

/**
 * Adds a passkey for the signed-in user: asks Tessera for options, lets the browser create a
 * discoverable credential (the user confirms with a fingerprint, a face or a PIN: user
 * verification is required), and sends it back. Needs recent authentication, like every change
 * of factors: a `reauthentication_required` error says to sign in again first.
 *
 * @example
 * const passkey = await registerPasskey(auth, 'Work laptop');
 */
export async function registerPasskey(client: TesseraClient, name?: string, options: PasskeyOptions = {}): Promise<PasskeyInfo> {
  const path = routes(options);
  const optionsJSON = await json(await client.fetch(path('/register/options'), post({})));
  const response = await startRegistration({ optionsJSON });
  return json(await client.fetch(path('/register/verify'), post(name === undefined ? { response } : { response, name })));
}

/**
 * Signs in with a passkey: no email, the browser offers the user's passkeys for this site. With
 * `mfaToken` (from a password sign-in answered `mfa_required` whose methods include `passkey`:
 * `MfaRequiredError.mfaToken`) it finishes that sign-in instead. The client's own transport is
 * used and the token response taken up with `client.adoptTokenResponse`, so no extra refresh.
 * Resolves to the signed-in user.
 *
 * @example
 * const user = await signInWithPasskey(auth);
 */
export async function signInWithPasskey(client: TesseraClient, options: PasskeyOptions & { mfaToken?: string } = {}): Promise<User> {
  const path = routes(options);
  const optionsJSON = await json(await client.fetch(path('/login/options'), post({})));
  const response = await startAuthentication({ optionsJSON });
  const cookie = client.transport === 'cookie';
  const body = { response, transport: client.transport, ...(options.mfaToken === undefined ? {} : { mfaToken: options.mfaToken }) };
  const verified = await client.fetch(path('/login/verify'), {
    ...post(body),
    credentials: cookie ? 'include' : 'omit',
    headers: { 'content-type': 'application/json', ...(cookie ? { [CSRF_HEADER]: '1' } : {}) },
  });
  return client.adoptTokenResponse(await json<TokenResponse>(verified));
}

/** The signed-in user's passkeys. */
export async function listPasskeys(client: TesseraClient, options: PasskeyOptions = {}): Promise<PasskeyInfo[]> {
  return (await json<{ passkeys: PasskeyInfo[] }>(await client.fetch(routes(options)(''), { method: 'GET' }))).passkeys;
}

/** Removes one of the signed-in user's passkeys (recent authentication with a second factor). */
export async function removePasskey(client: TesseraClient, id: string, options: PasskeyOptions = {}): Promise<void> {
  await json(await client.fetch(routes(options)(`/${encodeURIComponent(id)}`), { method: 'DELETE' }));
}

function routes(options: PasskeyOptions): (path: string) => string {
  const base = `${(options.authPath ?? '/auth').replace(/\/+$/, '')}/passkeys`;
  return (path) => `${base}${path}`;
}

function post(body: unknown): RequestInit {
  return { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) };
}

async function json<T = any>(response: Response): Promise<T> {
  if (!response.ok) throw await TesseraClientError.from(response);
  return (response.status === 204 ? undefined : await response.json()) as T;
}
