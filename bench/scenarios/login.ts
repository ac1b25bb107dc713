import type { Dispatcher } from 'undici';
import { postJson, type Step } from '../lib/load.js';

/**
 * POST /auth/login with the right password (body transport): one argon2id verification,
 * one user read, one session insert. Worker i signs in as `emails[i % emails.length]`.
 * Every success creates a session, so this runs after the refresh scenarios.
 */
export function loginStep(emails: string[], password: string): Step {
  return async (worker: number, pool: Dispatcher) => {
    const email = emails[worker % emails.length]!;
    const { status } = await postJson(pool, '/auth/login', { email, password, transport: 'body' });
    return status;
  };
}
