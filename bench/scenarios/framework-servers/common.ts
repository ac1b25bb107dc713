import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { VerifierOptions } from '../../../src/resource/verify.js';
import type { VerifyInput } from '../verify.js';

/**
 * What every framework server of bench/scenarios/framework-helpers.ts shares: its settings
 * (from the environment), the JWKS served on a second loopback port, and a readiness probe on
 * that same port, so that the measured app has one route only, `GET /me`, in both variants.
 *
 * Environment: VARIANT (bare | helper), HOST, PORT (the app), JWKS_PORT (JWKS + readiness),
 * BENCH_INPUT (a VerifyInput JSON file), TESSERA_DIST (the built package, default ./dist).
 */
export interface FrameworkServer {
  variant: 'bare' | 'helper';
  host: string;
  port: number;
  /** The same for both variants: JWKS from a URL, issuer, audience, no revocation feed. */
  verifierOptions: VerifierOptions;
  /** file: URL of a module of the built package's resource/ directory, e.g. `resource('express')`. */
  resource(name: 'verify' | 'express' | 'fastify' | 'nestjs'): string;
  /** Call once the app listens: the readiness probe answers 200 from then on. */
  ready(): void;
}

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

/** The token of `Authorization: Bearer <token>`, parsed by hand as a bare route would. */
export function bearer(header: string | undefined): string | undefined {
  return header !== undefined && header.startsWith('Bearer ') ? header.slice(7) : undefined;
}

export async function frameworkServer(): Promise<FrameworkServer> {
  const variant = required('VARIANT');
  if (variant !== 'bare' && variant !== 'helper') throw new Error(`VARIANT must be bare or helper, not ${variant}`);
  const host = process.env.HOST ?? '127.0.0.1';
  const port = Number(required('PORT'));
  const jwksPort = Number(required('JWKS_PORT'));
  const input = JSON.parse(readFileSync(required('BENCH_INPUT'), 'utf8')) as VerifyInput;
  const dist = process.env.TESSERA_DIST ?? join(process.cwd(), 'dist');

  const jwks = JSON.stringify(input.jwks);
  let isReady = false;
  const side = createServer((req, res) => {
    if (req.url === '/jwks.json') {
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'max-age=300' }).end(jwks);
    } else if (req.url === '/ready') {
      res.writeHead(isReady ? 200 : 503, { 'content-type': 'text/plain' }).end(isReady ? 'ready' : 'starting');
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve, reject) => {
    side.once('error', reject);
    side.listen(jwksPort, host, () => resolve());
  });

  const stop = () => process.exit(0);
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);

  return {
    variant,
    host,
    port,
    verifierOptions: {
      issuer: input.issuer,
      audience: input.audience,
      jwksUrl: `http://${host}:${jwksPort}/jwks.json`,
      revocations: false,
    },
    resource: (name) => pathToFileURL(join(dist, 'resource', `${name}.js`)).href,
    ready() {
      isReady = true;
    },
  };
}
