// The demo account page, built only from the public client: what a new user sees first.
import QRCode from 'qrcode';
import {
  describeAmr, listPasskeys, MfaRequiredError, registerPasskey, removePasskey, signInWithPasskey,
  deviceName, PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH, takeLinkToken, TesseraClient, TesseraClientError, type AuthState,
  type SecurityEventType, type SessionInfo, type User,
} from '../client/index.js';

/**
 * Which page this is: the account page at `/`, or one a mail's link opens. The link's token is
 * taken out of the address before anything else runs, so it stays in no history entry.
 */
type Route = 'account' | 'reset' | 'verify';
const ROUTES: Record<string, Route> = { '/reset-password': 'reset', '/verify-email': 'verify' };
let route: Route = ROUTES[location.pathname] ?? 'account';
const linkToken = route === 'account' ? null : takeLinkToken();

const auth = new TesseraClient();
// Exposed for the end-to-end tests and for poking around in devtools; it holds no token readable from outside.
(window as unknown as { tessera: TesseraClient }).tessera = auth;

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;

/** The server fills this in: whether it sends mail, without which there is no reset, verification or email change. */
const EMAIL_FEATURES = document.body.dataset.emailFeatures === 'on';
for (const el of document.querySelectorAll<HTMLElement>('[data-email-feature]')) el.hidden = !EMAIL_FEATURES;

const MESSAGES: Record<string, { text: string; kind?: 'info' | 'ok' }> = {
  refresh_token_reused: { text: 'Your session was ended for your security: its sign-in token was used twice, which can mean it was copied. Please sign in again.' },
  session_expired: { text: 'Your session has expired. Please sign in again.', kind: 'info' },
  invalid_refresh_token: { text: 'You were signed out (this session was ended from another device).', kind: 'info' },
  logout: { text: 'You are signed out.', kind: 'info' },
  password_changed: { text: 'Password changed. Your other sessions were signed out.', kind: 'info' },
  password_reset: { text: 'Password changed — sign in with your new password. Every session of the account was signed out.', kind: 'ok' },
  account_deleted: { text: 'Your account was deleted, with its sessions and your personal data.', kind: 'info' },
};

const EVENT_NAMES: Record<SecurityEventType, string> = {
  registered: 'Account created',
  login_succeeded: 'Signed in',
  login_failed: 'Failed sign-in attempt',
  logout: 'Signed out',
  session_revoked: 'A session was revoked',
  sessions_revoked: 'Other sessions signed out',
  password_changed: 'Password changed',
  reuse_detected: 'Token reuse detected — session ended',
  imported: 'Account imported',
  roles_changed: 'Roles changed',
  email_verified: 'Email verified',
  password_reset_requested: 'Password reset requested',
  password_reset: 'Password reset',
  email_change_requested: 'Email change requested',
  email_changed: 'Email changed',
  new_device: 'Sign-in from a new device',
  account_deleted: 'Account deleted',
  profile_updated: 'Profile updated',
  mfa_enabled: 'Authenticator app turned on',
  mfa_disabled: 'Authenticator app turned off',
  mfa_failed: 'Wrong second-factor code',
  recovery_code_used: 'Recovery code used',
  passkey_added: 'Passkey added',
  passkey_removed: 'Passkey removed',
  admin_action: 'Changed by an administrator',
};

function notice(key: string | undefined) {
  const el = $('notice');
  const message = key ? MESSAGES[key] : undefined;
  el.hidden = !message;
  el.className = `notice ${message?.kind ?? ''}`;
  el.textContent = message?.text ?? '';
  el.dataset.reason = key ?? '';
}

type View = 'loading' | 'signed-out' | 'signed-in' | 'forgot' | 'reset' | 'verify';
const VIEWS: View[] = ['loading', 'signed-out', 'signed-in', 'forgot', 'reset', 'verify'];
const TITLES: Record<View, string> = {
  loading: 'Tessera — your account',
  'signed-out': 'Sign in — Tessera',
  'signed-in': 'Your account — Tessera',
  forgot: 'Reset your password — Tessera',
  reset: 'Choose a new password — Tessera',
  verify: 'Confirm your email address — Tessera',
};
let view: View = 'loading';

/** Shows one view; `focus`: move the focus to its heading, when the reader asked for the change (a click). */
function show(next: View, focus = false) {
  view = next;
  for (const id of VIEWS) $(id).hidden = id !== next;
  document.title = TITLES[next];
  if (focus) $(next).querySelector<HTMLElement>('h1')?.focus();
}

/** The page a mail's link opened is done with: back to the account page at `/`, signed in or not. */
function goToAccount() {
  route = 'account';
  history.replaceState(null, '', '/');
  const { state } = auth;
  if (state.status === 'signed_in') {
    show('signed-in');
    void renderAccount(state.user).catch(() => {});
  } else {
    selectTab(TABS[0]!);
    show('signed-out');
  }
}

