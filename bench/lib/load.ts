import { createHistogram, performance, type RecordableHistogram } from 'node:perf_hooks';
import { Pool, type Dispatcher } from 'undici';

/** Hard bounds: a run can never open more connections or last longer than this, whatever it is asked. */
export const MAX_CONCURRENCY = 1024;
export const MAX_DURATION_S = 600;
/** Per request: a server that stops answering fails the run instead of hanging it. */
const REQUEST_TIMEOUT_MS = 30_000;

/**
 * One request of one worker. It sends whatever the scenario needs, reads the whole
 * body, updates the worker's own state (the next refresh token, say) and returns the
 * status. Thrown errors are counted by their code (ECONNRESET, UND_ERR_…).
 */
export type Step = (worker: number, pool: Dispatcher) => Promise<number>;

export interface LoadOptions {
  /** http://127.0.0.1:PORT */
  origin: string;
  concurrency: number;
  durationS: number;
  /** Unrecorded time before the measured window, on the same connections. */
  warmupS: number;
  step: Step;
  /** Called when the measured window opens and closes (CPU accounting, RSS sampling). */
  onWindow?: { open(): void; close(): void };
}

export interface LatencySummary {
  /** milliseconds */
  p50: number;
  p95: number;
  p99: number;
  max: number;
  mean: number;
}

export interface LoadResult {
  concurrency: number;
  /** The measured window, seconds. */
  elapsedS: number;
  completed: number;
  /** Completed requests of any status per second. */
  throughput: number;
  /** Requests per second that got a 2xx. */
  okThroughput: number;
  latency: LatencySummary;
  /** Completed requests by HTTP status, and failed ones by error code. */
  statuses: Record<string, number>;
  /** Latency per status: a flood's fast 503s and its slow 200s are different populations. */
  latencyByStatus: Record<string, LatencySummary>;
  /** Requests that got no 2xx (any status ≥ 300, or a transport error). */
  errors: number;
}

/**
 * Closed-loop load: `concurrency` workers, each sending its next request only when its
 * previous one has been answered, for `warmupS` and then `durationS` seconds, over
 * keep-alive connections (one per worker). A request in flight when the window closes
 * is still awaited, because refresh chains must see every response, but is not counted.
 *
 * @example
 * const result = await runLoad({ origin, concurrency: 16, durationS: 10, warmupS: 3, step });
 */
export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const concurrency = Math.trunc(options.concurrency);
  if (!(concurrency >= 1 && concurrency <= MAX_CONCURRENCY)) throw new Error(`concurrency must be 1..${MAX_CONCURRENCY}`);
  if (!(options.durationS > 0 && options.durationS <= MAX_DURATION_S)) throw new Error(`duration must be in (0, ${MAX_DURATION_S}] s`);
  if (!(options.warmupS >= 0 && options.warmupS <= MAX_DURATION_S)) throw new Error(`warm-up must be in [0, ${MAX_DURATION_S}] s`);

  const pool = new Pool(options.origin, {
    connections: concurrency,
    pipelining: 1,
    keepAliveTimeout: 60_000,
    keepAliveMaxTimeout: 600_000,
    headersTimeout: REQUEST_TIMEOUT_MS,
    bodyTimeout: REQUEST_TIMEOUT_MS,
    connectTimeout: 10_000,
  });

  const all = createHistogram();
  const byStatus = new Map<string, RecordableHistogram>();
  const statuses: Record<string, number> = {};
  let measuring = false;
  let completed = 0;
  let errors = 0;
  let windowEnd = 0;

  const record = (key: string, ms: number, end: number) => {
    if (!measuring || end > windowEnd) return;
    completed++;
    statuses[key] = (statuses[key] ?? 0) + 1;
    if (!/^2\d\d$/.test(key)) errors++;
    const us = Math.max(1, Math.round(ms * 1000));
    all.record(us);
    let h = byStatus.get(key);
    if (!h) byStatus.set(key, (h = createHistogram()));
    h.record(us);
  };

  const warmupEnd = performance.now() + options.warmupS * 1000;
  windowEnd = warmupEnd + options.durationS * 1000;
  let windowStart = warmupEnd;

  const worker = async (i: number) => {
    for (;;) {
      const start = performance.now();
      if (start >= windowEnd) return;
      let key: string;
      try {
        key = String(await options.step(i, pool));
      } catch (error) {
        key = (error as { code?: string }).code ?? (error as Error).name ?? 'error';
      }
      const end = performance.now();
      // Only requests sent inside the window count; the first window-crossing one opens it.
      if (start >= windowStart) record(key, end - start, end);
    }
  };

  const opener = setTimeout(() => {
    windowStart = performance.now();
    measuring = true;
    options.onWindow?.open();
  }, Math.max(0, warmupEnd - performance.now()));
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    options.onWindow?.close();
  };
  const closer = setTimeout(close, Math.max(0, windowEnd - performance.now()));
  // A zero warm-up opens the window before any request is sent.
  if (options.warmupS === 0) {
    clearTimeout(opener);
    windowStart = performance.now();
    measuring = true;
    options.onWindow?.open();
  }

  try {
    await Promise.all(Array.from({ length: concurrency }, (_, i) => worker(i)));
  } finally {
    clearTimeout(opener);
    clearTimeout(closer);
    // The last response can land before a late timer fires: the window still closes once.
    if (measuring) close();
    await pool.close().catch(() => {});
  }
  if (!measuring) throw new Error('the measured window never opened');
  // Responses that landed after the window closed are not counted, so the window is the denominator.
  const elapsedS = Math.max(1e-3, (windowEnd - windowStart) / 1000);
  const ok = Object.entries(statuses).filter(([k]) => /^2\d\d$/.test(k)).reduce((n, [, v]) => n + v, 0);
  return {
    concurrency,
    elapsedS,
    completed,
    throughput: completed / elapsedS,
    okThroughput: ok / elapsedS,
    latency: summarise(all),
    statuses,
    latencyByStatus: Object.fromEntries([...byStatus].map(([k, h]) => [k, summarise(h)])),
    errors,
  };
}

function summarise(h: RecordableHistogram): LatencySummary {
  if (h.count === 0) return { p50: 0, p95: 0, p99: 0, max: 0, mean: 0 };
  const ms = (us: number) => Math.round(us) / 1000;
  return { p50: ms(h.percentile(50)), p95: ms(h.percentile(95)), p99: ms(h.percentile(99)), max: ms(h.max), mean: ms(h.mean) };
}

/** A JSON POST through the pool: status and parsed body (undefined if not JSON). */
export async function postJson(pool: Dispatcher, path: string, body: unknown, headers: Record<string, string> = {}) {
  const res = await pool.request({
    method: 'POST',
    path,
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  const text = await res.body.text();
  return { status: res.statusCode, json: parseJson(text) };
}

export async function getJson(pool: Dispatcher, path: string, headers: Record<string, string> = {}) {
  const res = await pool.request({ method: 'GET', path, headers });
  const text = await res.body.text();
  return { status: res.statusCode, json: parseJson(text) };
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
