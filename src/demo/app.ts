// The demo account page, built only from the public client: what a new user sees first.
import {
  PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH, TesseraClient, TesseraClientError, type AuthState, type SecurityEventType, type User,
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

function cell(text: string) {
  const td = document.createElement('td');
  td.textContent = text;
  return td;
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
        button.onclick = () => busy(button, async () => {
          await auth.revokeSession(s.id);
          await Promise.all([renderSessions(), renderEvents()]);
        });
        action.append(button);
      }
      row.append(cell(s.device), cell(s.ip ?? '—'), cell(when(s.lastUsedAt)), cell(when(s.createdAt)), action);
      return row;
    }),
  );
  ($('sign-out-others') as HTMLButtonElement).disabled = sessions.length < 2;
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
      meta.textContent = `${when(e.createdAt)}${e.ip ? ` · ${e.ip}` : ''}`;
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
    case 'weak_password': return `The password must be ${PASSWORD_MIN_LENGTH} to ${PASSWORD_MAX_LENGTH} characters long.`;
    case 'account_disabled': return 'This account is disabled.';
    case 'rate_limited': return `Too many attempts. Try again in ${error.retryAfter ?? 60} seconds.`;
    case 'network_error': return 'The server could not be reached. Check your connection.';
    case 'invalid_request': return 'Please check the email address and try again.';
    default: return error.message;
  }
}

function form(id: string, action: (data: Record<string, string>, form: HTMLFormElement) => Promise<void>) {
  const el = $<HTMLFormElement>(id);
  el.addEventListener('submit', (event) => {
    event.preventDefault();
    const data = Object.fromEntries(new FormData(el)) as Record<string, string>;
    void busy(el.querySelector('button[type=submit]')!, () => action(data, el), el.querySelector<HTMLElement>('[data-error]')!);
  });
}

function selectTab(signUp: boolean) {
  $('tab-sign-in').setAttribute('aria-selected', String(!signUp));
  $('tab-sign-up').setAttribute('aria-selected', String(signUp));
  $('sign-in-form').hidden = signUp;
  $('sign-up-form').hidden = !signUp;
}

$('tab-sign-in').onclick = () => selectTab(false);
$('tab-sign-up').onclick = () => selectTab(true);

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
$<HTMLButtonElement>('sign-out-others').onclick = (event) =>
  busy(event.currentTarget as HTMLButtonElement, async () => {
    await auth.logout({ scope: 'others' });
    await Promise.all([renderSessions(), renderEvents()]);
  });

auth.onChange((state: AuthState) => {
  if (state.status === 'signed_in') {
    notice(undefined);
    void renderAccount(state.user).catch(() => {});
  } else if (state.status === 'signed_out') {
    notice(state.reason);
    show('signed-out');
  }
});

void auth.restore();
