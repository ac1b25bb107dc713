import { readFileSync } from 'node:fs';

/**
 * Summarises a V8 .cpuprofile (from `node --cpu-prof`, as `npm run bench -- --profile`
 * writes for Tessera's refresh and protected-route runs): where the server's main
 * thread spent its time, by package and by function, self and inclusive.
 *
 *   node --import tsx bench/profile-summary.ts FILE.cpuprofile [TOP]
 */

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

/** node_modules/<package>, node:<module>, src/…, bench/…, or V8's own (program), (garbage collector), (idle). */
function area(frame: CallFrame): string {
  const url = frame.url;
  if (!url) return frame.functionName.startsWith('(') ? frame.functionName : '(native)';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1]!;
  if (url.startsWith('node:')) return url.replace(/^node:(internal\/)?/, 'node:').split('/').slice(0, 2).join('/');
  const local = /\/(dist|src|bench)\/(.*)$/.exec(url);
  return local ? `${local[1]}/${local[2]}` : url;
}

function key(frame: CallFrame): string {
  const where = frame.url ? `${area(frame)}:${frame.lineNumber + 1}` : '';
  return `${frame.functionName || '(anonymous)'} ${where}`.trim();
}

export function summariseProfile(profile: Profile, top = 25): string {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const selfByArea = new Map<string, number>();
  const selfByFn = new Map<string, number>();
  const inclusive = new Map<string, number>();
  let total = 0;
  let idle = 0;
  profile.samples.forEach((id, i) => {
    const dt = (profile.timeDeltas[i + 1] ?? profile.timeDeltas[i] ?? 0) / 1000;
    const node = byId.get(id)!;
    total += dt;
    if (node.callFrame.functionName === '(idle)') {
      idle += dt;
      return;
    }
    selfByArea.set(area(node.callFrame), (selfByArea.get(area(node.callFrame)) ?? 0) + dt);
    selfByFn.set(key(node.callFrame), (selfByFn.get(key(node.callFrame)) ?? 0) + dt);
    const seen = new Set<string>();
    for (let n: number | undefined = id; n !== undefined; n = parent.get(n)) {
      const k = key(byId.get(n)!.callFrame);
      if (seen.has(k)) continue;
      seen.add(k);
      inclusive.set(k, (inclusive.get(k) ?? 0) + dt);
    }
  });
  const busy = total - idle;
  const pct = (ms: number) => `${((100 * ms) / busy).toFixed(1).padStart(5)}%`;
  const list = (m: Map<string, number>, n: number) =>
    [...m].sort((a, b) => b[1] - a[1]).slice(0, n).map(([k, ms]) => `  ${pct(ms)}  ${ms.toFixed(0).padStart(7)} ms  ${k}`).join('\n');
  return [
    `profile: ${(total / 1000).toFixed(1)} s, main thread busy ${(busy / 1000).toFixed(1)} s (${((100 * busy) / total).toFixed(0)}%), idle ${(idle / 1000).toFixed(1)} s; percentages are of busy time`,
    `self time by package or area:\n${list(selfByArea, top)}`,
    `self time by function:\n${list(selfByFn, top)}`,
    `inclusive time by function:\n${list(inclusive, top * 2)}`,
  ].join('\n\n');
}

if (process.argv[1]?.endsWith('profile-summary.ts')) {
  const [file, top] = process.argv.slice(2);
  if (!file) {
    process.stderr.write('usage: node --import tsx bench/profile-summary.ts FILE.cpuprofile [TOP]\n');
    process.exit(2);
  }
  process.stdout.write(`${summariseProfile(JSON.parse(readFileSync(file, 'utf8')) as Profile, Number(top ?? 25))}\n`);
}
