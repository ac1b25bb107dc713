/**
 * A small HTTP/1.1 client over node:http for the attack and fault suites. It deliberately
 * avoids `globalThis.fetch`, so a spy on fetch sees only what the server under test does.
 */
import { Agent, request, type IncomingHttpHeaders } from 'node:http';

export interface HttpResponse {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  /** Milliseconds from the request being written to the whole response being read. */
  ms: number;
  json<T = Record<string, unknown>>(): T;
}

export interface CallOptions {
  /** Sent as application/json. */
  json?: unknown;
  /** A raw body, sent as is (set content-type yourself). */
  body?: string | Buffer;
  headers?: Record<string, string>;
  /** The request fails (rejects) after this long; default 20 s. */
  timeoutMs?: number;
  agent?: Agent;
}

/** Thrown when the exchange fails below HTTP: refused, reset, timed out. */
export class NetworkError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
    this.name = 'NetworkError';
  }
}

/** One request to `base` (e.g. http://127.0.0.1:1234); resolves with any status, rejects only on a network failure. */
export function call(base: string, method: string, path: string, options: CallOptions = {}): Promise<HttpResponse> {
  const url = new URL(path, base);
  const headers: Record<string, string> = { ...options.headers };
  let payload: string | Buffer | undefined = options.body;
  if (options.json !== undefined) {
    payload = JSON.stringify(options.json);
    headers['content-type'] ??= 'application/json';
  }
  if (payload !== undefined) headers['content-length'] = String(Buffer.byteLength(payload));
  const timeoutMs = options.timeoutMs ?? 20_000;
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const req = request(
      { host: url.hostname, port: url.port, path: url.pathname + url.search, method, headers, agent: options.agent },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', (error: NodeJS.ErrnoException) => reject(new NetworkError(error.code ?? 'ERR', error.message)));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          const ms = performance.now() - started;
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            text,
            ms,
            json: <T>() => JSON.parse(text) as T,
          });
        });
      },
    );
    req.setTimeout(timeoutMs, () => req.destroy(Object.assign(new Error(`no answer within ${timeoutMs} ms`), { code: 'ETIMEDOUT' })));
    req.on('error', (error: NodeJS.ErrnoException) => reject(new NetworkError(error.code ?? 'ERR', `${method} ${path}: ${error.message}`)));
    if (payload !== undefined) req.write(payload);
    req.end();
  });
}

/** A client bound to one server. */
export function client(base: string) {
  return {
    base,
    get: (path: string, options?: CallOptions) => call(base, 'GET', path, options),
    post: (path: string, json: unknown, options?: CallOptions) => call(base, 'POST', path, { ...options, json }),
    delete: (path: string, options?: CallOptions) => call(base, 'DELETE', path, options),
    call: (method: string, path: string, options?: CallOptions) => call(base, method, path, options),
  };
}

export type Client = ReturnType<typeof client>;

export const bearer = (accessToken: string) => ({ authorization: `Bearer ${accessToken}` });

/** The problem+json `code` of a response, or undefined. */
export function codeOf(res: HttpResponse): string | undefined {
  try {
    return (JSON.parse(res.text) as { code?: string }).code;
  } catch {
    return undefined;
  }
}
