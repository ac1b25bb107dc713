import { randomUUID } from 'node:crypto';
import type { Config } from '../core/config.js';
import { TesseraError } from '../core/errors.js';
import type { LinkPurpose, LinkTokenCodec } from '../core/link-token.js';
import type { AccountStore, LinkRequest } from '../store/account-store.js';

/** What every link use case reads: the codec, the outstanding requests, the clock. */
export interface LinkDeps {
  links: Pick<LinkTokenCodec, 'parse' | 'verify'>;
  accounts: Pick<AccountStore, 'findLink'>;
  clock: () => Date;
}

/** A link token that checked out: its user, its request, and the address it was sent to. */
export interface CheckedLink {
  purpose: LinkPurpose;
  userId: string;
  requestId: string;
  email: string;
}

/**
 * Checks a link's token against its outstanding request: the right purpose, the request not
 * replaced, not expired, the MAC right for the address (in constant time). Every failure is
 * the same 400 `invalid_token` to the client; the log learns which (`reason`).
 * Using the link (once) is the store's conditional delete, in the transaction of its effect.
 */
export async function checkLink(deps: LinkDeps, token: string, purposes: readonly LinkPurpose[]): Promise<CheckedLink> {
  const parsed = deps.links.parse(token);
  if (!parsed) throw invalidLink('malformed');
  if (!purposes.includes(parsed.purpose)) throw invalidLink('wrong purpose');
  const request = await deps.accounts.findLink(parsed.userId, parsed.purpose);
  if (!request || !deps.links.verify(parsed, request.email)) throw invalidLink('unknown or forged');
  if (request.requestId !== parsed.requestId) throw invalidLink('replaced by a newer request');
  if (request.expiresAt <= deps.clock()) throw invalidLink('expired');
  return { purpose: parsed.purpose, userId: parsed.userId, requestId: parsed.requestId, email: request.email };
}

export function invalidLink(reason: string): TesseraError {
  return new TesseraError('invalid_token', { cause: new Error(`link token: ${reason}`) });
}

/** A new link request of `purpose` for `email`, valid for `ttlSeconds` from now. */
export function newLinkRequest(purpose: LinkPurpose, userId: string, email: string, now: Date, ttlSeconds: number): LinkRequest {
  return { purpose, userId, email, requestId: randomUUID(), now, expiresAt: new Date(now.getTime() + ttlSeconds * 1000) };
}

/** Email features (links, notices) are on: SMTP, or the development log. */
export const mailOn = (config: Pick<Config, 'mail'>) => config.mail !== 'off';