const when = (iso: string) => {
  const date = new Date(iso);
  const seconds = Math.round((Date.now() - date.getTime()) / 1000);
  if (seconds < 60) return 'just now';
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86_400) return `${Math.floor(seconds / 3600)} h ago`;
  return date.toLocaleDateString();
};

/** A table cell; `label` names it on narrow screens, where each row is shown as a card without the table's header. */
function cell(text: string, label: string) {
  const td = document.createElement('td');
  td.textContent = text;
  td.dataset.label = label;
  return td;
}

/**
 * Every password and email typed into the page is forgotten once it has served: a password
 * left in a hidden form outlives the sign-in, and one left after sign-out greets the next
 * person at a shared computer.
 */
function clearCredentials() {
  for (const el of document.querySelectorAll('form')) el.reset();
  for (const el of document.querySelectorAll<HTMLElement>('[data-error]')) {
    el.hidden = true;
    el.textContent = '';
  }
  for (const el of document.querySelectorAll<HTMLElement>('[data-status]')) el.textContent = '';
  $('sign-in-unverified').hidden = true;
  hideMfaStep();
}

/** Nothing of the last account stays in the page after sign-out, not even hidden. */
function clearAccount() {
  for (const id of ['user-name', 'user-fullname', 'whoami-name', 'user-email', 'user-since', 'user-id', 'verify-banner-email', 'verify-banner-status']) {
    $(id).textContent = '';
  }
  $('verify-banner').hidden = true;
  $('sessions').replaceChildren();
  $('events').replaceChildren();
  $('passkeys').replaceChildren();
  $('recovery-codes').replaceChildren();
  $('totp-secret').textContent = '';
  $<HTMLImageElement>('totp-qr').removeAttribute('src');
  totpOn = false;
  showTotp('off');
}

/** The user's details, wherever the page shows them; called again whenever they change. */
function renderUser(user: User) {
  $('user-name').textContent = user.name || user.email;
  $('user-fullname').textContent = user.name || '—';
  $('whoami-name').textContent = user.email;
  $('whoami').hidden = false;
  $('user-email').textContent = user.email;
  $('user-since').textContent = new Date(user.createdAt).toLocaleDateString();
  $('user-id').textContent = user.id;
  const unverified = EMAIL_FEATURES && !user.emailVerified;
  if (unverified && $('verify-banner-email').textContent !== user.email) $('verify-banner-status').textContent = '';
  $('verify-banner-email').textContent = unverified ? user.email : '';
  $('verify-banner').hidden = !unverified;
}

async function renderAccount(user: User) {
  renderUser(user);
  show('signed-in');
  await Promise.all([renderSessions(), renderEvents(), renderPasskeys()]);
}

async function renderSessions() {
  const sessions = await auth.sessions();
  const body = $('sessions');
  body.replaceChildren(
    ...sessions.map((s) => {
      const row = document.createElement('tr');
      row.dataset.sessionId = s.id;
      const action = document.createElement('td');
      if (s.current) {
        const badge = document.createElement('span');
        badge.className = 'badge';
        badge.textContent = 'This device';
        action.append(badge);
      } else {
        const button = document.createElement('button');
        button.className = 'danger';
        button.type = 'button';
        button.textContent = 'Revoke';
        button.setAttribute('aria-label', `Revoke the session on ${s.device}`);
        button.onclick = () => {
          // One click must not sign out someone's other device: ask first.
          if (!confirm(revokeQuestion(s))) return;
          void busy(button, async () => {
            await auth.revokeSession(s.id);
            await Promise.all([renderSessions(), renderEvents()]);
          });
        };
        action.append(button);
      }
      row.append(
        cell(s.device, 'Device'), cell(s.ip ?? '—', 'IP address'), cell(when(s.lastUsedAt), 'Last used'), cell(when(s.createdAt), 'Signed in'), cell(describeAmr(s.amr), 'Signed in with'), action,
      );
      return row;
    }),
  );
  // aria-disabled rather than disabled: the button stays readable and focusable, and the hint says why it does nothing.
  const alone = sessions.length < 2;
  $('sign-out-others').setAttribute('aria-disabled', String(alone));
  $('sign-out-others-hint').hidden = !alone;
}

function revokeQuestion(s: SessionInfo): string {
  return `Revoke the session on ${s.device}${s.ip ? ` (${s.ip})` : ''}, last used ${when(s.lastUsedAt)}? That device will be signed out.`;
}

