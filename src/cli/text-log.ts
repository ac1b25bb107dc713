/**
 * pino writes one JSON record a line, for log collectors. A person running a CLI command,
 * or `tessera serve` in a terminal, reads text: this destination turns each record into
 * one line of it, keeping any extra fields as compact JSON at the end so nothing is lost.
 */
import type { DestinationStream } from 'pino';

const LABELS: Readonly<Record<number, string>> = { 10: 'trace: ', 20: 'debug: ', 40: 'warning: ', 50: 'error: ', 60: 'error: ' };
/** pino's and Fastify's bookkeeping fields: the line shows the time instead, or nothing. */
const HIDDEN = new Set(['level', 'time', 'pid', 'hostname', 'msg', 'reqId']);

/**
 * `command`: `tessera: <message>`, as the CLI's other lines (configuration errors, results).
 * `terminal`: `14:03:22 <message>`, warnings and errors labelled, for the server's log.
 */
export function textDestination(out: NodeJS.WritableStream, style: 'command' | 'terminal'): DestinationStream {
  return {
    write(line: string) {
      const record = JSON.parse(line) as Record<string, unknown>;
      const extra = Object.entries(record).filter(([key]) => !HIDDEN.has(key));
      const text = `${String(record.msg ?? '')}${extra.length > 0 ? ` ${JSON.stringify(Object.fromEntries(extra))}` : ''}`;
      if (style === 'command') {
        out.write(`tessera: ${text}\n`);
        return;
      }
      const time = new Date(typeof record.time === 'number' ? record.time : Date.now()).toTimeString().slice(0, 8);
      out.write(`${time} ${LABELS[record.level as number] ?? ''}${text}\n`);
    },
  };
}
