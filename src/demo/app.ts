// The demo account page, built only from the public client: what a new user sees first.
import {
  deviceName, PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH, TesseraClient, TesseraClientError, type AuthState, type SecurityEventType,
  type SessionInfo, type User,
} from '../client/index.js';

const auth = new TesseraClient();
// Exposed for the end-to-end tests and for poking around in devtools; it holds no token readable from outside.
(window as unknown as { tessera: TesseraClient }).tessera = auth;

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;

const MESSAGES: Record<string, { text: string; kind?: 'info' }> = {
  refresh_token_reused: { text: 'Your session was ended for your security: its sign-in token was used twice, which can mean it was copied. Please sign in again.' },
  session_expired: { text: 'Your session has expired. Please sign in again.', kind: 'info' },
  invalid_refresh_token: { text: 'You were signed out (this session was ended from another device).', kind: 'info' },
  logout: { text: 'You are signed out.', kind: 'info' },
  password_changed: { text: 'Password changed. Your other sessions were signed out.', kind: 'info' },
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
};

function notice(key: string | undefined) {
  const el = $('notice');
  const message = key ? MESSAGES[key] : undefined;
  el.hidden = !message;
  el.className = `notice ${message?.kind ?? ''}`;
  el.textContent = message?.text ?? '';
  el.dataset.reason = key ?? '';
}

function show(view: 'loading' | 'signed-out' | 'signed-in') {
  for (const id of ['loading', 'signed-out', 'signed-in']) $(id).hidden = id !== view;
  $('whoami').hidden = view !== 'signed-in';
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
}

/** Nothing of the last account stays in the page after sign-out, not even hidden. */
function clearAccount() {
  for (const id of ['user-name', 'whoami-name', 'user-email', 'user-since', 'user-id']) $(id).textContent = '';
  $('sessions').replaceChildren();
  $('events').replaceChildren();
}

async function renderAccount(user: User) {
  $('user-name').textContent = user.name || user.email;
  $('whoami-name').textContent = user.email;
  $('user-email').textContent = user.email;
  $('user-since').textContent = new Date(user.createdAt).toLocaleDateString();
  $('user-id').textContent = user.id;
  show('signed-in');
  await Promise.all([renderSessions(), renderEvents()]);
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
        cell(s.device, 'Device'), cell(s.ip ?? '—', 'IP address'), cell(when(s.lastUsedAt), 'Last used'), cell(when(s.createdAt), 'Signed in'), action,
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
  $('events').replaceChildren(
    ...events.slice(0, 12).map((e) => {
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
    const message = error instanceof TesseraClientError ? friendly(error) : 'Something went wrong. Please try again.';
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

form('sign-in-form', async ({ email, password }) => {
  await auth.login({ email: email!, password: password! });
});
form('sign-up-form', async ({ email, password, name }) => {
  await auth.register({ email: email!, password: password!, name: name || undefined });
});
form('password-form', async ({ currentPassword, newPassword }, el) => {
  await auth.changePassword(currentPassword!, newPassword!);
  el.reset();
  notice('password_changed');
  await Promise.all([renderSessions(), renderEvents()]);
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

auth.onChange((state: AuthState) => {
  // Called on sign-in and sign-out only (here, in another tab, or noticed at a refresh), never per refresh.
  if (state.status === 'signed_in') {
    clearCredentials();
    notice(undefined);
    void renderAccount(state.user).catch(() => {});
  } else if (state.status === 'signed_out') {
    clearCredentials();
    clearAccount();
    selectTab(TABS[0]!);
    notice(state.reason);
    show('signed-out');
  }
});

void auth.restore();
