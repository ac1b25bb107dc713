import { describe, expect, it } from 'vitest';
import { toTesseraError } from '../../src/server/http-errors.js';
import { isRedisUnavailable } from '../../src/server/redis-unavailable.js';

/** What ioredis says when a single Redis or a Cluster cannot answer: each is a 503, never a 500. */
describe('isRedisUnavailable', () => {
  const outages = [
    'Connection is closed.',
    "Stream isn't writeable and enableOfflineQueue options is false",
    "Cluster isn't ready and enableOfflineQueue options is false",
    'Command timed out',
    'Too many Cluster redirections. Last error: Error: Connection is closed.',
    'CLUSTERDOWN The cluster is down',
    'CLUSTERDOWN Hash slot not served',
    'TRYAGAIN Multiple keys request during rehashing of slot',
    'LOADING Redis is loading the dataset in memory',
    'MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to no',
  ];

  it.each(outages)('%s: 503 service_unavailable', (message) => {
    expect(isRedisUnavailable(new Error(message))).toBe(true);
    expect(toTesseraError(new Error(message)).code).toBe('service_unavailable');
  });

  it('a bug stays a bug: CROSSSLOT, a script error or a wrong type are 500s', () => {
    for (const message of ["CROSSSLOT Keys in request don't hash to the same slot", 'ERR Error running script', 'WRONGTYPE Operation against a key holding the wrong kind of value']) {
      expect(isRedisUnavailable(new Error(message)), message).toBe(false);
      expect(toTesseraError(new Error(message)).code).toBe('internal_error');
    }
  });
});
