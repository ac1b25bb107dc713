/**
 * ioredis' words for "Redis cannot answer now", from a single Redis or a Redis Cluster: not
 * connected (no offline queue), a command Redis did not answer within its timeout, a cluster
 * that is not ready, has lost a master (`CLUSTERDOWN`), is moving slots (`TRYAGAIN`), or kept
 * redirecting a command. Each is an outage of the rate-limit store, answered 503, not a bug.
 */
const UNAVAILABLE = new RegExp(
  [
    'Connection is closed',
    "Stream isn't writeable",
    'enableOfflineQueue', // "Cluster isn't ready and enableOfflineQueue options is false" too
    'Command timed out',
    'Too many Cluster redirections',
    'Cluster is ended',
    '^CLUSTERDOWN ',
    '^TRYAGAIN ',
    '^LOADING ',
    '^MASTERDOWN ',
  ].join('|'),
);

/**
 * True when `error` says Redis (REDIS_URL) is out of reach rather than that Tessera has a bug.
 *
 * @example
 * isRedisUnavailable(new Error('CLUSTERDOWN The cluster is down')); // true
 */
export function isRedisUnavailable(error: unknown): boolean {
  const { name, message } = (error ?? {}) as { name?: unknown; message?: unknown };
  return name === 'MaxRetriesPerRequestError' || UNAVAILABLE.test(String(message));
}
