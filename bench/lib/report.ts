import type { LoadResult } from './load.js';
import type { CpuUse } from './processes.js';
import type { VerifyLoopResult } from '../scenarios/verify.js';

export type BackendKind = 'postgres' | 'pglite';

/** One measured run: one server process, one warm-up, one window. */
export interface RunRecord {
  backend: BackendKind | 'none';
  scenario: 'refresh' | 'protected' | 'verify' | 'login' | 'flood';
  /** tessera, floor:one-statement, floor:read-update, floor:node-crypto */
  server: string;
  /** What varies inside a scenario: sessions per user, table size, concurrency. */
  variant: string;
  repeat: number;
  tableSessions?: number;
  load?: LoadResult;
  verify?: VerifyLoopResult;
  cpu?: CpuUse;
  serverPeakRssMiB?: number;
  loadAvg: { start: number[]; end: number[] };
  extra?: Record<string, unknown>;
}

export interface Machine {
  cores: number;
  cpuModel: string;
  memoryGiB: number;
  node: string;
  os: string;
  postgres?: string;
  pglite?: string;
  startedAt: string;
  finishedAt?: string;
  loadAvgStart: number[];
  loadAvgEnd?: number[];
  note: string;
}

export interface Summary {
  backend: string;
  scenario: string;
  server: string;
  variant: string;
  runs: number;
  /** Median over the runs of 2xx answers per second (verify: verifications per second). */
  throughput: number;
  min: number;
  max: number;
  p50: number;
  p95: number;
  p99: number;
  errors: number;
  /** Median CPU microseconds per request, over the window. */
  serverCpuUs?: number;
  postgresCpuUs?: number;
  loadGeneratorCpuUs?: number;
  /** Median over the runs of server + PostgreSQL + load generator CPU microseconds per request: what a request costs the machine. */
  totalCpuUs?: number;
  /** Median share of one core used by other processes on the machine during the window. */
  otherCpuPct?: number;
  peakRssMiB?: number;
}

export function median(values: number[]): number {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
}

