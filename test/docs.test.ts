import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ERRORS, type ErrorCode } from '../src/core/errors.js';

// The docs are a contract too: a code or a variable added to the code without a line in the docs fails here.
const root = fileURLToPath(new URL('..', import.meta.url));
const read = (path: string) => readFileSync(`${root}${path}`, 'utf8');

/**
 * The rows of the Markdown tables in `markdown` whose header starts with "code",
 * keyed by the `code` in their first cell, with the remaining cells.
 */
function codeTableRows(markdown: string): Map<string, string[]> {
  const rows = new Map<string, string[]>();
  let header: string | undefined;
  for (const line of markdown.split('\n')) {
    if (!line.trimStart().startsWith('|')) {
      header = undefined;
      continue;
    }
    const cells = line.trim().replace(/^\||\|$/g, '').split('|').map((c) => c.trim());
    if (header === undefined) {
      header = cells[0];
      continue;
    }
    const code = /^`([a-z_]+)`$/.exec(cells[0] ?? '')?.[1];
    if (header === 'code' && code) rows.set(code, cells.slice(1));
  }
  return rows;
}

/** Every environment variable loadConfig reads: value('X'), integer('X', …), duration('X', …), oneOf<…>('X', …). */
function configVariables(source: string): string[] {
  const names = new Set<string>();
  for (const match of source.matchAll(/\b(?:value|integer|duration|oneOf)\s*(?:<[^>()]*>)?\(\s*'([A-Z][A-Z0-9_]*)'/g)) {
    names.add(match[1]!);
  }
  return [...names].sort();
}

describe('docs/errors.md', () => {
  const rows = codeTableRows(read('docs/errors.md'));
  const codes = Object.keys(ERRORS) as ErrorCode[];

  it.each(codes)('lists `%s` in its table with the status of the error table', (code) => {
    const cells = rows.get(code);
    expect(cells, `docs/errors.md has no table row starting with \`${code}\``).toBeDefined();
    // The status cell may add a note (e.g. "401 (403 on POST /auth/password)"); it must start with the table's status.
    expect(cells![0], `status of \`${code}\` in docs/errors.md`).toMatch(new RegExp(`^${ERRORS[code].status}\\b`));
    // Each named case with a status of its own (ERRORS[code].cases) is in the cell too.
    const entry: { status: number; cases?: Readonly<Record<string, number>> } = ERRORS[code];
    const cases = entry.cases ?? {};
    for (const [name, status] of Object.entries(cases)) {
      expect(cells![0], `the ${name} case of \`${code}\` (${status}) in docs/errors.md`).toMatch(new RegExp(`\\b${status}\\b`));
    }
  });

  it('lists no code that the error table does not have', () => {
    expect([...rows.keys()].filter((code) => !Object.hasOwn(ERRORS, code))).toEqual([]);
  });
});

describe('docs/configuration.md', () => {
  const variables = configVariables(read('src/core/config.ts'));
  const doc = read('docs/configuration.md');

  it('finds the variables of src/core/config.ts (the pattern still matches the code)', () => {
    expect(variables).toEqual(expect.arrayContaining(['PORT', 'DATABASE_URL', 'TESSERA_SECRET', 'REFRESH_REUSE_GRACE', 'COOKIE_SAMESITE', 'PASSWORD_HASH_QUEUE']));
  });

  it('recognises every way config.ts reads a variable', () => {
    const sample = `value('A_B') integer('C', 1, 0, 2) duration('D_1', '5s') oneOf<SameSite>('E', [], 'x') oneOf('F', [], 'on')`;
    expect(configVariables(sample)).toEqual(['A_B', 'C', 'D_1', 'E', 'F']);
  });

  it.each(variables)('documents `%s`', (name) => {
    expect(doc.includes(`\`${name}\``), `docs/configuration.md does not mention \`${name}\``).toBe(true);
  });
});
