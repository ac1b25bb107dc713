import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { docSnippet, HERE, ROOT, typeCheck } from './kit.js';

/**
 * The TypeScript of docs/resource-servers.md compiles as a user's app would (against the built
 * package, through its exports), with the options Nest projects use. The framework suites run
 * the same snippets against a live Tessera.
 */
describe('docs/resource-servers.md', () => {
  const docs = readFileSync(join(ROOT, 'docs', 'resource-servers.md'), 'utf8');

  it('names the snippets the tests run', () => {
    expect([...docs.matchAll(/<!-- snippet: ([\w-]+) -->/g)].map((m) => m[1])).toEqual(['express', 'express-typed', 'fastify', 'nestjs', 'node-http']);
  });

  it('has examples that compile, and an AuthContext that is the real one', () => {
    const documented = /## The caller: `AuthContext`[\s\S]*?```ts\n([\s\S]*?)```/.exec(docs)?.[1];
    expect(documented).toContain('interface AuthContext');
    const authContext = [
      `import type { JWTPayload } from 'jose';`,
      `import type { AuthContext as Real } from 'tessera/verify';`,
      documented,
      'type Same = [Real] extends [AuthContext] ? ([AuthContext] extends [Real] ? true : false) : false;',
      'export const same: Same = true;',
    ].join('\n');
    // The opt-in typing of req.auth, used.
    const expressUsage = `import express from 'express';\nexport const handler: express.RequestHandler = (req, res) => { res.json({ id: req.auth?.userId }); };\n`;
    const sources = {
      express: docSnippet('express'),
      'express-typed': docSnippet('express-typed'),
      'express-usage': expressUsage,
      fastify: docSnippet('fastify'),
      nestjs: docSnippet('nestjs'),
      'node-http': docSnippet('node-http'),
      'auth-context': authContext,
    };
    expect(typeCheck(HERE, sources)).toEqual([]);
  });
});
