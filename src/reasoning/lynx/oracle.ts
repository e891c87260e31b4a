/**
 * The bound on what any exit rule at LYNX's cue events can do, from labelled full rollouts (`SimRollout`):
 *
 * - the oracle exit: at the first (non-synthetic) cue event whose forced exit is correct; never exit when there is
 *   none. It knows the labels, so no rule at these events reaches its accuracy with fewer tokens on these rollouts;
 * - the oracle frontier: for every accuracy, the fewest average tokens any choice of one exit event (or none) per
 *   rollout reaches. Each rollout starts at its cheapest choice; reaching one more correct answer costs the difference
 *   to its cheapest correct choice, and taking those differences smallest first is exact (every step adds exactly one
 *   correct answer). A rule's saving "as a share of the oracle's at the same accuracy" divides by this frontier's saving
 *   at the rule's accuracy;
 * - the probe frontier: the best single score threshold, chosen on these very rollouts ("exit at the first event
 *   whose probe score is at least λ" for every λ): what the probe's features allow with a perfectly tuned threshold.
 *   The gap between it and the oracle is the features'; between a calibrated rule and it, the calibration's.
 *
 * Tokens are output tokens (as the savings of the tables).
 */
import { calibrateLynx } from '../calibration/conformal.js';
import { Rng } from '../../util/rng.js';
import { baselineCounts, exitTokenCounts, simulateRollout, type SimOutcome, type SimRollout } from './simulate.js';

/** Index (into `events`) of the oracle's exit: the first non-synthetic event with a correct forced exit, or -1. */
export function oracleExitIndex(r: SimRollout): number {
  return r.events.findIndex((e) => !e.synthetic && e.correct);
}

/** The oracle exit on one rollout. */
export function simulateOracle(r: SimRollout): SimOutcome {
  const k = oracleExitIndex(r);
  if (k < 0) return { exited: false, eventIndex: -1, correct: r.fullCorrect, answer: r.fullAnswer, tokens: baselineCounts(r) };
  const e = r.events[k]!;
  return { exited: true, eventIndex: k, correct: true, answer: e.answer, tokens: exitTokenCounts(e.tokenIndex, r.exitCueTokens, e.answerTokens, e.decidedAt, r.promptTokens) };
}

/** One point of a frontier: an accuracy and the average output tokens reaching it. */
export interface FrontierPoint {
  accuracy: number;
  avgTokens: number;
}

function exitCost(r: SimRollout, i: number): number {
  const e = r.events[i]!;
  return e.tokenIndex + r.exitCueTokens + e.answerTokens;
}

/** The oracle frontier, from its cheapest point (lowest accuracy) to its most accurate (see the file comment). */
export function oracleFrontier(rollouts: readonly SimRollout[]): FrontierPoint[] {
  const n = rollouts.length;
  if (n === 0) return [];
  let correct = 0;
  let tokens = 0;
  const upgrades: number[] = [];
  for (const r of rollouts) {
    const full = baselineCounts(r).total;
    let cheapest = full;
    let cheapestCorrect = r.fullCorrect;
    let cheapestRight = r.fullCorrect ? full : Infinity;
    r.events.forEach((e, i) => {
      if (e.synthetic) return;
      const c = exitCost(r, i);
      if (c < cheapest || (c === cheapest && e.correct && !cheapestCorrect)) {
        cheapest = c;
        cheapestCorrect = e.correct;
      }
      if (e.correct && c < cheapestRight) cheapestRight = c;
    });
    tokens += cheapest;
    if (cheapestCorrect) correct++;
    else if (Number.isFinite(cheapestRight)) upgrades.push(cheapestRight - cheapest);
  }
  upgrades.sort((a, b) => a - b);
  const out: FrontierPoint[] = [{ accuracy: correct / n, avgTokens: tokens / n }];
  for (const d of upgrades) {
    correct++;
    tokens += d;
    out.push({ accuracy: correct / n, avgTokens: tokens / n });
  }
  return out;
}

