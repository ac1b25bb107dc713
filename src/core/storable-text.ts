/**
 * A lone surrogate (half of a UTF-16 pair, which no UTF-8 text can hold) or U+0000, in
 * a string or a key. Without the `u` flag the pattern sees code units, so halves are visible.
 */
const UNSTORABLE = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * True if any string or key in `root` holds a lone surrogate or a NUL character: unpaired
 * halves become U+FFFD or an encoding error in PostgreSQL, and NUL cannot be stored in
 * `text` or `jsonb` at all.
 *
 * @example
 * holdsUnstorableText({ name: 'Ada\u0000' }); // true
 */
export function holdsUnstorableText(root: unknown): boolean {
  // Without recursion: a 16 KiB body can nest thousands of levels deep.
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
