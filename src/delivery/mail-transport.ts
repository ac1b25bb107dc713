import { createTransport } from 'nodemailer';
import addressparser from 'nodemailer/lib/addressparser';
import type { DeliveryLogger } from './outbox-worker.js';

/** One mail, rendered, to one validated address. */
export interface OutgoingMail {
  /** a validated address: the only value from a user that goes into a header */
  to: string;
  subject: string;
  text: string;
  html: string;
  /** the link the mail carries, if any: the log transport shows it */
  link?: string;
}

/** How mails leave: SMTP, or the log in development. */
export interface MailTransport {
  /** Resolves once the mail is handed over; throws if it was not (the worker tries again later). */
  send(mail: OutgoingMail, signal: AbortSignal): Promise<void>;
  close(): void;
}

/** Timeouts of one SMTP delivery: a server that stops answering costs a worker slot this long at most. */
export const SMTP_TIMEOUTS = Object.freeze({
  connectionTimeout: 10_000,
  greetingTimeout: 10_000,
  socketTimeout: 30_000,
  dnsTimeout: 10_000,
  socketCloseTimeout: 2_000,
});

/**
 * Mails through the SMTP server of SMTP_URL (`smtp://` with STARTTLS when the server offers
 * it, or `smtps://`; credentials in the URL), from MAIL_FROM. A connection per mail: the worker
 * bounds how many run at once.
 *
 * Header injection: the sender and the recipient go to nodemailer as address objects, which it
 * encodes as addresses (a CR or LF in them cannot start a header of its own), and the subject
 * holds no value of a user. The recipient was validated before it gets here.
 *
 * @example
 * const transport = smtpTransport(config.smtpUrl, config.mailFrom);
 * await transport.send({ to, subject, text, html }, AbortSignal.timeout(60_000));
 */
export function smtpTransport(smtpUrl: string, mailFrom: string): MailTransport {
  const from = senderAddress(mailFrom);
  const transporter = createTransport({ url: smtpUrl, ...SMTP_TIMEOUTS });
  return {
    async send(mail, signal) {
      await transporter.sendMail({
        from,
        to: { name: '', address: mail.to },
        subject: mail.subject,
        text: mail.text,
        html: mail.html,
        // RFC 3834: an automatic mail; well-behaved autoresponders do not answer it.
        headers: { 'Auto-Submitted': 'auto-generated' },
        // The message is only our own text: nothing in it may make nodemailer read a file or a URL.
        disableFileAccess: true,
        disableUrlAccess: true,
        signal,
      });
    },
    close: () => transporter.close(),
  };
}

/** MAIL_FROM ("Example <no-reply@example.com>" or a bare address) as one address object. */
export function senderAddress(mailFrom: string): { name: string; address: string } {
  const [first] = addressparser(mailFrom, { flatten: true });
  if (!first?.address || /[\r\n]/.test(mailFrom)) throw new Error(`MAIL_FROM is not an address such as "Example <no-reply@example.com>"`);
  return { name: first.name, address: first.address };
}

/**
 * Development without SMTP (SPEC §7: only when `config.mail === 'log'`, a loopback PUBLIC_URL
 * and no SMTP_URL): each mail is written to the log at `info`, with its link, so a developer
 * can follow it. Never in production: the link's token is in the log line.
 */
export function logTransport(logger: DeliveryLogger): MailTransport {
  return {
    async send(mail) {
      logger.info(
        { mail: { to: mail.to, subject: mail.subject, ...(mail.link ? { link: mail.link } : {}) } },
        `mail to ${mail.to} (not sent: no SMTP_URL in development): ${mail.subject}${mail.link ? ` — open ${mail.link}` : ''}`,
      );
    },
    close() {},
  };
}
