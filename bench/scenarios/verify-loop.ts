import { readFileSync } from 'node:fs';
import { importJWK, type CryptoKey } from 'jose';
import { accessTokenOptions, verifyAccessToken } from '../../src/core/access-token.js';
import type { SigningAlg } from '../../src/core/signing-alg.js';
import type { VerifyInput, VerifyLoopResult } from './verify.js';

/**
 * The verify-only scenario (the resource-server case): Tessera's own `verifyAccessToken`,
 * with the keys of its published JWKS, over real access tokens, no database.
 * `node --import tsx bench/scenarios/verify-loop.ts INPUT.json SECONDS CONCURRENCY`;
 * CONCURRENCY closed-loop callers (the verification is asynchronous, as in a server
 * with that many requests in flight). Prints a VerifyLoopResult.
 */
const [inputFile = '', seconds = '5', concurrencyArg = '16'] = process.argv.slice(2);
const input = JSON.parse(readFileSync(inputFile, 'utf8')) as VerifyInput;
const keys = new Map<string, { key: CryptoKey; alg: SigningAlg }>();
for (const jwk of input.jwks.keys) keys.set(jwk.kid, { key: (await importJWK({ ...jwk }, jwk.alg)) as CryptoKey, alg: jwk.alg });
const options = accessTokenOptions({ publicUrl: input.issuer, audience: input.audience, accessTokenTtl: input.ttl });
const publicKey = async (kid: string) => keys.get(kid);
const tokens = input.tokens;
const concurrency = Math.max(1, Math.min(256, Number(concurrencyArg)));

let ops = 0;
let failures = 0;
let next = 0;
const start = performance.now();
const end = start + Number(seconds) * 1000;
await Promise.all(
  Array.from({ length: concurrency }, async () => {
    while (performance.now() < end) {
      const token = tokens[next++ % tokens.length]!;
      try {
        await verifyAccessToken(token, publicKey, options, new Date());
      } catch {
        failures++;
      }
      ops++;
    }
  }),
);
const elapsed = (performance.now() - start) / 1000;
const result: VerifyLoopResult = { impl: 'tessera verifyAccessToken', concurrency, ops, seconds: elapsed, opsPerS: ops / elapsed, failures };
process.stdout.write(`${JSON.stringify(result)}\n`);
