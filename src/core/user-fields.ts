import { normalizeEmail } from './password-policy.js';
import { holdsUnstorableText } from './storable-text.js';

/**
 * The rules for the fields of a user, defined once for every way a user is
 * written: sign-up (its request schema), `tessera users import|roles`, and the admin API.
 * Each `parse…` takes an untrusted value and gives the stored form or a reason to show.
 */

/** An email as sign-up takes it: 3–254 characters, one `@`, no spaces or control characters inside; spaces around are trimmed. */
export const EMAIL_MIN_LENGTH = 3;
export const EMAIL_MAX_LENGTH = 254;
/** A JSON Schema `pattern` (Ajv compiles it with the `u` flag, as `parseEmail` does). */
export const EMAIL_PATTERN = '^\\s*[^\\s@\\u0000-\\u001f\\u007f]+@[^\\s@\\u0000-\\u001f\\u007f]+\\s*$';
/** A display name: at most 200 characters, no control characters. */
export const NAME_MAX_LENGTH = 200;
export const NAME_PATTERN = '^[^\\u0000-\\u001f\\u007f]*$';

/** Roles: a set of at most 20 names. */
export const ROLES_MAX = 20;
export const ROLE_PATTERN = /^[a-z][a-z0-9_:-]{0,31}$/;
/** Names under this prefix are Tessera's own; the only one is `tessera:admin`. */
export const RESERVED_ROLE_PREFIX = 'tessera:';
/** Grants the admin API; only the CLI and the admin API may give it. */
export const ADMIN_ROLE = 'tessera:admin';
/** An organisation id: 1 to 64 characters. */
export const ORG_ID_MAX = 64;
/** `metadata`: a JSON object of at most 4 KiB once serialised as UTF-8 JSON. */
export const METADATA_MAX_BYTES = 4096;

/** The stored form of a value, or why it cannot be stored. */
export type FieldCheck<T> = { ok: true; value: T } | { ok: false; reason: string };

const emailSyntax = new RegExp(EMAIL_PATTERN, 'u');
const nameSyntax = new RegExp(NAME_PATTERN, 'u');
const utf8 = new TextEncoder();
// Lengths in code points, as JSON Schema's maxLength counts them.
const codePoints = (s: string) => [...s].length;
const ok = <T>(value: T): FieldCheck<T> => ({ ok: true, value });
const bad = <T>(reason: string): FieldCheck<T> => ({ ok: false, reason });

/**
 * An email address: the syntax sign-up accepts, then its stored form (`normalizeEmail`).
 *
 * @example
 * parseEmail(' Ada@Example.com'); // { ok: true, value: 'ada@example.com' }
 */
export function parseEmail(value: unknown): FieldCheck<string> {
  if (typeof value !== 'string') return bad('email must be a string');
  const length = codePoints(value);
  if (length < EMAIL_MIN_LENGTH || length > EMAIL_MAX_LENGTH || !emailSyntax.test(value)) {
    return bad(`email ${JSON.stringify(value)} is not a valid address`);
  }
  return ok(normalizeEmail(value));
}

/** A display name, trimmed as sign-up trims it. */
export function parseName(value: unknown): FieldCheck<string> {
  if (typeof value !== 'string') return bad('name must be a string');
  if (codePoints(value) > NAME_MAX_LENGTH) return bad(`name is longer than ${NAME_MAX_LENGTH} characters`);
  if (!nameSyntax.test(value)) return bad('name holds a control character');
  return ok(value.trim());
}

/**
 * A set of roles, in the order given, duplicates dropped. `allowAdmin` is for the CLI and
 * the admin API; every other `tessera:` name is refused everywhere.
 *
 * @example
 * parseRoles(['editor', 'billing:read'], { allowAdmin: false }); // { ok: true, value: ['editor', 'billing:read'] }
 */
export function parseRoles(value: unknown, options: { allowAdmin: boolean }): FieldCheck<string[]> {
  if (!Array.isArray(value)) return bad('roles must be an array of role names');
  const roles = new Set<string>();
  for (const role of value) {
    if (typeof role !== 'string' || !ROLE_PATTERN.test(role)) {
      return bad(`role ${JSON.stringify(role)} is not a valid name (a lower-case letter, then up to 31 of a-z 0-9 _ : -)`);
    }
    if (role.startsWith(RESERVED_ROLE_PREFIX) && !(role === ADMIN_ROLE && options.allowAdmin)) {
      return bad(role === ADMIN_ROLE ? `role ${ADMIN_ROLE} can only be given by the CLI or the admin API` : `role ${role} is reserved: names starting "${RESERVED_ROLE_PREFIX}" are Tessera's`);
    }
    roles.add(role);
  }
  if (roles.size > ROLES_MAX) return bad(`a user has at most ${ROLES_MAX} roles, not ${roles.size}`);
  return ok([...roles]);
}

/** An organisation id: a string of 1 to 64 characters without control characters; `null` for none. */
export function parseOrgId(value: unknown): FieldCheck<string | null> {
  if (value === null) return ok(null);
  if (typeof value !== 'string') return bad('orgId must be a string');
  const length = codePoints(value);
  if (length < 1 || length > ORG_ID_MAX) return bad(`orgId must be 1 to ${ORG_ID_MAX} characters`);
  if (!nameSyntax.test(value) || holdsUnstorableText(value)) return bad('orgId holds a control character or a lone surrogate');
  return ok(value);
}

/**
 * Metadata: a JSON object of at most 4 KiB serialised. Its stored form is that serialisation,
 * ready for a `jsonb` column (which refuses NUL and lone surrogates, so they are refused here).
 */
export function parseMetadata(value: unknown): FieldCheck<string> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return bad('metadata must be a JSON object');
  if (holdsUnstorableText(value)) return bad('metadata holds a NUL character or a lone surrogate');
  const serialised = JSON.stringify(value);
  const bytes = utf8.encode(serialised).length;
  if (bytes > METADATA_MAX_BYTES) return bad(`metadata is ${bytes} bytes serialised, more than ${METADATA_MAX_BYTES}`);
  return ok(serialised);
}