async function renderEvents() {
  const events = await auth.events();
  noteTotpFromEvents(events);
  // A sign-in from a new device is recorded twice (the sign-in, and `new_device`, which mails the
  // user); the list shows it once, as the sign-in with its device, like any other.
  const signIns = new Set(events.filter((e) => e.type === 'login_succeeded' && e.sessionId).map((e) => e.sessionId));
  const shown = events.filter((e) => !(e.type === 'new_device' && e.sessionId && signIns.has(e.sessionId)));
  $('events').replaceChildren(
    ...shown.slice(0, 12).map((e) => {
      const li = document.createElement('li');
      const what = document.createElement('span');
      what.textContent = EVENT_NAMES[e.type] ?? e.type;
      const meta = document.createElement('span');
      meta.className = 'muted';
      // "Signed in" twice means nothing without saying from where.
      meta.textContent = [deviceName(e.userAgent), e.ip, when(e.createdAt)].filter(Boolean).join(' · ');
      li.append(what, meta);
      return li;
    }),
  );
}

/** Runs an action with its button disabled, and shows any error next to it. */
async function busy(button: HTMLButtonElement, action: () => Promise<void>, errorEl?: HTMLElement) {
  button.disabled = true;
  if (errorEl) errorEl.hidden = true;
  try {
    await action();
  } catch (error) {
    const message = error instanceof TesseraClientError ? friendly(error) : error instanceof DemoError ? error.message : 'Something went wrong. Please try again.';
    if (errorEl) {
      errorEl.textContent = message;
      errorEl.hidden = false;
    } else {
      alert(message);
    }
  } finally {
    button.disabled = false;
  }
}

/** A mistake the page itself catches, shown like the server's. */
class DemoError extends Error {}

function friendly(error: TesseraClientError): string {
  switch (error.code) {
    case 'invalid_credentials': return error.status === 403 ? 'The current password is incorrect.' : 'Email or password is incorrect.';
    case 'email_taken': return 'An account with this email already exists. Sign in instead?';
    // The server says which rule failed (too short, too long, too common); its words are the useful ones.
    case 'weak_password': return error.detail ? sentence(error.detail) : `The password must be ${PASSWORD_MIN_LENGTH} to ${PASSWORD_MAX_LENGTH} characters long.`;
    case 'account_disabled': return 'This account is disabled.';
    case 'rate_limited': return `Too many attempts. Try again in ${error.retryAfter ?? 60} seconds.`;
    case 'network_error': return 'The server could not be reached. Check your connection.';
    case 'invalid_request': return 'Please check the email address and try again.';
    case 'email_not_verified': return 'Please confirm your email address first: open the link we sent to it.';
    case 'invalid_code': return 'That code is not right. Check it (codes change every 30 seconds) and try again.';
    case 'reauthentication_required': return 'This change needs a recent sign-in with your second factor: use a code from your authenticator app.';
    case 'totp_already_enabled': return 'Two-step sign-in is already on.';
    case 'invalid_token': return 'This link does not work any more: it was used already, has expired, or a newer one was sent.';
    default: return error.message;
  }
}

const sentence = (text: string) => (/[.!?]$/.test(text) ? text : `${text}.`);

function form(id: string, action: (data: Record<string, string>, form: HTMLFormElement) => Promise<void>) {
  const el = $<HTMLFormElement>(id);
  el.addEventListener('submit', (event) => {
    event.preventDefault();
    const data = Object.fromEntries(new FormData(el)) as Record<string, string>;
    void busy(el.querySelector('button[type=submit]')!, () => action(data, el), el.querySelector<HTMLElement>('[data-error]')!);
  });
}

// The WAI-ARIA tabs pattern: one tab in the Tab order (roving tabindex), arrows, Home and End move between tabs.
const TABS = [$('tab-sign-in'), $('tab-sign-up')];

function selectTab(tab: HTMLElement, focus = false) {
  for (const t of TABS) {
    const selected = t === tab;
    t.setAttribute('aria-selected', String(selected));
    t.tabIndex = selected ? 0 : -1;
    $(t.getAttribute('aria-controls')!).hidden = !selected;
  }
  if (focus) tab.focus();
}

for (const tab of TABS) {
  tab.onclick = () => selectTab(tab);
  tab.onkeydown = (event) => {
    const i = TABS.indexOf(tab);
    const next = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: TABS.length - 1 }[event.key];
    if (next === undefined) return;
    event.preventDefault();
    selectTab(TABS[(next + TABS.length) % TABS.length]!, true);
  };
}

/** Says `text` in a form's (or a box's) own status line, announced by screen readers. */
function status(container: HTMLElement, text: string) {
  container.querySelector<HTMLElement>('[data-status]')!.textContent = text;
}

