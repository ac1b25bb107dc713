/**
 * What an attacker has for forging access tokens: hand-made compact JWS text (any header,
 * any payload, any signature bytes), its own keys, and — in a test only — Tessera's
 * genuine signing key, to show that each check holds on its own even when every other
 * part of the token is right.
 */
import { createPrivateKey, generateKeyPairSync, sign, X509Certificate, type KeyObject } from 'node:crypto';

export const b64url = (data: string | Buffer): string => Buffer.from(data).toString('base64url');
/** base64url of JSON, or of text as is (for malformed JSON). */
export const segment = (value: unknown): string => b64url(typeof value === 'string' ? value : JSON.stringify(value));

/** header.payload.signature from raw parts; header and payload are objects or raw JSON text. */
export function compact(header: unknown, payload: unknown, signature = ''): string {
  return `${segment(header)}.${segment(payload)}.${signature}`;
}

/** Signs `header.payload` (each an object or raw JSON text) with an Ed25519 key, byte for byte as given. */
export function signEd25519(header: unknown, payload: unknown, key: KeyObject): string {
  const input = `${segment(header)}.${segment(payload)}`;
  return `${input}.${b64url(sign(null, Buffer.from(input), key))}`;
}

/** Signs already-encoded segments (for malformed base64 experiments). */
export function signEncoded(encodedHeader: string, encodedPayload: string, key: KeyObject): string {
  const input = `${encodedHeader}.${encodedPayload}`;
  return `${input}.${b64url(sign(null, Buffer.from(input), key))}`;
}

export interface Ed25519Jwk {
  kty: 'OKP';
  crv: 'Ed25519';
  x: string;
  d: string;
  kid: string;
}

/** A fresh Ed25519 key pair as a private JWK (the SIGNING_KEYS format) and as KeyObjects. */
export function ed25519Key(kid: string) {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const jwk = privateKey.export({ format: 'jwk' }) as { x: string; d: string };
  const privateJwk: Ed25519Jwk = { kty: 'OKP', crv: 'Ed25519', x: jwk.x, d: jwk.d, kid };
  return { kid, privateKey, publicKey, privateJwk, publicJwk: { kty: 'OKP', crv: 'Ed25519', x: jwk.x, kid } };
}

export function keyFromJwk(jwk: Ed25519Jwk): KeyObject {
  return createPrivateKey({ key: { kty: jwk.kty, crv: jwk.crv, x: jwk.x, d: jwk.d }, format: 'jwk' });
}

// ---- a real self-signed X.509 certificate for the attacker's key (for `x5c`) ----------------

function der(tag: number, ...contents: Buffer[]): Buffer {
  const body = Buffer.concat(contents);
  const n = body.length;
  const length = n < 0x80 ? Buffer.from([n]) : n < 0x100 ? Buffer.from([0x81, n]) : Buffer.from([0x82, n >> 8, n & 0xff]);
  return Buffer.concat([Buffer.from([tag]), length, body]);
}
const SEQ = 0x30;
const ED25519_OID = Buffer.from([0x06, 0x03, 0x2b, 0x65, 0x70]);
const CN_OID = Buffer.from([0x06, 0x03, 0x55, 0x04, 0x03]);

/** A DER certificate, CN=attacker, for `publicKey`, self-signed with `privateKey` (Ed25519). */
export function selfSignedCertificate(privateKey: KeyObject, publicKey: KeyObject): Buffer {
  const name = der(SEQ, der(0x31, der(SEQ, CN_OID, der(0x0c, Buffer.from('attacker')))));
  const algorithm = der(SEQ, ED25519_OID);
  const tbs = der(
    SEQ,
    der(0xa0, der(0x02, Buffer.from([0x02]))), // v3
    der(0x02, Buffer.from([0x01, 0x23, 0x45])),
    algorithm,
    name,
    der(SEQ, der(0x17, Buffer.from('250101000000Z')), der(0x17, Buffer.from('491231235959Z'))),
    name,
    publicKey.export({ type: 'spki', format: 'der' }),
  );
  const certificate = der(SEQ, tbs, algorithm, der(0x03, Buffer.from([0x00]), sign(null, tbs, privateKey)));
  // It is a genuine certificate: Node parses it and its signature verifies.
  if (!new X509Certificate(certificate).verify(publicKey)) throw new Error('self-signed certificate does not verify');
  return certificate;
}
