import type { Dispatcher } from 'undici';
import { getJson, type Step } from '../lib/load.js';
import type { Chains } from './refresh.js';

/**
 * GET /auth/me with a valid access token: verify the JWT, then one primary-key read that
 * checks the session is still active. Each worker uses its own session's latest token.
 */
export function protectedStep(chains: Chains): Step {
  return async (worker: number, pool: Dispatcher) => {
    const token = chains.access[worker];
    if (token === undefined) throw Object.assign(new Error('no access token for this worker'), { code: 'NO_SESSION' });
    const { status } = await getJson(pool, '/auth/me', { authorization: `Bearer ${token}` });
    return status;
  };
}
