/**
 * What the failure cases of the fault suite check on every answer and in every log: a 503
 * `service_unavailable` with Retry-After (never a 500, never a 401 that signs a client out),
 * and a warning in the server's log that names the real cause.
 */
import { expect } from 'vitest';
import { codeOf, type HttpResponse } from './http.js';

/** A 503 problem+json `service_unavailable` with a positive Retry-After and no internals in the body. */
export function expectServiceUnavailable(res: HttpResponse, what: string): void {
  expect(res.status, `${what}: ${res.text}`).toBe(503);
  expect(res.headers['content-type'], what).toMatch(/^application\/problem\+json/);
  expect(codeOf(res), what).toBe('service_unavailable');
  expect(Number(res.headers['retry-after']), `${what}: Retry-After`).toBeGreaterThan(0);
  expect(res.text, what).not.toMatch(/insert into|update "|select |ECONN|\bat\s+\S+\s+\(/i);
}

/** One pino line of the server's log. */
export interface LogEntry {
  level: number;
  msg?: string;
  err?: { type?: string; code?: string; message?: string };
  [key: string]: unknown;
}

/** The JSON lines of a log text (a server's `logs()`, or a slice of it), skipping anything else. */
export function logEntries(text: string): LogEntry[] {
  const entries: LogEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      entries.push(JSON.parse(line) as LogEntry);
    } catch {
      // a partial last line
    }
  }
  return entries;
}

/** The warnings of answers that were 503s (`database unavailable`, `redis unavailable`), as `msg: code message`. */
export function unavailableLines(text: string): string[] {
  return logEntries(text)
    .filter((e) => /^(database|redis) unavailable$/.test(e.msg ?? ''))
    .map((e) => `${e.msg}: ${e.err?.code ?? '-'} ${e.err?.message ?? '-'}`);
}
