/**
 * How every mail is laid out, in plain text and in simple HTML, from the same paragraphs:
 * the greeting and words of its template, the button of its link, the details of its event,
 * and the closing lines. Values of users are escaped here, in one place.
 */
import { deviceName } from '../core/device-name.js';
import type { NoticeEvent } from '../core/outbox-message.js';

/**
 * A paragraph: fixed English words around values. Values come from users and requests (a
 * name, an address, a user agent): the HTML escapes them, the text takes control characters
 * out of them, and none of them ever goes into a header (the subject is fixed words and APP_NAME).
 */
export interface Paragraph {
  strings: readonly string[];
  values: readonly string[];
}
export const p = (strings: TemplateStringsArray, ...values: string[]): Paragraph => ({ strings, values });

export interface MailContent {
  subject: string;
  paragraphs: Paragraph[];
  action?: { label: string; url: string; after: Paragraph[] };
  /** notices: what happened, when, from which device and IP */
  event?: NoticeEvent;
  closing: Paragraph[];
}

/** "22 November 2026 at 12:00 UTC": one time zone for every reader, said out loud. */
export function when(iso: string): string {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return 'an unknown time';
  return `${new Intl.DateTimeFormat('en-GB', { dateStyle: 'long', timeStyle: 'short', timeZone: 'UTC' }).format(date)} UTC`;
}

function details(event: NoticeEvent): [string, string][] {
  return [['When', when(event.at)], ['Device', deviceName(event.userAgent)], ['IP address', event.ip ?? 'unknown']];
}

/** Control characters (CR, LF, …) out of a value: it cannot break lines or fake a paragraph. */
const plain = (value: string) => value.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g, ' ');

export function renderText(body: Paragraph[], content: MailContent): string {
  const line = (para: Paragraph) => para.strings.reduce((out, s, i) => out + s + (i < para.values.length ? plain(para.values[i]!) : ''), '');
  const parts = body.map(line);
  if (content.action) parts.push(`${content.action.label}: ${content.action.url}`, ...content.action.after.map(line));
  if (content.event) parts.push(details(content.event).map(([k, v]) => `${k}: ${plain(v)}`).join('\n'));
  parts.push(...content.closing.map(line));
  return `${parts.join('\n\n')}\n`;
}

const escapeHtml = (value: string) =>
  value.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

export function renderHtml(body: Paragraph[], content: MailContent): string {
  const html = (para: Paragraph) =>
    `<p>${para.strings.reduce((out, s, i) => out + escapeHtml(s) + (i < para.values.length ? escapeHtml(plain(para.values[i]!)) : ''), '')}</p>`;
  const parts = body.map(html);
  if (content.action) {
    const url = escapeHtml(content.action.url);
    parts.push(
      `<p><a href="${url}" style="display:inline-block;padding:10px 18px;background:#1f4fd1;color:#ffffff;text-decoration:none;border-radius:6px">${escapeHtml(content.action.label)}</a></p>`,
      `<p style="font-size:14px;color:#555555">Or copy this address into your browser:<br><span style="word-break:break-all">${url}</span></p>`,
      ...content.action.after.map(html),
    );
  }
  if (content.event) {
    parts.push(`<ul>${details(content.event).map(([k, v]) => `<li>${escapeHtml(k)}: <strong>${escapeHtml(plain(v))}</strong></li>`).join('')}</ul>`);
  }
  parts.push(...content.closing.map(html));
  return [
    '<!doctype html>',
    `<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width"><title>${escapeHtml(content.subject)}</title></head>`,
    '<body style="margin:0;padding:24px;font-family:system-ui,-apple-system,Segoe UI,sans-serif;font-size:16px;line-height:1.5;color:#1a1a1a;background:#ffffff">',
    `<div style="max-width:560px;margin:0 auto">${parts.join('\n')}</div>`,
    '</body></html>',
    '',
  ].join('\n');
}
