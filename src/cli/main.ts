#!/usr/bin/env node
import { MIGRATIONS } from '../store/database.js';
import { commandLogger, configOrExit, openStore } from './setup.js';
import { eventsCommand } from './admin-events.js';
import { keysCommand } from './keys.js';
import { secretsCommand } from './secrets.js';
import { usersCommand, usersImport, usersRoles } from './users.js';

const USAGE = `Usage: tessera <command>

Commands:
  serve                  start the server (migrations run first)
  migrate                apply pending database migrations and exit
  users list [--query Q] [--limit N] [--cursor C]
                         users in email order, by email or name prefix; N from 1 to 100 (default 50)
  users show USER        one user: roles, organisation, metadata, sessions, second factors
  users create EMAIL [--name N] [--roles a,b]
                         a user without a password: they set one with a password reset
  users delete USER      delete the account: sessions end, security events stay without IP addresses
  users disable USER     a disabled user cannot sign in and all their sessions stop at once
  users enable USER      undo "users disable"
  users sessions USER    the user's active sessions
  users revoke-sessions USER
                         end every session of the user
  users reset-factors USER
                         remove the user's second factors and passkeys (a user locked out of them)
  users import FILE      create users from a JSON-lines file; nothing is imported if a line is bad
  users roles EMAIL a,b  replace the user's roles ("" clears them)
  events [--user USER] [--type T] [--limit N] [--before C]
                         security events of every user (or one), newest first
  keys list              the signing keys: next, signing, published (tokens may be alive) or expired
  keys rotate [--alg A]  add a key (EdDSA, ES256 or RS256; default SIGNING_ALG): published now, signs 60 s later
  keys retire KID [--force]
                         stop publishing a key; refused while tokens it signed may be alive unless --force
  secrets rotate         after TESSERA_SECRET changed: re-seal every stored value under it, opening
                         with TESSERA_SECRET_PREVIOUS; says how long to keep the previous secret

USER is an email or a user id. Changes by users and keys commands are recorded as admin_action
events naming cli:<your OS user name>.
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
  if (command === 'users' && sub === 'import' && arg && argv.length === 3) return usersImport(arg);
  if (command === 'users' && sub === 'roles' && arg && argv.length === 4) return usersRoles(arg, argv[3]!);
  if (command === 'users') {
    const code = await usersCommand(argv.slice(1));
    if (code !== undefined) return code;
  }
  if (command === 'events') {
    const code = await eventsCommand(argv.slice(1));
    if (code !== undefined) return code;
  }
  if (command === 'keys') {
    const code = await keysCommand(argv.slice(1));
    if (code !== undefined) return code;
  }
  if (command === 'secrets') {
    const code = await secretsCommand(argv.slice(1));
    if (code !== undefined) return code;
  }
  if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const known = ['serve', 'migrate', 'users', 'events', 'keys', 'secrets'].includes(command);
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
