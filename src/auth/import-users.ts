import { randomUUID } from 'node:crypto';
import { holdsUnstorableText } from '../core/storable-text.js';
import { parseEmail, parseMetadata, parseName, parseOrgId, parseRoles } from '../core/user-fields.js';
import type { RequestMeta } from '../core/vocabulary.js';
import type { ImportedUser, Store } from '../store/store.js';
import { importedHashProblem, UNUSABLE_PASSWORD_HASH } from './password-hasher.js';

/**
 * Users per file. Every line is validated before anything is written, so the whole file is
 * held in memory once parsed (a few hundred bytes a user, up to 4 KiB more of metadata);
 * a larger set is split into files, each imported whole or not at all.
 */
export const IMPORT_MAX_USERS = 100_000;
/** A line longer than this is refused unread; a reader may cut such a line to this length plus one byte. */
export const IMPORT_LINE_MAX_BYTES = 64 * 1024;

/** The fields of a line; any other is refused, so a misspelt `passwordhash` is not silently dropped. */
const FIELDS: ReadonlySet<string> = new Set(['email', 'name', 'passwordHash', 'roles', 'orgId', 'metadata', 'emailVerified']);

export interface ImportUsersDeps {
  store: Pick<Store, 'importUsers'>;
  clock: () => Date;
}

/** A bad line: its number (from 1, blank lines counted) and every reason it is refused. */
export interface LineProblem {
  line: number;
  reason: string;
}

export type ImportUsersResult =
  | { outcome: 'imported'; count: number }
  /** some lines are bad: nothing was written */
  | { outcome: 'invalid'; problems: LineProblem[] }
  /** every line is good, but these emails already have accounts: nothing was written */
  | { outcome: 'taken'; lines: { line: number; email: string }[] };

/**
 * `tessera users import FILE`: JSON lines
 * `{email, name?, passwordHash?, roles?, orgId?, metadata?, emailVerified?}`. Every line is
 * validated first, as sign-up and `users roles` validate (the CLI may give `tessera:admin`);
 * one bad line, or one email that already has an account, and nothing is imported.
 * A user without `passwordHash` cannot sign in with any password until one is set.
 * `null` stands for an absent optional field, as exports of nullable columns write it.
 *
 * @example
 * const result = await importUsers({ store, clock }, byteLines(createReadStream(file)), { ip: null, userAgent: null });
 */
export async function importUsers(
  deps: ImportUsersDeps, lines: AsyncIterable<string | Uint8Array>, meta: RequestMeta,
): Promise<ImportUsersResult> {
  const users: ImportedUser[] = [];
  const problems: LineProblem[] = [];
  const lineOf = new Map<string, number>();
  let number = 0;
  let nonBlank = 0;
  for await (const raw of lines) {
    number++;
    const text = decodeLine(raw, number);
    if (typeof text !== 'string') {
      problems.push({ line: number, reason: text.problem });
      continue;
    }
    if (text.trim() === '') continue;
    if (++nonBlank > IMPORT_MAX_USERS) {
      problems.push({ line: number, reason: `more than ${IMPORT_MAX_USERS} users in one file; split it (each file is imported whole or not at all)` });
      break;
    }
    const parsed = parseLine(text);
    const first = parsed.email === undefined ? undefined : lineOf.get(parsed.email);
    if (first !== undefined) parsed.reasons.push(`email ${parsed.email} is also on line ${first}`);
    else if (parsed.email !== undefined) lineOf.set(parsed.email, number);
    if (parsed.reasons.length > 0) problems.push({ line: number, reason: parsed.reasons.join('; ') });
    else if (parsed.user) users.push(parsed.user);
  }
  if (problems.length > 0) return { outcome: 'invalid', problems };
  if (users.length === 0) return { outcome: 'imported', count: 0 };

  const { imported, taken } = await deps.store.importUsers(users, deps.clock(), meta);
  if (taken.length > 0) {
    const lines = taken.map((email) => ({ line: lineOf.get(email) ?? 0, email })).sort((a, b) => a.line - b.line);
    return { outcome: 'taken', lines };
  }
  return { outcome: 'imported', count: imported };
}

// fatal: a lenient decoder turns bad bytes into U+FFFD, and the damaged text would be imported as data.
const utf8 = new TextDecoder('utf-8', { fatal: true });
const encoder = new TextEncoder();

function decodeLine(raw: string | Uint8Array, number: number): string | { problem: string } {
  const bytes = typeof raw === 'string' ? (raw.length * 3 > IMPORT_LINE_MAX_BYTES ? encoder.encode(raw).length : raw.length) : raw.length;
  if (bytes > IMPORT_LINE_MAX_BYTES) return { problem: `the line is longer than ${IMPORT_LINE_MAX_BYTES} bytes` };
  let text: string;
  try {
    text = typeof raw === 'string' ? raw : utf8.decode(raw);
  } catch {
    return { problem: 'the line is not valid UTF-8' };
  }
  // A byte order mark some editors put first, and the CR of Windows line ends.
  if (number === 1 && text.startsWith('\uFEFF')) text = text.slice(1);
  return text.endsWith('\r') ? text.slice(0, -1) : text;
}

/** One non-blank line: the user in stored form, the normalised email if it is valid (for duplicates), and every reason it is refused. */
function parseLine(text: string): { user?: ImportedUser; email?: string; reasons: string[] } {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return { reasons: [`not valid JSON (${(error as Error).message})`] };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { reasons: ['not a JSON object'] };
  const record = value as Record<string, unknown>;
  const reasons = Object.keys(record).filter((key) => !FIELDS.has(key)).map((key) => `unknown field ${JSON.stringify(key)}`);
  if (holdsUnstorableText(record)) reasons.push('a string holds a NUL character or a lone surrogate');

  // Each field: its stored form, or a reason added to `reasons`.
  const field = <T>(check: { ok: true; value: T } | { ok: false; reason: string }, absent: T): T => {
    if (check.ok) return check.value;
    reasons.push(check.reason);
    return absent;
  };
  const given = (key: string) => record[key] !== undefined && record[key] !== null;

  let email: string | undefined;
  if (!given('email')) reasons.push('email is missing');
  else {
    const check = parseEmail(record.email);
    if (check.ok) email = check.value;
    else reasons.push(check.reason);
  }
  const name = given('name') ? field(parseName(record.name), '') : '';
  let passwordHash = UNUSABLE_PASSWORD_HASH;
  if (given('passwordHash')) {
    const problem = typeof record.passwordHash === 'string' ? importedHashProblem(record.passwordHash) : 'passwordHash must be a string';
    if (problem) reasons.push(problem);
    else passwordHash = record.passwordHash as string;
  }
  const roles = given('roles') ? field(parseRoles(record.roles, { allowAdmin: true }), []) : [];
  const orgId = given('orgId') ? field(parseOrgId(record.orgId), null) : null;
  const metadata = given('metadata') ? field(parseMetadata(record.metadata), '{}') : '{}';
  let emailVerified = false;
  if (given('emailVerified')) {
    if (typeof record.emailVerified === 'boolean') emailVerified = record.emailVerified;
    else reasons.push('emailVerified must be true or false');
  }
  if (reasons.length > 0 || email === undefined) return { email, reasons };
  return { email, reasons, user: { id: randomUUID(), email, name, passwordHash, roles, orgId, metadata, emailVerified } };
}
