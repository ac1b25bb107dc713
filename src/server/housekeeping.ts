import type { Logger } from 'pino';
import { OutboxStore } from '../store/outbox-store.js';
import { PasskeyStore } from '../store/passkey-store.js';
import type { Store } from '../store/store.js';

/** How often a node tries to purge old sessions; only one node at a time actually does. */
const PURGE_INTERVAL_MS = 10 * 60_000;

/** Outbox rows delivered or given up are kept this long (for an operator reading `last_error`), then purged. */
export const OUTBOX_RETENTION_SECONDS = 7 * 24 * 60 * 60;

/** Purges expired and revoked sessions, and old outbox rows, every 10 minutes (first after 5 s); returns the stop. */
export function schedulePurge(store: Pick<Store, 'purgeSessions' | 'db'>, retentionSeconds: number, logger: Pick<Logger, 'info' | 'warn'>): () => void {
  const outbox = new OutboxStore(store.db);
  const passkeys = new PasskeyStore(store.db);
  const purge = async () => {
    try {
      const deleted = await store.purgeSessions(new Date(), retentionSeconds);
      if (deleted > 0) logger.info(`purged ${deleted} expired or revoked session(s)`);
    } catch (error) {
      logger.warn({ err: { message: (error as Error).message } }, 'session purge failed; will retry');
    }
    try {
      const deleted = await outbox.purge(new Date(Date.now() - OUTBOX_RETENTION_SECONDS * 1000));
      if (deleted > 0) logger.info(`purged ${deleted} outbox row(s) delivered or given up over 7 days ago`);
    } catch (error) {
      logger.warn({ err: { message: (error as Error).message } }, 'outbox purge failed; will retry');
    }
    try {
      // A used WebAuthn challenge is kept only while it could still be presented (5 minutes).
      await passkeys.purgeUsedChallenges(new Date());
    } catch (error) {
      logger.warn({ err: { message: (error as Error).message } }, 'used-challenge purge failed; will retry');
    }
  };
  const timer = setInterval(purge, PURGE_INTERVAL_MS).unref();
  const first = setTimeout(purge, 5_000).unref();
  return () => {
    clearInterval(timer);
    clearTimeout(first);
  };
}