/** The probe's best single thresholds: for every distinct score λ, exit at the first event scoring at least λ. */
export function thresholdFrontier(rollouts: readonly SimRollout[]): (FrontierPoint & { threshold: number })[] {
  const n = rollouts.length;
  if (n === 0) return [];
  const scores = [...new Set(rollouts.flatMap((r) => r.events.filter((e) => !e.synthetic).map((e) => e.score)))].sort((a, b) => b - a);
  const points: (FrontierPoint & { threshold: number })[] = [];
  for (const threshold of [Infinity, ...scores]) {
    let correct = 0;
    let tokens = 0;
    for (const r of rollouts) {
      const k = r.events.findIndex((e) => !e.synthetic && e.score >= threshold);
      if (k < 0) {
        correct += r.fullCorrect ? 1 : 0;
        tokens += baselineCounts(r).total;
      } else {
        correct += r.events[k]!.correct ? 1 : 0;
        tokens += exitCost(r, k);
      }
    }
    points.push({ threshold, accuracy: correct / n, avgTokens: tokens / n });
  }
  return points;
}

/**
 * The fewest average tokens a frontier reaches with at least `accuracy` (a tolerance of half a rollout absorbs
 * floating point), or null when it never gets there.
 */
export function tokensAtAccuracy(frontier: readonly FrontierPoint[], accuracy: number, n: number): number | null {
  const eps = 0.5 / Math.max(1, n);
  let best: number | null = null;
  for (const p of frontier) if (p.accuracy >= accuracy - eps && (best === null || p.avgTokens < best)) best = p.avgTokens;
  return best;
}

/** What the bound says about one setting of a rule: its saving, the oracle's and the probe's best at its accuracy. */
export interface OracleComparison {
  accuracy: number;
  /** Saving of the setting: 1 - its tokens / the full rollouts'. */
  savingsRate: number;
  /** The oracle frontier's saving at the setting's accuracy. */
  oracleSavingsRate: number | null;
  /** savingsRate / oracleSavingsRate (null when the oracle saves nothing there). */
  oracleShare: number | null;
  /** The best single probe threshold's saving at the setting's accuracy (tuned on the test rollouts themselves). */
  probeSavingsRate: number | null;
}

export function compareWithOracle(
  rollouts: readonly SimRollout[],
  setting: { accuracy: number; avgTokens: number },
  frontiers: { oracle: readonly FrontierPoint[]; probe: readonly FrontierPoint[] } = { oracle: oracleFrontier(rollouts), probe: thresholdFrontier(rollouts) },
): OracleComparison {
  const n = rollouts.length;
  const base = n ? rollouts.reduce((a, r) => a + baselineCounts(r).total, 0) / n : 0;
  const saving = (t: number | null) => (t === null || base <= 0 ? null : 1 - t / base);
  const savingsRate = saving(setting.avgTokens) ?? 0;
  const oracleSavingsRate = saving(tokensAtAccuracy(frontiers.oracle, setting.accuracy, n));
  return {
    accuracy: setting.accuracy,
    savingsRate,
    oracleSavingsRate,
    oracleShare: oracleSavingsRate !== null && oracleSavingsRate > 0 ? savingsRate / oracleSavingsRate : null,
    probeSavingsRate: saving(tokensAtAccuracy(frontiers.probe, setting.accuracy, n)),
  };
}

/** What limits the rules at the cue events, measured on the rollouts (see BENCHMARKS.md for how to read it). */
export interface OracleLimits {
  rollouts: number;
  /** Rollouts whose full answer is right but no cue event's forced exit is: no exit at these events can save there. */
  fullCorrectWithoutCorrectEvent: number;
  /** Rollouts without a (non-synthetic) cue event. */
  withoutEvents: number;
  /** Mean share of the full rollout's reasoning before the oracle's exit event, over rollouts where it exits. */
  oracleExitDepth: number | null;
}

