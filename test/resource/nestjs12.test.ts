import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { HERE, ROOT, runSnippet } from './kit.js';
import { describeResourceServer } from './suite.js';

const run = promisify(execFile);

/**
 * NestJS 12 is ESM-only and cannot share node_modules with the repo's NestJS 11, so it lives in
 * a fixture of its own (test/resource/nest12: package.json and its lock). Tessera goes into the
 * fixture's node_modules as a copy of package.json and dist/ (the resource helpers and the core
 * they import): dist/resource/nestjs.js then resolves `@nestjs/*` from the fixture, i.e. NestJS
 * 12, as it would in a user's app. A symlink would not do: Node resolves it to the repo, whose
 * node_modules hold NestJS 11.
 */
const FIXTURE = join(HERE, 'nest12');

async function prepareFixture(): Promise<void> {
  if (!existsSync(join(FIXTURE, 'node_modules', '@nestjs', 'core'))) {
    await run('npm', ['ci', '--prefix', FIXTURE, '--no-audit', '--no-fund'], { timeout: 240_000 });
  }
  const sources = [join(ROOT, 'package.json'), ...['resource', 'core'].flatMap((dir) => filesUnder(join(ROOT, 'dist', dir)))];
  const hash = createHash('sha256');
  for (const file of sources) hash.update(file).update(readFileSync(file));
  const digest = hash.digest('hex');
  const target = join(FIXTURE, 'node_modules', 'tessera');
  const stamp = join(target, '.copied-from');
  if (existsSync(stamp) && readFileSync(stamp, 'utf8') === digest) return;
  // Copied aside, then swapped in: another run of the suite may be loading the current copy.
  const staging = join(FIXTURE, 'node_modules', `.tessera-${process.pid}`);
  rmSync(staging, { recursive: true, force: true });
  for (const file of sources) {
    const to = join(staging, relative(ROOT, file));
    mkdirSync(dirname(to), { recursive: true });
    cpSync(file, to);
  }
  writeFileSync(join(staging, '.copied-from'), digest);
  rmSync(target, { recursive: true, force: true });
  renameSync(staging, target);
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => join(entry.parentPath, entry.name))
    .sort();
}

describeResourceServer('tessera/nestjs on NestJS 12', async (issuer) => {
  await prepareFixture();
  return runSnippet('nestjs', issuer, FIXTURE);
}, 300_000);

describe('the NestJS 12 fixture', () => {
  it('makes tessera/nestjs load NestJS 12, the same copy the app uses', async () => {
    await prepareFixture();
    const probe = `
      import { createRequire } from 'node:module';
      import { readFileSync } from 'node:fs';
      import { Reflector } from '@nestjs/core';
      import { TesseraGuard } from 'tessera/nestjs';
      const helper = import.meta.resolve('tessera/nestjs');
      const common = createRequire(helper).resolve('@nestjs/common/package.json');
      const deps = Reflect.getMetadata('self:paramtypes', TesseraGuard);
      console.log(JSON.stringify({
        helper,
        common: JSON.parse(readFileSync(common, 'utf8')).version,
        sameReflector: deps.find((d) => d.index === 0).param === Reflector,
      }));`;
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', probe], { cwd: FIXTURE, timeout: 30_000 });
    const report = JSON.parse(stdout.trim().split('\n').at(-1)!);
    expect(report.helper).toContain('/nest12/node_modules/tessera/dist/resource/nestjs.js');
    expect(report.common).toMatch(/^12\./);
    expect(report.sameReflector).toBe(true);
  }, 300_000);
});
