import { Type, type Static } from 'typebox';
import { ERROR_CODES } from '../core/errors.js';
import { EMAIL_MAX_LENGTH, EMAIL_MIN_LENGTH, EMAIL_PATTERN, NAME_MAX_LENGTH, NAME_PATTERN } from '../core/user-fields.js';
import { MFA_METHODS, SECURITY_EVENT_TYPES } from '../core/vocabulary.js';

/**
 * Every request and response shape, declared once: Fastify validates with them,
 * the handlers take their types from them, and /openapi.json is built from them.
 */

// Surrounding spaces are allowed here and trimmed by normalizeEmail (pasted addresses often carry them).
// Control characters (NUL above all, which PostgreSQL text refuses) are not part of any address or name.
// The rules live in core/user-fields.ts, shared with `tessera users import`.
const Email = Type.String({ minLength: EMAIL_MIN_LENGTH, maxLength: EMAIL_MAX_LENGTH, pattern: EMAIL_PATTERN, examples: ['ada@example.com'] });
const Name = Type.String({ maxLength: NAME_MAX_LENGTH, pattern: NAME_PATTERN });
// No maxLength here: a too-long password must be `weak_password`, not a schema error.
const Password = Type.String({ description: '8 to 1024 characters', examples: ['correct horse battery staple'] });
const Transport = Type.Union([Type.Literal('cookie'), Type.Literal('body')], {
  description: '`cookie` (browsers, default): the refresh token travels only in an HttpOnly cookie. `body`: it is returned in the body.',
});
// No maxLength: a token of the wrong length is `invalid_refresh_token`, and the body limit bounds it.
const RefreshToken = Type.String({ description: 'An opaque `tsr_…` refresh token (body transport)' });
const DateTime = Type.String({ format: 'date-time' });

export const User = Type.Object({
  id: Type.String({ format: 'uuid' }),
  email: Type.String(),
  name: Type.String(),
  createdAt: DateTime,
  roles: Type.Array(Type.String(), { description: 'Role names, carried by access tokens as `roles`' }),
  orgId: Type.Union([Type.String(), Type.Null()], { description: 'The organisation, carried by access tokens as `org_id`' }),
  emailVerified: Type.Boolean(),
});

export const TokenResponse = Type.Object({
  accessToken: Type.String(),
  tokenType: Type.Literal('Bearer'),
  expiresIn: Type.Integer({ description: 'Seconds until the access token expires' }),
  refreshToken: Type.Optional(Type.String({ description: 'Only with the body transport' })),
  user: Type.Optional(User),
});

export const Problem = Type.Object(
  {
    type: Type.String(),
    title: Type.String(),
    status: Type.Integer(),
    code: Type.Union(ERROR_CODES.map((code) => Type.Literal(code))),
    detail: Type.Optional(Type.String()),
    // Extension members (RFC 9457 §3.2), only with `mfa_required`.
    mfaToken: Type.Optional(Type.String({ description: '`mfa_required`: finishes this sign-in at POST /auth/mfa/verify (5 min, single use)' })),
    methods: Type.Optional(Type.Array(Type.Enum(MFA_METHODS), { description: '`mfa_required`: the second factors that can finish it' })),
  },
  { $id: 'Problem', description: 'RFC 9457 problem details; `code` is stable (see docs/errors.md)' },
);

export const RegisterBody = Type.Object({
  email: Email,
  password: Password,
  name: Type.Optional(Name),
  transport: Type.Optional(Transport),
});

export const LoginBody = Type.Object({
  email: Email,
  password: Password,
  transport: Type.Optional(Transport),
});

export const RefreshBody = Type.Object({ refreshToken: Type.Optional(RefreshToken) });

export const LogoutBody = Type.Object({
  refreshToken: Type.Optional(RefreshToken),
  scope: Type.Optional(
    Type.Union([Type.Literal('local'), Type.Literal('others'), Type.Literal('global')], {
      description: '`local` (default): this session; `others`: every other session of the user; `global`: all of them',
    }),
  ),
});

export const PasswordBody = Type.Object({ currentPassword: Type.String({ maxLength: 8192 }), newPassword: Password });

export const SessionIdParams = Type.Object({ id: Type.String({ maxLength: 64 }) });

export const SessionList = Type.Object({
  sessions: Type.Array(
    Type.Object({
      id: Type.String({ format: 'uuid' }),
      createdAt: DateTime,
      lastUsedAt: DateTime,
      expiresAt: DateTime,
      ip: Type.Union([Type.String(), Type.Null()]),
      userAgent: Type.Union([Type.String(), Type.Null()]),
      device: Type.String({ examples: ['Firefox on Windows'] }),
      current: Type.Boolean(),
      amr: Type.Array(Type.String(), { description: 'How the user authenticated (RFC 8176): `pwd`; `pwd`, `otp`, `mfa` with a second factor', examples: [['pwd']] }),
      authTime: Type.String({ format: 'date-time', description: 'When the user last authenticated: sign-in or re-authentication' }),
    }),
  ),
});

export const EventList = Type.Object({
  events: Type.Array(
    Type.Object({
      type: Type.Enum(SECURITY_EVENT_TYPES),
      createdAt: DateTime,
      ip: Type.Union([Type.String(), Type.Null()]),
      userAgent: Type.Union([Type.String(), Type.Null()]),
      sessionId: Type.Union([Type.String(), Type.Null()]),
    }),
  ),
});

