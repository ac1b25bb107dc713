import { Type, type Static } from 'typebox';
import { CURSOR_MAX_LENGTH } from '../auth/admin/cursors.js';
import { QUERY_MAX_LENGTH } from '../auth/admin/search-users.js';
import { SIGNING_ALGS } from '../core/signing-alg.js';
import {
  EMAIL_MAX_LENGTH, EMAIL_MIN_LENGTH, EMAIL_PATTERN, NAME_MAX_LENGTH, NAME_PATTERN, ORG_ID_MAX, ROLES_MAX,
} from '../core/user-fields.js';
import { SECURITY_EVENT_TYPES } from '../core/vocabulary.js';

/**
 * The request and response shapes of the admin API (`/admin`), declared once: Fastify
 * validates with them, the handlers take their types from them, /openapi.json shows them.
 * Field rules past a type (role names, metadata's size) are core/user-fields.ts's, applied by
 * the use cases, so the CLI gets them too; each answers 400 `invalid_request` with the reason.
 */

const DateTime = Type.String({ format: 'date-time' });
const Id = Type.String({ format: 'uuid' });
const Metadata = Type.Object({}, { additionalProperties: true, description: 'A JSON object of at most 4 KiB serialised' });
const Roles = Type.Array(Type.String({ maxLength: 64 }), {
  maxItems: 100, description: `At most ${ROLES_MAX} names of a lower-case letter then up to 31 of a-z 0-9 _ : -; \`tessera:admin\` grants the admin API`,
});
const OrgId = Type.Union([Type.String({ maxLength: ORG_ID_MAX * 2 }), Type.Null()], { description: `1 to ${ORG_ID_MAX} characters, or null for none` });
const Limit = Type.String({ pattern: '^[0-9]{1,3}$', description: '1 to 100; default 50' });
const Cursor = Type.String({ maxLength: CURSOR_MAX_LENGTH, description: 'Opaque: the `nextCursor` of the previous page' });
const NextCursor = Type.Union([Type.String(), Type.Null()], { description: 'Pass it as the cursor of the next request; null on the last page' });

export const AdminUser = Type.Object({
  id: Id,
  email: Type.String(),
  name: Type.String(),
  createdAt: DateTime,
  roles: Type.Array(Type.String()),
  orgId: Type.Union([Type.String(), Type.Null()]),
  metadata: Metadata,
  emailVerified: Type.Boolean(),
  disabled: Type.Boolean(),
});

export const AdminUserDetail = Type.Object({
  ...AdminUser.properties,
  activeSessions: Type.Integer({ description: 'Sessions that can still refresh' }),
  factors: Type.Array(
    Type.Object({
      kind: Type.Union([Type.Literal('totp'), Type.Literal('recovery_codes'), Type.Literal('passkey')]),
      id: Type.String(),
      name: Type.Union([Type.String(), Type.Null()]),
      createdAt: DateTime,
    }),
    { description: 'The confirmed authenticator app (`totp`) and the set of recovery codes (`recovery_codes`, named by how many are unused), and each passkey (`passkey`, by its credential id and name)' },
  ),
});

export const UserPage = Type.Object({ users: Type.Array(AdminUser), nextCursor: NextCursor });

export const UsersQuery = Type.Object(
  {
    query: Type.Optional(Type.String({ maxLength: QUERY_MAX_LENGTH, description: 'Prefix of an email (as stored: lower case) or of a name (any case)' })),
    cursor: Type.Optional(Cursor),
    limit: Type.Optional(Limit),
  },
  { additionalProperties: false },
);

export const CreateUserBody = Type.Object(
  {
    email: Type.String({ minLength: EMAIL_MIN_LENGTH, maxLength: EMAIL_MAX_LENGTH, pattern: EMAIL_PATTERN }),
    name: Type.Optional(Type.String({ maxLength: NAME_MAX_LENGTH, pattern: NAME_PATTERN })),
    password: Type.Optional(Type.String({ description: '8 to 1024 characters. Without it the user has no password and sets one with a password reset' })),
    roles: Type.Optional(Roles),
    orgId: Type.Optional(OrgId),
    metadata: Type.Optional(Metadata),
  },
  { additionalProperties: false },
);

