import type { MailMessage, MailTemplate } from '../core/outbox-message.js';
import { DeliveryFailure } from './delivery-failure.js';
import { p, renderHtml, renderText, when, type MailContent } from './mail-layout.js';

/** What every mail says about where it comes from: APP_NAME and APP_URL. */
export interface MailSite {
  appName: string;
  /** no trailing slash */
  appUrl: string;
}

export interface RenderedMail {
  subject: string;
  text: string;
  html: string;
  /** the link the mail asks the user to open, if any (the log transport shows it) */
  link?: string;
}

/** The page of the front end each link opens; the token goes in the fragment, never sent to a server by a browser. */
const LINK_PATHS = { verify_email: '/verify-email', change_email: '/verify-email', reset_password: '/reset-password' } as const;

/**
 * The subject, plain text and simple HTML of a mail, in English. `token`: the link's token,
 * derived by the caller when it sends the mail (templates with a link need it).
 *
 * @example
 * const mail = renderMail(message, { appName: 'Tessera', appUrl: 'https://app.example.com' }, token);
 */
export function renderMail(message: MailMessage, site: MailSite, token?: string): RenderedMail {
  const content = CONTENT[message.template]?.(message, site, token);
  if (!content) throw new DeliveryFailure(`no template named ${JSON.stringify(String(message.template))}`, true);
  const greeting = message.name.trim() ? p`Hello ${message.name.trim()},` : p`Hello,`;
  const body = [greeting, ...content.paragraphs];
  content.closing.push(p`— ${site.appName}, ${site.appUrl}`);
  return {
    subject: content.subject,
    text: renderText(body, content),
    html: renderHtml(body, content),
    ...(content.action ? { link: content.action.url } : {}),
  };
}

function linkOf(message: MailMessage, site: MailSite, token: string | undefined): { url: string; expires: string } {
  const purpose = message.link?.purpose;
  if (!message.link || !token || purpose === undefined || !(purpose in LINK_PATHS)) {
    throw new DeliveryFailure(`the ${message.template} mail has no link to send`, true);
  }
  return { url: `${site.appUrl}${LINK_PATHS[purpose]}#token=${token}`, expires: when(message.link.expiresAt) };
}

const notYou = (site: MailSite) => [
  p`If this was not you, reset your password now (use “Forgot password” at ${site.appUrl}), then sign out all sessions from your account settings: that ends every session, including one that is not yours.`,
];
const ignore = (what: string) => [p`If you did not ask for this, you can ignore this mail: ${what}.`];

const CONTENT: Record<MailTemplate, (m: MailMessage, site: MailSite, token: string | undefined) => MailContent> = {
  verify_email: (m, site, token) => {
    const link = linkOf(m, site, token);
    return {
      subject: `Confirm your email address for ${site.appName}`,
      paragraphs: [p`Please confirm that this address is yours by opening this link:`],
      action: { label: 'Confirm email address', url: link.url, after: [p`The link works once and expires on ${link.expires}.`] },
      closing: [p`If you did not create an account at ${site.appName}, you can ignore this mail.`],
    };
  },
  reset_password: (m, site, token) => {
    const link = linkOf(m, site, token);
    return {
      subject: `Reset your ${site.appName} password`,
      paragraphs: [p`Someone, hopefully you, asked to reset the password of the ${site.appName} account of this address. To choose a new password, open this link:`],
      action: {
        label: 'Choose a new password', url: link.url,
        after: [p`The link works once and expires on ${link.expires}; asking again replaces it. Resetting signs you out everywhere.`],
      },
      closing: ignore('your password stays as it is'),
    };
  },
  change_email: (m, site, token) => {
    const link = linkOf(m, site, token);
    return {
      subject: `Confirm your new email address for ${site.appName}`,
      paragraphs: [p`You asked to use this address for your ${site.appName} account. To confirm the change, open this link:`],
      action: { label: 'Confirm new address', url: link.url, after: [p`The link works once and expires on ${link.expires}.`] },
      closing: ignore('nothing changes'),
    };
  },
  email_change_requested: (m, site) => ({
    subject: `The email address of your ${site.appName} account is about to change`,
    paragraphs: [p`Someone asked to change the email address of your ${site.appName} account from this address to ${m.newEmail ?? 'another address'}. It changes when the link sent to that address is opened.`],
    event: m.event,
    closing: notYou(site),
  }),
  new_device: (m, site) => ({
    subject: `New sign-in to your ${site.appName} account`,
    paragraphs: [p`Your ${site.appName} account was signed in to from a browser or app it had not been used from before.`],
    event: m.event,
    closing: notYou(site),
  }),
  session_reused: (m, site) => ({
    subject: `A session of your ${site.appName} account was ended`,
    paragraphs: [p`A session of your account was signed out because its refresh token was used twice. That happens when a token is copied to another device, so we ended the session to be safe; you may need to sign in again there.`],
    event: m.event,
    closing: notYou(site),
  }),
  password_changed: (m, site) => {
    const how = m.event?.type === 'password_reset' ? 'reset' : 'changed';
    return {
      subject: `Your ${site.appName} password was ${how}`,
      paragraphs: [p`The password of your ${site.appName} account was ${how}.`],
      event: m.event,
      closing: notYou(site),
    };
  },
  email_changed: (m, site) => ({
    subject: `The email address of your ${site.appName} account was changed`,
    paragraphs: m.newEmail ? [p`The email address of your ${site.appName} account was changed to ${m.newEmail}.`] : [p`The email address of your ${site.appName} account was changed to this address.`],
    event: m.event,
    closing: notYou(site),
  }),
  factor_added: (m, site) => {
    const factor = m.event?.type === 'passkey_added' ? 'A passkey' : 'An authenticator app';
    return { subject: `A second factor was added to your ${site.appName} account`, paragraphs: [p`${factor} was added to your ${site.appName} account as a way to sign in.`], event: m.event, closing: notYou(site) };
  },
  factor_removed: (m, site) => {
    const factor = m.event?.type === 'passkey_removed' ? 'A passkey' : 'The authenticator app';
    return { subject: `A second factor was removed from your ${site.appName} account`, paragraphs: [p`${factor} was removed from your ${site.appName} account.`], event: m.event, closing: notYou(site) };
  },
  mfa_locked: (m, site) => ({
    subject: `Second-factor sign-in to your ${site.appName} account is paused`,
    paragraphs: [p`Too many wrong second-factor codes were entered for your account, after the right password. Checking codes is paused for a while.`],
    event: m.event,
    closing: [p`If this was not you, someone knows your password: reset it now (use “Forgot password” at ${site.appUrl}), then sign out all sessions from your account settings.`],
  }),
};

