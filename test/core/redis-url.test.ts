import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/core/config.js';
import { listsSeveralRedisAddresses, parseRedisClusterSeeds } from '../../src/core/redis-url.js';

function errorsOf(env: Record<string, string>): string[] {
  const result = loadConfig(env);
  return result.ok ? [] : result.errors;
}

describe('REDIS_URL and REDIS_CLUSTER', () => {
  it('a single Redis is as before: one URL, REDIS_CLUSTER off by default', () => {
    const result = loadConfig({ REDIS_URL: 'rediss://user:p%2Cw@cache:6380/2' });
    expect(result.ok && result.config).toMatchObject({ redisUrl: 'rediss://user:p%2Cw@cache:6380/2', redisCluster: false });
    // a comma inside a password is not a second address
    expect(loadConfig({ REDIS_URL: 'redis://:pa,ss@cache:6379' }).ok).toBe(true);
    expect(listsSeveralRedisAddresses('redis://:pa,ss@cache:6379')).toBe(false);
  });

  it('a list of addresses needs REDIS_CLUSTER=on, and says so', () => {
    expect(errorsOf({ REDIS_URL: 'redis://a:7000,redis://b:7000' })).toEqual([
      'REDIS_URL lists several addresses, but a single Redis takes one: set REDIS_CLUSTER=on to use them as the seed nodes of a Redis Cluster',
    ]);
    const result = loadConfig({ REDIS_URL: 'redis://a:7000, redis://b:7000', REDIS_CLUSTER: 'ON' });
    expect(result.ok && result.config.redisCluster).toBe(true);
  });

  it('REDIS_CLUSTER=on needs REDIS_URL; other values are refused', () => {
    expect(errorsOf({ REDIS_CLUSTER: 'on' })[0]).toMatch(/^REDIS_CLUSTER=on needs REDIS_URL/);
    expect(errorsOf({ REDIS_CLUSTER: 'yes', REDIS_URL: 'redis://a:7000' })[0]).toMatch(/^REDIS_CLUSTER="yes" is not valid/);
  });

  it('reads seeds: hosts, ports (6379 by default), TLS and the one set of credentials', () => {
    expect(parseRedisClusterSeeds('rediss://:s%40cret@a.example:7000,rediss://b.example,rediss://[::1]:7002/0')).toEqual({
      seeds: {
        nodes: [
          { host: 'a.example', port: 7000 },
          { host: 'b.example', port: 6379 },
          { host: '::1', port: 7002 },
        ],
        tls: true,
        username: undefined,
        password: 's@cret',
      },
      problems: [],
    });
  });

  it('refuses, naming the address but never its password: no scheme, a database, a query, mixed schemes or credentials', () => {
    const problems = (raw: string) => parseRedisClusterSeeds(raw).problems;
    expect(problems('redis://a:7000,b:7000')[0]).toMatch(/^REDIS_URL is not a redis:\/\/ or rediss:\/\/ URL with a host/);
    expect(problems('redis://a:7000,http://b:7000')[0]).toMatch(/^REDIS_URL is not a redis/);
    expect(problems('redis://a:7000,redis://b:7000/3')).toEqual(['address 2 of REDIS_URL names a database: a Redis Cluster has database 0 only, remove the /3']);
    expect(problems('redis://a:7000?family=6')[0]).toMatch(/^REDIS_URL has a query/);
    expect(problems('redis://a:7000,rediss://b:7000')[0]).toMatch(/mixes redis:\/\/ and rediss:\/\//);
    const mixed = problems('redis://:one-secret@a:7000,redis://:other-secret@b:7000');
    expect(mixed[0]).toMatch(/different users or passwords/);
    expect(mixed.join(' ')).not.toMatch(/secret/);
    expect(problems('redis://:same@a:7000,redis://b:7000,redis://:same@c:7000')).toEqual([]);
  });
});
