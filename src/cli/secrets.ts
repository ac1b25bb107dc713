/**
 * `tessera secrets rotate`: the last step of changing TESSERA_SECRET without signing anyone
 * out (docs/operations.md). With the new secret in TESSERA_SECRET and the old one in
 * TESSERA_SECRET_PREVIOUS, it re-seals every value the database keeps sealed under the new
 * secret, so that the previous one is needed for nothing stored. Refresh tokens and feed
 * cursors are not stored: the previous secret stays configured for them (the rule it prints).
 * Nothing here loads the HTTP application.
 */
import { signingKeySealer } from '../auth/key-ring.js';
import { totpSecretSealer } from '../auth/mfa/totp-sealer.js';
import { UnsealError, type Sealer } from '../core/seal.js';
import type { Config } from '../core/config.js';
import { SecondFactorStore } from '../store/second-factor-store.js';
import type { Store } from '../store/store.js';
import { commandLogger, configOrExit, openStore, resolveSecret } from './setup.js';

/** The store methods the sealed columns are walked with (one per column), and its database for the other stores' columns. */
export type ResealStore = Pick<Store, 'resealSigningKeys' | 'db'>;

/** One column of the database that holds values sealed under a key derived from TESSERA_SECRET. */
export interface SealedColumn {
  /** What it holds and where, as the report names it. */
  name: string;
  /** What one row is, with its id in the report: `signing key <kid>`. */
  item: string;
  /** Its sealer: the key purpose it is sealed for, under TESSERA_SECRET and TESSERA_SECRET_PREVIOUS. */
  sealer(secret: string, previous: string | undefined): Sealer;
  /** Offers every row's sealed value (and its id) to `reseal`, and stores what it returns. */
  walk(store: ResealStore, reseal: (sealed: string, id: string) => string | undefined): Promise<{ rows: number; resealed: number }>;
}

/**
 * Every sealed column: what `tessera secrets rotate` re-seals. A column sealed later is one
 * more entry here, with a `reseal…` method of its store beside it.
 */
export const SEALED_COLUMNS: readonly SealedColumn[] = [
  {
    name: 'signing keys (signing_keys.private_jwk_sealed)',
    item: 'signing key',
    sealer: signingKeySealer,
    walk: (store, reseal) => store.resealSigningKeys(reseal),
  },
  {
    name: 'TOTP secrets (totp_factors.secret_sealed)',
    item: 'TOTP secret of user',
    sealer: totpSecretSealer,
    walk: (store, reseal) => new SecondFactorStore(store.db).resealTotpSecrets(reseal),
  },
];

export interface ResealReport {
  column: SealedColumn;
  /** Values found. */
  rows: number;
  /** Moved from the previous secret to TESSERA_SECRET by this run. */
  resealed: number;
  /** Ids of values neither secret opens: left as they are. */
  unreadable: string[];
}

/**
 * Re-seals every value of every sealed column under `secret`, opening it with `secret` or
 * `previous`. Idempotent: a value already under `secret` is left alone, so a second run
 * re-seals nothing. A value neither opens is reported, not changed.
 *
 * @example
 * const reports = await resealAll(store, config.secret, config.secretPrevious);
 */
export async function resealAll(
  store: ResealStore, secret: string, previous: string | undefined, columns: readonly SealedColumn[] = SEALED_COLUMNS,
): Promise<ResealReport[]> {
  const reports: ResealReport[] = [];
  for (const column of columns) {
    const sealer = column.sealer(secret, previous);
    const unreadable: string[] = [];
    const { rows, resealed } = await column.walk(store, (sealed, id) => {
      try {
        return sealer.reseal(sealed);
      } catch (error) {
        if (!(error instanceof UnsealError)) throw error;
        unreadable.push(id);
        return undefined;
      }
    });
    reports.push({ column, rows, resealed, unreadable });
  }
  return reports;
}

/** Runs `tessera secrets …` with the arguments after `secrets`; returns the exit code, or undefined for unknown arguments. */
export async function secretsCommand(args: string[]): Promise<number | undefined> {
  if (args.length !== 1 || args[0] !== 'rotate') return undefined;
  const config = configOrExit(process.env);
  const logger = commandLogger(config);
  const secret = resolveSecret(config, logger);
  const { store, database } = await openStore(config, logger);
  const reports = await resealAll(store, secret, config.secretPrevious).finally(() => database.db.destroy());
  return printReports(reports, config, new Date());
}

function printReports(reports: ResealReport[], config: Config, now: Date): number {
  const out = (line: string) => process.stdout.write(`${line}\n`);
  for (const { column, rows, resealed, unreadable } of reports) {
    const current = rows - resealed - unreadable.length;
    out(`${column.name}: ${plural(rows, 'value')}; ${resealed} re-sealed under TESSERA_SECRET now, ${current} already under it` +
      (unreadable.length ? `, ${unreadable.length} left as ${unreadable.length === 1 ? 'it is' : 'they are'}` : ''));
    for (const id of unreadable) {
      process.stderr.write(`tessera: ${column.item} ${id} is sealed under ${config.secretPrevious ? 'neither TESSERA_SECRET nor TESSERA_SECRET_PREVIOUS' : 'another secret than TESSERA_SECRET'}\n`);
    }
  }
  const unreadable = reports.reduce((n, r) => n + r.unreadable.length, 0);
  if (unreadable > 0) {
    const one = unreadable === 1;
    process.stderr.write(
      `tessera: ${plural(unreadable, 'sealed value')} could not be opened and ${one ? 'was' : 'were'} left as ${one ? 'it was' : 'they were'}: ` +
        `set TESSERA_SECRET_PREVIOUS to the secret ${one ? 'it was' : 'they were'} sealed with and run \`tessera secrets rotate\` again\n`,
    );
    return 1;
  }
  if (!config.secretPrevious) {
    out('TESSERA_SECRET_PREVIOUS is not set: every sealed value opens under TESSERA_SECRET alone.');
    return 0;
  }
  const until = new Date(now.getTime() + config.sessionMaxAge * 1000).toISOString();
  out('Every sealed value is now under TESSERA_SECRET: no stored value needs TESSERA_SECRET_PREVIOUS any more.');
  out('');
  out('Next:');
  out(`- Keep TESSERA_SECRET_PREVIOUS set on every node for SESSION_MAX_AGE (${formatSeconds(config.sessionMaxAge)}) after the last node started with the new`);
  out(`  TESSERA_SECRET (if that was before now: until ${until}). Refresh tokens are not stored, so they cannot be re-sealed:`);
  out('  a token made under the previous secret belongs to a session that began before the change, and a session lives');
  out('  up to SESSION_MAX_AGE. Removing it sooner signs out every session that has not refreshed since the change, and');
  out('  its older tokens no longer reveal theft. Access tokens are not affected (the signing keys sign them).');
  out('- Then remove TESSERA_SECRET_PREVIOUS and restart the nodes. `tessera secrets rotate` without it checks that every');
  out('  sealed value opens under TESSERA_SECRET alone.');
  return 0;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/** 2592000 → `30d`, 5400 → `90m`: the largest unit that divides it. */
function formatSeconds(seconds: number): string {
  for (const [unit, size] of [['d', 86_400], ['h', 3_600], ['m', 60]] as const) {
    if (seconds % size === 0) return `${seconds / size}${unit}`;
  }
  return `${seconds}s`;
}
