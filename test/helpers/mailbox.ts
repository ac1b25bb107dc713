/**
 * A real SMTP server for tests: `smtp-server` on 127.0.0.1 (a free port), no TLS, any or no
 * login, each message parsed with mailparser. Point SMTP_URL at `mailbox.url`, then wait for
 * the mail the code under test sends.
 *
 * @example
 * const mailbox = await startMailbox();
 * const app = await startTestApp('pglite', { SMTP_URL: mailbox.url });
 * // … register …
 * const mail = await mailbox.waitFor((m) => m.subject?.includes('Confirm') ?? false);
 * const token = mailbox.linkToken(mail);
 * await mailbox.stop();
 */
import { simpleParser, type ParsedMail } from 'mailparser';
import { SMTPServer } from 'smtp-server';

export type { ParsedMail } from 'mailparser';

export interface Mailbox {
  /** `smtp://127.0.0.1:PORT`, for SMTP_URL */
  url: string;
  port: number;
  /** Every message accepted so far, in order of arrival. */
  readonly messages: readonly ParsedMail[];
  /**
   * The first accepted message that matches (any message without a predicate), already here or
   * still to come; rejects after `timeoutMs` (default 10 s) saying what did arrive.
   */
  waitFor(predicate?: (mail: ParsedMail) => boolean, timeoutMs?: number): Promise<ParsedMail>;
  /** The token after `#token=` in the mail's text (throws if there is none). */
  linkToken(mail: ParsedMail): string;
  /**
   * `true` (451, try again later) or a reply code such as 550: every recipient and every
   * message is refused with it until `refuse(false)`.
   */
  refuse(on: boolean | number): void;
  /**
   * While on, each message is read to its end and then left unanswered: its sender waits
   * mid-DATA. `hold(false)` answers the held ones (accepted, or refused if `refuse` is on).
   */
  hold(on: boolean): void;
  /** How many messages are held unanswered now. */
  readonly held: number;
  /** Resolves once at least `count` messages are held; rejects after `timeoutMs` (default 10 s). */
  waitForHeld(count?: number, timeoutMs?: number): Promise<void>;
  /** Stops listening and closes every connection (held messages are refused first). */
  stop(): Promise<void>;
}

const MAX_MESSAGE_BYTES = 1024 * 1024;

/** `port`: a given one (to bring back a server a test took down); default a free one. */
export async function startMailbox(options: { port?: number } = {}): Promise<Mailbox> {
  const messages: ParsedMail[] = [];
  const arrivals = new Set<() => void>();
  const changed = () => {
    for (const notify of [...arrivals]) notify();
  };
  let refusal: number | undefined;
  let holding = false;
  const held = new Set<() => void>();

  const refused = (code: number) =>
    Object.assign(new Error(code >= 500 ? 'Mailbox unavailable (refused by the test)' : 'Try again later (refused by the test)'), { responseCode: code });

  const server = new SMTPServer({
    secure: false,
    disabledCommands: ['STARTTLS'],
    authOptional: true,
    allowInsecureAuth: true,
    onAuth: (auth, _session, callback) => callback(null, { user: auth.username ?? 'anyone' }),
    size: MAX_MESSAGE_BYTES,
    logger: false,
    closeTimeout: 500,
    onRcptTo(_address, _session, callback) {
      callback(refusal === undefined ? null : refused(refusal));
    },
    onData(stream, _session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => {
        const answer = () => {
          if (refusal !== undefined) return callback(refused(refusal));
          if (stream.sizeExceeded) return callback(Object.assign(new Error('Message too big'), { responseCode: 552 }));
          simpleParser(Buffer.concat(chunks)).then(
            (mail) => {
              messages.push(mail);
              callback(null);
              changed();
            },
            (error: Error) => callback(error),
          );
        };
        if (!holding) return answer();
        const release = () => {
          held.delete(release);
          answer();
        };
        held.add(release);
        changed();
      });
    },
  });

  const port = await new Promise<number>((resolve, reject) => {
    server.server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => {
      const address = server.server.address();
      if (!address || typeof address === 'string') reject(new Error('the mailbox has no port'));
      else resolve(address.port);
    });
  });

  /** Resolves when `ready()` is true, checked now and at every arrival; bounded by `timeoutMs`. */
  const until = (ready: () => boolean, timeoutMs: number, what: () => string) =>
    new Promise<void>((resolve, reject) => {
      if (ready()) return resolve();
      const check = () => {
        if (!ready()) return;
        clearTimeout(timer);
        arrivals.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        arrivals.delete(check);
        reject(new Error(`mailbox: ${what()} within ${timeoutMs} ms`));
      }, timeoutMs);
      arrivals.add(check);
    });

  return {
    url: `smtp://127.0.0.1:${port}`,
    port,
    messages,
    get held() {
      return held.size;
    },
    async waitFor(predicate = () => true, timeoutMs = 10_000) {
      let found: ParsedMail | undefined;
      await until(
        () => (found = messages.find(predicate)) !== undefined,
        timeoutMs,
        () => `no matching mail arrived (${messages.length} arrived: ${messages.map((m) => JSON.stringify(m.subject)).join(', ') || 'none'})`,
      );
      return found!;
    },
    linkToken(mail) {
      const token = /#token=([A-Za-z0-9_-]+)/.exec(mail.text ?? '')?.[1];
      if (!token) throw new Error(`mailbox: no #token= link in the mail ${JSON.stringify(mail.subject)}`);
      return token;
    },
    refuse(on) {
      refusal = on === false ? undefined : on === true ? 451 : on;
    },
    hold(on) {
      holding = on;
      if (!on) for (const release of [...held]) release();
    },
    waitForHeld(count = 1, timeoutMs = 10_000) {
      return until(() => held.size >= count, timeoutMs, () => `${held.size} of ${count} message(s) held`);
    },
    async stop() {
      holding = false;
      refusal ??= 421;
      for (const release of [...held]) release();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
