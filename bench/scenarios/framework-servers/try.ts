import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { runFrameworkHelpers, summariseFrameworkHelpers, type Framework } from '../framework-helpers.js';
import type { VerifyInput } from '../verify.js';

/**
 * A quick check of bench/scenarios/framework-helpers.ts without Tessera: an Ed25519 key, 100
 * access tokens signed as Tessera signs them, then every framework's bare and helper servers.
 *
 *   node --import tsx bench/scenarios/framework-servers/try.ts [durationS=2] [repeats=1] [express,fastify,nestjs]
 */
const durationS = Number(process.argv[2] ?? 2);
const repeats = Number(process.argv[3] ?? 1);
const frameworks = process.argv[4]?.split(',') as Framework[] | undefined;

const dir = mkdtempSync(join(tmpdir(), 'tessera-framework-helpers-'));
const issuer = 'http://127.0.0.1:8787';
const ttl = 900;
const { privateKey, publicKey } = generateKeyPairSync('ed25519');
const kid = `try-${randomUUID().slice(0, 8)}`;
const jwk = publicKey.export({ format: 'jwk' });
const now = Math.floor(Date.now() / 1000);
const tokens = await Promise.all(
  Array.from({ length: 100 }, () =>
    new SignJWT({ sid: randomUUID(), amr: ['pwd'], auth_time: now })
      .setProtectedHeader({ alg: 'EdDSA', typ: 'at+jwt', kid })
      .setIssuer(issuer)
      .setAudience(issuer)
      .setSubject(randomUUID())
      .setIssuedAt(now)
      .setExpirationTime(now + ttl)
      .setJti(randomUUID())
      .sign(privateKey),
  ),
);
const input: VerifyInput = {
  jwks: { keys: [{ kty: 'OKP', crv: 'Ed25519', x: String(jwk.x), kid, alg: 'EdDSA', use: 'sig' }] },
  tokens,
  issuer,
  audience: issuer,
  ttl,
};
const inputFile = join(dir, 'verify-input.json');
writeFileSync(inputFile, JSON.stringify(input));
const logFile = join(dir, 'servers.log');
console.log(`input ${inputFile} (${tokens.length} tokens), server log ${logFile}`);

const results = await runFrameworkHelpers({
  inputFile,
  ...(frameworks ? { frameworks } : {}),
  repeats,
  durationS,
  warmupS: 1,
  concurrency: 16,
  logFile,
  log: (line) => console.log(line),
});
console.table(summariseFrameworkHelpers(results));
const errors = results.reduce((n, r) => n + r.load.errors, 0);
console.log(`errors: ${errors}`);
process.exitCode = errors === 0 ? 0 : 1;
