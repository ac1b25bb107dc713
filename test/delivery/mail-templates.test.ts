import { describe, expect, it } from 'vitest';
import { MAIL_TEMPLATES, type MailMessage, type MailTemplate } from '../../src/core/outbox-message.js';
import { DeliveryFailure } from '../../src/delivery/delivery-failure.js';
import { renderMail } from '../../src/delivery/mail-templates.js';
import { senderAddress } from '../../src/delivery/mail-transport.js';

const site = { appName: 'Acme', appUrl: 'https://app.example.com' };
const TOKEN = 'AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyAhIiMkJSYnKCkqKywtLi8wMTIzNDU2Nzg5Ojs8PT4_QA';
const LINKED: Partial<Record<MailTemplate, string>> = {
  verify_email: '/verify-email', change_email: '/verify-email', reset_password: '/reset-password',
};
const FIREFOX = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0';

function messageFor(template: MailTemplate, extra: Partial<MailMessage> = {}): MailMessage {
  const purpose = template === 'reset_password' ? 'reset_password' : template === 'change_email' ? 'change_email' : 'verify_email';
  return {
    kind: 'mail', template, to: 'ada@example.com', name: 'Ada',
    ...(LINKED[template]
      ? { link: { purpose, userId: '11111111-1111-4111-8111-111111111111', requestId: '22222222-2222-4222-8222-222222222222', email: 'ada@example.com', expiresAt: '2026-11-22T12:30:00.000Z' } }
      : { event: { type: 'login_succeeded', at: '2026-11-22T12:00:00.000Z', ip: '203.0.113.9', userAgent: FIREFOX } }),
    ...(template === 'email_change_requested' || template === 'email_changed' ? { newEmail: 'ada@new.example.com' } : {}),
    ...extra,
  };
}

describe('mail templates', () => {
  it.each(MAIL_TEMPLATES)('%s: a subject with APP_NAME, plain text and HTML', (template) => {
    const mail = renderMail(messageFor(template), site, LINKED[template] ? TOKEN : undefined);
    expect(mail.subject).toContain('Acme');
    expect(mail.subject).not.toMatch(/[\r\n]/);
    expect(mail.text).toMatch(/^Hello Ada,\n\n/);
    expect(mail.html).toMatch(/^<!doctype html>/);
    expect(mail.html).toContain('<p>Hello Ada,</p>');
    for (const body of [mail.text, mail.html]) expect(body).toContain('https://app.example.com');
  });

  it.each(Object.entries(LINKED))('%s links to APP_URL%s#token=…, with its expiry', (template, path) => {
    const mail = renderMail(messageFor(template as MailTemplate), site, TOKEN);
    const url = `https://app.example.com${path}#token=${TOKEN}`;
    expect(mail.link).toBe(url);
    expect(mail.text).toContain(url);
    expect(mail.html).toContain(`href="${url}"`);
    expect(mail.text).toContain('22 November 2026 at 12:30 UTC');
  });

  it.each(MAIL_TEMPLATES.filter((t) => !LINKED[t]))('%s says when, from which device and IP, and what to do if it was not you', (template) => {
    const mail = renderMail(messageFor(template), site);
    expect(mail.link).toBeUndefined();
    expect(mail.text).toContain('When: 22 November 2026 at 12:00 UTC');
    expect(mail.text).toContain('Device: Firefox on Windows');
    expect(mail.text).toContain('IP address: 203.0.113.9');
    expect(mail.text).toMatch(/If this was not you, .*reset (your password|it) now .*sign out all sessions/);
    expect(mail.html).toContain('<strong>Firefox on Windows</strong>');
  });

  it('names the event: a reset is not a change, a passkey is not an authenticator app', () => {
    const reset = renderMail(messageFor('password_changed', { event: { type: 'password_reset', at: '2026-11-22T12:00:00Z', ip: null, userAgent: null } }), site);
    expect(reset.subject).toBe('Your Acme password was reset');
    expect(reset.text).toContain('IP address: unknown');
    expect(reset.text).toContain('Device: Unknown device');
    expect(renderMail(messageFor('password_changed'), site).subject).toBe('Your Acme password was changed');
    const passkey = renderMail(messageFor('factor_added', { event: { type: 'passkey_added', at: '2026-11-22T12:00:00Z', ip: null, userAgent: null } }), site);
    expect(passkey.text).toContain('A passkey was added');
    expect(renderMail(messageFor('factor_removed'), site).text).toContain('The authenticator app was removed');
    expect(renderMail(messageFor('email_change_requested'), site).text).toContain('from this address to ada@new.example.com');
  });

  it('escapes every value of a user in the HTML and keeps line breaks out of the text', () => {
    const hostile = '<img src=x onerror=alert(1)> & "quotes" \'too\'';
    const mail = renderMail(messageFor('email_change_requested', {
      name: `${hostile}\r\nBcc: attacker@example.com`,
      newEmail: '"><script>alert(1)</script>@example.com',
      event: { type: 'email_change_requested', at: '2026-11-22T12:00:00Z', ip: '<b>1.2.3.4</b>', userAgent: '<svg onload=alert(1)>\r\nX-Injected: yes' },
    }), site);
    expect(mail.html).not.toMatch(/<img|<script|<svg|<b>/);
    expect(mail.html).toContain('&lt;img src=x onerror=alert(1)&gt; &amp; &quot;quotes&quot; &#39;too&#39;');
    expect(mail.html).toContain('&quot;&gt;&lt;script&gt;');
    expect(mail.html).toContain('&lt;b&gt;1.2.3.4&lt;/b&gt;');
    expect(mail.text).toContain(`Hello ${hostile} Bcc: attacker@example.com,`);
    expect(mail.text).not.toMatch(/^(Bcc|X-Injected):/m);
    expect(mail.subject).toBe('The email address of your Acme account is about to change');
  });

  it('escapes APP_NAME and APP_URL too', () => {
    const mail = renderMail(messageFor('new_device'), { appName: 'A&B <Co>', appUrl: 'https://app.example.com/?a=1&b="2"' });
    expect(mail.html).toContain('A&amp;B &lt;Co&gt;');
    expect(mail.html).toContain('https://app.example.com/?a=1&amp;b=&quot;2&quot;');
    expect(mail.html).not.toContain('<Co>');
  });

  it('a mail that needs a link and has none is a permanent failure, as is an unknown template', () => {
    const noLink = () => renderMail(messageFor('reset_password'), site);
    expect(noLink).toThrow(DeliveryFailure);
    expect(noLink).toThrow('the reset_password mail has no link to send');
    const unknown = () => renderMail({ ...messageFor('new_device'), template: 'nope' as MailTemplate }, site);
    expect(unknown).toThrow(expect.objectContaining({ permanent: true, reason: 'no template named "nope"' }));
  });

  it('MAIL_FROM becomes one address object; a line break in it is refused', () => {
    expect(senderAddress('Acme <no-reply@acme.example>')).toEqual({ name: 'Acme', address: 'no-reply@acme.example' });
    expect(senderAddress('no-reply@acme.example')).toEqual({ name: '', address: 'no-reply@acme.example' });
    expect(() => senderAddress('Acme <a@b.c>\r\nBcc: x@y.z')).toThrow(/MAIL_FROM/);
    expect(() => senderAddress('nobody')).toThrow(/MAIL_FROM/);
  });
});
