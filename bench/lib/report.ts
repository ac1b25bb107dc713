import type { LoadResult } from './load.js';
import type { CpuUse } from './processes.js';
import type { VerifyLoopResult } from '../scenarios/verify.js';

export type BackendKind = 'postgres' | 'pglite';

/** One measured run: one server process, one warm-up, one window. */
export interface RunRecord {
  backend: BackendKind | 'none';
  scenario: 'refresh' | 'protected' | 'verify' | 'helpers' | 'login' | 'flood' | 'startup';
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
  // Start-ups have no load: the ratios read their records directly.
  for (const r of records.filter((x) => x.scenario !== 'startup')) {
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

/** What the ratios need besides the summaries. */
export interface RatioContext {
  hashMs?: number | undefined;
  hashRate?: number | undefined;
  cores: number;
  baseTable: string;
  verifyConcurrency: number;
  spu: number[];
  tables: number[];
  flood?: RunRecord[];
  startup?: RunRecord[];
}

/** The targets of issue 15, by backend, as ratios of one run of the harness. */
const TARGETS = {
  refreshFloor: { postgres: 0.85, pglite: 0.9 } as Record<string, number>,
  refreshP99Ms: 15,
  protectedFloor: 0.85,
  verifyLoop: 0.9,
  helperAddedUs: 10,
  loginHashRate: 0.9,
  flatness: 1.2,
  startupMs: { postgres: 1_000, pglite: 3_000 } as Record<string, number>,
};

/**
 * The issue's targets, computed from the summaries of one run of the harness. Ratios of
 * CPU per request are the ones judged (met or not): they move least with other work on the
 * machine. Throughput ratios are given beside them for reference.
 */
export function ratios(summaries: Summary[], context: RatioContext): Ratio[] {
  const out: Ratio[] = [];
  const backends = [...new Set(summaries.map((s) => s.backend))].filter((b) => b !== 'none');
  for (const b of backends) {
    const refresh = find(summaries, b, 'refresh', 'tessera', context.baseTable);
    for (const floor of ['floor:read-update', 'floor:one-statement']) {
      const f = find(summaries, b, 'refresh', floor, context.baseTable);
      if (!refresh || !f) continue;
      const target = floor === 'floor:read-update' ? TARGETS.refreshFloor[b] : undefined;
      out.push(cpuRatio(b, `refresh ÷ ${floor}, by CPU per request`, refresh, f, target));
      out.push(reference(b, `refresh ÷ ${floor}, by req/s`, refresh.throughput / f.throughput, `${fmt(refresh.throughput)} vs ${fmt(f.throughput)} req/s`));
    }
    const quiet = find(summaries, b, 'refresh', 'tessera, LOG_LEVEL=warn', context.baseTable);
    if (refresh && quiet) {
      out.push(reference(
        b, 'request logging: refresh at LOG_LEVEL=info (default) ÷ at warn, by CPU per request', (quiet.totalCpuUs ?? NaN) / (refresh.totalCpuUs ?? NaN),
        `server ${fmt(refresh.serverCpuUs)} vs ${fmt(quiet.serverCpuUs)} µs, total ${fmt(refresh.totalCpuUs)} vs ${fmt(quiet.totalCpuUs)} µs per refresh: logging costs ${fmt((refresh.serverCpuUs ?? NaN) - (quiet.serverCpuUs ?? NaN))} µs of server CPU`,
      ));
    }
    if (refresh) {
      const met = b === 'postgres' ? refresh.p99 < TARGETS.refreshP99Ms : undefined;
      out.push({ backend: b, name: 'refresh p99 (ms), C=16', value: refresh.p99, target: b === 'postgres' ? `< ${TARGETS.refreshP99Ms}` : '(reference)', met, detail: `p50 ${fmt(refresh.p50, 2)} ms, p95 ${fmt(refresh.p95, 2)} ms` });
    }
    const me = find(summaries, b, 'protected', 'tessera', context.baseTable);
    const meFloor = find(summaries, b, 'protected', 'floor:one-statement', context.baseTable);
    if (me && meFloor) {
      out.push(cpuRatio(b, 'protected route ÷ floor (verify + PK read), by CPU per request', me, meFloor, TARGETS.protectedFloor));
      out.push(reference(b, 'protected route ÷ floor, by req/s', me.throughput / meFloor.throughput, `${fmt(me.throughput)} vs ${fmt(meFloor.throughput)} req/s`));
    }
    const spu = context.spu.map((n) => find(summaries, b, 'refresh', 'tessera', `${n} sessions/user`)).filter((s): s is Summary => !!s);
    if (spu.length > 1) out.push(cpuFlatness(b, `refresh flatness, sessions per user ${context.spu.join('/')}, by CPU per request`, spu));
    const tables = context.tables.map((n) => find(summaries, b, 'refresh', 'tessera', tableLabel(n))).filter((s): s is Summary => !!s);
    if (tables.length > 1) out.push(cpuFlatness(b, `refresh flatness, table ${context.tables.map(sci).join('/')}, by CPU per request`, tables));
    const login = find(summaries, b, 'login', 'tessera', 'correct password');
    if (login && context.hashRate) {
      const value = login.throughput / context.hashRate;
      out.push({
        backend: b, name: `login ÷ measured argon2id rate (${context.cores} at once)`, value, target: `≥ ${TARGETS.loginHashRate}`, met: value >= TARGETS.loginHashRate,
        detail: `${fmt(login.throughput)} logins/s vs ${fmt(context.hashRate)} verifications/s with nothing else running`,
      });
      if (context.hashMs) {
        const bound = (context.cores * 1000) / context.hashMs;
        out.push(reference(b, 'login ÷ (cores ÷ one hash\'s time)', login.throughput / bound, `${fmt(login.throughput)} vs ${fmt(bound)} logins/s (one hash ${context.hashMs.toFixed(1)} ms)`));
      }
    }
    for (const f of context.flood?.filter((r) => r.backend === b) ?? []) {
      const e = f.extra as { healthy?: boolean; rssBeforeMiB?: number; rssAfterMiB?: number; unexpected?: number } | undefined;
      const s503 = f.load?.latencyByStatus['503'];
      out.push({
        backend: b, name: 'login flood: fast 503s, healthy after, memory bounded (peak RSS MiB)', value: f.serverPeakRssMiB ?? NaN, target: 'healthy, no crash',
        met: e?.healthy === true && (e.unexpected ?? 0) === 0,
        detail: `503 p50 ${fmt(s503?.p50, 1)} ms, p99 ${fmt(s503?.p99, 1)} ms; peak RSS ${fmt(f.serverPeakRssMiB ?? NaN)} MiB (before ${fmt(e?.rssBeforeMiB ?? NaN)}, after ${fmt(e?.rssAfterMiB ?? NaN)}); ${statusList(f.load?.statuses ?? {})}`,
      });
    }
    const starts = context.startup?.filter((r) => r.backend === b) ?? [];
    if (starts.length) {
      const ms = median(starts.map((r) => (r.extra as { ms: number }).ms));
      const parts = Object.keys((starts[0]!.extra as { parts: Record<string, number> }).parts);
      const partMedians = parts.map((k) => `${k} ${fmt(median(starts.map((r) => (r.extra as { parts: Record<string, number> }).parts[k] ?? NaN)))}`);
      out.push({
        backend: b, name: `start-up to ready (ms), ${starts[0]!.variant}`, value: ms, target: `< ${fmt(TARGETS.startupMs[b])}`, met: ms < (TARGETS.startupMs[b] ?? 0),
        detail: `median of ${starts.length}: ${partMedians.join(', ')} ms`,
      });
    }
  }
  const verify = find(summaries, 'none', 'verify', 'tessera', `C=${context.verifyConcurrency}`);
  const bare = find(summaries, 'none', 'verify', 'floor:node-crypto', 'C=1');
  const single = find(summaries, 'none', 'verify', 'tessera', 'C=1');
  if (verify && bare) {
    const value = verify.throughput / bare.throughput;
    out.push({ backend: 'none', name: `tessera/verify (C=${context.verifyConcurrency}) ÷ node:crypto loop`, value, target: `≥ ${TARGETS.verifyLoop}`, met: value >= TARGETS.verifyLoop, detail: `${fmt(verify.throughput)} vs ${fmt(bare.throughput)} verifications/s` });
    if (single) out.push(reference('none', 'tessera/verify (C=1) ÷ node:crypto loop', single.throughput / bare.throughput, `${fmt(single.throughput)} vs ${fmt(bare.throughput)} verifications/s, one at a time`));
  }
  for (const framework of ['express', 'fastify', 'nestjs']) {
    const withHelper = summaries.find((s) => s.scenario === 'helpers' && s.server === `${framework}:helper`);
    const without = summaries.find((s) => s.scenario === 'helpers' && s.server === `${framework}:bare`);
    if (!withHelper || !without) continue;
    const added = (withHelper.serverCpuUs ?? NaN) - (without.serverCpuUs ?? NaN);
    out.push({
      backend: 'none', name: `tessera/${framework} helper over the bare framework (server µs/request)`, value: added, target: `≤ ${TARGETS.helperAddedUs}`, met: added <= TARGETS.helperAddedUs,
      detail: `${fmt(withHelper.serverCpuUs)} vs ${fmt(without.serverCpuUs)} µs; ${fmt(withHelper.throughput)} vs ${fmt(without.throughput)} req/s; other ${fmt(withHelper.otherCpuPct)} / ${fmt(without.otherCpuPct)} %`,
    });
  }
  return out;
}

function reference(backend: string, name: string, value: number, detail: string): Ratio {
  return { backend, name, value, target: '(reference)', met: undefined, detail };
}

/**
 * Throughput ratio estimated from CPU per request (server + database + load generator):
 * what the ratio would be on a machine where nothing else runs and the cores are the
 * bottleneck. Far less sensitive to other processes than the throughput itself.
 */
function cpuRatio(backend: string, name: string, tessera: Summary, floor: Summary, target: number | undefined): Ratio {
  const value = (floor.totalCpuUs ?? NaN) / (tessera.totalCpuUs ?? NaN);
  return {
    backend, name, value, target: target ? `≥ ${target}` : '(reference)', met: target ? value >= target : undefined,
    detail: `${fmt(tessera.totalCpuUs)} vs ${fmt(floor.totalCpuUs)} CPU µs/request (server ${fmt(tessera.serverCpuUs)} vs ${fmt(floor.serverCpuUs)})`,
  };
}

function cpuFlatness(backend: string, name: string, rows: Summary[]): Ratio {
  const cpu = rows.map((s) => s.totalCpuUs ?? NaN);
  const value = Math.max(...cpu) / Math.min(...cpu);
  return { backend, name, value, target: `≤ ${TARGETS.flatness}`, met: value <= TARGETS.flatness, detail: rows.map((s) => `${s.variant}: ${fmt(s.totalCpuUs)} µs`).join(', ') };
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

export function renderMarkdown(
  machine: Machine, summaries: Summary[], ratioList: Ratio[], options: { repeats: number; durationS: number; concurrency: number; mode: string; baseTable: string },
): string {
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
  const peerRows = summaries.filter((s) => s.backend === 'postgres' && (s.scenario === 'refresh' || s.scenario === 'protected') && s.variant === options.baseTable
    && (s.server === 'tessera' || s.server.startsWith('peer:')));
  if (peerRows.some((s) => s.server.startsWith('peer:'))) {
    parts.push('### Side by side (PostgreSQL)');
    parts.push(
      table(
        ['server', 'refresh req/s', 'refresh p99 ms', 'refresh CPU µs/req (server / db / total)', 'protected req/s', 'protected p99 ms', 'protected CPU µs/req (server / db / total)'],
        [...new Set(peerRows.map((s) => s.server))].map((server) => {
          const cells = (scenario: string) => {
            const s = peerRows.find((r) => r.server === server && r.scenario === scenario);
            return s ? [fmt(s.throughput), fmt(s.p99, 1), `${fmt(s.serverCpuUs)} / ${fmt(s.postgresCpuUs)} / ${fmt(s.totalCpuUs)}`] : ['–', '–', '–'];
          };
          return [server, ...cells('refresh'), ...cells('protected')];
        }),
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
