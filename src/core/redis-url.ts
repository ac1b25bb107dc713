/** One address of a Redis Cluster's seed list. */
export interface RedisNodeAddress {
  host: string;
  port: number;
}

/**
 * REDIS_URL with REDIS_CLUSTER=on: the seed nodes a Redis Cluster client starts from (it learns
 * the other masters from them), and the TLS and credentials every node of the cluster shares.
 */
export interface RedisClusterSeeds {
  nodes: RedisNodeAddress[];
  /** `rediss://`: every node is reached over TLS. */
  tls: boolean;
  username: string | undefined;
  password: string | undefined;
}

// A comma starts a new address only before a scheme, so a comma inside a password stays in it.
const NEXT_ADDRESS = /,\s*(?=rediss?:\/\/)/i;

/** True when REDIS_URL holds more than one address (`redis://a:6379,redis://b:6379`). */
export function listsSeveralRedisAddresses(raw: string): boolean {
  return raw.split(NEXT_ADDRESS).length > 1;
}

/**
 * Reads REDIS_URL as the seed nodes of a Redis Cluster: one `redis://` or `rediss://` URL, or
 * several separated by commas. Problems are worded for the operator and never repeat a URL,
 * which may carry a password.
 *
 * @example
 * parseRedisClusterSeeds('redis://10.0.0.1:7000,redis://10.0.0.2:7000')
 * // { seeds: { nodes: [{ host: '10.0.0.1', port: 7000 }, …], tls: false, … }, problems: [] }
 */
export function parseRedisClusterSeeds(raw: string): { seeds: RedisClusterSeeds | undefined; problems: string[] } {
  const problems: string[] = [];
  const parts = raw.split(NEXT_ADDRESS).map((p) => p.trim());
  const which = (i: number) => (parts.length > 1 ? `address ${i + 1} of REDIS_URL` : 'REDIS_URL');
  const urls: URL[] = [];
  parts.forEach((part, i) => {
    const url = /^rediss?:\/\//i.test(part) && URL.canParse(part) ? new URL(part) : undefined;
    if (!url || !url.hostname) {
      problems.push(`${which(i)} is not a redis:// or rediss:// URL with a host: list a cluster's nodes as redis://host:port,redis://host:port (each with its scheme)`);
    } else if (!/^\/?0?$/.test(url.pathname)) {
      problems.push(`${which(i)} names a database: a Redis Cluster has database 0 only, remove the /${url.pathname.slice(1)}`);
    } else if (url.search || url.hash) {
      problems.push(`${which(i)} has a query or fragment: in cluster mode options are not read from the URL, remove them`);
    } else {
      urls.push(url);
    }
  });
  if (problems.length) return { seeds: undefined, problems };

  // One client setting serves every node the cluster reports, so the seeds must agree on it.
  if (new Set(urls.map((u) => u.protocol)).size > 1) {
    problems.push('REDIS_URL mixes redis:// and rediss://: every node of a cluster is reached the same way, use one scheme for all addresses');
  }
  const credentials = new Set(urls.filter((u) => u.username || u.password).map((u) => `${u.username}:${u.password}`));
  if (credentials.size > 1) {
    problems.push('REDIS_URL gives different users or passwords to different addresses: every node of a cluster takes the same ones (give them once, or the same on every address)');
  }
  if (problems.length) return { seeds: undefined, problems };

  const withCredentials = urls.find((u) => u.username || u.password);
  return {
    seeds: {
      nodes: urls.map((u) => ({ host: u.hostname.replace(/^\[(.*)\]$/, '$1'), port: u.port ? Number(u.port) : 6379 })),
      tls: urls[0]!.protocol === 'rediss:',
      username: withCredentials?.username ? decodeURIComponent(withCredentials.username) : undefined,
      password: withCredentials?.password ? decodeURIComponent(withCredentials.password) : undefined,
    },
    problems,
  };
}
