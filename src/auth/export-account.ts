import { TesseraError } from '../core/errors.js';
import type { AccountExport, AccountStore } from '../store/account-store.js';

/** `GET /auth/me/export`: everything stored about the caller, as one JSON document. */
export async function exportAccount(deps: { accounts: Pick<AccountStore, 'exportUser'> }, userId: string): Promise<AccountExport> {
  const data = await deps.accounts.exportUser(userId);
  if (!data) throw new TesseraError('unauthorized');
  return data;
}
