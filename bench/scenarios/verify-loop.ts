import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';
import type { createVerifier as CreateVerifier } from '../../src/resource/verify.js';
import type { VerifyInput, VerifyLoopResult } from './verify.js';

/**
 * The verify-only scenario (the resource-server case): `tessera/verify` as a resource server
 * uses it (`createVerifier`, from the built package), with Tessera's published JWKS served on
 * loopback by this process (fetched once), over real access tokens, no database, no revocation
 * feed. `node --import tsx bench/scenarios/verify-loop.ts INPUT.json SECONDS CONCURRENCY [DIST]`;
 * CONCURRENCY closed-loop callers (the verification is asynchronous, as in a server with that
 * many requests in flight). Prints a VerifyLoopResult.
 */
const [inputFile = '', seconds = '5', concurrencyArg = '16', dist = new URL('../../dist/', import.meta.url).pathname] = process.argv.slice(2);
const input = JSON.parse(readFileSync(inputFile, 'utf8')) as VerifyInput;
const { createVerifier } = (await import(pathToFileURL(`${dist}/resource/verify.js`).href)) as { createVerifier: typeof CreateVerifier };
const jwks = createServer((_req, res) => res.setHeader('content-type', 'application/json').end(JSON.stringify(input.jwks)));
await new Promise<void>((resolve) => jwks.listen(0, '127.0.0.1', resolve));
const verifier = createVerifier({
  issuer: input.issuer, audience: input.audience, jwksUrl: `http://127.0.0.1:${(jwks.address() as AddressInfo).port}/jwks.json`,
});
const tokens = input.tokens;
const concurrency = Math.max(1, Math.min(256, Number(concurrencyArg)));
// The key set is fetched on first use: once, before the clock starts.
await verifier.verify(tokens[0]);

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
        await verifier.verify(token);
      } catch {
        failures++;
      }
      ops++;
    }
  }),
);
const elapsed = (performance.now() - start) / 1000;
verifier.close();
jwks.close();
const result: VerifyLoopResult = { impl: 'tessera/verify', concurrency, ops, seconds: elapsed, opsPerS: ops / elapsed, failures };
process.stdout.write(`${JSON.stringify(result)}\n`);
