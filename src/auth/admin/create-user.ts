import { randomUUID } from 'node:crypto';
import { TesseraError } from '../../core/errors.js';
import { assertPasswordPolicy } from '../../core/password-policy.js';
import { parseEmail, parseMetadata, parseName, parseOrgId, parseRoles, type FieldCheck } from '../../core/user-fields.js';
import type { AdminStore, AdminUserSummary } from '../../store/admin-store.js';
import { UNUSABLE_PASSWORD_HASH, type PasswordHasher } from '../password-hasher.js';
import { adminDetail, type AdminActor } from './actor.js';

export interface CreateUserDeps {
  admin: Pick<AdminStore, 'createUser'>;
  hasher: Pick<PasswordHasher, 'hash'>;
  clock: () => Date;
}

/** The fields of a new user, as a caller sent them: each is checked by the rules of core/user-fields.ts. */
export interface CreateUserInput {
  email: unknown;
  name?: unknown;
  /** Absent: the user has no password (an unusable hash) and sets one through a password reset. */
  password?: unknown;
  roles?: unknown;
  orgId?: unknown;
  metadata?: unknown;
}

/**
 * `POST /admin/users` and `tessera users create`: a user with no session, its email not yet
 * verified; `tessera:admin` may be given. 400 `invalid_request` for a bad field (with the
 * reason), `weak_password`, 409 `email_taken`. Records `admin_action` (`users.create`).
 *
 * @example
 * await createUser(deps, actor, { email: 'ada@example.com', name: 'Ada', roles: ['editor'] });
 */
export async function createUser(deps: CreateUserDeps, actor: AdminActor, input: CreateUserInput): Promise<AdminUserSummary> {
  const email = field(parseEmail(input.email));
  const name = input.name === undefined ? '' : field(parseName(input.name));
  const roles = input.roles === undefined ? [] : field(parseRoles(input.roles, { allowAdmin: true }));
  const orgId = input.orgId === undefined ? null : field(parseOrgId(input.orgId));
  const metadata = input.metadata === undefined ? '{}' : field(parseMetadata(input.metadata));
  let passwordHash = UNUSABLE_PASSWORD_HASH;
  if (input.password !== undefined) {
    if (typeof input.password !== 'string') throw new TesseraError('invalid_request', { detail: 'password must be a string' });
    assertPasswordPolicy(input.password);
    passwordHash = await deps.hasher.hash(input.password);
  }
  const id = randomUUID();
  const user = await deps.admin.createUser(
    { id, email, name, passwordHash, roles, orgId, metadata },
    deps.clock(),
    adminDetail(actor, 'users.create', id),
  );
  if (!user) throw new TesseraError('email_taken');
  return user;
}

/** The stored form of a field, or 400 with the reason it cannot be stored. */
export function field<T>(check: FieldCheck<T>): T {
  if (!check.ok) throw new TesseraError('invalid_request', { detail: check.reason });
  return check.value;
}
