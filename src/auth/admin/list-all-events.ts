import { TesseraError } from '../../core/errors.js';
import { isUuid } from '../../core/uuid.js';
import { SECURITY_EVENT_TYPES, type SecurityEventType } from '../../core/vocabulary.js';
import type { AdminEvent, AdminStore, EventPosition } from '../../store/admin-store.js';
import { pageLimit, type AdminCursors } from './cursors.js';

export interface ListAllEventsDeps {
  admin: Pick<AdminStore, 'listEvents'>;
  adminCursors: Pick<AdminCursors, 'seal' | 'open'>;
}

export interface ListAllEventsInput {
  /** one user's events only (a deleted user's too) */
  userId?: string | undefined;
  type?: string | undefined;
  /** the `nextCursor` of the previous page, or an ISO 8601 date-time: events strictly before it */
  before?: string | undefined;
  /** 1–100, default 50 */
  limit?: string | number | undefined;
}

export interface EventPage {
  events: AdminEvent[];
  /** null on the last page */
  nextCursor: string | null;
}

/** A date-time as `before` takes it: `2026-11-30T12:00:00Z`, with optional fraction, `Z` or an offset. */
const DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;

/**
 * `GET /admin/events?userId=&type=&before=&limit=` and `tessera events`: the security log of
 * every user (or one), newest first, `admin_action` events with their `detail`. Keyset paging
 * by time and id; a forged or malformed cursor, an id that is no UUID or an unknown type is 400.
 *
 * @example
 * const page = await listAllEvents(deps, { type: 'admin_action', limit: 20 });
 */
export async function listAllEvents(deps: ListAllEventsDeps, input: ListAllEventsInput): Promise<EventPage> {
  const limit = pageLimit(input.limit);
  if (input.userId !== undefined && !isUuid(input.userId)) throw new TesseraError('invalid_request', { detail: 'userId must be a user id (a UUID)' });
  if (input.type !== undefined && !(SECURITY_EVENT_TYPES as readonly string[]).includes(input.type)) {
    throw new TesseraError('invalid_request', { detail: `type must be one of ${SECURITY_EVENT_TYPES.join(', ')}` });
  }
  const rows = await deps.admin.listEvents({
    ...(input.userId !== undefined ? { userId: input.userId.toLowerCase() } : {}),
    ...(input.type !== undefined ? { type: input.type as SecurityEventType } : {}),
    ...(input.before !== undefined ? { before: position(deps, input.before) } : {}),
    limit: limit + 1,
  });
  const events = rows.slice(0, limit);
  const last = events.at(-1);
  return { events, nextCursor: rows.length > limit && last ? deps.adminCursors.seal('events', [last.createdAt.toISOString(), last.id]) : null };
}

function position(deps: Pick<ListAllEventsDeps, 'adminCursors'>, before: string): EventPosition {
  if (DATE_TIME.test(before)) {
    const createdAt = new Date(before);
    if (!Number.isNaN(createdAt.getTime())) return { createdAt };
  }
  const [time, id] = deps.adminCursors.open('events', before, 2);
  const createdAt = new Date(time!);
  // Only a cursor of ours opens, so this holds unless we gave out a bad one: still a 400, not a 500.
  if (Number.isNaN(createdAt.getTime()) || !/^\d{1,19}$/.test(id!)) throw new TesseraError('invalid_request', { detail: 'The cursor is not one this server gave out; start again without it' });
  return { createdAt, id: id! };
}
