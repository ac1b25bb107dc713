/**
 * A throwaway Redis Cluster of three masters (no replicas) on free loopback ports, for the
 * fault suite: `redis-server --cluster-enabled yes` children with their `nodes-P.conf` in a
 * temporary directory, joined by `redis-cli --cluster create`. A master can be frozen
 * (SIGSTOP), or killed and started again on its port with its node file, so it takes its
 * slots back. `stop()` kills
 * every process and removes the directory (call it in afterAll); the processes are also
 * killed when the test process exits.
 */
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './free-port.js';

const exec = promisify(execFile);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/**
 * Why this machine cannot run a local cluster, or undefined when it can: redis-server and
 * redis-cli on PATH, version 7 or later (`--cluster-port` lets the bus port be any free port).
 */
export function clusterToolsProblem(): string | undefined {
  for (const tool of ['redis-server', 'redis-cli']) {
    const run = spawnSync(tool, ['--version'], { encoding: 'utf8', timeout: 5_000 });
    if (run.error || run.status !== 0) return `${tool} is not installed (apt-get install redis-server)`;
    const major = Number(/(?:v=|redis-cli )(\d+)\./.exec(run.stdout)?.[1]);
    if (!(major >= 7)) return `${tool} is older than 7.0 (${run.stdout.trim()}): the cluster test needs --cluster-port`;
  }
  return undefined;
}

interface Node {
  port: number;
  busPort: number;
  child: ChildProcess | undefined;
  output: string;
}

export class LocalRedisCluster {
  readonly #dir = mkdtempSync(join(tmpdir(), 'tessera-redis-cluster-'));
  readonly #nodes: Node[] = [];

  /** Milliseconds without an answer before the other masters mark a master failed (`cluster-node-timeout`). */
  constructor(readonly nodeTimeoutMs = 5_000) {}

  /** Ports of the masters, in start order. */
  get ports(): number[] {
    return this.#nodes.map((n) => n.port);
  }

  /** REDIS_URL for seeds `which` (indexes into `ports`): `redis://127.0.0.1:P,redis://127.0.0.1:Q`. */
  seedUrl(...which: number[]): string {
    return which.map((i) => `redis://127.0.0.1:${this.ports[i]}`).join(',');
  }

  /** Starts three masters, joins them, and waits (at most 30 s) until the cluster is ok on each. */
  async start(masters = 3): Promise<void> {
    for (let i = 0; i < masters; i++) {
      const node: Node = { port: await freePort(), busPort: await freePort(), child: undefined, output: '' };
      this.#nodes.push(node);
      await this.#spawn(node);
    }
    await exec(
      'redis-cli',
      ['--cluster', 'create', ...this.ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes'],
      { timeout: 30_000 },
    );
    for (const port of this.ports) await this.waitForState('ok', port, 30_000);
  }

  /** SIGKILL one master and wait for its exit: its port refuses, its connections are reset. */
  async kill(port: number): Promise<void> {
    const child = this.#node(port).child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGCONT'); // a frozen process dies of SIGKILL too, but let it go first
    child.kill('SIGKILL');
    await exited;
  }

  /** SIGSTOP one master: its connections stay open and nothing is answered (a hang, not an error). */
  freeze(port: number): void {
    this.#node(port).child?.kill('SIGSTOP');
  }

  thaw(port: number): void {
    this.#node(port).child?.kill('SIGCONT');
  }

  /** Starts a killed master again on its port, with its node file: it rejoins with its slots (empty: no persistence). */
  async restart(port: number): Promise<void> {
    const node = this.#node(port);
    if (node.child) throw new Error(`redis-server on ${port} is still running`);
    await this.#spawn(node);
  }

  /** `redis-cli -p port args…` (5 s at most), its output trimmed. */
  async cli(port: number, ...args: string[]): Promise<string> {
    const { stdout } = await exec('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args], { timeout: 5_000 });
    return stdout.trim();
  }

  /** `cluster_state` as `port` sees it: ok or fail. */
  async state(port: number): Promise<string> {
    return /cluster_state:(\w+)/.exec(await this.cli(port, 'cluster', 'info'))?.[1] ?? 'unknown';
  }

  /** Polls `port` every 100 ms until its cluster_state is `state`; throws after `timeoutMs` (or 600 polls). */
  async waitForState(state: 'ok' | 'fail', port: number, timeoutMs: number): Promise<number> {
    const started = Date.now();
    let seen = '';
    for (let i = 0; i < 600 && Date.now() - started < timeoutMs; i++) {
      seen = await this.state(port).catch((e: Error) => `unreachable (${e.message.split('\n')[0]})`);
      if (seen === state) return Date.now() - started;
      await sleep(100);
    }
    throw new Error(`cluster_state on ${port} still ${seen}, not ${state}, after ${Date.now() - started} ms`);
  }

  /** The port of the master that holds `key`'s slot, asked of the master on `via`. */
  async masterOf(key: string, via: number): Promise<number> {
    const slot = Number(await this.cli(via, 'cluster', 'keyslot', key));
    for (const line of (await this.cli(via, 'cluster', 'nodes')).split('\n')) {
      // <id> <ip:port@bus> <flags> <master> <ping-sent> <pong-recv> <epoch> <link> <slot ranges…>
      const [, address, flags] = line.split(' ');
      const ranges = line.split(' ').slice(8);
      if (!flags?.includes('master')) continue;
      for (const range of ranges) {
        const [from, to = from] = range.split('-').map(Number);
        if (slot >= from! && slot <= to!) return Number(address!.split(':')[1]!.split('@')[0]);
      }
    }
    throw new Error(`no master holds slot ${slot} of ${key}`);
  }

  /** What the nodes printed, for failure messages. */
  logs(): string {
    return this.#nodes.map((n) => `--- redis-server ${n.port}\n${n.output}`).join('\n');
  }

  /** Kills every node and removes the directory; safe to call after a failed start. */
  async stop(): Promise<void> {
    await Promise.all(this.ports.map((port) => this.kill(port)));
    rmSync(this.#dir, { recursive: true, force: true });
  }

  #node(port: number): Node {
    const node = this.#nodes.find((n) => n.port === port);
    if (!node) throw new Error(`no node on ${port}`);
    return node;
  }

  async #spawn(node: Node, timeoutMs = 15_000): Promise<void> {
    // The options of the brief, plus a bus port of our own (port + 10000 may be taken, or past 65535).
    const args = [
      '--port', String(node.port),
      '--cluster-enabled', 'yes',
      '--cluster-config-file', join(this.#dir, `nodes-${node.port}.conf`),
      '--cluster-port', String(node.busPort),
      '--cluster-node-timeout', String(this.nodeTimeoutMs),
      '--save', '',
      '--appendonly', 'no',
      '--bind', '127.0.0.1',
      '--daemonize', 'no',
      '--dir', this.#dir,
    ];
    const child = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    node.child = child;
    running.add(child);
    let output = '';
    const onData = (chunk: string) => {
      output += chunk;
      node.output += chunk;
    };
    child.stdout!.setEncoding('utf8').on('data', onData);
    child.stderr!.setEncoding('utf8').on('data', onData);
    child.on('exit', () => {
      running.delete(child);
      if (node.child === child) node.child = undefined;
    });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`redis-server ${node.port} did not start within ${timeoutMs} ms:\n${output}`)), timeoutMs);
      const check = () => {
        if (output.includes('Ready to accept connections')) {
          clearTimeout(timer);
          resolve();
        }
      };
      child.stdout!.on('data', check);
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`redis-server ${node.port} exited (${code ?? signal}) before it was ready:\n${output}`));
      });
      child.once('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
    });
  }
}
