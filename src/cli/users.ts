/**
 * `tessera users …`: the use cases of src/auth on the configured database, with their answers
 * written for a terminal. `list`, `show`, `create`, `delete`, `disable`, `enable`, `sessions`,
 * `revoke-sessions` and `reset-factors` are the admin API's use cases (src/auth/admin), acting
 * as `cli:<os user name>`; `import` and `roles` are the CLI's own.
 */
import { createReadStream } from 'node:fs';
import { createUser } from '../auth/admin/create-user.js';
import { deleteUser } from '../auth/admin/delete-user.js';
import { listUserSessions } from '../auth/admin/list-user-sessions.js';
import { resetFactors } from '../auth/admin/reset-factors.js';
import { revokeUserSessions } from '../auth/admin/revoke-user-sessions.js';
import { searchUsers } from '../auth/admin/search-users.js';
import { showUser } from '../auth/admin/show-user.js';
import { updateUser } from '../auth/admin/update-user.js';
import { IMPORT_LINE_MAX_BYTES, importUsers } from '../auth/import-users.js';
import { setUserRoles } from '../auth/set-user-roles.js';
import type { RequestMeta } from '../core/vocabulary.js';
import { limitFlag, parseFlags, userIdOf, withAdmin, type AdminCli } from './admin-setup.js';
import { commandLogger, configOrExit, openStore } from './setup.js';

/** The commands that name one user, by email or id. */
const ONE_USER = ['show', 'delete', 'disable', 'enable', 'sessions', 'revoke-sessions', 'reset-factors'] as const;
type OneUserCommand = (typeof ONE_USER)[number];

/**
 * Runs `tessera users <sub> …` (but `import` and `roles`) with the arguments after `users`;
 * returns the exit code, or undefined when the arguments are wrong (main.ts prints the usage, 2).
 */
export async function usersCommand(args: readonly string[]): Promise<number | undefined> {
  const [sub, ...rest] = args;
  if (sub === 'list') {
    const flags = parseFlags(rest, ['--query', '--limit', '--cursor']);
    const limit = limitFlag(flags?.options.get('--limit'));
    if (!flags || flags.positional.length > 0 || limit === null) return undefined;
    return withAdmin((cli) => usersList(cli, flags.options.get('--query'), limit, flags.options.get('--cursor')));
  }
  if (sub === 'create') {
    const flags = parseFlags(rest, ['--name', '--roles']);
    if (!flags || flags.positional.length !== 1) return undefined;
    const roles = flags.options.get('--roles');
    return withAdmin((cli) => usersCreate(cli, flags.positional[0]!, flags.options.get('--name'), roles));
  }
  if ((ONE_USER as readonly string[]).includes(sub ?? '') && rest.length === 1 && !rest[0]!.startsWith('--')) {
    return withAdmin((cli) => oneUser(cli, sub as OneUserCommand, rest[0]!));
  }
  return undefined;
}

async function usersList(cli: AdminCli, query: string | undefined, limit: number | undefined, cursor: string | undefined): Promise<number> {
  const page = await searchUsers(cli, { query, limit, cursor });
  for (const user of page.users) {
    const name = user.name ? `  "${user.name}"` : '';
    const roles = user.roles.length > 0 ? `  roles ${user.roles.join(',')}` : '';
    process.stdout.write(`${user.id}  ${user.email}${name}${roles}${user.disabled ? '  (disabled)' : ''}\n`);
  }
  if (page.users.length === 0) process.stdout.write('no users\n');
  if (page.nextCursor) {
    const again = [query !== undefined ? `--query ${JSON.stringify(query)}` : '', limit !== undefined ? `--limit ${limit}` : ''].filter(Boolean).join(' ');
    process.stdout.write(`more: tessera users list ${again ? `${again} ` : ''}--cursor ${page.nextCursor}\n`);
  }
  return 0;
}

async function usersCreate(cli: AdminCli, email: string, name: string | undefined, roles: string | undefined): Promise<number> {
  // The CLI sets no password: the user sets one through a password reset (none is ever typed into a shell history).
  const hasher = { hash: async (): Promise<string> => { throw new Error('the CLI sets no password'); } };
  const list = roles === undefined || roles.trim() === '' ? undefined : roles.split(',').map((role) => role.trim());
  const user = await createUser({ ...cli, hasher }, cli.actor, { email, ...(name !== undefined ? { name } : {}), ...(list ? { roles: list } : {}) });
  process.stdout.write(`created ${user.email} (${user.id})${user.roles.length > 0 ? ` with roles ${user.roles.join(',')}` : ''}; it has no password until the user sets one with a password reset\n`);
  return 0;
}

