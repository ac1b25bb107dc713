/**
 * What the CLI's admin commands (`tessera users …`, `tessera events`) share: the stores the
 * admin use cases ask for, on the configured database (openStore: migrated, and refused while
 * a running server holds an embedded one), the acting operator, and flags parsed strictly.
 */
import { userInfo } from 'node:os';
import { cliActor, type AdminActor } from '../auth/admin/actor.js';
import { AdminCursors } from '../auth/admin/cursors.js';
import { resolveUser } from '../auth/admin/target-user.js';
import { TesseraError } from '../core/errors.js';
import { isUuid } from '../core/uuid.js';
import { AccountStore } from '../store/account-store.js';
import { AdminStore } from '../store/admin-store.js';
import { outboxPolicy } from '../store/event-log.js';
import type { Store } from '../store/store.js';
import { commandLogger, configOrExit, openStore, resolveSecret } from './setup.js';

export interface AdminCli {
  store: Store;
  admin: AdminStore;
  accounts: AccountStore;
  adminCursors: AdminCursors;
  clock: () => Date;
  /** `cli:<os user name>` */
  actor: AdminActor;
}

/**
 * Runs `body` with the admin stores open, then closes the database. A refusal of a use case
 * (`TesseraError`: no such user, a bad field, a taken email) is printed as `tessera: <why>`
 * and exits 1; anything else is a failure main.ts reports.
 */
export async function withAdmin(body: (cli: AdminCli) => Promise<number>): Promise<number> {
  const config = configOrExit(process.env);
  const logger = commandLogger(config);
  const { store: plain, database } = await openStore(config, logger);
  // Events recorded here write the webhooks and notices the configuration asks for, as the server's do.
  const store = plain.withOutbox(outboxPolicy(config));
  // Cursors are MAC'd under TESSERA_SECRET, resolved as the server does (in development: DATA_DIR/secret).
  const secret = resolveSecret(config, logger);
  const cli: AdminCli = {
    store,
    admin: new AdminStore(store.db, store.events),
    accounts: new AccountStore(store.db, store.events),
    adminCursors: new AdminCursors(secret, config.secretPrevious),
    clock: () => new Date(),
    actor: operator(),
  };
  try {
    return await body(cli);
  } catch (error) {
    if (!(error instanceof TesseraError)) throw error;
    process.stderr.write(`tessera: ${error.detail ?? error.message}\n`);
    return 1;
  } finally {
    await database.db.destroy();
  }
}

/** The user id `ref` (an email or an id) names, or undefined after saying on stderr that none does. */
export async function userIdOf(cli: AdminCli, ref: string): Promise<string | undefined> {
  const id = await resolveUser(cli, ref);
  if (id === undefined) process.stderr.write(`tessera: no user with ${isUuid(ref.trim()) ? 'id' : 'email'} ${ref}\n`);
  return id;
}

/**
 * `args` as `--name value` options of `allowed` and positional arguments; undefined for an
 * unknown option, one given twice, or one without its value (main.ts then prints the usage).
 */
export function parseFlags(args: readonly string[], allowed: readonly string[]): { options: Map<string, string>; positional: string[] } | undefined {
  const options = new Map<string, string>();
  const positional: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (!arg.startsWith('--')) {
      positional.push(arg);
      continue;
    }
    const value = args[i + 1];
    if (!allowed.includes(arg) || options.has(arg) || value === undefined) return undefined;
    options.set(arg, value);
    i++;
  }
  return { options, positional };
}

/** `--limit N`: 1 to 100, or undefined for the default; null when it is not such a number. */
export function limitFlag(raw: string | undefined): number | undefined | null {
  if (raw === undefined) return undefined;
  return /^\d{1,3}$/.test(raw) && Number(raw) >= 1 && Number(raw) <= 100 ? Number(raw) : null;
}

/** The OS user running the command (`cli:<name>`): who the security log names as the actor. */
export function operator(): AdminActor {
  let name: string;
  try {
    name = userInfo().username;
  } catch {
    // No passwd entry (some containers): the environment is the next best witness.
    name = process.env.USER ?? process.env.LOGNAME ?? `uid-${process.getuid?.() ?? 'unknown'}`;
  }
  return cliActor(name);
}
