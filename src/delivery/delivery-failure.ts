/**
 * Why a delivery did not happen, in words for the log and the outbox's `last_error`: never a
 * token, a credential, a URL's secret part or a message body. `permanent`: trying again cannot
 * help (a row that cannot be rendered), so the worker gives up at once instead of for 24 h.
 */
export class DeliveryFailure extends Error {
  constructor(readonly reason: string, readonly permanent = false) {
    super(reason);
    this.name = 'DeliveryFailure';
  }
}

const WORDS: Readonly<Record<string, string>> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  EPIPE: 'connection closed',
  ETIMEDOUT: 'timed out',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'host name lookup failed',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ECONNECTION: 'could not connect to the SMTP server',
  ESOCKET: 'SMTP connection failed',
  EAUTH: 'the SMTP server refused the login',
  ETLS: 'TLS with the SMTP server failed',
  EDNS: 'host name lookup failed',
  EENVELOPE: 'the SMTP server refused the recipient',
  EMESSAGE: 'the SMTP server refused the message',
  EPROTOCOL: 'the SMTP server broke the protocol',
  EABORT: 'cancelled',
  UND_ERR_CONNECT_TIMEOUT: 'connecting timed out',
  UND_ERR_HEADERS_TIMEOUT: 'no answer in time',
  UND_ERR_SOCKET: 'connection closed',
};

interface ErrorShape {
  name?: unknown;
  code?: unknown;
  message?: unknown;
  responseCode?: unknown;
  response?: unknown;
  cause?: ErrorShape;
}

/** Any error a delivery throws, in one line of words. */
export function describeFailure(error: unknown): string {
  if (error instanceof DeliveryFailure) return error.reason;
  const e = (typeof error === 'object' && error !== null ? error : { message: String(error) }) as ErrorShape;
  if (e.name === 'TimeoutError') return 'no answer in time';
  if (e.name === 'AbortError') return 'cancelled';
  if (typeof e.responseCode === 'number') {
    // The server's own reply, e.g. "451 4.3.0 Try again later": useful, and it is the server's words.
    const reply = typeof e.response === 'string' ? oneLine(e.response) : String(e.responseCode);
    return `${WORDS[String(e.code)] ?? 'the SMTP server refused'}: ${reply}`;
  }
  const code = typeof e.code === 'string' ? e.code : typeof e.cause?.code === 'string' ? e.cause.code : undefined;
  const detail = typeof e.cause?.message === 'string' ? e.cause.message : typeof e.message === 'string' ? e.message : '';
  // nodemailer wraps a socket's error (ESOCKET "connect ECONNREFUSED …"): the inner code says more.
  const inner = /\b(E[A-Z]{4,}|UND_ERR_[A-Z_]+)\b/.exec(detail)?.[1];
  const words = (inner && WORDS[inner]) ?? (code ? (WORDS[code] ?? code) : 'failed');
  return detail ? `${words} (${oneLine(detail)})` : words;
}

/** One short line, with any `user:password@` of a URL taken out. */
function oneLine(text: string): string {
  return text.replace(/\/\/[^/\s@]*@/g, '//').replace(/\s+/g, ' ').trim().slice(0, 200);
}
