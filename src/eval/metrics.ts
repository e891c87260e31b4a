/**
 * Run metrics: accuracy with a Wilson 95% interval, mean output tokens and (when every record counts them) mean decoded
 * tokens with seeded percentile-bootstrap 95% intervals (problems are the resampling unit), mean prefilled tokens, wall
 * time, exit and savings statistics. Savings compare output tokens.
 */
import { bootstrapMeanInterval, mean, wilsonInterval } from '../util/stats.js';
import type { PredictionRecord, RunMetrics } from './records.js';
import { summarizeCompose, type ComposeStats } from '../reasoning/compose/stats.js';

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
 * `help` (full rollout wrong, this run right) counts; for big/small compositions `compose` (`ComposeSummary`).
 */
export function computeMetrics(preds: readonly PredictionRecord[], opts: MetricsOptions): RunMetrics {
  const n = preds.length;
  const k = preds.filter((p) => p.correct).length;
  const tokens = preds.map((p) => p.tokens.total);
  const decoded = preds.map((p) => p.tokens.decoded);
  const prefilled = preds.map((p) => p.tokens.prefilled);
  const counted = (xs: (number | undefined)[]): xs is number[] => xs.every((x) => typeof x === 'number' && Number.isFinite(x));
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
    ...(n > 0 && counted(decoded) ? { avgDecoded: mean(decoded), avgDecodedCi95: bootstrapMeanInterval(decoded, { seed: opts.seed ?? 0 }) } : {}),
    ...(n > 0 && counted(prefilled) ? { avgPrefilled: mean(prefilled) } : {}),
    wallSec: opts.wallSec ?? preds.reduce((s, p) => s + p.wallMs, 0) / 1000,
    exitRate: n === 0 ? 0 : exits.length / n,
    extra: {
      wrongExitRate: n === 0 ? 0 : wrongExits / n,
      wrongExitShare: exits.length === 0 ? 0 : wrongExits / exits.length,
      ...opts.extra,
    },
  };
  // Big/small compositions: what each model did, over the run (records without the figures are left out).
  const compose = summarizeCompose(preds.flatMap((p) => (p.extra?.compose ? [p.extra.compose as ComposeStats] : [])));
  if (compose) m.extra!.compose = compose;
  if (n > 0 && preds.every((p) => p.baseline !== undefined)) {
    const base = preds.map((p) => p.baseline!);
    const baseTokens = base.reduce((s, b) => s + b.tokens, 0);
    m.baselineAccuracy = base.filter((b) => b.correct).length / n;
    m.baselineAvgTokens = baseTokens / n;
    const baseDecoded = base.map((b) => b.decoded);
    if (counted(baseDecoded)) m.baselineAvgDecoded = mean(baseDecoded);
    m.avgSavings = mean(preds.map((p) => p.baseline!.tokens - p.tokens.total));
    m.savingsRate = baseTokens === 0 ? 0 : 1 - tokens.reduce((s, t) => s + t, 0) / baseTokens;
    m.extra!.harm = preds.filter((p) => p.baseline!.correct && !p.correct).length;
    m.extra!.help = preds.filter((p) => !p.baseline!.correct && p.correct).length;
  }
  return m;
}
