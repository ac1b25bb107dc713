import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/** Linux's USER_HZ: /proc reports CPU time in these ticks. */
const TICK_MS = 10;

export interface Child {
  name: string;
  pid: number;
  process: ChildProcess;
  /** Set once the process has exited, whoever stopped it. */
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** True if it exited without being asked to. */
  crashed(): boolean;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves when it has exited. */
  stop(graceMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Every child this process started, so that an interrupted run still stops them (by pid, nothing else). */
const live = new Set<Child>();

/**
 * Starts a server as a child process with its output appended to `logFile`, and
 * waits until `readyUrl` answers 200 (or the process dies, or `timeoutMs` passes).
 */
export async function startChild(options: {
  name: string;
  command: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  logFile: string;
  readyUrl: string;
  timeoutMs?: number;
}): Promise<Child> {
  const log = createWriteStream(options.logFile, { flags: 'a' });
  log.write(`\n--- ${new Date().toISOString()} ${options.command} ${options.args.join(' ')}\n`);
  const child = spawn(options.command, options.args, { env: options.env, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout?.pipe(log, { end: false });
  child.stderr?.pipe(log, { end: false });
  let stopping = false;
  let exited = false;
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      exited = true;
      resolve({ code, signal });
    });
  });
  const handle: Child = {
    name: options.name,
    pid: child.pid ?? -1,
    process: child,
    exit,
    crashed: () => exited && !stopping,
    async stop(graceMs = 15_000) {
      stopping = true;
      if (!exited) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
        await exit;
        clearTimeout(timer);
      }
      live.delete(handle);
      // Let the piped output drain before the log is closed.
      await sleep(20);
      log.end();
      return exit;
    },
  };
  live.add(handle);

  const deadline = Date.now() + (options.timeoutMs ?? 90_000);
  for (;;) {
    if (exited) {
      live.delete(handle);
      log.end();
      throw new Error(`${options.name} exited during start-up (see ${options.logFile})`);
    }
    try {
      const res = await fetch(options.readyUrl, { signal: AbortSignal.timeout(2_000) });
      await res.arrayBuffer();
      if (res.status === 200) return handle;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await handle.stop();
      throw new Error(`${options.name} was not ready within ${(options.timeoutMs ?? 90_000) / 1000} s (see ${options.logFile})`);
    }
    await sleep(100);
  }
}

/** Stops every child still running (used on errors and interrupts). */
export async function stopAllChildren(): Promise<void> {
  await Promise.all([...live].map((c) => c.stop(5_000).catch(() => {})));
}

function readTicks(statPath: string): number {
  try {
    const stat = readFileSync(statPath, 'utf8');
    // Fields after the command name, which is in parentheses and may contain spaces.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]); // utime + stime
  } catch {
    return 0;
  }
}

function commOf(pid: string): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

/** CPU ticks of every process called `postgres` on the machine (the server and its backends), by pid. */
function postgresTicks(): Map<string, number> {
  const ticks = new Map<string, number>();
  for (const pid of readdirSync('/proc')) {
    if (/^\d+$/.test(pid) && commOf(pid) === 'postgres') ticks.set(pid, readTicks(`/proc/${pid}/stat`));
  }
  return ticks;
}

/**
 * PostgreSQL CPU between two readings, per process: a backend or autovacuum worker that
 * exited in between must not subtract its whole history, and one that started counts from zero.
 */
function postgresDelta(before: Map<string, number>, after: Map<string, number>): number {
  let total = 0;
  for (const [pid, ticks] of after) total += Math.max(0, ticks - (before.get(pid) ?? 0));
  return total;
}

/** Busy ticks of the whole machine, all cores (everything but idle and iowait). */
function machineBusyTicks(): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
  const [, user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).map(Number);
  return (user ?? 0) + (nice ?? 0) + (system ?? 0) + (irq ?? 0) + (softirq ?? 0) + (steal ?? 0);
}

export interface CpuUse {
  /** CPU milliseconds spent in the window by the server under test, PostgreSQL, this load generator, and everything else on the machine. */
  serverMs: number;
  postgresMs: number;
  loadGeneratorMs: number;
  otherMs: number;
  wallMs: number;
}

/**
 * CPU accounting over the measured window. "Other" is the machine's busy time less the
 * three known parties: when it is large, something else was running and the run is noisy.
 */
export class CpuMeter {
  #start: { server: number; pg: Map<string, number>; self: NodeJS.CpuUsage; busy: number; wall: number } | undefined;
  #result: CpuUse | undefined;

  constructor(
    private readonly serverPid: number,
    private readonly countPostgres: boolean,
  ) {}

  open(): void {
    this.#start = {
      server: readTicks(`/proc/${this.serverPid}/stat`),
      pg: this.countPostgres ? postgresTicks() : new Map<string, number>(),
      self: process.cpuUsage(),
      busy: machineBusyTicks(),
      wall: performance.now(),
    };
  }

  close(): void {
    const s = this.#start;
    if (!s) return;
    const serverMs = (readTicks(`/proc/${this.serverPid}/stat`) - s.server) * TICK_MS;
    const postgresMs = this.countPostgres ? postgresDelta(s.pg, postgresTicks()) * TICK_MS : 0;
    const self = process.cpuUsage(s.self);
    const loadGeneratorMs = (self.user + self.system) / 1000;
    const busyMs = (machineBusyTicks() - s.busy) * TICK_MS;
    this.#result = {
      serverMs,
      postgresMs,
      loadGeneratorMs: Math.round(loadGeneratorMs),
      otherMs: Math.max(0, Math.round(busyMs - serverMs - postgresMs - loadGeneratorMs)),
      wallMs: Math.round(performance.now() - s.wall),
    };
  }

  get result(): CpuUse | undefined {
    return this.#result;
  }
}

/** Resident set size of a process, MiB. */
export function rssMiB(pid: number): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
    return kb / 1024;
  } catch {
    return 0;
  }
}

/** Samples a process's RSS every `everyMs` until stopped; returns the peak. */
export function sampleRss(pid: number, everyMs = 100): { stop(): number; peak(): number } {
  let peak = rssMiB(pid);
  const timer = setInterval(() => {
    peak = Math.max(peak, rssMiB(pid));
  }, everyMs);
  return {
    peak: () => peak,
    stop() {
      clearInterval(timer);
      peak = Math.max(peak, rssMiB(pid));
      return peak;
    },
  };
}

/** A loopback port free at the moment of asking, for a server about to start. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}
