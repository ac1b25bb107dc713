/**
 * `tessera keys list|rotate|retire`: the signing keys in the database, for operators.
 * Every node picks up a change within 10 s; nothing here loads the HTTP application.
 */
import { retireKeyAsAdmin, rotateKeyAsAdmin, type AdminSigningKeysDeps } from '../auth/admin/signing-keys.js';
import { listSigningKeys } from '../auth/signing-keys.js';
import { TesseraError } from '../core/errors.js';
import { parseSigningAlg, type SigningAlg } from '../core/signing-alg.js';
import { AdminStore } from '../store/admin-store.js';
import { operator } from './admin-setup.js';
import { commandLogger, configOrExit, openStore, resolveSecret } from './setup.js';

/** Runs `tessera keys …` with the arguments after `keys`; returns the exit code. */
export async function keysCommand(args: string[]): Promise<number | undefined> {
  const [sub, ...rest] = args;
  const alg = parseAlg(rest);
  const force = rest.includes('--force');
  const kid = rest.find((a) => !a.startsWith('--'));
  const known = sub === 'list' ? rest.length === 0 : sub === 'rotate' ? alg !== null : sub === 'retire' ? kid !== undefined : false;
  if (!known) return undefined;

  const config = configOrExit(process.env);
  if (config.signingKeys) {
    process.stderr.write('tessera: SIGNING_KEYS is set: the keys come from it, not from the database; rotate them there (docs/configuration.md)\n');
    return 1;
  }
  const logger = commandLogger(config);
  const { store, database } = await openStore(config, logger);
  const deps: AdminSigningKeysDeps = {
    store, admin: new AdminStore(store.db, store.events), secret: resolveSecret(config, logger), accessTokenTtl: config.accessTokenTtl, clock: () => new Date(),
  };
  try {
    if (sub === 'list') return await printList(deps);
    if (sub === 'rotate') {
      // Recorded as admin_action (keys.rotate) naming cli:<os user>, as the admin API records its own.
      const key = await rotateKeyAsAdmin(deps, operator(), alg ?? config.signingAlg);
      process.stdout.write(`added ${key.alg} key ${key.kid}: published now, signs from ${key.signsFrom.toISOString()}\n`);
      return 0;
    }
    await retireKeyAsAdmin(deps, operator(), kid!, force);
    process.stdout.write(`retired ${kid}: no longer published\n`);
    return 0;
  } catch (error) {
    if (!(error instanceof TesseraError)) throw error;
    process.stderr.write(`tessera: ${error.detail ?? error.message}\n`);
    return 1;
  } finally {
    await database.db.destroy();
  }
}

async function printList(deps: AdminSigningKeysDeps): Promise<number> {
  for (const key of await listSigningKeys(deps)) {
    process.stdout.write(`${key.kid}  ${key.alg.padEnd(5)}  ${key.status.padEnd(9)}  signs from ${key.signsFrom.toISOString()}\n`);
  }
  return 0;
}

/** `--alg ES256` if given (undefined: SIGNING_ALG); null if it names no algorithm. */
function parseAlg(args: string[]): SigningAlg | undefined | null {
  const i = args.indexOf('--alg');
  if (i === -1) return undefined;
  return parseSigningAlg(args[i + 1]) ?? null;
}

