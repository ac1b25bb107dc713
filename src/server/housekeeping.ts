import type { Logger } from 'pino';
import type { Store } from '../store/store.js';

/** How often a node tries to purge old sessions; only one node at a time actually does. */
const PURGE_INTERVAL_MS = 10 * 60_000;

/** Purges expired and revoked sessions every 10 minutes (first after 5 s); returns the stop. */
export function schedulePurge(store: Pick<Store, 'purgeSessions'>, retentionSeconds: number, logger: Pick<Logger, 'info' | 'warn'>): () => void {
  const purge = async () => {
    try {
      const deleted = await store.purgeSessions(new Date(), retentionSeconds);
      if (deleted > 0) logger.info(`purged ${deleted} expired or revoked session(s)`);
    } catch (error) {
      logger.warn({ err: { message: (error as Error).message } }, 'session purge failed; will retry');
    }
  };
  const timer = setInterval(purge, PURGE_INTERVAL_MS).unref();
  const first = setTimeout(purge, 5_000).unref();
  return () => {
    clearInterval(timer);
    clearTimeout(first);
  };
}
