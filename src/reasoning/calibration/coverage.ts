/**
 * Thresholds on a score (an early-exit head's entropy) that select the items (tokens) to act on (exit, or draft)
 * so that among the selected ones a target fraction is right (the head agrees with the full model): the largest
 * threshold, i.e. the most coverage, that keeps that accuracy.
 *
 * - `max-coverage`, BranchyLLM's rule: items sorted by score, the largest score at which the accuracy of all items
 *   up to it is at least the level. In-sample: on new data the accuracy at that threshold is at the level only on
 *   average, below it about half the time.
 * - `ltt` (Learn-then-Test, Angelopoulos et al. 2021, as the LYNX rules use it): on a fixed grid of thresholds in
 *   ascending order, test H_λ: accuracy(λ) < level with the exact binomial p-value of the items up to λ, in fixed
 *   sequence, stopping at the first p > α; the threshold is the last one rejected. With probability at least 1 - α
 *   the accuracy among new items under the threshold is at least the level, if calibration and new items are i.i.d.
 *   (tokens of one text are not quite, so this is approximate there). Costs some coverage. Thresholds that select
 *   too few items to test with power (under 10 expected errors) are skipped, a choice that depends on the scores
 *   alone, not the outcomes.
 *
 * A threshold of null means never: no threshold reaches the level.
 */
import { InvalidInputError } from '../../util/errors.js';
import { binomialPValue } from './stats.js';

export type CoverageRule = 'max-coverage' | 'ltt';
export const COVERAGE_RULES: readonly CoverageRule[] = ['max-coverage', 'ltt'];

/** BranchyLLM's accuracy levels. */
export const DEFAULT_ACCURACY_LEVELS = [0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 0.99] as const;

export interface CoverageThreshold {
  /** Act on items whose score is at most this; null: on none. */
  threshold: number | null;
  /** Fraction of the calibration items at or under the threshold. */
  coverage: number;
  /** Their accuracy (NaN when there are none). */
  accuracy: number;
}

export interface CoverageOptions {
  rule?: CoverageRule;
  /** ltt: the error probability of the guarantee. Default 0.05. */
  alpha?: number;
  /** ltt: the thresholds tested, ascending. Default: scoreGrid of the scores' range. */
  grid?: readonly number[];
}

/** The largest threshold on `scores` whose selected items reach `level` accuracy (see the file comment). */
export function coverageThreshold(scores: ArrayLike<number>, correct: ArrayLike<boolean | number>, level: number, o: CoverageOptions = {}): CoverageThreshold {
  const n = scores.length;
  if (correct.length !== n) throw new InvalidInputError(`${n} scores but ${correct.length} outcomes`);
  if (!(level > 0 && level < 1)) throw new InvalidInputError(`an accuracy level must be in (0, 1) (got ${level})`);
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => scores[a]! - scores[b]!);
  const sorted = order.map((i) => scores[i]!);
  const right = order.map((i) => (correct[i] ? 1 : 0));
  const rule = o.rule ?? 'max-coverage';
  if (rule === 'max-coverage') {
    let cum = 0;
    let best = -1;
    for (let i = 0; i < n; i++) {
      cum += right[i]!;
      // Ties: a threshold selects every item of its score, so only the last of equal scores is a candidate.
      if ((i === n - 1 || sorted[i + 1]! > sorted[i]!) && cum / (i + 1) >= level) best = i;
    }
    return summary(sorted, right, best);
  }
  if (rule !== 'ltt') throw new InvalidInputError(`unknown coverage rule '${String(rule)}': use ${COVERAGE_RULES.join(' or ')}`);
  const alpha = o.alpha ?? 0.05;
  if (!(alpha > 0 && alpha < 1)) throw new InvalidInputError(`alpha must be in (0, 1) (got ${alpha})`);
  const grid = o.grid ?? scoreGrid(n > 0 ? sorted[n - 1]! : 1);
  const minItems = Math.max(Math.ceil(10 / (1 - level)), Math.ceil(Math.log(alpha) / Math.log(level)));
  let best = -1;
  let i = -1;
  let cum = 0;
  for (const lambda of grid) {
    while (i + 1 < n && sorted[i + 1]! <= lambda) cum += right[++i]!;
    const selected = i + 1;
    // Too few items to test with any power (fewer than 10 errors expected at the level, or so few that even a perfect
    // record would not reject): skip, not stop, so that one early error does not end the sequence. The skip depends on
    // the scores only, and given the scores the outcomes are independent, so the test stays valid.
    if (selected < minItems) continue;
    if (binomialPValue(selected - cum, selected, 1 - level) > alpha) break;
    best = i;
  }
  return summary(sorted, right, best);
}

/**
 * A data-independent grid for `ltt`: 0 and 400 points from 1e-4 to `max` spaced evenly in log (entropies of
 * confident heads sit near zero, where the grid is dense).
 */
export function scoreGrid(max: number, points = 400): number[] {
  const hi = Math.max(max, 1e-3);
  const lo = 1e-4;
  const out = [0];
  for (let j = 0; j < points; j++) out.push(lo * Math.pow(hi / lo, j / (points - 1)));
  return out;
}

function summary(sorted: number[], right: number[], last: number): CoverageThreshold {
  const n = sorted.length;
  if (last < 0) return { threshold: null, coverage: 0, accuracy: NaN };
  let cum = 0;
  for (let i = 0; i <= last; i++) cum += right[i]!;
  return { threshold: sorted[last]!, coverage: (last + 1) / n, accuracy: cum / (last + 1) };
}

/** Accuracy and coverage of a threshold on other items (held-out data). */
export function coverageAt(scores: ArrayLike<number>, correct: ArrayLike<boolean | number>, threshold: number | null): { coverage: number; accuracy: number; selected: number } {
  let selected = 0;
  let right = 0;
  if (threshold !== null) {
    for (let i = 0; i < scores.length; i++) {
      if (scores[i]! <= threshold) {
        selected++;
        if (correct[i]) right++;
      }
    }
  }
  return { coverage: scores.length > 0 ? selected / scores.length : 0, accuracy: selected > 0 ? right / selected : NaN, selected };
}
