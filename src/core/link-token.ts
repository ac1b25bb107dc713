import { createHmac, timingSafeEqual } from 'node:crypto';
import { deriveKey } from './derive-key.js';
import { isUuid } from './uuid.js';

/** What a link in a mail is for; part of its MAC, so a token of one purpose never passes for another. */
export const LINK_PURPOSES = ['verify_email', 'reset_password', 'change_email'] as const;
export type LinkPurpose = (typeof LINK_PURPOSES)[number];

/** The inputs of a link's token: all stored (account_tokens, outbox) except the MAC key. */
export interface LinkTokenInput {
  purpose: LinkPurpose;
  userId: string;
  /** random, one per request: a newer request replaces it, so older links stop working */
  requestId: string;
  /** the address the link was sent to (normalized) */
  email: string;
}

export interface ParsedLinkToken {
  purpose: LinkPurpose;
  userId: string;
  requestId: string;
  mac: Buffer;
}

const ID_BYTES = 16;
const MAC_BYTES = 32;
const TOKEN_BYTES = 1 + ID_BYTES + ID_BYTES + MAC_BYTES;
const TOKEN_LENGTH = Math.ceil((TOKEN_BYTES * 4) / 3);

/**
 * Tokens of the links in mails (email verification, password reset, email change):
 * base64url(purpose ‖ user id ‖ request id ‖ MAC), MAC = HMAC-SHA256(K_link, purpose ‖ user id ‖
 * request id ‖ email). Nothing usable is stored: the database holds the request id and the
 * address, and the token is derived from them when the mail is sent. Binding the address
 * means a link stops working once the account's email is no longer the one it was sent to.
 *
 * @example
 * const links = new LinkTokenCodec(secret);
 * const token = links.make({ purpose: 'reset_password', userId, requestId, email });
 * const parsed = links.parse(token); // syntax only: then read the request by parsed.userId
 * if (parsed && links.verify(parsed, storedEmail)) { ... }
 */
export class LinkTokenCodec {
  readonly #keys: Buffer[];

  /** `previous`: TESSERA_SECRET_PREVIOUS, still accepted for links sent before the secret changed. */
  constructor(secret: string, previous?: string) {
    this.#keys = [secret, ...(previous ? [previous] : [])].map((s) => deriveKey(s, 'link-token'));
  }

  make(input: LinkTokenInput): string {
    const head = header(input.purpose, input.userId, input.requestId);
    return Buffer.concat([head, mac(this.#keys[0]!, head, input.email)]).toString('base64url');
  }

  /** Reads a token's parts, or undefined if it cannot be one; says nothing about its MAC. */
  parse(token: string): ParsedLinkToken | undefined {
    if (token.length !== TOKEN_LENGTH || !/^[A-Za-z0-9_-]+$/.test(token)) return undefined;
    const bytes = Buffer.from(token, 'base64url');
    // Canonical only: one token, one spelling (unused trailing bits must be zero).
    if (bytes.length !== TOKEN_BYTES || bytes.toString('base64url') !== token) return undefined;
    const purpose = LINK_PURPOSES[bytes[0]!];
    if (purpose === undefined) return undefined;
    const userId = uuidOf(bytes.subarray(1, 1 + ID_BYTES));
    const requestId = uuidOf(bytes.subarray(1 + ID_BYTES, 1 + 2 * ID_BYTES));
    return { purpose, userId, requestId, mac: bytes.subarray(1 + 2 * ID_BYTES) };
  }

  /** Is the MAC right for this address? In constant time: a timing oracle would leak MAC bytes. */
  verify(parsed: ParsedLinkToken, email: string): boolean {
    const head = header(parsed.purpose, parsed.userId, parsed.requestId);
    let ok = false;
    for (const key of this.#keys) ok = timingSafeEqual(mac(key, head, email), parsed.mac) || ok;
    return ok;
  }
}

function header(purpose: LinkPurpose, userId: string, requestId: string): Buffer {
  if (!isUuid(userId) || !isUuid(requestId)) throw new Error('link token: ids must be UUIDs');
  return Buffer.concat([Buffer.of(LINK_PURPOSES.indexOf(purpose)), uuidBytes(userId), uuidBytes(requestId)]);
}

function mac(key: Buffer, head: Buffer, email: string): Buffer {
  return createHmac('sha256', key).update(head).update(email, 'utf8').digest();
}

const uuidBytes = (uuid: string) => Buffer.from(uuid.replaceAll('-', ''), 'hex');

function uuidOf(bytes: Buffer): string {
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
