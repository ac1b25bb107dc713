import { TesseraError } from '../core/errors.js';
import { holdsUnstorableText } from '../core/storable-text.js';
import type { App } from './context.js';

/**
 * Replaces Fastify's `application/json` parser with a strict one: the body must
 * be valid UTF-8, and no string or key may hold a lone surrogate or NUL. Everything else is
 * Fastify's own parser: the body limit (413 before any parsing), the syntax errors, and its
 * `__proto__`/`constructor` poisoning checks. An empty body is `{}`, as for every content type.
 *
 * @example
 * registerStrictJsonParser(app); // before the routes
 */
export function registerStrictJsonParser(app: App): void {
  const parseJson = app.getDefaultJsonParser('error', 'error');
  // fatal: a lenient decoder turns bad bytes into U+FFFD, and the damaged text is then taken as data.
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body, done) => {
    if ((body as Buffer).length === 0) return done(null, {});
    let text: string;
    try {
      text = utf8.decode(body as Buffer);
    } catch {
      return done(new TesseraError('invalid_request', { detail: 'The body is not valid UTF-8' }), undefined);
    }
    parseJson(request, text, (error, value) => {
      if (error) return done(error, undefined);
      // Unpaired halves become U+FFFD or an encoding error in PostgreSQL, and NUL cannot be stored in text at all.
      if (holdsUnstorableText(value)) {
        return done(new TesseraError('invalid_request', { detail: 'The body holds a lone surrogate or a NUL character' }), undefined);
      }
      done(null, value);
    });
  });
}

/**
 * Any other content type: an empty body is `{}` (`axios.post(url, null)` sends one as
 * `application/x-www-form-urlencoded`), anything else 415.
 */
export function registerEmptyBodyParser(app: App): void {
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) => {
    if ((body as Buffer).length === 0) return done(null, {});
    done(new TesseraError('unsupported_media_type', { detail: 'The request body must be application/json' }), undefined);
  });
}