form('sign-in-form', async ({ email, password }) => {
  $('sign-in-unverified').hidden = true;
  try {
    await auth.login({ email: email!, password: password! });
  } catch (error) {
    if (error instanceof MfaRequiredError) {
      askForSecondFactor(error);
      return;
    }
    // REQUIRE_VERIFIED_EMAIL: the password was right, the address not confirmed yet; offer a new link.
    if (error instanceof TesseraClientError && error.code === 'email_not_verified') {
      status($('sign-in-unverified'), '');
      $('sign-in-unverified').hidden = false;
    }
    throw error;
  }
});
$<HTMLButtonElement>('sign-in-resend').onclick = (event) => {
  const email = $<HTMLInputElement>('sign-in-form').querySelector<HTMLInputElement>('input[name=email]')!.value;
  return busy(event.currentTarget as HTMLButtonElement, async () => {
    await auth.resendVerification(email);
    status($('sign-in-unverified'), `If ${email} is waiting to be confirmed, a new link is on its way.`);
  });
};
form('sign-up-form', async ({ email, password, name }) => {
  await auth.register({ email: email!, password: password!, name: name || undefined });
});
form('password-form', async ({ currentPassword, newPassword }, el) => {
  await auth.changePassword(currentPassword!, newPassword!);
  el.reset();
  notice('password_changed');
  await Promise.all([renderSessions(), renderEvents()]);
});

// Forgot password: the same words whatever the answer, so the page tells nobody whether an account exists.
$<HTMLButtonElement>('forgot-open').onclick = () => {
  const typed = $('sign-in-form').querySelector<HTMLInputElement>('input[name=email]')!.value;
  clearCredentials();
  notice(undefined);
  $('forgot-form').querySelector<HTMLInputElement>('input[name=email]')!.value = typed;
  show('forgot', true);
};
$<HTMLButtonElement>('forgot-back').onclick = () => {
  clearCredentials();
  selectTab(TABS[0]!);
  show('signed-out');
  $('forgot-open').focus();
};
form('forgot-form', async ({ email }, el) => {
  status(el, '');
  try {
    await auth.forgotPassword(email!);
  } catch (error) {
    // Only a malformed address or no answer at all is worth saying; anything else reads as sent.
    if (error instanceof TesseraClientError && (error.code === 'invalid_request' || error.code === 'network_error' || error.status >= 500)) throw error;
  }
  status(el, 'If an account exists for this address, a link is on its way. It can take a minute; look in the spam folder too.');
});

// /reset-password#token=…: a new password, twice.
function resetLinkInvalid(text: string) {
  $('reset-form').hidden = true;
  $('reset-invalid-text').textContent = text;
  $('reset-invalid').hidden = false;
  $('reset-title').textContent = 'This link does not work';
}
form('reset-form', async ({ newPassword, confirmPassword }) => {
  if (newPassword !== confirmPassword) {
    throw new DemoError('The two passwords are not the same. Please type the new password twice.');
  }
  try {
    await auth.resetPassword(linkToken ?? '', newPassword!);
  } catch (error) {
    if (error instanceof TesseraClientError && error.code === 'invalid_token') {
      resetLinkInvalid('It was used already, has expired, or a newer one was sent. Ask for a new one: the newest link works for a while.');
      $('reset-again').focus();
      return;
    }
    throw error;
  }
  clearCredentials();
  goToAccount();
  notice('password_reset');
  $('sign-in-form').querySelector<HTMLInputElement>('input[name=email]')!.focus();
});
$<HTMLButtonElement>('reset-again').onclick = () => {
  route = 'account';
  history.replaceState(null, '', '/');
  clearCredentials();
  show('forgot', true);
};

// /verify-email#token=…: confirms the address (sign-up's link, or an email change's) as soon as the page opens.
async function verifyFromLink(restored: Promise<unknown>) {
  const title = $('verify-title');
  const text = $('verify-text');
  const done = (heading: string, message: string, offerResend = false) => {
    title.textContent = heading;
    text.textContent = message;
    const signedIn = auth.state.status === 'signed_in';
    const resend = $<HTMLFormElement>('verify-resend-form');
    resend.hidden = !offerResend || (signedIn && auth.state.user?.emailVerified === true);
    // Signed in, the link goes to the account's own address: no address to type.
    const email = resend.querySelector<HTMLInputElement>('input[name=email]')!;
    email.closest('label')!.hidden = signedIn;
    email.required = !signedIn;
    $('verify-continue').textContent = signedIn ? 'Continue to your account' : 'Go to sign in';
    $('verify-continue').hidden = false;
    title.focus();
  };
  show('verify');
  if (!EMAIL_FEATURES) return done('Nothing to confirm', 'This server sends no mail, so there is no address to confirm.');
  if (!linkToken) return done('Nothing to confirm', 'This page confirms an email address with the link from our mail. Open that link to get here.');
  await restored;
  try {
    const { emailChanged, user } = await auth.verifyEmail(linkToken);
    if (!emailChanged) done('Email address confirmed', `Thank you: ${user ? user.email : 'your email address'} is confirmed.`);
    else if (user) done('Email address changed', `Your account's email address is now ${user.email}. Sign in with it from now on.`);
    else done('Email address changed', "Your account's email address has changed to the one this link was sent to. Sign in with it from now on.");
  } catch (error) {
    if (error instanceof TesseraClientError && error.code === 'invalid_token') {
      done('This link does not work', 'It was used already, has expired, or a newer one was sent. We can send you a new one.', true);
    } else if (error instanceof TesseraClientError && error.code === 'email_taken') {
      done('Address taken', 'Another account started using that address in the meantime, so your email address did not change.');
    } else {
      done('Something went wrong', error instanceof TesseraClientError ? friendly(error) : 'Something went wrong. Please open the link again.');
    }
  }
}
form('verify-resend-form', async ({ email }, el) => {
  if (auth.state.status === 'signed_in') await auth.resendVerification();
  else await auth.resendVerification(email!);
  status(el, auth.state.status === 'signed_in'
    ? `A new link is on its way to ${auth.state.user.email}.`
    : 'If this address is waiting to be confirmed, a new link is on its way.');
});
$<HTMLButtonElement>('verify-continue').onclick = () => {
  clearCredentials();
  goToAccount();
  if (auth.state.status === 'signed_out') $('sign-in-form').querySelector<HTMLInputElement>('input[name=email]')!.focus();
};