async function oneUser(cli: AdminCli, command: OneUserCommand, ref: string): Promise<number> {
  const id = await userIdOf(cli, ref);
  if (id === undefined) return 1;
  const user = await showUser(cli, id);
  switch (command) {
    case 'show':
      printUser(user);
      return 0;
    case 'delete':
      await deleteUser(cli, cli.actor, id);
      process.stdout.write(`deleted ${user.email} (${id}): its sessions ended; its security events are kept, without IP addresses\n`);
      return 0;
    case 'disable':
    case 'enable':
      await updateUser(cli, cli.actor, id, { disabled: command === 'disable' });
      process.stdout.write(`${command === 'disable' ? 'disabled' : 'enabled'} ${user.email}\n`);
      return 0;
    case 'sessions': {
      const sessions = await listUserSessions(cli, id);
      for (const s of sessions) {
        process.stdout.write(`${s.id}  ${s.device}  last used ${s.lastUsedAt.toISOString()}  from ${s.ip ?? 'unknown'}  since ${s.createdAt.toISOString()}\n`);
      }
      if (sessions.length === 0) process.stdout.write(`${user.email} has no active sessions\n`);
      return 0;
    }
    case 'revoke-sessions': {
      const count = await revokeUserSessions(cli, cli.actor, id);
      process.stdout.write(`ended ${count} session${count === 1 ? '' : 's'} of ${user.email}\n`);
      return 0;
    }
    case 'reset-factors': {
      const count = await resetFactors(cli, cli.actor, id);
      process.stdout.write(`removed every second factor and passkey of ${user.email} (${count}); the password alone signs them in now\n`);
      return 0;
    }
  }
}

function printUser(user: Awaited<ReturnType<typeof showUser>>): void {
  const rows: [string, string][] = [
    ['id', user.id],
    ['email', `${user.email} (${user.emailVerified ? 'verified' : 'not verified'})`],
    ['name', user.name || '(none)'],
    ['created', user.createdAt.toISOString()],
    ['disabled', user.disabled ? 'yes' : 'no'],
    ['roles', user.roles.length > 0 ? user.roles.join(',') : '(none)'],
    ['organisation', user.orgId ?? '(none)'],
    ['metadata', JSON.stringify(user.metadata)],
    ['sessions', `${user.activeSessions} active`],
    ['second factors', user.factors.length > 0 ? user.factors.map((f) => `${f.kind}${f.name ? ` "${f.name}"` : ''}`).join(', ') : '(none)'],
  ];
  for (const [label, value] of rows) process.stdout.write(`${`${label}:`.padEnd(16)}${value}\n`);
}

/** What the CLI's security events record: no IP, no browser. */
const CLI_META: RequestMeta = Object.freeze({ ip: null, userAgent: null });

/** Returns the exit code: 0 imported, 1 refused (every reason on stderr, nothing written). */
export async function usersImport(file: string): Promise<number> {
  // Opened (and a missing file reported) before the database is.
  const stream = createReadStream(file);
  await new Promise<void>((resolve, reject) => stream.once('open', () => resolve()).once('error', reject)).catch((error: NodeJS.ErrnoException) => {
    throw new Error(`cannot read ${file}: ${error.code ?? error.message}`);
  });
  const config = configOrExit(process.env);
  const { store, database } = await openStore(config, commandLogger(config));
  const result = await importUsers({ store, clock: () => new Date() }, byteLines(stream, IMPORT_LINE_MAX_BYTES), CLI_META).finally(() => {
    stream.destroy();
    return database.db.destroy();
  });
  switch (result.outcome) {
    case 'imported':
      process.stdout.write(`imported ${result.count} user${result.count === 1 ? '' : 's'} from ${file}\n`);
      return 0;
    case 'invalid':
      for (const { line, reason } of result.problems) process.stderr.write(`${file}:${line}: ${reason}\n`);
      process.stderr.write(`tessera: nothing imported: ${result.problems.length} bad line${result.problems.length === 1 ? '' : 's'}\n`);
      return 1;
    case 'taken':
      for (const { line, email } of result.lines) process.stderr.write(`${file}:${line}: ${email} already has an account\n`);
      process.stderr.write(`tessera: nothing imported: ${result.lines.length} email${result.lines.length === 1 ? ' already has an account' : 's already have accounts'} in the database\n`);
      return 1;
  }
}

/** Returns the exit code: 0 set, 1 no such user; a bad list throws (`invalid_request`, with the reason). */
export async function usersRoles(email: string, list: string): Promise<number> {
  const config = configOrExit(process.env);
  const { store, database } = await openStore(config, commandLogger(config));
  const result = await setUserRoles({ store, clock: () => new Date() }, email, list, CLI_META).finally(() => database.db.destroy());
  if (!result) {
    process.stderr.write(`tessera: no user with email ${email}\n`);
    return 1;
  }
  process.stdout.write(`roles of ${result.email}: ${result.roles.length > 0 ? result.roles.join(',') : '(none)'}\n`);
  return 0;
}

/**
 * Splits a byte stream at LF, without decoding: the use case decodes each line strictly
 * and numbers it. A line longer than `max` bytes is cut to `max + 1` bytes, so one huge
 * line costs no more memory than that and is still reported, at its own number.
 */
export async function* byteLines(stream: AsyncIterable<Buffer>, max: number): AsyncGenerator<Buffer> {
  let parts: Buffer[] = [];
  let length = 0;
  const take = (piece: Buffer) => {
    if (length > max) return;
    const kept = piece.subarray(0, max + 1 - length);
    parts.push(kept);
    length += kept.length;
  };
  for await (const chunk of stream) {
    let start = 0;
    for (let end = chunk.indexOf(10); end !== -1; end = chunk.indexOf(10, start)) {
      take(chunk.subarray(start, end));
      yield Buffer.concat(parts, length);
      parts = [];
      length = 0;
      start = end + 1;
    }
    take(chunk.subarray(start));
  }
  if (length > 0) yield Buffer.concat(parts, length);
}
