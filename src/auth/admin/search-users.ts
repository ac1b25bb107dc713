import { TesseraError } from '../../core/errors.js';
import { normalizeEmail } from '../../core/password-policy.js';
import { holdsUnstorableText } from '../../core/storable-text.js';
import type { AdminStore, AdminUserSummary } from '../../store/admin-store.js';
import { pageLimit, type AdminCursors } from './cursors.js';

export interface SearchUsersDeps {
  admin: Pick<AdminStore, 'searchUsers'>;
  adminCursors: Pick<AdminCursors, 'seal' | 'open'>;
}

export interface SearchUsersInput {
  /** an email or name prefix; absent or blank: every user */
  query?: string | undefined;
  /** the `nextCursor` of the previous page */
  cursor?: string | undefined;
  /** 1–100, default 50 */
  limit?: string | number | undefined;
}

export interface UserPage {
  users: AdminUserSummary[];
  /** null on the last page */
  nextCursor: string | null;
}

/** A search is a prefix of an email or a name: no longer than an email may be. */
export const QUERY_MAX_LENGTH = 254;

/**
 * `GET /admin/users?query=&cursor=&limit=` and `tessera users list`: users in email order,
 * those whose email starts with `query` (compared as emails are stored: trimmed, NFC, lower
 * case) or whose name does (case-insensitively). Keyset paging: `nextCursor` is the position
 * after the page's last user, MAC'd; a forged or malformed one is 400 `invalid_request`.
 *
 * @example
 * const first = await searchUsers(deps, { query: 'ada', limit: 20 });
 * const second = await searchUsers(deps, { query: 'ada', limit: 20, cursor: first.nextCursor ?? undefined });
 */
export async function searchUsers(deps: SearchUsersDeps, input: SearchUsersInput): Promise<UserPage> {
  const limit = pageLimit(input.limit);
  const query = input.query?.trim() ?? '';
  if ([...query].length > QUERY_MAX_LENGTH || holdsUnstorableText(query)) {
    throw new TesseraError('invalid_request', { detail: `query must be at most ${QUERY_MAX_LENGTH} characters of text` });
  }
  const after = input.cursor === undefined ? undefined : deps.adminCursors.open('users', input.cursor, 2);
  const rows = await deps.admin.searchUsers({
    ...(query === '' ? {} : { emailPrefix: normalizeEmail(query), namePrefix: query }),
    ...(after ? { after: { email: after[0]!, id: after[1]! } } : {}),
    // One more than asked: whether there is a next page, without a count over every user.
    limit: limit + 1,
  });
  const users = rows.slice(0, limit);
  const last = users.at(-1);
  return { users, nextCursor: rows.length > limit && last ? deps.adminCursors.seal('users', [last.email, last.id]) : null };
}
