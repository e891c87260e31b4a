import { describe, expect, it } from 'vitest';
import { computeMetrics } from '../src/eval/metrics.js';
import { bootstrapMeanInterval, mean, quantile, wilsonInterval } from '../src/util/stats.js';
import type { PredictionRecord } from '../src/eval/records.js';
import { Rng } from '../src/util/rng.js';

describe('Wilson interval', () => {
  it('matches published values', () => {
    const [lo, hi] = wilsonInterval(8, 10);
    expect(lo).toBeCloseTo(0.4902, 4);
    expect(hi).toBeCloseTo(0.9433, 4);
    const [lo2, hi2] = wilsonInterval(50, 100);
    expect(lo2).toBeCloseTo(0.4038, 4);
    expect(hi2).toBeCloseTo(0.5962, 4);
  });

  it('is exact at the edges and total without data', () => {
    expect(wilsonInterval(0, 10)[0]).toBe(0);
    expect(wilsonInterval(0, 10)[1]).toBeCloseTo(0.2775, 4);
    expect(wilsonInterval(10, 10)[1]).toBe(1);
    expect(wilsonInterval(0, 0)).toEqual([0, 1]);
  });
});

describe('bootstrap interval of the mean', () => {
  it('is reproducible for a seed and depends on it', () => {
    const rng = new Rng(3);
    const xs = Array.from({ length: 200 }, () => 1000 + 300 * rng.normal());
    expect(bootstrapMeanInterval(xs, { seed: 1 })).toEqual(bootstrapMeanInterval(xs, { seed: 1 }));
    expect(bootstrapMeanInterval(xs, { seed: 1 })).not.toEqual(bootstrapMeanInterval(xs, { seed: 2 }));
  });

  it('has about the normal-theory width and contains the mean', () => {
    const rng = new Rng(11);
    const xs = Array.from({ length: 400 }, () => 500 + 100 * rng.normal());
    const m = mean(xs);
    const sd = Math.sqrt(xs.reduce((s, x) => s + (x - m) ** 2, 0) / (xs.length - 1));
    const [lo, hi] = bootstrapMeanInterval(xs, { seed: 5 });
    expect(lo).toBeLessThan(m);
    expect(hi).toBeGreaterThan(m);
    const expected = 2 * 1.96 * (sd / Math.sqrt(xs.length));
    expect((hi - lo) / expected).toBeGreaterThan(0.85);
    expect((hi - lo) / expected).toBeLessThan(1.15);
    expect(bootstrapMeanInterval([7, 7, 7])).toEqual([7, 7]);
  });

  it('interpolates quantiles like numpy', () => {
    expect(quantile([1, 2, 3, 4], 0.5)).toBe(2.5);
    expect(quantile([1, 2, 3, 4], 0.25)).toBe(1.75);
  });
});

function rec(i: number, correct: boolean, total: number, extra: Partial<PredictionRecord> = {}): PredictionRecord {
  return {
    id: `p${i}`,
    benchmark: 'b',
    method: 'lynx',
    setting: 'delta=0.1',
    problem: '',
    gold: '1',
    extracted: correct ? '1' : '2',
    correct,
    tokens: { reasoning: total - 10, exitCue: 5, answer: 5, total },
    wallMs: 1500,
    exit: null,
    ...extra,
  };
}

describe('run metrics', () => {
  it('accuracy, tokens, wall time, exits', () => {
    const preds = [
      rec(0, true, 100, { exit: { event: 3, position: 90 } }),
      rec(1, false, 300, { exit: { event: 1, position: 280 } }),
      rec(2, true, 200),
      rec(3, true, 400),
    ];
    const m = computeMetrics(preds, { method: 'lynx', setting: 'delta=0.1', benchmark: 'b' });
    expect(m).toMatchObject({ n: 4, accuracy: 0.75, avgTokens: 250, wallSec: 6, exitRate: 0.5 });
    expect(m.accuracyCi95).toEqual(wilsonInterval(3, 4));
    expect(m.extra).toMatchObject({ wrongExitRate: 0.25, wrongExitShare: 0.5 });
    expect(m.baselineAccuracy).toBeUndefined();
  });

  it('baseline comparison: savings, harm and help', () => {
    const preds = [
      rec(0, true, 100, { baseline: { tokens: 400, correct: true, extracted: '1' } }),
      rec(1, false, 100, { baseline: { tokens: 300, correct: true, extracted: '1' } }),
      rec(2, true, 200, { baseline: { tokens: 200, correct: false, extracted: '3' } }),
    ];
    const m = computeMetrics(preds, { method: 'lynx', setting: 's', benchmark: 'b' });
    expect(m.baselineAccuracy).toBeCloseTo(2 / 3);
    expect(m.baselineAvgTokens).toBeCloseTo(300);
    expect(m.avgSavings).toBeCloseTo(500 / 3);
    expect(m.savingsRate).toBeCloseTo(1 - 400 / 900);
    expect(m.extra).toMatchObject({ harm: 1, help: 1 });
  });
});
