import { createPublicKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { verifyAccessToken } from './bare-jwt.js';
import type { VerifyInput, VerifyLoopResult } from '../scenarios/verify.js';

/**
 * The floor of the verify-only scenario: a bare, synchronous node:crypto verification
 * loop over the same tokens and the same JWKS, with the checks SPEC §2 asks of a
 * verifier. `node --import tsx bench/floor/verify-floor.ts INPUT.json SECONDS`;
 * prints a VerifyLoopResult.
 */
const [inputFile = '', seconds = '5'] = process.argv.slice(2);
const input = JSON.parse(readFileSync(inputFile, 'utf8')) as VerifyInput;
const keys = new Map<string, KeyObject>(
  input.jwks.keys.map((k) => [k.kid, createPublicKey({ key: { kty: k.kty, crv: k.crv, x: k.x }, format: 'jwk' })]),
);
const options = { issuer: input.issuer, audience: input.audience, ttl: input.ttl };
const tokens = input.tokens;

let ops = 0;
let failures = 0;
const start = performance.now();
const end = start + Number(seconds) * 1000;
let now = start;
while (now < end) {
  for (let i = 0; i < 64; i++) {
    const token = tokens[(ops + i) % tokens.length]!;
    if (!verifyAccessToken(token, keys, options, Date.now())) failures++;
  }
  ops += 64;
  now = performance.now();
}
const result: VerifyLoopResult = { impl: 'node:crypto loop', concurrency: 1, ops, seconds: (now - start) / 1000, opsPerS: ops / ((now - start) / 1000), failures };
process.stdout.write(`${JSON.stringify(result)}\n`);
