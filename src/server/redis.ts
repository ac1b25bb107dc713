import { Cluster, Redis, type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';
import { parseRedisClusterSeeds } from '../core/redis-url.js';

/** REDIS_URL's client: a single Redis, or a Redis Cluster (REDIS_CLUSTER=on). */
export type RedisClient = Redis | Cluster;

/** How long a Redis command may take before the request it serves gets its 503. */
const REDIS_COMMAND_TIMEOUT_MS = 250;
/** How long start-up waits for Redis before serving anyway (503s until Redis is there). */
const FIRST_CONNECTION_WAIT_MS = 5_000;

// Fail fast when Redis is away: a command is refused at once while disconnected (no offline
// queue, no retries) and given up after 250 ms when Redis does not answer, so a request that
// needs a limit check gets its 503 quickly instead of hanging.
const FAIL_FAST: RedisOptions = {
  enableOfflineQueue: false,
  maxRetriesPerRequest: 0,
  commandTimeout: REDIS_COMMAND_TIMEOUT_MS,
  // Not auto-pipelined: ioredis sends one auto-pipeline at a time, so behind a silent Redis each
  // batch waited for the previous one's 250 ms timeout first (503s after up to 500 ms).
  enableAutoPipelining: false,
};

type RedisLogger = Pick<Logger, 'info' | 'warn'>;

/**
 * The REDIS_URL client shared by every rate limit, connected (or given up on after 5 s: it
 * keeps trying in the background, and requests that need it answer 503 until it is there).
 * With `cluster`, REDIS_URL lists seed nodes of a Redis Cluster (see `parseRedisClusterSeeds`).
 *
 * @example
 * const redis = await connectRedis(config.redisUrl, logger, { cluster: config.redisCluster });
 */
export async function connectRedis(url: string, logger: RedisLogger, options: { cluster?: boolean } = {}): Promise<RedisClient> {
  const redis = options.cluster ? clusterClient(url, logger) : singleClient(url, logger);
  // Without an offline queue, commands sent before the first connection would fail: wait for it (bounded).
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, FIRST_CONNECTION_WAIT_MS);
    redis.once('ready', () => {
      clearTimeout(timer);
      resolve();
    });
  });
  if (redis instanceof Cluster) {
    const masters = redis.status === 'ready' ? ` (${redis.nodes('master').length} masters)` : '';
    logger.info(`rate-limit counters are shared through Redis Cluster${masters}`);
  } else {
    logger.info('rate-limit counters are shared through Redis');
  }
  return redis;
}

function singleClient(url: string, logger: RedisLogger): Redis {
  const redis = new Redis(url, FAIL_FAST);
  let redisDown = false;
  redis.on('error', (error) => {
    if (!redisDown) logger.warn({ err: { message: error.message } }, 'redis unreachable; requests that need a rate-limit check answer 503 until it is back');
    redisDown = true;
  });
  redis.on('ready', () => {
    if (redisDown) logger.info('redis is reachable again');
    redisDown = false;
  });
  return redis;
}

/**
 * ioredis' cluster client, failing as fast as the single one. The cluster-level options do the
 * work: ioredis gives every node connection an offline queue and no reconnection of its own
 * (it finds a lost node again through the cluster), so the 250 ms `commandTimeout`, which
 * bounds a command across all its redirections and retries, is what keeps a request short when
 * the master of its slot is dead or frozen.
 */
function clusterClient(url: string, logger: RedisLogger): Cluster {
  const { seeds, problems } = parseRedisClusterSeeds(url);
  if (!seeds) throw new Error(problems.join('; '));
  const cluster = new Cluster(seeds.nodes, {
    // Refused at once while no node answers, as a single Redis without its offline queue.
    enableOfflineQueue: false,
    // CLUSTERDOWN (the cluster lost a master and has no replica to promote): answer now and
    // name the reason; a failover takes seconds, so a retry within 250 ms cannot help.
    retryDelayOnClusterDown: 0,
    // A master that closed its connection: answer now too. ioredis' default (100 ms) holds the
    // command until a whole slots refresh is done, which can wait on the dead node, and no
    // command timeout runs meanwhile if the command first met the closed connection: 503s
    // took over 500 ms. A replica that took over is found anyway, through MOVED or the refresh below.
    retryDelayOnFailover: 0,
    // A frozen or partitioned master gives no error that would make ioredis ask for the slots
    // again: look every 5 s, so a slot comes back once its replica took over.
    slotsRefreshInterval: 5_000,
    slotsRefreshTimeout: 1_000,
    redisOptions: {
      ...FAIL_FAST,
      username: seeds.username,
      password: seeds.password,
      ...(seeds.tls ? { tls: {} } : {}),
    },
    // Over TLS, connect by the names given (their certificates name them), not by resolved addresses.
    ...(seeds.tls ? { dnsLookup: (address: string, callback: (error: null, address: string) => void) => callback(null, address) } : {}),
  });

  // One line when the cluster, or one of its nodes, becomes unreachable, and one when it is back:
  // ioredis reports a lost node on every attempt to reach it, many times a second.
  let clusterDown = false;
  cluster.on('error', (error: Error) => {
    if (!clusterDown) logger.warn({ err: { message: error.message } }, 'redis unreachable; requests that need a rate-limit check answer 503 until it is back');
    clusterDown = true;
  });
  cluster.on('ready', () => {
    if (clusterDown) logger.info('redis is reachable again');
    clusterDown = false;
  });
  watchNodes(cluster, logger);
  return cluster;
}

/** How often a node reported unreachable is asked whether it answers again. */
const NODE_RECHECK_MS = 1_000;

/**
 * Logs a cluster node that fails once, and once more when it answers again. A killed node's
 * connection is made anew, and its `ready` says it is back; a frozen one keeps its connection
 * and ioredis never says so: it is asked (PING) every second until it answers.
 */
function watchNodes(cluster: Cluster, logger: RedisLogger): void {
  const down = new Map<string, NodeJS.Timeout>();
  const keyOf = (redis: Redis) => `${redis.options.host}:${redis.options.port}`;
  const back = (node: string) => {
    const timer = down.get(node);
    if (!timer) return;
    clearInterval(timer);
    down.delete(node);
    logger.info(`redis cluster node ${node} is reachable again`);
  };
  cluster.on('node error', (error: Error, node: string) => {
    if (down.has(node)) return;
    logger.warn({ err: { message: error.message } }, `redis cluster node ${node} unreachable; requests whose counters it holds answer 503 until it is back`);
    const timer = setInterval(() => {
      const client = cluster.nodes().find((redis) => keyOf(redis) === node);
      if (client?.status === 'ready') client.ping().then(() => back(node), () => {});
    }, NODE_RECHECK_MS);
    timer.unref();
    down.set(node, timer);
  });
  cluster.on('+node', (redis: Redis) => redis.once('ready', () => back(keyOf(redis))));
  cluster.on('end', () => {
    for (const timer of down.values()) clearInterval(timer);
    down.clear();
  });
}
