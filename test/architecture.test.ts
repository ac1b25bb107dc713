import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

/**
 * Dependencies point one way: core ← store ← auth ← server ← cli, and the client
 * imports nothing but core's plain words. A layer that reaches up couples the domain to
 * a framework or a driver, and the next change to either breaks code that should not care.
 */

const SRC = fileURLToPath(new URL('../src/', import.meta.url));

interface Rule {
  /** The folder under src/ whose files the rule applies to. */
  layer: string;
  /** If set, the only folders under src/ they may import. */
  allowedLayers?: string[];
  /** Folders under src/ (or top-level files, without extension) they must not import. */
  forbiddenLayers: string[];
  /** npm packages they must not import (a trailing `/*` means the whole scope); `*` means every package. */
  forbiddenPackages: string[];
  /** npm packages they may import even so (exact names): the client's one runtime dependency. */
  allowedPackages?: string[];
  /** Files of the layer the rule does not apply to (paths under src/). */
  except?: string[];
}

const RULES: Rule[] = [
  {
    // The domain: pure rules and crypto. Nothing else of src/, no web framework, no database, no logger.
    layer: 'core',
    allowedLayers: ['core'],
    forbiddenLayers: [],
    forbiddenPackages: ['fastify', '@fastify/*', 'kysely', 'kysely-pglite-dialect', 'pg', '@electric-sql/pglite', 'pino', 'prom-client', 'nodemailer'],
  },
  {
    // Storage knows the domain's types, never HTTP and never the use cases.
    layer: 'store',
    forbiddenLayers: ['auth', 'server', 'client', 'demo', 'cli', 'index', 'delivery'],
    forbiddenPackages: ['fastify', '@fastify/*'],
  },
  {
    // The use cases: callable without HTTP, and through the store's methods only, never its SQL.
    layer: 'auth',
    allowedLayers: ['auth', 'core', 'store'],
    forbiddenLayers: [],
    forbiddenPackages: ['fastify', '@fastify/*', 'kysely', 'kysely-pglite-dialect', 'pg', '@electric-sql/pglite', 'pino', 'prom-client', 'nodemailer'],
  },
  {
    // Delivery of the outbox (mails, webhooks): the domain and the store's SQL, never HTTP, the use
    // cases or the CLI; it writes to a logger it is handed, so no pino either.
    layer: 'delivery',
    allowedLayers: ['delivery', 'core', 'store'],
    forbiddenLayers: [],
    forbiddenPackages: ['fastify', '@fastify/*', 'pino'],
  },
  {
    // HTTP at the edge: it calls the use cases; nothing calls it but the CLI and the package entry.
    layer: 'server',
    forbiddenLayers: ['cli', 'client', 'demo', 'index'],
    forbiddenPackages: [],
  },
  {
    // The CLI reaches the store without loading the HTTP application; only `serve` starts it.
    layer: 'cli',
    forbiddenLayers: ['server', 'client', 'demo', 'index'],
    forbiddenPackages: ['fastify', '@fastify/*'],
    except: ['cli/serve.ts'],
  },
  {
    // The browser client: core's plain words and error table, and one runtime package: passkeys
    // need @simplewebauthn/browser (SPEC §8), the field's standard for the WebAuthn ceremonies.
    layer: 'client',
    allowedLayers: ['client', 'core'],
    forbiddenLayers: [],
    forbiddenPackages: ['*'],
    allowedPackages: ['@simplewebauthn/browser'],
  },
  {
    // The demo page is built from the public client alone, and draws the authenticator app's QR
    // code itself (SPEC §8: the QR code lives in the demo, not the client).
    layer: 'demo',
    allowedLayers: ['demo', 'client'],
    forbiddenLayers: [],
    forbiddenPackages: ['*'],
    allowedPackages: ['qrcode'],
  },
  {
    // Resource-server helpers run inside other people's APIs: jose, node: and the one framework
    // each is for, and core's error table; nothing of Tessera's server side.
    layer: 'resource',
    allowedLayers: ['resource', 'core'],
    forbiddenLayers: [],
    forbiddenPackages: ['kysely', 'kysely-pglite-dialect', 'pg', '@electric-sql/pglite', 'pino', 'ioredis', '@node-rs/*', '@fastify/*', 'typebox'],
  },
];

/** Every module specifier a file imports: static, type-only, re-exports, side-effect and dynamic `import()`. */
function importsOf(source: string): string[] {
  return ts.preProcessFile(source, true, true).importedFiles.map((f) => f.fileName);
}

function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((name) => /\.(ts|tsx|mts|cts)$/.test(name) && !name.endsWith('.d.ts'))
    .map((name) => join(dir, name));
}

/** The layer a path under src/ belongs to: its first folder, or the file's name for top-level files. */
function layerOf(absolutePath: string): string | undefined {
  const rel = relative(SRC, absolutePath);
  if (rel.startsWith('..')) return undefined;
  const [first = ''] = rel.split(sep);
  return first.replace(/\.(ts|js|mts|mjs)$/, '');
}

