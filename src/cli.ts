#!/usr/bin/env node
import { normalizeEmail } from './core/password-policy.js';
import { configOrExit, createLogger, openStore, serve } from './server/start.js';

const USAGE = `Usage: tessera <command>

Commands:
  serve                  start the server (migrations run first)
  migrate                apply pending database migrations and exit
  users disable EMAIL    a disabled user cannot sign in and all their sessions stop at once
  users enable EMAIL     undo "users disable"

Configuration is read from environment variables; see docs/configuration.md.`;

async function main(argv: string[]): Promise<number> {
  const [command, sub, arg] = argv;
  if (command === 'serve') {
    await serve(process.env);
    return -1; // keeps running
  }
  if (command === 'migrate') {
    const config = configOrExit(process.env);
    const { database } = await openStore(config, createLogger(config));
    await database.db.destroy();
    return 0;
  }
  if (command === 'users' && (sub === 'disable' || sub === 'enable') && arg) {
    const config = configOrExit(process.env);
    const { store, database } = await openStore(config, createLogger({ ...config, logLevel: 'warn' }));
    const found = await store.setUserDisabled(normalizeEmail(arg), sub === 'disable', new Date());
    await database.db.destroy();
    if (!found) {
      process.stderr.write(`tessera: no user with email ${arg}\n`);
      return 1;
    }
    process.stdout.write(`${sub === 'disable' ? 'disabled' : 'enabled'} ${normalizeEmail(arg)}\n`);
    return 0;
  }
  process.stderr.write(`${USAGE}\n`);
  return command === undefined || command === 'help' || command === '--help' ? 0 : 2;
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
