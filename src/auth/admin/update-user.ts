import { TesseraError } from '../../core/errors.js';
import { parseMetadata, parseName, parseOrgId, parseRoles } from '../../core/user-fields.js';
import type { AdminStore, AdminUserChanges, AdminUserSummary } from '../../store/admin-store.js';
import { adminDetail, type AdminActor } from './actor.js';
import { field } from './create-user.js';
import { noSuchUser, targetUserId } from './target-user.js';

export interface UpdateUserDeps {
  admin: Pick<AdminStore, 'updateUser'>;
  clock: () => Date;
}

/** What may change; absent fields stay as they are. */
export interface UpdateUserInput {
  name?: unknown;
  roles?: unknown;
  /** null: no organisation */
  orgId?: unknown;
  metadata?: unknown;
  disabled?: unknown;
}

/**
 * `PATCH /admin/users/:id`: changes the fields given, in one write with its `admin_action`
 * (`users.update`, naming the fields, never their values). Disabling stops every session of
 * the user at its next refresh and on Tessera's own API at once; access tokens carry new roles
 * and organisation from the next refresh. 400 for a bad field, 404 for no such user.
 */
export async function updateUser(deps: UpdateUserDeps, actor: AdminActor, id: string, input: UpdateUserInput): Promise<AdminUserSummary> {
  const userId = targetUserId(id);
  const changes: AdminUserChanges = {};
  if (input.name !== undefined) changes.name = field(parseName(input.name));
  if (input.roles !== undefined) changes.roles = field(parseRoles(input.roles, { allowAdmin: true }));
  if (input.orgId !== undefined) changes.orgId = field(parseOrgId(input.orgId));
  if (input.metadata !== undefined) changes.metadata = field(parseMetadata(input.metadata));
  if (input.disabled !== undefined) {
    if (typeof input.disabled !== 'boolean') throw new TesseraError('invalid_request', { detail: 'disabled must be true or false' });
    changes.disabled = input.disabled;
  }
  const user = await deps.admin.updateUser(userId, changes, deps.clock(), adminDetail(actor, 'users.update', userId, { fields: Object.keys(changes) }));
  if (!user) throw noSuchUser();
  return user;
}
