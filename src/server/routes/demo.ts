import { readFileSync } from 'node:fs';
import type { App } from '../context.js';

const FILES = { 'index.html': 'text/html; charset=utf-8', 'app.js': 'text/javascript; charset=utf-8', 'style.css': 'text/css; charset=utf-8' } as const;
// Both src/server/routes and dist/server/routes sit three levels below the package root.
const DEMO_DIR = new URL('../../../dist/demo/', import.meta.url);

/** The pages the links in mails open (SPEC §7: `APP_URL/reset-password#token=…`, `/verify-email#token=…`); the demo page serves them. */
const LINK_PAGES = ['/reset-password', '/verify-email'] as const;

/**
 * The demo account page at `/`, and at the pages the links in mails open, built by
 * `npm run build` into dist/demo. Files are read once at start; without a build, `/` says
 * how to make one. The page learns whether this server sends mail and has passkeys from
 * attributes filled in here, so it offers "Forgot password?" only where a link can arrive and
 * passkeys only where they work, without a request.
 */
export function demoRoutes(app: App) {
  const files = new Map<string, Buffer>();
  for (const name of Object.keys(FILES)) {
    try {
      files.set(name, readFileSync(new URL(name, DEMO_DIR)));
    } catch {
      // not built: handled below
    }
  }
  const html = files.get('index.html');
  if (html) {
    const { mail, webauthnRpId } = app.tessera.config;
    // Passkeys are off without a relying party (an IP-address PUBLIC_URL): the page hides them.
    const body = `data-email-features="${mail === 'off' ? 'off' : 'on'}"${webauthnRpId === undefined ? ' data-passkeys="off"' : ''}`;
    files.set('index.html', Buffer.from(html.toString('utf8').replace('data-email-features="off"', body)));
  }
  const send = (name: keyof typeof FILES) => async (_request: unknown, reply: import('fastify').FastifyReply) => {
    const body = files.get(name);
    if (!body) return reply.type('text/plain; charset=utf-8').send('The demo page is not built yet: run `npm run build`.');
    return reply.type(FILES[name]).send(body);
  };
  const hide = { schema: { hide: true } };
  app.get('/', hide, send('index.html'));
  for (const path of LINK_PAGES) app.get(path, hide, send('index.html'));
  app.get('/demo/app.js', hide, send('app.js'));
  app.get('/demo/style.css', hide, send('style.css'));
  app.get('/favicon.ico', hide, async (_request, reply) => reply.code(204).send());
}
