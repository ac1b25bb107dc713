/**
 * A TCP proxy on 127.0.0.1 (port 0) between a server and PostgreSQL, to make the database
 * unreachable without touching the machine's PostgreSQL (other tests use it meanwhile).
 *
 * - `open`: bytes flow both ways.
 * - `reset`: every connection is reset at once, and new ones are reset on arrival
 *   (what a crashed or restarting database looks like: ECONNRESET / "Connection terminated").
 * - `blackhole`: connections stay open but no byte moves, either way, and new ones get no
 *   answer (a network partition: packets silently dropped). Held bytes flow again on `open`.
 *
 * `delay(ms)` holds every chunk, either way, for `ms` before passing it on (a slow network).
 *
 * `cutOn(pattern)` arms a precise fault: the first time a client sends bytes containing
 * `pattern` (the text of a SQL statement), the proxy switches to `reset`, either before the
 * statement reaches PostgreSQL (`deliver: false`) or after it does, losing only the answer
 * (`deliver: true`: the database commits, the server never learns it did).
 */
import { connect, createServer, type Server, type Socket } from 'node:net';

export type ProxyMode = 'open' | 'reset' | 'blackhole';

interface Pair {
  client: Socket;
  upstream: Socket;
  /** bytes held while blackholed, per direction */
  held: { toUpstream: Buffer[]; toClient: Buffer[] };
  tail: string;
}

export interface Trigger {
  /** Resolves when the trigger fired. */
  fired: Promise<void>;
  disarm(): void;
}

export class TcpProxy {
  #server: Server;
  #pairs = new Set<Pair>();
  #mode: ProxyMode = 'open';
  #triggers: { pattern: string; deliver: boolean; fire: () => void }[] = [];
  #delayMs = 0;
  /** Connections accepted so far. */
  connections = 0;

  private constructor(
    server: Server,
    readonly port: number,
    private readonly target: { host: string; port: number },
  ) {
    this.#server = server;
  }

  static async start(target: { host: string; port: number }): Promise<TcpProxy> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    if (!address || typeof address === 'string') throw new Error('no proxy address');
    const proxy = new TcpProxy(server, address.port, target);
    server.on('connection', (socket) => proxy.#accept(socket));
    return proxy;
  }

  get mode(): ProxyMode {
    return this.#mode;
  }

  /** Open connections right now. */
  get open(): number {
    return this.#pairs.size;
  }

  reset(): void {
    this.#mode = 'reset';
    for (const pair of [...this.#pairs]) this.#kill(pair);
  }

  blackhole(): void {
    this.#mode = 'blackhole';
  }

  /** Every chunk, either way, arrives `ms` late (0: no delay). */
  delay(ms: number): void {
    this.#delayMs = ms;
  }

  restore(): void {
    this.#mode = 'open';
    this.#delayMs = 0;
    for (const pair of this.#pairs) {
      for (const chunk of pair.held.toUpstream.splice(0)) pair.upstream.write(chunk);
      for (const chunk of pair.held.toClient.splice(0)) pair.client.write(chunk);
    }
  }

  cutOn(pattern: string, options: { deliver: boolean }): Trigger {
    let fire!: () => void;
    const fired = new Promise<void>((resolve) => (fire = resolve));
    const trigger = { pattern, deliver: options.deliver, fire };
    this.#triggers.push(trigger);
    return {
      fired,
      disarm: () => {
        this.#triggers = this.#triggers.filter((t) => t !== trigger);
      },
    };
  }

  async close(): Promise<void> {
    this.#triggers = [];
    for (const pair of [...this.#pairs]) this.#kill(pair);
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #accept(client: Socket): void {
    this.connections++;
    if (this.#mode === 'reset') {
      client.resetAndDestroy();
      return;
    }
    const upstream = connect(this.target.port, this.target.host);
    const pair: Pair = { client, upstream, held: { toUpstream: [], toClient: [] }, tail: '' };
    this.#pairs.add(pair);
    client.on('data', (chunk: Buffer) => this.#fromClient(pair, chunk));
    upstream.on('data', (chunk: Buffer) => {
      if (this.#mode === 'blackhole') pair.held.toClient.push(chunk);
      else if (this.#mode === 'open') this.#send(client, chunk);
    });
    const end = () => this.#kill(pair);
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
  }

  #fromClient(pair: Pair, chunk: Buffer): void {
    if (this.#mode === 'reset') return this.#kill(pair);
    // Match across chunk boundaries: keep the end of the previous chunk.
    const text = pair.tail + chunk.toString('latin1');
    pair.tail = text.slice(-200);
    this.#learnStatements(text);
    const trigger = this.#triggers.find((t) => text.includes(t.pattern) || this.#executes(text, t.pattern));
    if (trigger && this.#mode === 'open') {
      this.#triggers = this.#triggers.filter((t) => t !== trigger);
      if (trigger.deliver) {
        // The statement reaches PostgreSQL, which runs (and commits) it; its answer is lost.
        pair.upstream.write(chunk);
        this.#mode = 'reset';
        this.#pairs.delete(pair);
        pair.client.resetAndDestroy();
        for (const other of [...this.#pairs]) this.#kill(other);
        // Let PostgreSQL finish reading (and committing) before its connection goes too.
        setTimeout(() => pair.upstream.destroy(), 500).unref();
      } else {
        this.reset();
      }
      trigger.fire();
      return;
    }
    if (this.#mode === 'blackhole') pair.held.toUpstream.push(chunk);
    else this.#send(pair.upstream, chunk);
  }

  #send(socket: Socket, chunk: Buffer): void {
    if (this.#delayMs === 0) socket.write(chunk);
    // Equal delays keep the order of the chunks.
    else setTimeout(() => socket.destroyed || socket.write(chunk), this.#delayMs).unref();
  }

  /** Named prepared statements seen in Parse messages: statement name → SQL text. */
  #statements = new Map<string, string>();

  // Tessera prepares its statements by name, so after the first Parse on a connection the SQL
  // text no longer travels: a Bind names the statement instead ('B', length, portal "\0", name "\0").
  #learnStatements(text: string): void {
    for (const [, name, sql] of text.matchAll(/P[\s\S]{4}(tessera_[0-9a-z]+)\0([^\0]*)\0/g)) this.#statements.set(name!, sql!);
  }

  #executes(text: string, pattern: string): boolean {
    for (const [name, sql] of this.#statements) {
      if (sql.includes(pattern) && text.includes(`B`) && text.includes(`\0${name}\0`)) return true;
    }
    return false;
  }

  #kill(pair: Pair): void {
    if (!this.#pairs.delete(pair)) return;
    if (!pair.client.destroyed) pair.client.resetAndDestroy();
    pair.upstream.destroy();
  }
}
