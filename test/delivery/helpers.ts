/**
 * What the delivery tests share: a logger that keeps its lines, a clock moved by hand, a real
 * webhook receiver on loopback, and a bounded wait for a condition on the database.
 */
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { DeliveryLogger } from '../../src/delivery/outbox-worker.js';

export interface LogLine {
  level: 'info' | 'warn' | 'error';
  details: object;
  message: string;
}

/** A DeliveryLogger that keeps every line; `text()` is all of them as one string, to search. */
export class MemoryLogger implements DeliveryLogger {
  readonly lines: LogLine[] = [];
  info(details: object, message: string) {
    this.lines.push({ level: 'info', details, message });
  }
  warn(details: object, message: string) {
    this.lines.push({ level: 'warn', details, message });
  }
  error(details: object, message: string) {
    this.lines.push({ level: 'error', details, message });
  }
  at(level: LogLine['level']): LogLine[] {
    return this.lines.filter((l) => l.level === level);
  }
  text(): string {
    return this.lines.map((l) => `${l.level} ${l.message} ${JSON.stringify(l.details)}`).join('\n');
  }
}

/** A clock tests move by hand; it starts at the real time, so signatures' timestamps stay believable. */
export class HandClock {
  constructor(public time = Date.now()) {}
  now = () => new Date(this.time);
  advance(seconds: number) {
    this.time += seconds * 1000;
  }
}

/** Resolves with `check()`'s first truthy value, polled every 20 ms; rejects after `timeoutMs`. */
export async function eventually<T>(check: () => Promise<T | undefined | false | null> | T | undefined | false | null, timeoutMs = 10_000, what = 'the condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

export interface ReceivedHook {
  headers: IncomingHttpHeaders;
  body: string;
}

export interface WebhookReceiver {
  url: string;
  readonly received: readonly ReceivedHook[];
  /** The status of each next answer, in order; 200 once they run out. */
  answers: number[];
  waitFor(count: number, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

/** A real HTTP receiver on 127.0.0.1, answering each POST with the next of `answers`. */
export async function startWebhookReceiver(answers: number[] = []): Promise<WebhookReceiver> {
  const received: ReceivedHook[] = [];
  const receiver = { answers };
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      received.push({ headers: request.headers, body: Buffer.concat(chunks).toString('utf8') });
      response.statusCode = receiver.answers.shift() ?? 200;
      response.end('answer body that the sender must not keep');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('no address');
  return {
    url: `http://127.0.0.1:${address.port}/hooks/tessera`,
    received,
    get answers() {
      return receiver.answers;
    },
    set answers(value) {
      receiver.answers = value;
    },
    waitFor: (count, timeoutMs = 10_000) => eventually(() => received.length >= count, timeoutMs, `${count} webhook request(s)`).then(() => {}),
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
