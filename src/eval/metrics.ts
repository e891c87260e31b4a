/**
 * Run metrics: accuracy with a Wilson 95% interval, mean tokens with a seeded percentile-bootstrap 95% interval
 * (problems are the resampling unit), wall time, exit and savings statistics.
 */
import { Rng } from '../util/rng.js';
import type { PredictionRecord, RunMetrics } from './records.js';

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

export interface MetricsOptions {
  method: string;
  setting: string;
  benchmark: string;
  /** wall time to report; default: the sum of the records' wallMs */
  wallSec?: number;
  /** seed of the bootstrap */
  seed?: number;
  extra?: Record<string, unknown>;
}

/**
 * Metrics of a run from its predictions. Baseline fields are filled when every record carries its full
 * rollout (`baseline`). In `extra`: `wrongExitRate` (exits whose answer was wrong, over all problems),
 * `wrongExitShare` (the same over exits), and with baselines `harm` (full rollout right, this run wrong) and
 * `help` (full rollout wrong, this run right) counts.
 */
export function computeMetrics(preds: readonly PredictionRecord[], opts: MetricsOptions): RunMetrics {
  const n = preds.length;
  const k = preds.filter((p) => p.correct).length;
  const tokens = preds.map((p) => p.tokens.total);
  const exits = preds.filter((p) => p.exit !== null);
  const wrongExits = exits.filter((p) => !p.correct).length;
  const m: RunMetrics = {
    method: opts.method,
    setting: opts.setting,
    benchmark: opts.benchmark,
    n,
    accuracy: n === 0 ? 0 : k / n,
    accuracyCi95: wilsonInterval(k, n),
    avgTokens: n === 0 ? 0 : mean(tokens),
    avgTokensCi95: n === 0 ? [0, 0] : bootstrapMeanInterval(tokens, { seed: opts.seed ?? 0 }),
    wallSec: opts.wallSec ?? preds.reduce((s, p) => s + p.wallMs, 0) / 1000,
    exitRate: n === 0 ? 0 : exits.length / n,
    extra: {
      wrongExitRate: n === 0 ? 0 : wrongExits / n,
      wrongExitShare: exits.length === 0 ? 0 : wrongExits / exits.length,
      ...opts.extra,
    },
  };
  if (n > 0 && preds.every((p) => p.baseline !== undefined)) {
    const base = preds.map((p) => p.baseline!);
    const baseTokens = base.reduce((s, b) => s + b.tokens, 0);
    m.baselineAccuracy = base.filter((b) => b.correct).length / n;
    m.baselineAvgTokens = baseTokens / n;
    m.avgSavings = mean(preds.map((p) => p.baseline!.tokens - p.tokens.total));
    m.savingsRate = baseTokens === 0 ? 0 : 1 - tokens.reduce((s, t) => s + t, 0) / baseTokens;
    m.extra!.harm = preds.filter((p) => p.baseline!.correct && !p.correct).length;
    m.extra!.help = preds.filter((p) => !p.baseline!.correct && p.correct).length;
  }
  return m;
}
