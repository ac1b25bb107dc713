/**
 * `tessera users import FILE` and `tessera users roles EMAIL a,b`: the use cases of
 * src/auth on the configured database, with their answers written for a terminal.
 */
import { createReadStream } from 'node:fs';
import { IMPORT_LINE_MAX_BYTES, importUsers } from '../auth/import-users.js';
import { setUserRoles } from '../auth/set-user-roles.js';
import type { RequestMeta } from '../core/vocabulary.js';
import { commandLogger, configOrExit, openStore } from './setup.js';

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