// Signed in: the unconfirmed address, the profile, the data, deleting the account.
$<HTMLButtonElement>('verify-resend').onclick = (event) => busy(event.currentTarget as HTMLButtonElement, async () => {
  $('verify-banner-status').textContent = '';
  await auth.resendVerification();
  $('verify-banner-status').textContent = `A new link is on its way to ${auth.state.user?.email ?? 'your address'}. The older one no longer works.`;
});
form('name-form', async ({ name }, el) => {
  const user = await auth.updateProfile({ name: name!.trim() });
  el.reset();
  status(el, `Your name is now ${user.name || 'empty'}.`);
  await renderEvents();
});
form('email-form', async ({ newEmail, currentPassword }, el) => {
  await auth.changeEmail(newEmail!, currentPassword!);
  el.reset();
  status(el, `We sent a link to ${newEmail}. Your address changes when you open it; until then it stays ${auth.state.user?.email ?? 'as it is'}.`);
  await renderEvents();
});
$<HTMLButtonElement>('export').onclick = (event) => busy(event.currentTarget as HTMLButtonElement, async () => {
  const data = await auth.exportAccount();
  const url = URL.createObjectURL(new Blob([JSON.stringify(data, null, 2)], { type: 'application/json' }));
  const link = document.createElement('a');
  link.href = url;
  link.download = 'tessera-account.json';
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}, $('export-error'));
form('delete-form', async ({ currentPassword }) => {
  // One click and a password must not be enough by accident: ask first.
  if (!confirm(`Delete the account ${auth.state.user?.email ?? ''} for good? Its sessions and personal data are deleted on every device. This cannot be undone.`)) return;
  await auth.deleteAccount(currentPassword!);
  notice('account_deleted');
});

$<HTMLButtonElement>('sign-out').onclick = (event) =>
  busy(event.currentTarget as HTMLButtonElement, () => auth.logout());
$<HTMLButtonElement>('sign-out-others').onclick = (event) => {
  const button = event.currentTarget as HTMLButtonElement;
  if (button.getAttribute('aria-disabled') === 'true') return;
  return busy(button, async () => {
    await auth.logout({ scope: 'others' });
    await Promise.all([renderSessions(), renderEvents()]);
  });
};

// Second factors: the code step of a sign-in, passkeys, the authenticator app, and "confirm it's you".
// `data-passkeys="off"` on <body> (a server without a relying party, on an IP address) hides them too.
const HAS_WEBAUTHN = typeof window.PublicKeyCredential === 'function' && document.body.dataset.passkeys !== 'off';
$('passkey-sign-in-row').hidden = !HAS_WEBAUTHN;

/** The sign-in answered `mfa_required`, while its code step shows. */
let pendingMfa: MfaRequiredError | null = null;
let mfaMode: 'code' | 'recovery' = 'code';
const mfaInput = () => $('mfa-form').querySelector<HTMLInputElement>('input[name=code]')!;

function setMfaMode(mode: 'code' | 'recovery') {
  mfaMode = mode;
  const input = mfaInput();
  $('mfa-label').textContent = mode === 'code' ? 'Code from your authenticator app' : 'Recovery code';
  $('mfa-hint').textContent = mode === 'code'
    ? 'Your password was right. Enter the 6-digit code from your authenticator app.'
    : 'Enter one of the recovery codes you saved. Each one works once.';
  input.inputMode = mode === 'code' ? 'numeric' : 'text';
  input.autocomplete = mode === 'code' ? 'one-time-code' : 'off';
  input.value = '';
  $('mfa-switch').textContent = mode === 'code' ? 'Use a recovery code instead' : 'Use a code from the app instead';
}

