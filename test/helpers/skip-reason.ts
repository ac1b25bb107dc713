/**
 * vitest's default reporter counts skipped tests ("5 skipped") but never says why, and it
 * does not print the titles of skipped tests either. A file whose tests need something that
 * is absent says so here: once per reason, under the file's name, when the file is collected.
 */
const told = new Set<string>();

export function sayWhySkipped(reason: string): void {
  if (told.has(reason)) return;
  told.add(reason);
  console.info(`skipped: ${reason}`);
}

/** For `describe.skipIf`: true (skip) when `needed` is absent, after saying why. */
export function missing(needed: unknown, reason: string): boolean {
  if (!needed) sayWhySkipped(reason);
  return !needed;
}