export function oracleLimits(rollouts: readonly SimRollout[]): OracleLimits {
  let noCorrect = 0;
  let noEvents = 0;
  const depths: number[] = [];
  for (const r of rollouts) {
    const real = r.events.filter((e) => !e.synthetic);
    if (real.length === 0) noEvents++;
    const k = oracleExitIndex(r);
    if (r.fullCorrect && k < 0) noCorrect++;
    const reasoning = typeof r.fullTokens === 'number' ? r.fullTokens : r.fullTokens.reasoning;
    if (k >= 0 && reasoning > 0) depths.push(r.events[k]!.tokenIndex / reasoning);
  }
  return {
    rollouts: rollouts.length,
    fullCorrectWithoutCorrectEvent: noCorrect,
    withoutEvents: noEvents,
    oracleExitDepth: depths.length ? depths.reduce((a, b) => a + b, 0) / depths.length : null,
  };
}

/** LYNX's rule at one δ calibrated on a random share of the calibration events, replayed on test rollouts. */
export interface CalibrationSizePoint {
  fraction: number;
  /** Wrong-exit (label-0) calibration events in a draw (mean over draws). */
  nNeg: number;
  /** Draws whose quantile was clipped (the rule refused). */
  refused: number;
  draws: number;
  /** Test accuracy and saving (output tokens), mean / min / max over draws. */
  accuracy: { mean: number; min: number; max: number };
  savingsRate: { mean: number; min: number; max: number };
}

/**
 * How the calibration size limits LYNX's rule: calibrate at `delta` on `fraction` of the calibration events (drawn by
 * problem, seeded, `draws` times) and replay on the test rollouts. A saving that grows with the fraction says more
 * calibration data would buy more; a flat one says the calibration size is not the limit.
 */
export function calibrationSizeCurve(
  cal: { problemIds: readonly string[]; p: ArrayLike<number>; labels: ArrayLike<number> },
  test: readonly SimRollout[],
  delta: number,
  opts: { fractions?: readonly number[]; draws?: number; seed?: number } = {},
): CalibrationSizePoint[] {
  const fractions = opts.fractions ?? [0.25, 0.5, 1];
  const problems = [...new Set(cal.problemIds)].sort();
  const n = test.length;
  const base = n ? test.reduce((a, r) => a + baselineCounts(r).total, 0) / n : 0;
  return fractions.map((fraction) => {
    const draws = fraction >= 1 ? 1 : opts.draws ?? 20;
    const acc: number[] = [];
    const sav: number[] = [];
    let negs = 0;
    let refused = 0;
    for (let d = 0; d < draws; d++) {
      const keep = new Set(fraction >= 1 ? problems : Rng.derive(opts.seed ?? 0, `calibration-size/${fraction}/${d}`).shuffle([...problems]).slice(0, Math.max(1, Math.round(fraction * problems.length))));
      const p: number[] = [];
      const y: number[] = [];
      cal.problemIds.forEach((id, i) => {
        if (!keep.has(id)) return;
        p.push(cal.p[i]!);
        y.push(cal.labels[i]!);
      });
      const rule = calibrateLynx(p, y, delta);
      negs += rule.nNeg;
      if (rule.refused) refused++;
      const outcomes = test.map((r) => simulateRollout(rule, r));
      acc.push(outcomes.filter((o) => o.correct).length / Math.max(1, n));
      sav.push(base > 0 ? 1 - outcomes.reduce((a, o) => a + o.tokens.total, 0) / n / base : 0);
    }
    const stats = (xs: number[]) => ({ mean: xs.reduce((a, b) => a + b, 0) / xs.length, min: Math.min(...xs), max: Math.max(...xs) });
    return { fraction, nNeg: negs / draws, refused, draws, accuracy: stats(acc), savingsRate: stats(sav) };
  });
}
