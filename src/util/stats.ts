/** Small descriptive statistics shared by run metrics, calibration and the peer methods. */
import { Rng } from './rng.js';

/** Wilson score interval for k successes in n trials (z = 1.96 for 95%). [0, 1] when n = 0. */
export function wilsonInterval(k: number, n: number, z = 1.959963984540054): [number, number] {
  if (n === 0) return [0, 1];
  const p = k / n;
  const z2 = z * z;
  const denom = 1 + z2 / n;
  const centre = (p + z2 / (2 * n)) / denom;
  const half = (z * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n))) / denom;
  // At p = 0 or 1 the bound is exactly 0 or 1; clamp away rounding.
  return [k === 0 ? 0 : Math.max(0, centre - half), k === n ? 1 : Math.min(1, centre + half)];
}

export function mean(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  let s = 0;
  for (const x of xs) s += x;
  return s / xs.length;
}

/** Quantile with linear interpolation between order statistics (type 7, as numpy's default). */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

export interface BootstrapOptions {
  seed?: number;
  resamples?: number;
  level?: number;
}

/** Percentile bootstrap interval of the mean, reproducible for a seed. [x, x] for a single value. */
export function bootstrapMeanInterval(xs: readonly number[], opts: BootstrapOptions = {}): [number, number] {
  const n = xs.length;
  if (n === 0) return [NaN, NaN];
  if (n === 1) return [xs[0]!, xs[0]!];
  const rng = new Rng(opts.seed ?? 0);
  const B = opts.resamples ?? 2000;
  const means = new Float64Array(B);
  for (let b = 0; b < B; b++) {
    let s = 0;
    for (let i = 0; i < n; i++) s += xs[Math.floor(rng.next() * n)]!;
    means[b] = s / n;
  }
  const sorted = Array.from(means).sort((a, b) => a - b);
  const alpha = 1 - (opts.level ?? 0.95);
  return [quantile(sorted, alpha / 2), quantile(sorted, 1 - alpha / 2)];
}
