import { Type, type Static } from 'typebox';

/**
 * The shapes of the passkey routes (SPEC §8). WebAuthn responses are checked here for shape
 * only (base64url fields of bounded length, as @simplewebauthn/browser sends them); what they
 * say is checked by the use cases, and anything wrong past the shape is 400 `invalid_code`.
 * Browsers add members over time (authenticatorAttachment, publicKeyAlgorithm…): they pass.
 */
const B64u = (maxLength: number) => Type.String({ pattern: '^[A-Za-z0-9_-]*={0,2}$', maxLength });
const Transport = Type.Union([Type.Literal('cookie'), Type.Literal('body')], { description: 'As sent to /auth/login' });
const MfaToken = Type.String({ maxLength: 512, description: 'A password sign-in\'s `mfaToken` (403 `mfa_required`) that this passkey finishes' });
const PasskeyName = Type.String({ maxLength: 100, pattern: '^[^\\u0000-\\u001f\\u007f]*$', description: 'What the user calls it (default "Passkey")' });

const Credential = {
  id: B64u(1024),
  rawId: B64u(1024),
  type: Type.Literal('public-key'),
  clientExtensionResults: Type.Object({}, { additionalProperties: true }),
  authenticatorAttachment: Type.Optional(Type.Union([Type.Literal('platform'), Type.Literal('cross-platform')])),
};

export const RegistrationResponse = Type.Object({
  ...Credential,
  response: Type.Object(
    {
      clientDataJSON: B64u(4096),
      attestationObject: B64u(16_384),
      transports: Type.Optional(Type.Array(Type.String({ maxLength: 32 }), { maxItems: 10 })),
    },
    { additionalProperties: true },
  ),
}, { additionalProperties: true, description: 'What @simplewebauthn/browser startRegistration() resolves to' });

export const AuthenticationResponse = Type.Object({
  ...Credential,
  response: Type.Object(
    {
      clientDataJSON: B64u(4096),
      authenticatorData: B64u(4096),
      signature: B64u(1024),
      userHandle: Type.Optional(B64u(128)),
    },
    { additionalProperties: true },
  ),
}, { additionalProperties: true, description: 'What @simplewebauthn/browser startAuthentication() resolves to' });

export const PasskeyRegisterBody = Type.Object({ response: RegistrationResponse, name: Type.Optional(PasskeyName) }, { additionalProperties: false });
export const PasskeyLoginBody = Type.Object(
  { response: AuthenticationResponse, mfaToken: Type.Optional(MfaToken), transport: Type.Optional(Transport) },
  { additionalProperties: false },
);

/** Options for @simplewebauthn/browser (`optionsJSON`), as @simplewebauthn/server makes them. */
export const CeremonyOptions = Type.Object({ challenge: Type.String() }, { additionalProperties: true, description: 'PublicKeyCredential options (JSON)' });

export const Passkey = Type.Object({
  id: Type.String({ description: 'The credential id (base64url)' }),
  name: Type.String(),
  createdAt: Type.String({ format: 'date-time' }),
  lastUsedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
});
export const PasskeyList = Type.Object({ passkeys: Type.Array(Passkey) });
export const PasskeyIdParams = Type.Object({ id: B64u(1024) });

export type PasskeyRegisterBody = Static<typeof PasskeyRegisterBody>;
export type PasskeyLoginBody = Static<typeof PasskeyLoginBody>;
export type PasskeyIdParams = Static<typeof PasskeyIdParams>;
