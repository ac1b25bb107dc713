import type { SigningAlg } from '../../src/core/signing-alg.js';
import { spawn } from 'node:child_process';

/** What the verify loops read: a JWKS as Tessera publishes it and access tokens it issued. */
export interface VerifyInput {
  jwks: { keys: { kty: string; crv: string; x: string; kid: string; alg: SigningAlg; use?: string }[] };
  tokens: string[];
  issuer: string;
  audience: string;
  ttl: number;
}

export interface VerifyLoopResult {
  impl: string;
  concurrency: number;
  ops: number;
  seconds: number;
  opsPerS: number;
  /** Tokens that did not verify: must be 0, or the loop measured the wrong thing. */
  failures: number;
}

/**
 * Runs one verify loop in its own process, so that nothing else shares its event loop:
 * tessera/verify's `createVerifier` (bench/scenarios/verify-loop.ts) or the bare node:crypto
 * floor (bench/floor/verify-floor.ts).
 */
export function runVerifyLoop(impl: 'tessera' | 'floor', inputFile: string, seconds: number, concurrency: number, dist: string): Promise<VerifyLoopResult> {
  const script = impl === 'tessera' ? 'bench/scenarios/verify-loop.ts' : 'bench/floor/verify-floor.ts';
  const child = spawn(process.execPath, ['--import', 'tsx', script, inputFile, String(seconds), String(concurrency)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (c: Buffer) => (out += c));
  child.stderr.on('data', (c: Buffer) => (err += c));
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => {
      if (code !== 0) return reject(new Error(`${script} exited with ${code}: ${err.trim()}`));
      try {
        resolve(JSON.parse(out.trim().split('\n').pop() ?? '') as VerifyLoopResult);
      } catch {
        reject(new Error(`${script} printed no result: ${out} ${err}`));
      }
    });
  });
}