// Accounts (SPEC §7). A link's token: any string a link could carry; a wrong one is `invalid_token`, not a schema error.
const LinkToken = Type.String({ maxLength: 512, description: 'The token from the link (`#token=…`)' });

export const ForgotPasswordBody = Type.Object({ email: Email }, { additionalProperties: false });
export const ResetPasswordBody = Type.Object({ token: LinkToken, newPassword: Password }, { additionalProperties: false });
export const VerifyEmailBody = Type.Object({ token: LinkToken }, { additionalProperties: false });
export const ResendVerificationBody = Type.Object(
  { email: Type.Optional(Email) },
  { additionalProperties: false, description: 'With a Bearer token: no body. Without: the address to send the link to.' },
);
export const EmailChangeBody = Type.Object({ newEmail: Email, currentPassword: Type.String({ maxLength: 8192 }) }, { additionalProperties: false });
export const ProfileBody = Type.Object({ name: Type.Optional(Name) }, { additionalProperties: false });
export const DeleteAccountBody = Type.Object({ currentPassword: Type.String({ maxLength: 8192 }) }, { additionalProperties: false });
export const AccountExport = Type.Object(
  {
    user: Type.Record(Type.String(), Type.Unknown()),
    sessions: Type.Array(Type.Record(Type.String(), Type.Unknown())),
    events: Type.Array(Type.Record(Type.String(), Type.Unknown())),
    knownDevices: Type.Array(Type.Record(Type.String(), Type.Unknown())),
    pendingLinks: Type.Array(Type.Record(Type.String(), Type.Unknown())),
  },
  { description: 'Everything stored about the user (never a password hash or a token)' },
);

export const Jwks = Type.Object({ keys: Type.Array(Type.Record(Type.String(), Type.Unknown())) });

// Second factors (SPEC §8). Codes are bounded strings: longer is 400 `invalid_request` (nothing read or
// counted); anything shorter that is not the right code, malformed included, is 400 `invalid_code`.
export const TOTP_CODE_MAX_LENGTH = 32;
export const RECOVERY_CODE_MAX_LENGTH = 64;
const TotpCode = Type.String({ maxLength: TOTP_CODE_MAX_LENGTH, description: "6 digits from the authenticator app (spaces ignored)", examples: ['123456'] });
const RecoveryCode = Type.String({ maxLength: RECOVERY_CODE_MAX_LENGTH, description: 'One of the recovery codes (case, spaces and hyphens ignored)', examples: ['7gq4m-2xk9d'] });
// No tighter bound: a token of the wrong length is `invalid_token`, not a schema error.
const MfaToken = Type.String({ maxLength: 512, description: 'The `mfaToken` of the `mfa_required` answer' });

export const TotpSetup = Type.Object({
  secret: Type.String({ description: 'The secret in base32, to type into an authenticator app' }),
  otpauthUri: Type.String({ description: 'otpauth://totp/… for a QR code' }),
});
export const TotpConfirmBody = Type.Object({ code: TotpCode }, { additionalProperties: false });
export const RecoveryCodes = Type.Object({
  recoveryCodes: Type.Array(Type.String(), { description: 'Ten single-use codes, shown this once' }),
});
export const MfaVerifyBody = Type.Object(
  { mfaToken: MfaToken, code: Type.Optional(TotpCode), recoveryCode: Type.Optional(RecoveryCode), transport: Type.Optional(Transport) },
  { additionalProperties: false, description: 'Exactly one of `code` and `recoveryCode`; `transport` as sent to /auth/login' },
);
export const ReauthenticateBody = Type.Object(
  {
    password: Type.Optional(Type.String({ maxLength: 8192 })),
    code: Type.Optional(TotpCode),
    recoveryCode: Type.Optional(RecoveryCode),
  },
  { additionalProperties: false, description: 'Exactly one of `password`, `code` and `recoveryCode`' },
);

export type RegisterBody = Static<typeof RegisterBody>;
export type LoginBody = Static<typeof LoginBody>;
export type LogoutBody = Static<typeof LogoutBody>;
export type RefreshBody = Static<typeof RefreshBody>;
export type PasswordBody = Static<typeof PasswordBody>;
export type SessionIdParams = Static<typeof SessionIdParams>;
export type TokenResponse = Static<typeof TokenResponse>;
export type User = Static<typeof User>;
export type ForgotPasswordBody = Static<typeof ForgotPasswordBody>;
export type ResetPasswordBody = Static<typeof ResetPasswordBody>;
export type VerifyEmailBody = Static<typeof VerifyEmailBody>;
export type ResendVerificationBody = Static<typeof ResendVerificationBody>;
export type EmailChangeBody = Static<typeof EmailChangeBody>;
export type ProfileBody = Static<typeof ProfileBody>;
export type DeleteAccountBody = Static<typeof DeleteAccountBody>;
export type TotpConfirmBody = Static<typeof TotpConfirmBody>;
export type MfaVerifyBody = Static<typeof MfaVerifyBody>;
export type ReauthenticateBody = Static<typeof ReauthenticateBody>;
