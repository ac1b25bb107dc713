import type { Dispatcher } from 'undici';
import { Pool } from 'undici';
import { postJson, type Step } from '../lib/load.js';

/** One worker per session: its email, and the tokens its previous call returned. */
export interface Chains {
  group: string;
  emails: string[];
  refresh: string[];
  access: string[];
}

/** The most recent access tokens Tessera issued, for the verify-only scenario. */
export class TokenRing {
  readonly #tokens: string[] = [];
  #next = 0;
  constructor(private readonly size: number) {}
  add(token: string): void {
    if (this.#tokens.length < this.size) this.#tokens.push(token);
    else this.#tokens[this.#next++ % this.size] = token;
  }
  get tokens(): string[] {
    return [...this.#tokens];
  }
}

interface TokenBody {
  accessToken?: string;
  refreshToken?: string;
}

/**
 * Signs each user in once through the API (body transport): the sessions the workers
 * then refresh. A few at a time, since each sign-in is an argon2 verification.
 */
export async function signIn(origin: string, group: string, emails: string[], password: string): Promise<Chains> {
  const pool = new Pool(origin, { connections: 4 });
  const chains: Chains = { group, emails, refresh: [], access: [] };
  try {
    for (let i = 0; i < emails.length; i += 4) {
      await Promise.all(
        emails.slice(i, i + 4).map(async (email, j) => {
          const { status, json } = await postJson(pool, '/auth/login', { email, password, transport: 'body' });
          const body = json as TokenBody;
          if (status !== 200 || !body.refreshToken || !body.accessToken) throw new Error(`sign-in of ${email} answered ${status}`);
          chains.refresh[i + j] = body.refreshToken;
          chains.access[i + j] = body.accessToken;
        }),
      );
    }
  } finally {
    await pool.close();
  }
  return chains;
}

/**
 * POST /auth/refresh with the body transport. Each worker always presents the token its
 * own previous call returned; after a failure it keeps its token, so a retry is a replay
 * (SPEC §3 rule 2), never a reuse.
 */
export function refreshStep(chains: Chains, ring?: TokenRing): Step {
  return async (worker: number, pool: Dispatcher) => {
    const token = chains.refresh[worker];
    if (token === undefined) throw Object.assign(new Error('no session for this worker'), { code: 'NO_SESSION' });
    const { status, json } = await postJson(pool, '/auth/refresh', { refreshToken: token }, { 'user-agent': 'tessera-bench/1 (undici)' });
    const body = json as TokenBody | undefined;
    if (status === 200 && body?.refreshToken && body.accessToken) {
      chains.refresh[worker] = body.refreshToken;
      chains.access[worker] = body.accessToken;
      ring?.add(body.accessToken);
    }
    return status;
  };
}