export const UpdateUserBody = Type.Object(
  {
    name: Type.Optional(Type.String({ maxLength: NAME_MAX_LENGTH, pattern: NAME_PATTERN })),
    roles: Type.Optional(Roles),
    orgId: Type.Optional(OrgId),
    metadata: Type.Optional(Metadata),
    disabled: Type.Optional(Type.Boolean({ description: 'true: no sign-in, and every session stops at once' })),
  },
  { additionalProperties: false },
);

export const UserParams = Type.Object({ id: Type.String({ maxLength: 64 }) });
export const UserSessionParams = Type.Object({ id: Type.String({ maxLength: 64 }), sid: Type.String({ maxLength: 64 }) });

export const AdminSessionList = Type.Object({
  sessions: Type.Array(
    Type.Object({
      id: Id,
      createdAt: DateTime,
      lastUsedAt: DateTime,
      expiresAt: DateTime,
      ip: Type.Union([Type.String(), Type.Null()]),
      userAgent: Type.Union([Type.String(), Type.Null()]),
      device: Type.String({ examples: ['Firefox on Windows'] }),
      amr: Type.Array(Type.String(), { description: 'How the user authenticated (RFC 8176): `pwd`, `otp`, `mfa`…' }),
      authTime: Type.String({ format: 'date-time', description: 'The session’s start, or its latest re-authentication' }),
    }),
  ),
});

export const EventsQuery = Type.Object(
  {
    userId: Type.Optional(Type.String({ maxLength: 64, description: "One user's events (a deleted user's too)" })),
    type: Type.Optional(Type.Enum(SECURITY_EVENT_TYPES)),
    before: Type.Optional(Type.String({
      maxLength: CURSOR_MAX_LENGTH, description: 'The `nextCursor` of the previous page, or an ISO 8601 date-time: events strictly before it',
    })),
    limit: Type.Optional(Limit),
  },
  { additionalProperties: false },
);

export const EventPage = Type.Object({
  events: Type.Array(
    Type.Object({
      id: Type.String(),
      userId: Type.Union([Id, Type.Null()], { description: 'null for events about no user (signing keys)' }),
      type: Type.Enum(SECURITY_EVENT_TYPES),
      createdAt: DateTime,
      ip: Type.Union([Type.String(), Type.Null()]),
      userAgent: Type.Union([Type.String(), Type.Null()]),
      sessionId: Type.Union([Type.String(), Type.Null()]),
      detail: Type.Union([Type.Object({}, { additionalProperties: true }), Type.Null()], {
        description: '`admin_action`: `{actor, action, target, …}`; actor is `key:<8 hex>`, `user:<id>` or `cli:<name>`',
      }),
    }),
  ),
  nextCursor: NextCursor,
});

const Alg = Type.Enum(SIGNING_ALGS);

export const KeyList = Type.Object({
  keys: Type.Array(
    Type.Object({
      kid: Type.String(),
      alg: Type.String(),
      signsFrom: DateTime,
      status: Type.Enum(['next', 'signing', 'published', 'expired'], {
        description: '`next`: published, signs soon; `signing`; `published`: its tokens may be alive; `expired`: may be retired',
      }),
    }),
  ),
});

export const RotateKeyBody = Type.Object({ alg: Type.Optional(Alg) }, { additionalProperties: false });
export const RotatedKey = Type.Object({ kid: Type.String(), alg: Alg, signsFrom: DateTime });

export const KeyParams = Type.Object({ kid: Type.String({ maxLength: 128 }) });
export const RetireKeyQuery = Type.Object(
  { force: Type.Optional(Type.Union([Type.Literal('true'), Type.Literal('false')], { description: 'true: retire even while its tokens may be alive' })) },
  { additionalProperties: false },
);

export type UsersQuery = Static<typeof UsersQuery>;
export type CreateUserBody = Static<typeof CreateUserBody>;
export type UpdateUserBody = Static<typeof UpdateUserBody>;
export type UserParams = Static<typeof UserParams>;
export type UserSessionParams = Static<typeof UserSessionParams>;
export type EventsQuery = Static<typeof EventsQuery>;
export type RotateKeyBody = Static<typeof RotateKeyBody>;
export type KeyParams = Static<typeof KeyParams>;
export type RetireKeyQuery = Static<typeof RetireKeyQuery>;
