/**
 * A real PgBouncer (Debian's `/usr/sbin/pgbouncer`) between server processes and the test
 * PostgreSQL: its own ini and auth file in a temporary directory, a free port on 127.0.0.1,
 * no Unix socket, and the `postgres` user when the test runs as root (PgBouncer refuses
 * root). Every instance is killed by `stop()` (call it in afterAll), and also when the test
 * process exits.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { freePort } from './free-port.js';

export const PGBOUNCER = '/usr/sbin/pgbouncer';
const exec = promisify(execFile);

export type PoolMode = 'transaction' | 'session';

export interface PgBouncer {
  mode: PoolMode;
  host: string;
  port: number;
  /** stderr and stdout so far (PgBouncer logs to stderr). */
  logs(): string;
  stop(): Promise<void>;
}

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/**
 * PgBouncer's path, installing Debian's package when it is missing and this process may
 * (root, apt-get present); otherwise `{ skip }` with the reason. Bounded to 5 minutes.
 */
export async function findOrInstallPgBouncer(): Promise<{ path: string } | { skip: string }> {
  if (existsSync(PGBOUNCER)) return { path: PGBOUNCER };
  if (process.getuid?.() !== 0) return { skip: `${PGBOUNCER} is missing and installing it needs root (apt-get install pgbouncer)` };
  if (!existsSync('/usr/bin/apt-get')) return { skip: `${PGBOUNCER} is missing and there is no apt-get to install it` };
  const apt = (args: string[]) => exec('apt-get', args, { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }, timeout: 150_000 });
  try {
    await apt(['install', '-y', '-qq', 'pgbouncer']).catch(async () => {
      // a fresh machine has no package lists yet
      await apt(['update', '-qq']);
      await apt(['install', '-y', '-qq', 'pgbouncer']);
    });
  } catch (error) {
    return { skip: `${PGBOUNCER} is missing and apt-get install pgbouncer failed: ${String((error as Error).message).split('\n')[0]}` };
  }
  return existsSync(PGBOUNCER) ? { path: PGBOUNCER } : { skip: `apt-get install pgbouncer did not provide ${PGBOUNCER}` };
}


/** uid and gid of `postgres`, when running as root. */
async function postgresUser(): Promise<{ uid: number; gid: number } | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const [uid, gid] = await Promise.all([exec('id', ['-u', 'postgres']), exec('id', ['-g', 'postgres'])]);
  return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
}

/**
 * Starts PgBouncer in `mode` in front of `target` (a postgres:// URL; its database, user and
 * password are used for the server side) and waits until a query goes through it.
 */
export async function startPgBouncer(target: string, mode: PoolMode, options: { poolSize?: number } = {}): Promise<PgBouncer> {
  const url = new URL(target);
  const database = decodeURIComponent(url.pathname.slice(1)) || 'postgres';
  const user = decodeURIComponent(url.username) || 'postgres';
  const password = decodeURIComponent(url.password);
  const owner = await postgresUser();
  const dir = mkdtempSync(join(tmpdir(), `tessera-pgbouncer-${mode}-`));
  if (owner) chownSync(dir, owner.uid, owner.gid);

  // Bounded: a port taken between freePort() and PgBouncer's bind makes it exit; try another.
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const ini = join(dir, 'pgbouncer.ini');
    const authFile = join(dir, 'userlist.txt');
    writeFileSync(authFile, `"${user}" ""\n`, { mode: 0o600 });
    writeFileSync(
      ini,
      [
        '[databases]',
        `${database} = host=${url.hostname} port=${url.port || 5432} dbname=${database} user=${user}${password ? ` password=${password}` : ''}`,
        '[pgbouncer]',
        'listen_addr = 127.0.0.1',
        `listen_port = ${port}`,
        // no Unix socket: /var/run/postgresql belongs to the machine's PostgreSQL
        'unix_socket_dir =',
        'auth_type = trust',
        `auth_file = ${authFile}`,
        `pool_mode = ${mode}`,
        `default_pool_size = ${options.poolSize ?? 20}`,
        'max_client_conn = 200',
        // node-postgres sends extra_float_digits at start-up; PgBouncer refuses unknown parameters
        'ignore_startup_parameters = extra_float_digits',
        'log_connections = 0',
        'log_disconnections = 0',
        '',
      ].join('\n'),
      { mode: 0o600 },
    );
    if (owner) for (const file of [ini, authFile]) chownSync(file, owner.uid, owner.gid);

    const child = spawn(PGBOUNCER, [ini], { stdio: ['ignore', 'pipe', 'pipe'], ...(owner ?? {}) });
    running.add(child);
    let output = '';
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    const exited = new Promise<void>((resolve) => child.on('exit', () => (running.delete(child), resolve())));
    const stop = async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
        await exited;
        clearTimeout(timer);
      }
    };

    try {
      await untilItAnswers(`postgres://${encodeURIComponent(user)}${password ? `:${encodeURIComponent(password)}` : ''}@127.0.0.1:${port}/${database}`, child, () => output);
      return {
        mode,
        host: '127.0.0.1',
        port,
        logs: () => output,
        async stop() {
          await stop();
          rmSync(dir, { recursive: true, force: true });
        },
      };
    } catch (error) {
      lastError = error;
      await stop();
    }
  }
  rmSync(dir, { recursive: true, force: true });
  throw lastError;
}

/** Polls `select 1` through PgBouncer for at most 10 s. */
async function untilItAnswers(url: string, child: ChildProcess, output: () => string): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`pgbouncer exited (${child.exitCode ?? child.signalCode}):\n${output()}`);
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1_000 });
    try {
      await client.connect();
      await client.query('select 1');
      return;
    } catch (error) {
      if (Date.now() > deadline) throw new Error(`pgbouncer did not answer within 10 s (${(error as Error).message}):\n${output()}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    } finally {
      await client.end().catch(() => {});
    }
  }
}
