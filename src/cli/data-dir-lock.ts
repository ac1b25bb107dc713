/**
 * One process at a time on an embedded PGlite data directory. PGlite is not a server: two
 * processes on one DATA_DIR each work on their own copy in memory and overwrite each
 * other's files, so a `tessera users enable` next to a running server printed success and
 * its change was lost. `serve` writes its pid to DATA_DIR/server.pid and removes it on
 * exit; every other command, and a second `serve`, refuses while that process is alive.
 */
import { mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const LOCK_FILE = 'server.pid';

/** Why a command cannot open `dataDir`, or undefined when no live server holds it. */
export function dataDirHeld(dataDir: string, serving: boolean): string | undefined {
  const pid = holder(join(dataDir, LOCK_FILE));
  if (pid === undefined) return undefined;
  const what = serving
    ? 'stop it first, or give this server another DATA_DIR'
    : 'stop it first, or use PostgreSQL (DATABASE_URL) to manage users while it runs';
  return `a running Tessera server (pid ${pid}) holds DATA_DIR ${dataDir}; ${what} (if no such server runs, delete ${join(dataDir, LOCK_FILE)})`;
}

/**
 * For `serve`: takes DATA_DIR for this process, or returns why not. The file is removed at
 * exit (a SIGKILL leaves it behind, and the next start finds its pid dead and takes over).
 */
export function holdDataDir(dataDir: string): string | undefined {
  const file = join(dataDir, LOCK_FILE);
  mkdirSync(dataDir, { recursive: true });
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      // `wx`: of two servers starting together, exactly one creates the file.
      writeFileSync(file, `${process.pid}\n`, { flag: 'wx' });
      process.once('exit', () => release(file));
      return undefined;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const held = dataDirHeld(dataDir, true);
      if (held) return held;
      // Left by a process that is gone: take it over.
      unlinkSync(file);
    }
  }
  return dataDirHeld(dataDir, true) ?? `cannot take ${file}: another process keeps re-creating it`;
}

/** The pid in `file` if that process is alive (and not this one). */
function holder(file: string): number | undefined {
  let pid: number;
  try {
    pid = Number.parseInt(readFileSync(file, 'utf8'), 10);
  } catch {
    return undefined;
  }
  if (!Number.isSafeInteger(pid) || pid <= 0 || pid === process.pid) return undefined;
  try {
    process.kill(pid, 0); // signal 0: only asks whether the process exists
    return pid;
  } catch (error) {
    // EPERM: it exists, under another user.
    return (error as NodeJS.ErrnoException).code === 'EPERM' ? pid : undefined;
  }
}

function release(file: string) {
  try {
    if (Number.parseInt(readFileSync(file, 'utf8'), 10) === process.pid) unlinkSync(file);
  } catch {
    // already gone
  }
}