function askForSecondFactor(error: MfaRequiredError) {
  pendingMfa = error;
  notice(undefined);
  const { methods } = error;
  const codes = methods.includes('totp') || methods.includes('recovery_code');
  $('sign-in-form').querySelector<HTMLInputElement>('input[name=password]')!.value = '';
  $('sign-in-form').hidden = true;
  $('passkey-sign-in-row').hidden = true;
  $('mfa-form').hidden = false;
  setMfaMode(methods.includes('totp') || !methods.includes('recovery_code') ? 'code' : 'recovery');
  mfaInput().closest('label')!.hidden = !codes;
  mfaInput().required = codes;
  $('mfa-form').querySelector<HTMLElement>('button[type=submit]')!.hidden = !codes;
  $('mfa-switch').hidden = !(methods.includes('totp') && methods.includes('recovery_code'));
  $('mfa-passkey').hidden = !(HAS_WEBAUTHN && methods.includes('passkey'));
  if (codes) mfaInput().focus();
  else $('mfa-title').focus();
}

function hideMfaStep() {
  pendingMfa = null;
  $('mfa-form').hidden = true;
  $('sign-in-form').hidden = false;
  $('passkey-sign-in-row').hidden = !HAS_WEBAUTHN;
}

function backToPassword(message: string) {
  hideMfaStep();
  const error = $('sign-in-form').querySelector<HTMLElement>('[data-error]')!;
  error.textContent = message;
  error.hidden = false;
  $('sign-in-form').querySelector<HTMLInputElement>('input[name=password]')!.focus();
}

form('mfa-form', async ({ code }) => {
  try {
    await auth.verifyMfa(mfaMode === 'code' ? { code: code! } : { recoveryCode: code! });
  } catch (error) {
    if (error instanceof TesseraClientError && error.code === 'invalid_token') {
      backToPassword('This sign-in took too long or had too many wrong codes. Please enter your password again.');
      return;
    }
    mfaInput().select();
    throw error;
  }
});
$<HTMLButtonElement>('mfa-switch').onclick = () => {
  setMfaMode(mfaMode === 'code' ? 'recovery' : 'code');
  mfaInput().focus();
};
$<HTMLButtonElement>('mfa-cancel').onclick = () => {
  hideMfaStep();
  $('sign-in-form').querySelector<HTMLInputElement>('input[name=email]')!.focus();
};

/** A passkey prompt the reader closed, or one that timed out, in words. */
async function withPasskeyPrompt<T>(action: () => Promise<T>): Promise<T> {
  try {
    return await action();
  } catch (error) {
    if (error instanceof TesseraClientError) throw error;
    const name = (error as { name?: string; cause?: { name?: string } }).cause?.name ?? (error as { name?: string }).name;
    if (name === 'NotAllowedError' || name === 'AbortError') throw new DemoError('The passkey prompt was closed or timed out. Nothing changed.');
    if (name === 'InvalidStateError') throw new DemoError('This device already has a passkey for your account.');
    throw new DemoError('Your browser could not use a passkey here.');
  }
}

$<HTMLButtonElement>('mfa-passkey').onclick = (event) => {
  const mfaToken = pendingMfa?.mfaToken;
  return busy(event.currentTarget as HTMLButtonElement, async () => {
    try {
      await withPasskeyPrompt(() => signInWithPasskey(auth, mfaToken ? { mfaToken } : {}));
    } catch (error) {
      if (error instanceof TesseraClientError && error.code === 'invalid_token') {
        backToPassword('This sign-in took too long. Please enter your password again.');
        return;
      }
      throw error;
    }
  }, $('mfa-form').querySelector<HTMLElement>('[data-error]')!);
};
$<HTMLButtonElement>('passkey-sign-in').onclick = (event) =>
  busy(event.currentTarget as HTMLButtonElement, async () => {
    await withPasskeyPrompt(() => signInWithPasskey(auth));
  }, $('passkey-sign-in-error'));

// "Confirm it's you": an action answered reauthentication_required asks, then runs once more.
let totpOn = false;
let reauthMode: 'password' | 'code' = 'password';
let reauthDone: ((ok: boolean) => void) | null = null;
const reauthDialog = $<HTMLDialogElement>('reauth');
const reauthInput = () => $('reauth-form').querySelector<HTMLInputElement>('input[name=secret]')!;

function setReauthMode(mode: 'password' | 'code') {
  reauthMode = mode;
  const input = reauthInput();
  input.value = '';
  input.type = mode === 'password' ? 'password' : 'text';
  input.autocomplete = mode === 'password' ? 'current-password' : 'one-time-code';
  $('reauth-label').textContent = mode === 'password' ? 'Password' : 'Code from your authenticator app, or a recovery code';
  $('reauth-hint').textContent = mode === 'password'
    ? 'This change needs a recent sign-in. Enter your password.'
    : 'This change needs a recent sign-in with your second factor. Enter a code from your authenticator app.';
  $('reauth-switch').textContent = mode === 'password' ? 'Use an app code instead' : 'Use my password instead';
}

