import type { SigningAlg } from '../../core/signing-alg.js';
import type { AdminStore } from '../../store/admin-store.js';
import { NO_USER_ID } from '../../store/event-log.js';
import { retireSigningKey, rotateSigningKey, type SigningKeysDeps } from '../signing-keys.js';
import { adminDetail, type AdminActor } from './actor.js';

export interface AdminSigningKeysDeps extends SigningKeysDeps {
  admin: Pick<AdminStore, 'recordAction'>;
}

/**
 * `POST /admin/keys/rotate` and `tessera keys rotate`: a new key of `alg`, published now and
 * signing 60 s later (rotateSigningKey), recorded as `admin_action` (`keys.rotate`) about no user.
 */
export async function rotateKeyAsAdmin(deps: AdminSigningKeysDeps, actor: AdminActor, alg: SigningAlg): Promise<{ kid: string; alg: SigningAlg; signsFrom: Date }> {
  const key = await rotateSigningKey(deps, alg);
  await deps.admin.recordAction(NO_USER_ID, deps.clock(), adminDetail(actor, 'keys.rotate', key.kid, { alg }));
  return key;
}

/**
 * `DELETE /admin/keys/:kid` and `tessera keys retire`: unpublishes a key (retireSigningKey: 404
 * for no such key; 400 `invalid_request` for the signing key, the next one, and unless `force` a
 * key whose tokens may still be alive), recorded as `admin_action` (`keys.retire`) about no user.
 */
export async function retireKeyAsAdmin(deps: AdminSigningKeysDeps, actor: AdminActor, kid: string, force: boolean): Promise<void> {
  await retireSigningKey(deps, kid, force);
  await deps.admin.recordAction(NO_USER_ID, deps.clock(), adminDetail(actor, 'keys.retire', kid, { force }));
}
