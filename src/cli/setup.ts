/**
 * What every CLI command does first: validate the configuration, make a logger, open the
 * database and bring its schema up to date. Nothing here loads the HTTP application.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pino, { type Logger } from 'pino';
import { loadConfig, type Config } from '../core/config.js';
import { LOG_REDACT_PATHS } from '../core/vocabulary.js';
import { migrateToLatest, openDatabase, type OpenDatabase } from '../store/database.js';
import { EventLog, outboxPolicy } from '../store/event-log.js';
import { Store } from '../store/store.js';
import { dataDirHeld, holdDataDir } from './data-dir-lock.js';
import { explainDatabaseError } from './explain-database-error.js';
import { textDestination } from './text-log.js';

/** Validates configuration or exits with one line per problem. */
export function configOrExit(env: NodeJS.ProcessEnv): Config {
  const result = loadConfig(env);
  if (!result.ok) {
    for (const line of result.errors) process.stderr.write(`tessera: ${line}\n`);
    process.stderr.write(`tessera: refusing to start with ${result.errors.length} configuration error(s); see docs/configuration.md\n`);
    process.exit(1);
  }
  return result.config;
}

/**
 * Opens the configured database and brings its schema up to date, or exits with a clear
 * reason. `applied`: the migrations this call ran. On an embedded PGlite in DATA_DIR, `serve`
 * takes the directory for itself and every other command refuses while a server holds it.
 */
export async function openStore(
  config: Config,
  logger: Logger,
  options: { serve?: boolean } = {},
): Promise<{ store: Store; database: OpenDatabase; applied: string[] }> {
  if (config.databaseUrl === undefined) {
    const held = options.serve ? holdDataDir(config.dataDir) : dataDirHeld(config.dataDir, false);
    if (held) {
      logger.fatal(held);
      process.exit(1);
    }
  }
  let database: OpenDatabase | undefined;
  try {
    database = await openDatabase({
      url: config.databaseUrl,
      dataDir: config.dataDir,
      schema: config.databaseSchema,
      pooler: config.databasePooler,
      onPoolError: (error) => logger.warn({ err: { message: error.message } }, 'database connection lost; it is re-opened on the next query'),
      onPoolerDetected: (error) =>
        logger.warn(
          { err: { code: (error as { code?: string }).code, message: error.message } },
          'named prepared statements are lost between transactions: a transaction pooler (PgBouncer pool_mode = transaction) is in front of PostgreSQL; set DATABASE_POOLER=transaction. Sending unnamed statements from now on.',
        ),
    });
    const applied = await migrateToLatest(database.db, config.databaseSchema);
    for (const name of applied) logger.info(`applied migration ${name}`);
    // A command's events (an operator's actions) send their webhooks and notices as the server's do.
    return { store: new Store(database.db, new EventLog(outboxPolicy(config))), database, applied };
  } catch (error) {
    await database?.db.destroy().catch(() => {});
    const reason = explainDatabaseError(error, config.databaseUrl);
    // The description never includes DATABASE_URL itself, which usually carries a password.
    logger.fatal(`cannot open the database (${database?.description ?? (config.databaseUrl ? 'PostgreSQL' : config.dataDir)}): ${reason}`);
    process.exit(1);
  }
}

/**
 * TESSERA_SECRET, or in development a secret generated once into DATA_DIR (mode 0600)
 * so that sessions survive restarts. Production refuses to start without one (see config).
 */
export function resolveSecret(config: Config, logger: Logger): string {
  if (config.secret) return config.secret;
  const file = join(config.dataDir, 'secret');
  try {
    const secret = readFileSync(file, 'utf8').trim();
    if (Buffer.byteLength(secret) < 32) {
      logger.fatal(`${file} holds fewer than 32 bytes; delete it to generate a new one (existing sessions end), or set TESSERA_SECRET`);
      process.exit(1);
    }
    return secret;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    mkdirSync(config.dataDir, { recursive: true });
    const secret = randomBytes(48).toString('base64url');
    try {
      writeFileSync(file, `${secret}\n`, { mode: 0o600, flag: 'wx' });
      logger.warn(`generated a development secret in ${file}; set TESSERA_SECRET in production`);
      return secret;
    } catch {
      // Another process wrote it first: use theirs.
      return readFileSync(file, 'utf8').trim();
    }
  }
}

/**
 * The server's logger: pino's JSON lines for log collectors, or with `terminal` (development,
 * stdout a terminal) one line of text per record.
 */
export function createLogger(config: Config, output: 'json' | 'terminal' = 'json'): Logger {
  const options = { level: config.logLevel, redact: [...LOG_REDACT_PATHS] };
  if (output === 'terminal') return pino(options, textDestination(process.stdout, 'terminal'));
  // Never blocking the event loop: lines are written asynchronously, gathered into writes of
  // 4 KiB or 250 ms, whichever comes first (one write per line cost a refresh ~40 µs of CPU);
  // a warning or worse is written at once, and pino writes out what is left when the process exits.
  const destination = pino.destination({ dest: 1, sync: false, minLength: 4096, periodicFlush: 250 });
  return pino({
    ...options,
    hooks: {
      logMethod(args, method, level) {
        method.apply(this, args);
        if (level >= WARN) destination.flush();
      },
    },
  }, destination);
}

const WARN = 40;

/** The logger of every command but `serve`: warnings and worse, as `tessera: …` lines on stderr. */
export function commandLogger(config: Config): Logger {
  return pino({ level: ['error', 'fatal', 'silent'].includes(config.logLevel) ? config.logLevel : 'warn', redact: [...LOG_REDACT_PATHS] }, textDestination(process.stderr, 'command'));
}
