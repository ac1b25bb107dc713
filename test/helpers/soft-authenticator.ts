import { createHash, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';

/**
 * A WebAuthn authenticator in software, for API-level tests: ES256 keys, "none" attestation,
 * discoverable credentials whose user handle is the options' `user.id`, and a sign counter the
 * test sets (a cloned authenticator is one whose counter is behind). What it answers is what
 * @simplewebauthn/browser would post: base64url fields, `clientDataJSON` with the origin the
 * test says the page had. The browser suite uses Chromium's own virtual authenticator instead.
 */

type Json = Record<string, any>;

interface SoftCredential {
  id: Buffer;
  key: KeyObject;
  userHandle: string;
  counter: number;
}

const b64u = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64url');
const sha256 = (data: Uint8Array | string) => createHash('sha256').update(data).digest();

export class SoftAuthenticator {
  readonly credentials: SoftCredential[] = [];

  /** `counterStep`: how much each assertion adds to the counter (0: a synced passkey that keeps none). */
  constructor(readonly origin: string, readonly counterStep = 1) {}

  /** Answers registration options (startRegistration's result). */
  create(options: Json, overrides: { origin?: string; uv?: boolean; challenge?: string } = {}): Json {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const jwk = publicKey.export({ format: 'jwk' });
    const credential: SoftCredential = { id: randomBytes(16), key: privateKey, userHandle: options.user.id, counter: 0 };
    this.credentials.push(credential);
    const cose = cbor(new Map<number, unknown>([[1, 2], [3, -7], [-1, 1], [-2, Buffer.from(jwk.x!, 'base64url')], [-3, Buffer.from(jwk.y!, 'base64url')]]));
    const idLength = Buffer.alloc(2);
    idLength.writeUInt16BE(credential.id.length);
    const authData = Buffer.concat([
      sha256(options.rp.id), Buffer.of(0x41 | (overrides.uv === false ? 0 : 0x04)), Buffer.alloc(4), Buffer.alloc(16), idLength, credential.id, cose,
    ]);
    const clientData = this.#clientData('webauthn.create', overrides.challenge ?? options.challenge, overrides.origin);
    const attestationObject = cbor(new Map<string, unknown>([['fmt', 'none'], ['attStmt', new Map()], ['authData', authData]]));
    return {
      id: b64u(credential.id), rawId: b64u(credential.id), type: 'public-key', clientExtensionResults: {}, authenticatorAttachment: 'platform',
      response: { clientDataJSON: b64u(clientData), attestationObject: b64u(attestationObject), transports: ['internal'] },
    };
  }

  /** Answers sign-in options with `credential` (default: the last one made), as startAuthentication does. */
  get(
    options: Json,
    overrides: { credential?: SoftCredential; origin?: string; counter?: number; uv?: boolean; userHandle?: string | null; rpId?: string } = {},
  ): Json {
    const credential = overrides.credential ?? this.credentials.at(-1)!;
    credential.counter = overrides.counter ?? credential.counter + this.counterStep;
    const count = Buffer.alloc(4);
    count.writeUInt32BE(credential.counter);
    const authData = Buffer.concat([sha256(overrides.rpId ?? options.rpId), Buffer.of(0x01 | (overrides.uv === false ? 0 : 0x04)), count]);
    const clientData = this.#clientData('webauthn.get', options.challenge, overrides.origin);
    const signature = sign('sha256', Buffer.concat([authData, sha256(clientData)]), credential.key);
    const userHandle = overrides.userHandle === undefined ? credential.userHandle : overrides.userHandle;
    return {
      id: b64u(credential.id), rawId: b64u(credential.id), type: 'public-key', clientExtensionResults: {}, authenticatorAttachment: 'platform',
      response: {
        clientDataJSON: b64u(clientData), authenticatorData: b64u(authData), signature: b64u(signature), ...(userHandle === null ? {} : { userHandle }),
      },
    };
  }

  #clientData(type: string, challenge: string, origin = this.origin): Buffer {
    return Buffer.from(JSON.stringify({ type, challenge, origin, crossOrigin: false }));
  }
}

/** The little CBOR the attestation object and a COSE key need: unsigned and negative integers, bytes, text, maps. */
function cbor(value: unknown): Buffer {
  const head = (major: number, n: number): Buffer => {
    if (n < 24) return Buffer.of((major << 5) | n);
    if (n < 0x100) return Buffer.of((major << 5) | 24, n);
    if (n < 0x10000) return Buffer.concat([Buffer.of((major << 5) | 25), Buffer.from([n >> 8, n & 0xff])]);
    const b = Buffer.alloc(5);
    b[0] = (major << 5) | 26;
    b.writeUInt32BE(n, 1);
    return b;
  };
  if (typeof value === 'number') return value >= 0 ? head(0, value) : head(1, -1 - value);
  if (typeof value === 'string') return Buffer.concat([head(3, Buffer.byteLength(value)), Buffer.from(value)]);
  if (value instanceof Uint8Array) return Buffer.concat([head(2, value.length), value]);
  if (value instanceof Map) return Buffer.concat([head(5, value.size), ...[...value].flatMap(([k, v]) => [cbor(k), cbor(v)])]);
  throw new Error(`cbor: cannot encode ${typeof value}`);
}
