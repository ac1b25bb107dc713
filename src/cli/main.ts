#!/usr/bin/env node
import { setUserDisabled } from '../auth/set-user-disabled.js';
import { MIGRATIONS } from '../store/database.js';
import { commandLogger, configOrExit, openStore } from './setup.js';
import { keysCommand } from './keys.js';
import { usersImport, usersRoles } from './users.js';

const USAGE = `Usage: tessera <command>

Commands:
  serve                  start the server (migrations run first)
  migrate                apply pending database migrations and exit
  users disable EMAIL    a disabled user cannot sign in and all their sessions stop at once
  users enable EMAIL     undo "users disable"
  users import FILE      create users from a JSON-lines file; nothing is imported if a line is bad
  users roles EMAIL a,b  replace the user's roles ("" clears them)
  keys list              the signing keys: next, signing, published (tokens may be alive) or expired
  keys rotate [--alg A]  add a key (EdDSA, ES256 or RS256; default SIGNING_ALG): published now, signs 60 s later
  keys retire KID [--force]
                         stop publishing a key; refused while tokens it signed may be alive unless --force

Configuration is read from environment variables; see docs/configuration.md.`;

async function main(argv: string[]): Promise<number> {
  const [command, sub, arg] = argv;
  if (command === 'serve') {
    // Loaded only here: the other commands reach the database without the HTTP application.
    const { serve } = await import('./serve.js');
    await serve(process.env);
    return -1; // keeps running
  }
  if (command === 'migrate' && argv.length === 1) {
    const config = configOrExit(process.env);
    const { database, applied } = await openStore(config, commandLogger(config));
    await database.db.destroy();
    for (const name of applied) process.stdout.write(`applied ${name}\n`);
    const count = Object.keys(MIGRATIONS).length;
    process.stdout.write(`the database is up to date (${count} migration${count === 1 ? '' : 's'})\n`);
    return 0;
  }
  if (command === 'users' && (sub === 'disable' || sub === 'enable') && arg && argv.length === 3) {
    const config = configOrExit(process.env);
    const { store, database } = await openStore(config, commandLogger(config));
    const email = await setUserDisabled({ store, clock: () => new Date() }, arg, sub === 'disable').finally(() => database.db.destroy());
    if (!email) {
      process.stderr.write(`tessera: no user with email ${arg}\n`);
      return 1;
    }
    process.stdout.write(`${sub === 'disable' ? 'disabled' : 'enabled'} ${email}\n`);
    return 0;
  }
  if (command === 'users' && sub === 'import' && arg && argv.length === 3) return usersImport(arg);
  if (command === 'users' && sub === 'roles' && arg && argv.length === 4) return usersRoles(arg, argv[3]!);
  if (command === 'keys') {
    const code = await keysCommand(argv.slice(1));
    if (code !== undefined) return code;
  }
  if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const known = ['serve', 'migrate', 'users', 'keys'].includes(command);
  process.stderr.write(`tessera: ${known ? 'wrong arguments for' : 'unknown command'} "${known ? argv.join(' ') : command}"\n\n${USAGE}\n`);
  return 2;
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exit(code);
  },
  (error) => {
    process.stderr.write(`tessera: ${(error as Error).message}\n`);
    process.exit(1);
  },
);
