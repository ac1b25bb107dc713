/**
 * Two-sample statistics for the timing checks: medians and quantiles, the Mann–Whitney U
 * test (with its effect size, the probability of superiority) and the two-sample
 * Kolmogorov–Smirnov test. Normal and asymptotic approximations; samples here are ≥ 30.
 */

export function quantile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  const position = (sorted.length - 1) * q;
  const lower = Math.floor(position);
  const upper = Math.ceil(position);
  return sorted[lower]! + (sorted[upper]! - sorted[lower]!) * (position - lower);
}

export const median = (values: number[]) => quantile(values, 0.5);
export const mean = (values: number[]) => values.reduce((s, v) => s + v, 0) / values.length;

/** Standard normal CDF (Abramowitz–Stegun 7.1.26 via erf). */
function normalCdf(z: number): number {
  const t = 1 / (1 + 0.3275911 * (Math.abs(z) / Math.SQRT2));
  const y = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-(z * z) / 2);
  return z >= 0 ? (1 + y) / 2 : (1 - y) / 2;
}

export interface MannWhitney {
  /** U of sample a: the number of pairs (x from a, y from b) with x > y, ties counting ½. */
  u: number;
  z: number;
  /** two-sided p-value */
  p: number;
  /** U / (n_a · n_b): the probability that a random value of a exceeds one of b (0.5 = no difference). */
  superiority: number;
}

export function mannWhitney(a: number[], b: number[]): MannWhitney {
  const all = [...a.map((v) => ({ v, g: 0 })), ...b.map((v) => ({ v, g: 1 }))].sort((x, y) => x.v - y.v);
  const ranks = new Array<number>(all.length);
  let tieTerm = 0;
  for (let i = 0; i < all.length; ) {
    let j = i;
    while (j + 1 < all.length && all[j + 1]!.v === all[i]!.v) j++;
    const rank = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) ranks[k] = rank;
    const ties = j - i + 1;
    tieTerm += ties ** 3 - ties;
    i = j + 1;
  }
  const n1 = a.length;
  const n2 = b.length;
  const rankSumA = all.reduce((s, x, i) => (x.g === 0 ? s + ranks[i]! : s), 0);
  const u = rankSumA - (n1 * (n1 + 1)) / 2;
  const n = n1 + n2;
  const sigma = Math.sqrt(((n1 * n2) / 12) * (n + 1 - tieTerm / (n * (n - 1))));
  const z = sigma === 0 ? 0 : (u - (n1 * n2) / 2) / sigma;
  return { u, z, p: 2 * (1 - normalCdf(Math.abs(z))), superiority: u / (n1 * n2) };
}

export interface KolmogorovSmirnov {
  /** the largest distance between the two empirical distribution functions */
  d: number;
  /** asymptotic two-sided p-value */
  p: number;
}

export function kolmogorovSmirnov(a: number[], b: number[]): KolmogorovSmirnov {
  const xs = [...a].sort((x, y) => x - y);
  const ys = [...b].sort((x, y) => x - y);
  let i = 0;
  let j = 0;
  let d = 0;
  while (i < xs.length && j < ys.length) {
    const v = Math.min(xs[i]!, ys[j]!);
    while (i < xs.length && xs[i]! <= v) i++;
    while (j < ys.length && ys[j]! <= v) j++;
    d = Math.max(d, Math.abs(i / xs.length - j / ys.length));
  }
  const ne = (xs.length * ys.length) / (xs.length + ys.length);
  const lambda = (Math.sqrt(ne) + 0.12 + 0.11 / Math.sqrt(ne)) * d;
  let p = 0;
  for (let k = 1; k <= 100; k++) p += 2 * (-1) ** (k - 1) * Math.exp(-2 * k * k * lambda * lambda);
  return { d, p: Math.min(1, Math.max(0, p)) };
}

/** One line per sample and one for the tests, for the test log. */
export function describeSamples(label: string, a: { name: string; values: number[] }, b: { name: string; values: number[] }): string {
  const row = (s: { name: string; values: number[] }) =>
    `  ${s.name.padEnd(34)} n=${s.values.length}  median=${median(s.values).toFixed(2)} ms  mean=${mean(s.values).toFixed(2)} ms  p10=${quantile(s.values, 0.1).toFixed(2)}  p90=${quantile(s.values, 0.9).toFixed(2)}`;
  const mw = mannWhitney(a.values, b.values);
  const ks = kolmogorovSmirnov(a.values, b.values);
  return [
    `[timing] ${label}`,
    row(a),
    row(b),
    `  Mann–Whitney U=${mw.u.toFixed(1)}  z=${mw.z.toFixed(2)}  p=${mw.p.toFixed(4)}  P(${a.name} slower)=${mw.superiority.toFixed(3)}`,
    `  Kolmogorov–Smirnov D=${ks.d.toFixed(3)}  p=${ks.p.toFixed(4)}`,
  ].join('\n');
}
