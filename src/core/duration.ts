/** Ten years: long enough for any session, short enough that dates stay valid. */
const MAX_SECONDS = 10 * 365 * 86_400;

const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };

/**
 * Parses a duration into whole seconds: `900` (seconds), `5s`, `15m`, `12h`, `7d`.
 * Returns undefined for anything else, including zero, negative values and more than ten years.
 *
 * @example parseDuration('15m') // 900
 */
export function parseDuration(text: string): number | undefined {
  const match = /^(\d{1,12})([smhd]?)$/.exec(text.trim());
  if (!match) return undefined;
  const seconds = Number(match[1]) * (UNITS[match[2] || 's'] ?? 1);
  return seconds >= 1 && seconds <= MAX_SECONDS ? seconds : undefined;
}