export function summarise(records: RunRecord[]): Summary[] {
  const groups = new Map<string, RunRecord[]>();
  for (const r of records) {
    const key = `${r.backend}|${r.scenario}|${r.server}|${r.variant}`;
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  return [...groups.values()].map((runs) => {
    const first = runs[0]!;
    const rate = runs.map((r) => r.load?.okThroughput ?? r.verify?.opsPerS ?? NaN);
    const perReq = (pick: (c: CpuUse) => number) =>
      median(runs.map((r) => (r.cpu && r.load && r.load.completed > 0 ? (pick(r.cpu) * 1000) / r.load.completed : NaN)));
    const rss = runs.map((r) => r.serverPeakRssMiB ?? NaN).filter(Number.isFinite);
    return {
      backend: first.backend,
      scenario: first.scenario,
      server: first.server,
      variant: first.variant,
      runs: runs.length,
      throughput: median(rate),
      min: Math.min(...rate),
      max: Math.max(...rate),
      p50: median(runs.map((r) => r.load?.latency.p50 ?? NaN)),
      p95: median(runs.map((r) => r.load?.latency.p95 ?? NaN)),
      p99: median(runs.map((r) => r.load?.latency.p99 ?? NaN)),
      errors: runs.reduce((n, r) => n + (r.load?.errors ?? r.verify?.failures ?? 0), 0),
      serverCpuUs: perReq((c) => c.serverMs),
      postgresCpuUs: first.backend === 'postgres' ? perReq((c) => c.postgresMs) : undefined,
      loadGeneratorCpuUs: perReq((c) => c.loadGeneratorMs),
      totalCpuUs: perReq((c) => c.serverMs + c.postgresMs + c.loadGeneratorMs),
      otherCpuPct: median(runs.map((r) => (r.cpu ? (100 * r.cpu.otherMs) / r.cpu.wallMs : NaN))),
      peakRssMiB: rss.length ? Math.max(...rss) : undefined,
    };
  });
}

export interface Ratio {
  backend: string;
  name: string;
  value: number;
  target: string;
  met: boolean | undefined;
  detail: string;
}

function find(summaries: Summary[], backend: string, scenario: string, server: string, variant: string): Summary | undefined {
  return summaries.find((s) => s.backend === backend && s.scenario === scenario && s.server === server && s.variant === variant);
}

/** The issue's targets, computed from the summaries of one run of the harness. */
export function ratios(summaries: Summary[], context: { hashMs?: number; hashRate?: number; cores: number; baseTable: string; verifyConcurrency: number; spu: number[]; tables: number[]; flood?: RunRecord[] }): Ratio[] {
  const out: Ratio[] = [];
  const backends = [...new Set(summaries.map((s) => s.backend))].filter((b) => b !== 'none');
  for (const b of backends) {
    const refresh = find(summaries, b, 'refresh', 'tessera', context.baseTable);
    for (const floor of ['floor:one-statement', 'floor:read-update']) {
      const f = find(summaries, b, 'refresh', floor, context.baseTable);
      if (refresh && f) {
        const value = refresh.throughput / f.throughput;
        out.push({
          backend: b, name: `refresh ÷ ${floor}`, value, target: floor === 'floor:one-statement' ? '≥ 0.7' : '(reference)',
          met: floor === 'floor:one-statement' ? value >= 0.7 : undefined,
          detail: `${fmt(refresh.throughput)} vs ${fmt(f.throughput)} req/s`,
        });
        out.push(cpuRatio(b, `refresh ÷ ${floor}, by CPU per request`, refresh, f));
      }
    }
    if (refresh) {
      out.push({ backend: b, name: 'refresh p99 (ms)', value: refresh.p99, target: '< 25', met: refresh.p99 < 25, detail: `p50 ${refresh.p50} ms, p95 ${refresh.p95} ms` });
    }
    const me = find(summaries, b, 'protected', 'tessera', context.baseTable);
    const meFloor = find(summaries, b, 'protected', 'floor:one-statement', context.baseTable);
    if (me && meFloor) {
      const value = me.throughput / meFloor.throughput;
      out.push({ backend: b, name: 'protected route ÷ floor (verify + PK read)', value, target: '≥ 0.6', met: value >= 0.6, detail: `${fmt(me.throughput)} vs ${fmt(meFloor.throughput)} req/s` });
      out.push(cpuRatio(b, 'protected route ÷ floor, by CPU per request', me, meFloor));
    }
    const spu = context.spu.map((n) => find(summaries, b, 'refresh', 'tessera', `${n} sessions/user`)).filter((s): s is Summary => !!s);
    if (spu.length > 1) {
      const t = spu.map((s) => s.throughput);
      const value = Math.max(...t) / Math.min(...t);
      out.push({ backend: b, name: `refresh flatness, sessions per user ${context.spu.join('/')}`, value, target: '≤ 1.2', met: value <= 1.2, detail: spu.map((s) => `${s.variant}: ${fmt(s.throughput)}`).join(', ') });
      out.push(cpuFlatness(b, `refresh flatness, sessions per user ${context.spu.join('/')}, by CPU per request`, spu));
    }
    const tables = context.tables.map((n) => find(summaries, b, 'refresh', 'tessera', tableLabel(n))).filter((s): s is Summary => !!s);
    if (tables.length > 1) {
      const t = tables.map((s) => s.throughput);
      const value = Math.max(...t) / Math.min(...t);
      out.push({ backend: b, name: `refresh flatness, table ${context.tables.map(sci).join('/')}`, value, target: '≤ 1.2', met: value <= 1.2, detail: tables.map((s) => `${s.variant}: ${fmt(s.throughput)}`).join(', ') });
      out.push(cpuFlatness(b, `refresh flatness, table ${context.tables.map(sci).join('/')}, by CPU per request`, tables));
    }
    const login = find(summaries, b, 'login', 'tessera', 'correct password');
    if (login && context.hashMs) {
      const bound = (context.cores * 1000) / context.hashMs;
      const value = login.throughput / bound;
      out.push({ backend: b, name: 'login ÷ (cores ÷ hash time)', value, target: '≥ 0.9', met: value >= 0.9, detail: `${fmt(login.throughput)} vs ${fmt(bound)} logins/s (one hash ${context.hashMs.toFixed(1)} ms, ${context.cores} cores)` });
      if (context.hashRate) {
        out.push({
          backend: b, name: `login ÷ measured argon2id rate, ${context.cores} at once`, value: login.throughput / context.hashRate, target: '(reference)', met: undefined,
          detail: `${fmt(login.throughput)} vs ${fmt(context.hashRate)} verifications/s with nothing else running`,
        });
      }
    }
    for (const f of context.flood?.filter((r) => r.backend === b) ?? []) {
      const e = f.extra as { healthy?: boolean; rssBeforeMiB?: number; rssAfterMiB?: number; unexpected?: number } | undefined;
      out.push({
        backend: b, name: 'login flood: healthy after, memory bounded', value: f.serverPeakRssMiB ?? NaN, target: 'healthy, no crash',
        met: e?.healthy === true && (e.unexpected ?? 0) === 0,
        detail: `peak RSS ${fmt(f.serverPeakRssMiB ?? NaN)} MiB (before ${fmt(e?.rssBeforeMiB ?? NaN)}, after ${fmt(e?.rssAfterMiB ?? NaN)}); ${statusList(f.load?.statuses ?? {})}`,
      });
    }
  }
  const verify = find(summaries, 'none', 'verify', 'tessera', `C=${context.verifyConcurrency}`);
  const bare = find(summaries, 'none', 'verify', 'floor:node-crypto', 'C=1');
  if (verify && bare) {
    const value = verify.throughput / bare.throughput;
    out.push({ backend: 'none', name: 'verify only ÷ node:crypto loop', value, target: '≥ 0.8', met: value >= 0.8, detail: `${fmt(verify.throughput)} vs ${fmt(bare.throughput)} verifications/s` });
  }
  return out;
}

/**
 * Throughput ratio estimated from CPU per request (server + database + load generator):
 * what the ratio would be on a machine where nothing else runs and the cores are the
 * bottleneck. Far less sensitive to other processes than the throughput itself.
 */
function cpuRatio(backend: string, name: string, tessera: Summary, floor: Summary): Ratio {
  const value = (floor.totalCpuUs ?? NaN) / (tessera.totalCpuUs ?? NaN);
  const target = name.startsWith('protected') ? 0.6 : name.includes('one-statement') ? 0.7 : undefined;
  return {
    backend, name, value, target: target ? `≥ ${target}` : '(reference)', met: target ? value >= target : undefined,
    detail: `${fmt(tessera.totalCpuUs)} vs ${fmt(floor.totalCpuUs)} CPU µs/request`,
  };
}

function cpuFlatness(backend: string, name: string, rows: Summary[]): Ratio {
  const cpu = rows.map((s) => s.totalCpuUs ?? NaN);
  const value = Math.max(...cpu) / Math.min(...cpu);
  return { backend, name, value, target: '≤ 1.2', met: value <= 1.2, detail: rows.map((s) => `${s.variant}: ${fmt(s.totalCpuUs)} µs`).join(', ') };
}

export function tableLabel(n: number): string {
  return `table ${sci(n)}`;
}

export function sci(n: number): string {
  const e = Math.log10(n);
  return Number.isInteger(e) ? `10^${e}` : String(n);
}

export function fmt(n: number | undefined, digits = 0): string {
  if (n === undefined || !Number.isFinite(n)) return '–';
  return n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

function statusList(statuses: Record<string, number>): string {
  return Object.entries(statuses).map(([k, v]) => `${k}×${v}`).join(' ');
}

function table(header: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

export function renderMarkdown(machine: Machine, summaries: Summary[], ratioList: Ratio[], options: { repeats: number; durationS: number; concurrency: number; mode: string }): string {
  const parts: string[] = [];
  parts.push(`## Tessera benchmark (${options.mode})`);
  parts.push(
    `Machine: ${machine.cores} cores (${machine.cpuModel}), ${machine.memoryGiB} GiB, Node ${machine.node}, ${machine.os}` +
      `${machine.postgres ? `, PostgreSQL ${machine.postgres} on loopback` : ''}${machine.pglite ? `, PGlite ${machine.pglite}` : ''}. ` +
      `Load average at start ${machine.loadAvgStart.map((x) => x.toFixed(2)).join(' ')}${machine.loadAvgEnd ? `, at end ${machine.loadAvgEnd.map((x) => x.toFixed(2)).join(' ')}` : ''}. ` +
      `${machine.note}`,
  );
  parts.push(
    `Closed loop, C=${options.concurrency} unless stated, ${options.durationS} s windows after warm-up, medians of ${options.repeats} run(s) (range min–max). ` +
      'CPU columns are CPU microseconds per request over the window (server process, all PostgreSQL processes, the load generator); ' +
      '"other" is the share of one core used by anything else on the machine (noise).',
  );
  for (const backend of [...new Set(summaries.map((s) => s.backend))]) {
    const rows = summaries.filter((s) => s.backend === backend);
    parts.push(`### ${backend === 'none' ? 'No database (verify only)' : backend === 'postgres' ? 'PostgreSQL (loopback)' : 'PGlite (embedded)'}`);
    parts.push(
      table(
        ['scenario', 'server', 'variant', 'runs', 'req/s (median)', 'range', 'p50 ms', 'p95 ms', 'p99 ms', 'errors', 'server µs/req', 'pg µs/req', 'loadgen µs/req', 'total µs/req', 'other %', 'peak RSS MiB'],
        rows.map((s) => [
          s.scenario, s.server, s.variant, String(s.runs), fmt(s.throughput), `${fmt(s.min)}–${fmt(s.max)}`,
          fmt(s.p50, 2), fmt(s.p95, 2), fmt(s.p99, 2), String(s.errors),
          fmt(s.serverCpuUs), fmt(s.postgresCpuUs), fmt(s.loadGeneratorCpuUs), fmt(s.totalCpuUs), fmt(s.otherCpuPct), fmt(s.peakRssMiB),
        ]),
      ),
    );
  }
  parts.push('### Ratios and targets');
  parts.push(
    table(
      ['backend', 'measure', 'value', 'target', 'met', 'detail'],
      ratioList.map((r) => [r.backend, r.name, fmt(r.value, 2), r.target, r.met === undefined ? '' : r.met ? 'yes' : '**no**', r.detail]),
    ),
  );
  return `${parts.join('\n\n')}\n`;
}
