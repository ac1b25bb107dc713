export {
  describeAmr, takeLinkToken, TesseraClient, type AccountExport, type TokenResponse, type TotpSetup, type AuthState, type SecurityEvent, type SessionInfo, type SignOutReason,
  type TesseraClientOptions, type User, type VerifyEmailResult,
} from './tessera-client.js';
export { MfaRequiredError, TesseraClientError, type ClientErrorCode, type MfaMethod } from './errors.js';
export { withAxios, type AxiosLike } from './axios.js';
export { listPasskeys, registerPasskey, removePasskey, signInWithPasskey, type PasskeyInfo, type PasskeyOptions } from './passkeys.js';
export { deviceName } from '../core/device-name.js';
export { PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH, SECURITY_EVENT_TYPES, type SecurityEventType } from '../core/vocabulary.js';
