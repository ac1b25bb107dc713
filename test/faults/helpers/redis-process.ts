/**
 * A throwaway `redis-server` as a child process on 127.0.0.1, without persistence, for the
 * fault suite to kill, freeze (SIGSTOP) and start again on the same port. Every process
 * started here is killed by `stop()`, and also when the test process exits.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { freePort } from './free-port.js';

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

export class RedisProcess {
  #child: ChildProcess | undefined;
  #output = '';

  private constructor(readonly port: number) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /** Starts redis-server on a free port (or `port`) and waits until it accepts connections. */
  static async start(port?: number): Promise<RedisProcess> {
    const redis = new RedisProcess(port ?? (await freePort()));
    await redis.restart();
    return redis;
  }

  /** Starts it (again) on its port; it must not be running. */
  async restart(timeoutMs = 15_000): Promise<void> {
    if (this.#child) throw new Error('redis-server is still running');
    const child = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.#child = child;
    running.add(child);
    let output = '';
    const onData = (chunk: string) => {
      output += chunk;
      this.#output += chunk;
    };
    child.stdout!.setEncoding('utf8').on('data', onData);
    child.stderr!.setEncoding('utf8').on('data', onData);
    child.on('exit', () => {
      running.delete(child);
      if (this.#child === child) this.#child = undefined;
    });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`redis-server did not start within ${timeoutMs} ms:\n${output}`)), timeoutMs);
      const check = () => {
        if (output.includes('Ready to accept connections')) {
          clearTimeout(timer);
          resolve();
        }
      };
      child.stdout!.on('data', check);
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`redis-server exited (${code ?? signal}) before it was ready:\n${output}`));
      });
      child.once('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
    });
  }

  /** SIGKILL, and waits for the exit: connections are closed by the kernel, nothing answers on the port. */
  async kill(): Promise<void> {
    const child = this.#child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGCONT'); // a frozen process dies of SIGKILL too, but let it go first
    child.kill('SIGKILL');
    await exited;
  }

  /** SIGSTOP: connections stay open and nothing is answered, commands hang rather than fail. */
  freeze(): void {
    this.#child?.kill('SIGSTOP');
  }

  thaw(): void {
    this.#child?.kill('SIGCONT');
  }

  /** What it printed, for failure messages. */
  logs(): string {
    return this.#output;
  }
}
