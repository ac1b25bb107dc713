const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };

/**
 * Parses a duration into whole seconds: `900` (seconds), `5s`, `15m`, `12h`, `7d`.
 * Returns undefined for anything else, including zero and negative values.
 *
 * @example parseDuration('15m') // 900
 */
export function parseDuration(text: string): number | undefined {
  const match = /^(\d{1,9})([smhd]?)$/.exec(text.trim());
  if (!match) return undefined;
  const seconds = Number(match[1]) * (UNITS[match[2] || 's'] ?? 1);
  return seconds >= 1 ? seconds : undefined;
}
