// `npm start`'s prestart: runs `npm run build` only when something it reads changed since
// the last build made here, so a second start takes seconds, not a full compile. A build
// stamps dist/.build-stamp with the time it *started*: a file saved during the build is
// newer than the stamp and triggers the next one. A failed build leaves no stamp.
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readdirSync, statSync, utimesSync } from 'node:fs';
import { join } from 'node:path';

const STAMP = 'dist/.build-stamp';
// Everything the build reads; directories count too, so a deleted file is a change.
const INPUTS = ['src', 'scripts', 'tsconfig.json', 'tsconfig.build.json', 'package.json', 'package-lock.json'];

function newest(path) {
  const stat = statSync(path, { throwIfNoEntry: false });
  if (!stat) return 0;
  if (!stat.isDirectory()) return stat.mtimeMs;
  let latest = stat.mtimeMs;
  for (const entry of readdirSync(path)) latest = Math.max(latest, newest(join(path, entry)));
  return latest;
}

const stamp = statSync(STAMP, { throwIfNoEntry: false });
const changed = Math.max(...INPUTS.map(newest));
if (stamp && existsSync('dist/cli/main.js') && changed <= stamp.mtimeMs) process.exit(0);

const started = new Date();
console.log(stamp ? 'sources changed since the last build: building' : 'building (first start)');
const build = spawnSync('npm', ['run', 'build', '--silent'], { stdio: 'inherit', shell: process.platform === 'win32' });
if (build.status !== 0) process.exit(build.status ?? 1);
closeSync(openSync(STAMP, 'w'));
utimesSync(STAMP, started, started);
