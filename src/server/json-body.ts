import { TesseraError } from '../core/errors.js';
import type { App } from './context.js';

/**
 * A lone surrogate (half of a UTF-16 pair, which no UTF-8 text can hold) or U+0000, in
 * a string or a key. Without the `u` flag the pattern sees code units, so halves are visible.
 */
const UNSTORABLE = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * Replaces Fastify's `application/json` parser with a strict one (SPEC §10): the body must
 * be valid UTF-8, and no string or key may hold a lone surrogate or NUL. Everything else is
 * Fastify's own parser: the body limit (413 before any parsing), the empty-body and syntax
 * errors, and its `__proto__`/`constructor` poisoning checks.
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

/** Walks every string and key, without recursion: a 16 KiB body can nest thousands of levels deep. */
function holdsUnstorableText(root: unknown): boolean {
  const pending: unknown[] = [root];
  while (pending.length > 0) {
    const value = pending.pop();
    if (typeof value === 'string') {
      if (UNSTORABLE.test(value)) return true;
    } else if (Array.isArray(value)) {
      for (const item of value) pending.push(item);
    } else if (typeof value === 'object' && value !== null) {
      for (const [key, item] of Object.entries(value)) {
        if (UNSTORABLE.test(key)) return true;
        pending.push(item);
      }
    }
  }
  return false;
}
