/**
 * `tessera serve` as a real child process: `node --import tsx src/cli/main.ts serve`, configured
 * by environment variables like an operator would. stdout and stderr are kept for the log
 * checks. Every process started here is killed by `stopAll()` (call it in afterAll), and
 * also when the test process exits, so no server outlives its test.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const CHILD_SECRET = 'fault-suite-secret-that-is-at-least-32-bytes!';

export interface ServerProcess {
  url: string;
  port: number;
  pid: number;
  /** stdout and stderr so far. */
  logs(): string;
  /** Sends `signal` (default SIGTERM) and waits for the exit. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly child: ChildProcess;
}

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/**
 * Starts a server and waits until it listens. `env` is the whole configuration, on top
 * of: TESSERA_SECRET, PORT=0, HOST=127.0.0.1, LOG_LEVEL=debug, RATE_LIMITS=off,
 * PUBLIC_URL=http://tessera.test and a throwaway DATA_DIR.
 */
export async function startServer(env: Record<string, string>, options: { timeoutMs?: number } = {}): Promise<ServerProcess> {
  const dataDir = mkdtempSync(join(tmpdir(), 'tessera-fault-'));
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'serve'], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: process.env.HOME ?? dataDir,
      TESSERA_SECRET: CHILD_SECRET,
      PORT: '0',
      HOST: '127.0.0.1',
      LOG_LEVEL: 'debug',
      RATE_LIMITS: 'off',
      PUBLIC_URL: 'http://tessera.test',
      DATA_DIR: dataDir,
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  let output = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('exit', (code, signal) => {
      running.delete(child);
      rmSync(dataDir, { recursive: true, force: true });
      resolve({ code, signal });
    });
  });

  const timeoutMs = options.timeoutMs ?? 45_000;
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the server did not start within ${timeoutMs} ms:\n${output}`));
    }, timeoutMs);
    const check = () => {
      const listening = /Server listening at http:\/\/127\.0\.0\.1:(\d+)/.exec(output);
      if (listening && output.includes('Tessera is ready')) {
        clearTimeout(timer);
        child.stdout!.off('data', check);
        resolve(Number(listening[1]));
      }
    };
    child.stdout!.on('data', check);
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`the server exited (${code ?? signal}) before it was ready:\n${output}`));
    });
  });

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    pid: child.pid!,
    child,
    logs: () => output,
    exited,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Kills every server this process started and waits for them to exit. */
export async function stopAll(): Promise<void> {
  await Promise.all(
    [...running].map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          child.once('exit', () => resolve());
          child.kill('SIGKILL');
        }),
    ),
  );
}