function askToReauthenticate(): Promise<boolean> {
  const form = $<HTMLFormElement>('reauth-form');
  form.reset();
  form.querySelector<HTMLElement>('[data-error]')!.hidden = true;
  setReauthMode(totpOn ? 'code' : 'password');
  $('reauth-switch').hidden = !totpOn;
  reauthDialog.showModal();
  reauthInput().focus();
  return new Promise((resolve) => {
    reauthDone = resolve;
  });
}

function closeReauth(ok: boolean) {
  const done = reauthDone;
  reauthDone = null;
  if (reauthDialog.open) reauthDialog.close();
  reauthInput().value = '';
  done?.(ok);
}
reauthDialog.addEventListener('close', () => closeReauth(false));
$<HTMLButtonElement>('reauth-cancel').onclick = () => closeReauth(false);
$<HTMLButtonElement>('reauth-switch').onclick = () => {
  setReauthMode(reauthMode === 'password' ? 'code' : 'password');
  reauthInput().focus();
};
form('reauth-form', async ({ secret }) => {
  const typed = secret!.trim();
  await auth.reauthenticate(reauthMode === 'password' ? { password: secret! } : /^[\d\s]+$/.test(typed) ? { code: typed } : { recoveryCode: typed });
  closeReauth(true);
});

async function withReauth<T>(action: () => Promise<T>): Promise<T> {
  try {
    return await action();
  } catch (error) {
    if (!(error instanceof TesseraClientError && error.code === 'reauthentication_required')) throw error;
    if (!(await askToReauthenticate())) throw new DemoError('Nothing changed: confirming it was you was cancelled.');
    return action();
  }
}

// The authenticator app: off, being set up, recovery codes shown once, on.
type TotpView = 'off' | 'setup' | 'codes' | 'on';
function showTotp(next: TotpView) {
  for (const name of ['off', 'setup', 'codes', 'on'] as const) $(`totp-${name}`).hidden = name !== next;
}

/** Whether the app is on: the newest of its events says (the account's details do not carry it). */
function noteTotpFromEvents(events: { type: string }[]) {
  const last = events.find((e) => e.type === 'mfa_enabled' || e.type === 'mfa_disabled');
  totpOn = last?.type === 'mfa_enabled';
  // Never interrupt a setup or the recovery codes on screen.
  if ($('totp-setup').hidden && $('totp-codes').hidden) showTotp(totpOn ? 'on' : 'off');
}

let shownCodes: string[] = [];
function showRecoveryCodes(codes: string[]) {
  shownCodes = codes;
  $('recovery-codes').replaceChildren(...codes.map((c) => {
    const li = document.createElement('li');
    li.textContent = c;
    return li;
  }));
  status($('totp-codes'), '');
  showTotp('codes');
  $('totp-codes-title').focus();
}

$<HTMLButtonElement>('totp-start').onclick = (event) => busy(event.currentTarget as HTMLButtonElement, async () => {
  let setup;
  try {
    setup = await withReauth(() => auth.setupTotp());
  } catch (error) {
    if (error instanceof TesseraClientError && error.code === 'totp_already_enabled') {
      totpOn = true;
      showTotp('on');
      return;
    }
    throw error;
  }
  $('totp-secret').textContent = setup.secret;
  $<HTMLImageElement>('totp-qr').src = await QRCode.toDataURL(setup.otpauthUri, { margin: 1, width: 200, errorCorrectionLevel: 'M' });
  showTotp('setup');
  $('totp-setup-title').focus();
}, $('totp-start-error'));
$<HTMLButtonElement>('totp-cancel').onclick = () => {
  $<HTMLFormElement>('totp-confirm-form').reset();
  $('totp-secret').textContent = '';
  $<HTMLImageElement>('totp-qr').removeAttribute('src');
  showTotp('off');
  $('totp-start').focus();
};
form('totp-confirm-form', async ({ code }, el) => {
  const codes = await withReauth(() => auth.confirmTotp(code!.trim()));
  el.reset();
  $('totp-secret').textContent = '';
  $<HTMLImageElement>('totp-qr').removeAttribute('src');
  totpOn = true;
  showRecoveryCodes(codes);
  await Promise.all([renderSessions(), renderEvents()]);
});
$<HTMLButtonElement>('codes-copy').onclick = async () => {
  try {
    await navigator.clipboard.writeText(shownCodes.join('\n'));
    status($('totp-codes'), 'Copied. Paste them into your password manager or a safe note.');
  } catch {
    status($('totp-codes'), 'Copying did not work here: select the codes and copy them, or download them.');
  }
};
$<HTMLButtonElement>('codes-download').onclick = () => {
  const text = `Tessera recovery codes for ${auth.state.user?.email ?? 'your account'}\nEach code works once.\n\n${shownCodes.join('\n')}\n`;
  const url = URL.createObjectURL(new Blob([text], { type: 'text/plain' }));
  const link = document.createElement('a');
  link.href = url;
  link.download = 'tessera-recovery-codes.txt';
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
  status($('totp-codes'), 'Downloaded tessera-recovery-codes.txt.');
};
$<HTMLButtonElement>('codes-done').onclick = () => {
  shownCodes = [];
  $('recovery-codes').replaceChildren();
  showTotp(totpOn ? 'on' : 'off');
  $(totpOn ? 'codes-regenerate' : 'totp-start').focus();
};
$<HTMLButtonElement>('codes-regenerate').onclick = (event) => {
  if (!confirm('Make ten new recovery codes? The ones you saved stop working.')) return;
  return busy(event.currentTarget as HTMLButtonElement, async () => {
    showRecoveryCodes(await withReauth(() => auth.regenerateRecoveryCodes()));
  }, $('totp-on-error'));
};
$<HTMLButtonElement>('totp-disable').onclick = (event) => {
  if (!confirm('Turn off two-step sign-in? Your password alone will sign in, and the recovery codes stop working.')) return;
  return busy(event.currentTarget as HTMLButtonElement, async () => {
    await withReauth(() => auth.disableTotp());
    totpOn = false;
    showTotp('off');
    $('totp-start').focus();
    await Promise.all([renderSessions(), renderEvents()]);
  }, $('totp-on-error'));
};

