import type { AccountStore } from '../store/account-store.js';
import { confirmPassword, type ConfirmPasswordDeps } from './confirm-password.js';

export interface DeleteAccountDeps extends ConfirmPasswordDeps {
  accounts: Pick<AccountStore, 'deleteUser'>;
  clock: () => Date;
}

/**
 * `DELETE /auth/me {currentPassword}` → 204: the account, its sessions and its personal data
 * go (SPEC §7); its security events stay, without IP or user agent.
 */
export async function deleteAccount(deps: DeleteAccountDeps, userId: string, currentPassword: string): Promise<void> {
  await confirmPassword(deps, userId, currentPassword);
  await deps.accounts.deleteUser(userId, deps.clock());
}