function packageMatches(specifier: string, forbidden: string): boolean {
  if (forbidden === '*') return true;
  if (forbidden.endsWith('/*')) return specifier.startsWith(forbidden.slice(0, -1));
  return specifier === forbidden || specifier.startsWith(`${forbidden}/`);
}

/** The forbidden imports of one file under a rule, as "file → specifier (layer)". */
function violations(file: string, source: string, rule: Rule): string[] {
  const found: string[] = [];
  for (const specifier of importsOf(source)) {
    const where = relative(SRC, file);
    if (specifier.startsWith('.')) {
      const target = layerOf(resolve(dirname(file), specifier));
      const forbidden = target !== undefined && (rule.forbiddenLayers.includes(target) || (rule.allowedLayers !== undefined && !rule.allowedLayers.includes(target)));
      if (forbidden) found.push(`src/${where} → ${specifier} (src/${target})`);
    } else if (rule.forbiddenPackages.some((p) => packageMatches(specifier, p)) && !rule.allowedPackages?.includes(specifier)) {
      found.push(`src/${where} → ${specifier}`);
    }
  }
  return found;
}

describe('import direction (core ← store ← auth ← server ← cli; client and demo beside)', () => {
  it('the import scanner sees every kind of import', () => {
    const sample = [
      `import { a } from './a.js';`,
      `import type { B } from '../store/b.js';`,
      `import {\n  c,\n  d,\n} from 'fastify';`,
      `export { e } from '@fastify/cookie';`,
      `import 'pino';`,
      `const f = await import('kysely');`,
      `// import { g } from 'not-an-import' is a comment`,
    ].join('\n');
    expect(importsOf(sample)).toEqual(['./a.js', '../store/b.js', 'fastify', '@fastify/cookie', 'pino', 'kysely']);
  });

  it('the rules catch a layer that reaches up', () => {
    const rule = RULES.find((r) => r.layer === 'core')!;
    const file = join(SRC, 'core', 'example.ts');
    const source = [
      `import { Store } from '../store/store.js';`,
      `import type { App } from '../server/context.js';`,
      `import { parseDuration } from './duration.js';`,
      `import { main } from '../cli.js';`,
      `import { jwtVerify } from 'jose';`,
      `import cookie from '@fastify/cookie';`,
      `import pg from 'pg';`,
      `import { Pool } from 'pg-pool';`,
    ].join('\n');
    expect(violations(file, source, rule)).toEqual([
      'src/core/example.ts → ../store/store.js (src/store)',
      'src/core/example.ts → ../server/context.js (src/server)',
      'src/core/example.ts → ../cli.js (src/cli)',
      'src/core/example.ts → @fastify/cookie',
      'src/core/example.ts → pg',
    ]);
  });

  it('finds the source files', () => {
    expect(filesUnder(join(SRC, 'core')).length).toBeGreaterThan(3);
    expect(filesUnder(join(SRC, 'store')).length).toBeGreaterThan(1);
  });

  for (const rule of RULES) {
    it(`src/${rule.layer} imports nothing it must not`, () => {
      const files = filesUnder(join(SRC, rule.layer)).filter((file) => !rule.except?.includes(relative(SRC, file).split(sep).join('/')));
      const found = files.flatMap((file) => violations(file, readFileSync(file, 'utf8'), rule));
      expect(found, `forbidden imports in src/${rule.layer}`).toEqual([]);
    });
  }

  it('the client, with everything it imports from src/, needs no runtime package but @simplewebauthn/browser, for passkeys alone', () => {
    const seen = new Set<string>();
    const packages: string[] = [];
    const visit = (file: string) => {
      if (seen.has(file)) return;
      seen.add(file);
      for (const specifier of importsOf(readFileSync(file, 'utf8'))) {
        if (specifier.startsWith('.')) visit(resolve(dirname(file), specifier).replace(/\.js$/, '.ts'));
        else packages.push(`${relative(SRC, file)} → ${specifier}`);
      }
    };
    visit(join(SRC, 'client', 'index.ts'));
    expect(seen.size).toBeGreaterThan(3);
    expect(packages).toEqual([`client${sep}passkeys.ts → @simplewebauthn/browser`]);
  });

  it('the CLI loads the HTTP application only for `serve`, and lazily', () => {
    const main = readFileSync(join(SRC, 'cli', 'main.ts'), 'utf8');
    const staticImports = [...main.matchAll(/^\s*(?:import|export)\b[^;]*?\bfrom\s+['"]([^'"]+)['"]/gm)].map((m) => m[1]);
    expect(staticImports).not.toContain('./serve.js');
    expect(main).toMatch(/await import\('\.\/serve\.js'\)/);
  });
});