// Passkeys: only where the browser has WebAuthn and the server a relying party (not on an IP address).
async function renderPasskeys() {
  const card = $('passkeys-card');
  if (!HAS_WEBAUTHN) {
    card.hidden = true;
    return;
  }
  let passkeys;
  try {
    passkeys = await listPasskeys(auth);
  } catch {
    card.hidden = true;
    return;
  }
  card.hidden = false;
  $('passkeys').replaceChildren(...passkeys.map((p) => {
    const li = document.createElement('li');
    li.dataset.passkeyId = p.id;
    const what = document.createElement('span');
    what.textContent = p.name || 'Passkey';
    const meta = document.createElement('span');
    meta.className = 'muted';
    meta.textContent = `Added ${when(p.createdAt)} · ${p.lastUsedAt ? `last used ${when(p.lastUsedAt)}` : 'not used yet'}`;
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'danger';
    button.textContent = 'Remove';
    button.setAttribute('aria-label', `Remove the passkey ${what.textContent}`);
    button.onclick = () => {
      if (!confirm(`Remove the passkey "${what.textContent}"? It will no longer sign you in.`)) return;
      void busy(button, async () => {
        await withReauth(() => removePasskey(auth, p.id));
        await Promise.all([renderPasskeys(), renderEvents()]);
        $('passkey-form').querySelector<HTMLInputElement>('input[name=name]')!.focus();
      });
    };
    li.append(what, meta, button);
    return li;
  }));
}
form('passkey-form', async ({ name }, el) => {
  status(el, '');
  const passkey = await withReauth(() => withPasskeyPrompt(() => registerPasskey(auth, name?.trim() || undefined)));
  el.reset();
  status(el, `Passkey "${passkey.name}" added. You can sign in with it now.`);
  await Promise.all([renderPasskeys(), renderEvents()]);
});

/** Whose account the page shows: a change of user (not of the same user's details) starts afresh. */
let shownUserId: string | null = null;

auth.onChange((state: AuthState) => {
  // Called on sign-in, sign-out and a change of the user's details (here, in another tab, or
  // noticed at a refresh), never per refresh.
  if (state.status === 'signed_in') {
    if (state.user.id === shownUserId) {
      renderUser(state.user);
      return;
    }
    shownUserId = state.user.id;
    clearCredentials();
    if (route !== 'account') {
      // A link's page keeps its view; the account is there when the reader continues.
      renderUser(state.user);
      return;
    }
    notice(undefined);
    void renderAccount(state.user).catch(() => {});
  } else if (state.status === 'signed_out') {
    shownUserId = null;
    $('whoami').hidden = true;
    clearAccount();
    if (route !== 'account') return;
    // Someone asking for a reset link stays on that form when a session ends in another tab.
    if (view === 'forgot') return;
    clearCredentials();
    selectTab(TABS[0]!);
    notice(state.reason);
    show('signed-out');
  }
});

// A link opened in the tab that shows its page changes only the fragment: load the page anew for it.
addEventListener('hashchange', () => {
  if (route !== 'account' && /(^#|&)token=/.test(location.hash)) location.reload();
});

const restored = auth.restore();
if (route === 'verify') void verifyFromLink(restored);
else if (route === 'reset') {
  show('reset');
  if (!EMAIL_FEATURES) resetLinkInvalid('This server sends no mail, so passwords cannot be reset by email here.');
  else if (!linkToken) resetLinkInvalid('This page sets a new password with the link from our mail, and there is no link here. Ask for one.');
}
