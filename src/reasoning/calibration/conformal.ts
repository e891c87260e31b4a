/**
 * Exit rules calibrated on held-out data.
 *
 * `lynx`: LYNX's class-conditional split conformal rule (`calibrate_conformal.py`, `conformal_quantile`,
 * `predictive_set_binary`). Nonconformity of an event with label c is 1 - p_c: 1 - p for label 1 (exit would be
 * correct) and 1 - (1 - p) = p for label 0. Per class, q_c is the k-th smallest score with k = ceil((n_c + 1)(1 - δ))
 * clipped to [1, n_c] (+∞ for an empty class). The prediction set holds 1 if 1 - p ≤ q_pos and 0 if p ≤ q_neg; exit
 * when it is exactly {1}.
 *   Guarantee (per event): if calibration and test events of label 0 are exchangeable, P(exit | y = 0) ≤ δ, i.e. among
 *   events where a forced exit would be wrong, at most a δ fraction (in expectation over calibration and test draw)
 *   would be exited. It holds only when k was not clipped ((n_0 + 1)(1 - δ) ≤ n_0); `valid` records that. It says
 *   nothing about the answer a user gets: a trajectory passes many events and exits at the first accepted one.
 *   A clipped rule is refused by default: it never exits (`refused`), and `neededNeg` says how many label-0 events δ
 *   needs. LYNX itself uses it as it comes (`useClipped: true` keeps that behaviour).
 *
 * `ltt` and `crc` (beyond LYNX): trajectory-level rules that pick a threshold λ on the probe score for the policy "exit
 * at the first cue event whose score ≥ λ". The loss of a rollout is 1 when the policy exits with a wrong answer while
 * the full rollout is right (a harmful premature exit), else 0; a problem's loss is the mean over its rollouts.
 *   `ltt` (Learn-then-Test, Angelopoulos et al. 2021): for each λ of a fixed grid from 1 down to 0, test H_λ: risk(λ) > δ
 *   with a binomial p-value (one rollout per problem: exact Clopper–Pearson tail) or Hoeffding–Bentkus (several
 *   rollouts per problem), in fixed sequence, stopping at the first p > α; λ̂ is the last rejected λ (never exit if
 *   none). Guarantee: with probability ≥ 1 - α over the calibration problems (i.i.d. with the test problem),
 *   P(harmful premature exit on a new problem | λ̂) ≤ δ.
 *   `crc` (conformal risk control, Angelopoulos et al. 2022) on the monotonized loss L̃(λ) = max_{λ' ≥ λ} L(λ') (the
 *   raw loss is not monotone in λ: a later exit can be wrong where an earlier one was right): λ̂ is the smallest grid λ
 *   with n/(n+1)·R̃(λ) + 1/(n+1) ≤ δ. Guarantee: E[harmful premature exit] ≤ δ in expectation over calibration and
 *   test problem (exchangeable), with no confidence parameter.
 */
import { InvalidInputError } from '../../util/errors.js';
import { binomialPValue, hoeffdingBentkusPValue } from './stats.js';

/** LYNX's δ sweep. */
export const DEFAULT_DELTAS = [0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.3] as const;

export const CONFORMAL_SCHEMA = 'lynx.conformal/1';

/**
 * The split conformal quantile exactly as LYNX computes it: k = ceil((n + 1)(1 - δ)) in double arithmetic, clipped
 * to [1, n]; the k-th smallest score. +∞ when there are no scores.
 */
export function conformalQuantile(scores: ArrayLike<number>, delta: number): number {
  const n = scores.length;
  if (n <= 0) return Infinity;
  const k = quantileIndex(n, delta);
  const sorted = Float64Array.from(scores).sort();
  return sorted[k - 1]!;
}

/** The 1-based rank LYNX takes, and whether it had to be clipped to n (which voids the guarantee). */
export function quantileIndex(n: number, delta: number): number {
  const k = Math.ceil((n + 1) * (1 - delta));
  return Math.max(1, Math.min(k, n));
}

function quantileClipped(n: number, delta: number): boolean {
  return n <= 0 || Math.ceil((n + 1) * (1 - delta)) > n;
}

/**
 * The fewest calibration scores for which the quantile at δ is not clipped: the least n with ⌈(n + 1)(1 − δ)⌉ ≤ n
 * (about 1/δ − 1: 99 at δ = 0.01, 19 at 0.05), in the same double arithmetic as the quantile.
 */
export function minCalibrationScores(delta: number): number {
  checkDelta(delta);
  let n = Math.max(1, Math.floor(1 / delta) - 2);
  while (quantileClipped(n, delta)) n++;
  return n;
}

/** LYNX's binary prediction set for p = P(label 1). */
export function predictionSet(p: number, qPos: number, qNeg: number): (0 | 1)[] {
  const pPos = Math.min(1, Math.max(0, p));
  const pNeg = 1 - pPos;
  const set: (0 | 1)[] = [];
  if (1 - pPos <= qPos) set.push(1);
  if (1 - pNeg <= qNeg) set.push(0);
  return set;
}

export interface LynxRule {
  schema: typeof CONFORMAL_SCHEMA;
  rule: 'lynx';
  delta: number;
  qPos: number;
  qNeg: number;
  /** Calibration events (label 1 and label 0). */
  nCal: number;
  nPos: number;
  nNeg: number;
  /** The quantile rank was clipped to n_c for this class. */
  clipped: { pos: boolean; neg: boolean };
  /** The per-event guarantee holds (label-0 quantile not clipped). */
  valid: boolean;
  /** Label-0 (wrong-exit) calibration events δ needs for an unclipped quantile. */
  neededNeg: number;
  /** Exit even when the quantile was clipped (LYNX's behaviour). Default false: a clipped rule never exits. */
  useClipped?: boolean;
  /** The rule was clipped and is not used: it never exits. */
  refused: boolean;
  /** The lowest score that exits (the set is {1} iff p ≥ threshold, up to rounding at the boundary); null if none. */
  threshold: number | null;
  guarantee: string;
  heldOut?: HeldOutStats;
}

export interface TrajectoryRule {
  schema: typeof CONFORMAL_SCHEMA;
  rule: 'ltt' | 'crc';
  delta: number;
  /** LTT's error level (probability that the risk bound fails); absent for CRC. */
  alpha?: number;
  /** Exit at the first event with score ≥ threshold; null = never exit. */
  threshold: number | null;
  /** Calibration problems (units of exchangeability) and rollouts. */
  nCal: number;
  nRollouts: number;
  /** Risk of harmful premature exit on the calibration problems at the chosen threshold. */
  calRisk: number;
  /** For CRC: the monotonized risk used in the rule. */
  calRiskMonotone?: number;
  /** Exit rate on the calibration rollouts at the chosen threshold. */
  calExitRate: number;
  /** For LTT: p-value of the chosen threshold and the method. */
  pValue?: number;
  pValueMethod?: 'binomial' | 'hoeffding-bentkus';
  grid: { from: number; to: number; step: number };
  guarantee: string;
  heldOut?: HeldOutStats;
}

export type ExitRule = LynxRule | TrajectoryRule;

export interface HeldOutStats {
  /** Rollouts and problems evaluated. */
  n: number;
  nProblems: number;
  /** Fraction of problems (mean over their rollouts) where the policy exits wrong while the full rollout is right. */
  prematureExitRate: number;
  exitRate: number;
  /** Accuracy of the policy (early answer when it exits, full-rollout answer otherwise). */
  accuracy: number;
  baselineAccuracy: number;
  /** Mean tokens saved per rollout (needs token counts on every exited rollout; null otherwise). */
  avgSavings: number | null;
  /** Among events whose forced exit is wrong (non-synthetic), the fraction the rule accepts: LYNX's per-event error. */
  eventErrorRate: number;
  nWrongEvents: number;
}

const LYNX_GUARANTEE =
  'Per event (class-conditional split conformal): for a new event exchangeable with the label-0 calibration events, ' +
  'P(exit | forced exit would be wrong) <= delta, in expectation over calibration and test draw; requires an unclipped quantile.';

export interface LynxCalibrationOptions {
  /** Exit with a clipped quantile as LYNX does (no guarantee). Default false: refuse the rule (it never exits). */
  useClipped?: boolean;
}

/** LYNX's rule from calibration probabilities p = P(correct exit) and labels. */
export function calibrateLynx(p: ArrayLike<number>, labels: ArrayLike<number>, delta: number, opts: LynxCalibrationOptions = {}): LynxRule {
  checkDelta(delta);
  if (p.length !== labels.length) throw new InvalidInputError(`calibration has ${p.length} scores but ${labels.length} labels`);
  const sPos: number[] = [];
  const sNeg: number[] = [];
  for (let i = 0; i < p.length; i++) {
    const pp = p[i]!;
    if (labels[i]) sPos.push(1 - pp);
    else sNeg.push(1 - (1 - pp));
  }
  const qPos = sPos.length ? conformalQuantile(sPos, delta) : Infinity;
  const qNeg = sNeg.length ? conformalQuantile(sNeg, delta) : Infinity;
  return lynxRuleOf({ delta, qPos, qNeg, nPos: sPos.length, nNeg: sNeg.length, useClipped: opts.useClipped });
}

/** A LYNX rule from its quantiles and class counts (a calibration, or LYNX's own `conformal_calib.json`). */
export function lynxRuleOf(q: { delta: number; qPos: number; qNeg: number; nPos: number; nNeg: number; useClipped?: boolean }): LynxRule {
  checkDelta(q.delta);
  const clipped = { pos: quantileClipped(q.nPos, q.delta), neg: quantileClipped(q.nNeg, q.delta) };
  const valid = !clipped.neg;
  const refused = !valid && q.useClipped !== true;
  return {
    schema: CONFORMAL_SCHEMA,
    rule: 'lynx',
    delta: q.delta,
    qPos: q.qPos,
    qNeg: q.qNeg,
    nCal: q.nPos + q.nNeg,
    nPos: q.nPos,
    nNeg: q.nNeg,
    clipped,
    valid,
    neededNeg: minCalibrationScores(q.delta),
    ...(q.useClipped ? { useClipped: true } : {}),
    refused,
    threshold: refused ? null : lynxThreshold(q.qPos, q.qNeg),
    guarantee: LYNX_GUARANTEE,
  };
}

/** Why a LYNX rule was refused, for warnings; null when it is used. */
export function refusalReason(rule: ExitRule): string | null {
  if (rule.rule !== 'lynx' || !rule.refused) return null;
  return (
    `the ${rule.rule} rule at delta ${rule.delta} has ${rule.nNeg} calibration events with a wrong forced exit, but its conformal quantile ` +
    `needs at least ${rule.neededNeg} (fewer clip it and void the guarantee), so it never exits: calibrate on more problems ` +
    '(or with fewer held out), or pass --allow-clipped to exit with it anyway, as LYNX does'
  );
}

/** The score boundary of LYNX's rule: exit iff p ≥ 1 - q_pos and p > q_neg. */
function lynxThreshold(qPos: number, qNeg: number): number | null {
  const lo = Math.max(1 - qPos, 0);
  if (!Number.isFinite(qNeg)) return null; // 0 is always in the set
  if (qNeg >= 1) return null;
  // smallest p with p > qNeg is the next double above qNeg
  const aboveNeg = nextUp(qNeg);
  const t = Math.max(lo, aboveNeg);
  return t <= 1 ? t : null;
}

function nextUp(x: number): number {
  if (x === Infinity || Number.isNaN(x)) return x;
  if (x === 0) return Number.MIN_VALUE;
  const buf = new Float64Array([x]);
  const bits = new BigInt64Array(buf.buffer);
  bits[0] = x > 0 ? bits[0]! + 1n : bits[0]! - 1n;
  return buf[0]!;
}

/** Does the rule exit at an event with score p? A refused (clipped) LYNX rule never does. */
export function ruleExits(rule: ExitRule, p: number): boolean {
  if (rule.rule === 'lynx') {
    if (rule.refused) return false;
    const s = predictionSet(p, rule.qPos, rule.qNeg);
    return s.length === 1 && s[0] === 1;
  }
  return rule.threshold !== null && p >= rule.threshold;
}

function checkDelta(delta: number): void {
  if (!(delta > 0 && delta < 1)) throw new InvalidInputError(`delta must be in (0, 1), got ${delta}`);
}

// ---------------------------------------------------------------------------------------------------------------
// Trajectory-level rules

/** One cue event of a rollout with its probe score and the correctness of a forced exit there. */
export interface ScoredEvent {
  score: number;
  correct: boolean;
  /** LYNX's synthetic 70% event (placed when a rollout has no cue): not a decision point online, so ignored here. */
  synthetic?: boolean;
}

/** A full rollout with all its cue events in trace order. */
export interface ScoredRollout<E extends ScoredEvent = ScoredEvent> {
  problemId: string;
  fullCorrect: boolean;
  events: readonly E[];
}

/** Index (into `events`) of the first non-synthetic event where the rule exits, or -1. */
export function firstExit(rule: ExitRule | ((p: number) => boolean), events: readonly ScoredEvent[]): number {
  const exits = typeof rule === 'function' ? rule : (p: number) => ruleExits(rule, p);
  for (let i = 0; i < events.length; i++) {
    const e = events[i]!;
    if (!e.synthetic && exits(e.score)) return i;
  }
  return -1;
}

export interface TrajectoryOptions {
  /** LTT only: probability that the guarantee fails. Default 0.1. */
  alpha?: number;
  /** Threshold grid step; the grid is fixed in advance: 1, 1 - step, ..., 0. Default 0.001. */
  gridStep?: number;
  /** LTT only: force the p-value; default binomial with one rollout per problem, else Hoeffding–Bentkus. */
  pValue?: 'binomial' | 'hoeffding-bentkus';
}

interface RiskCurve {
  grid: Float64Array;
  /** Mean over problems of the mean rollout loss, per grid point (grid order: descending thresholds). */
  risk: Float64Array;
  riskMonotone: Float64Array;
  /** Count of rollouts with loss 1 per grid point (binary case). */
  losses: Int32Array;
  exitRate: Float64Array;
  nProblems: number;
  nRollouts: number;
  singleRollout: boolean;
}

function makeGrid(step: number): Float64Array {
  if (!(step > 0 && step <= 1)) throw new InvalidInputError(`gridStep must be in (0, 1], got ${step}`);
  const m = Math.round(1 / step);
  const grid = new Float64Array(m + 1);
  for (let j = 0; j <= m; j++) grid[j] = Math.max(0, 1 - j * step);
  grid[m] = 0;
  return grid;
}

/**
 * Risk of harmful premature exit for every grid threshold, by one sweep over thresholds in descending order: a
 * rollout's exit moves to an earlier event each time the threshold passes below a new running maximum of its scores.
 */
function riskCurve(rollouts: readonly ScoredRollout[], grid: Float64Array): RiskCurve {
  const problems = new Map<string, number>();
  const problemOf = new Int32Array(rollouts.length);
  const perProblem: number[] = [];
  rollouts.forEach((r, i) => {
    let k = problems.get(r.problemId);
    if (k === undefined) {
      k = perProblem.length;
      problems.set(r.problemId, k);
      perProblem.push(0);
    }
    perProblem[k]! += 1;
    problemOf[i] = k;
  });
  const nProblems = perProblem.length;
  // Transitions: (score, rollout, loss if the exit moves to this event), for every strict running maximum.
  const tScore: number[] = [];
  const tRollout: number[] = [];
  const tLoss: number[] = [];
  rollouts.forEach((r, i) => {
    let best = -Infinity;
    for (const e of r.events) {
      if (e.synthetic) continue;
      if (!(e.score > best)) continue;
      best = e.score;
      tScore.push(e.score);
      tRollout.push(i);
      tLoss.push(!e.correct && r.fullCorrect ? 1 : 0);
    }
  });
  const order = Array.from(tScore.keys()).sort((a, b) => tScore[b]! - tScore[a]!);
  const loss = new Uint8Array(rollouts.length);
  const everLoss = new Uint8Array(rollouts.length);
  const exited = new Uint8Array(rollouts.length);
  let riskSum = 0; // Σ_problems mean loss
  let riskMonoSum = 0;
  let nLoss = 0;
  let nExit = 0;
  const risk = new Float64Array(grid.length);
  const riskMonotone = new Float64Array(grid.length);
  const losses = new Int32Array(grid.length);
  const exitRate = new Float64Array(grid.length);
  let t = 0;
  for (let g = 0; g < grid.length; g++) {
    const lam = grid[g]!;
    while (t < order.length && tScore[order[t]!]! >= lam) {
      const k = order[t++]!;
      const r = tRollout[k]!;
      const w = 1 / perProblem[problemOf[r]!]!;
      const l = tLoss[k]!;
      if (!exited[r]) {
        exited[r] = 1;
        nExit++;
      }
      if (l !== loss[r]) {
        riskSum += (l - loss[r]!) * w;
        nLoss += l - loss[r]!;
        loss[r] = l;
      }
      if (l && !everLoss[r]) {
        everLoss[r] = 1;
        riskMonoSum += w;
      }
    }
    risk[g] = nProblems ? riskSum / nProblems : 0;
    riskMonotone[g] = nProblems ? riskMonoSum / nProblems : 0;
    losses[g] = nLoss;
    exitRate[g] = rollouts.length ? nExit / rollouts.length : 0;
  }
  return {
    grid,
    risk,
    riskMonotone,
    losses,
    exitRate,
    nProblems,
    nRollouts: rollouts.length,
    singleRollout: nProblems === rollouts.length,
  };
}

const LTT_GUARANTEE = (alpha: number) =>
  `Per problem, with probability >= ${1 - alpha} over the calibration problems (i.i.d. with the test problem): ` +
  'P(the policy exits with a wrong answer while the full rollout would be right) <= delta.';
const CRC_GUARANTEE =
  'Per problem, in expectation over calibration and test problems (exchangeable): ' +
  'P(the policy exits with a wrong answer while the full rollout would be right) <= delta.';

/** Learn-then-Test with fixed-sequence testing over the threshold grid. */
export function calibrateLtt(rollouts: readonly ScoredRollout[], delta: number, opts: TrajectoryOptions = {}): TrajectoryRule {
  checkDelta(delta);
  const alpha = opts.alpha ?? 0.1;
  if (!(alpha > 0 && alpha < 1)) throw new InvalidInputError(`alpha must be in (0, 1), got ${alpha}`);
  const step = opts.gridStep ?? 0.001;
  const curve = riskCurve(rollouts, makeGrid(step));
  const method = opts.pValue ?? (curve.singleRollout ? 'binomial' : 'hoeffding-bentkus');
  if (method === 'binomial' && !curve.singleRollout) {
    throw new InvalidInputError('the binomial p-value needs one rollout per problem; use hoeffding-bentkus');
  }
  const n = curve.nProblems;
  let chosen = -1;
  let chosenP = 1;
  for (let g = 0; g < curve.grid.length; g++) {
    const p =
      method === 'binomial' ? binomialPValue(curve.losses[g]!, n, delta) : hoeffdingBentkusPValue(curve.risk[g]!, n, delta);
    if (p > alpha) break;
    chosen = g;
    chosenP = p;
  }
  return {
    schema: CONFORMAL_SCHEMA,
    rule: 'ltt',
    delta,
    alpha,
    threshold: chosen >= 0 ? curve.grid[chosen]! : null,
    nCal: n,
    nRollouts: curve.nRollouts,
    calRisk: chosen >= 0 ? curve.risk[chosen]! : 0,
    calExitRate: chosen >= 0 ? curve.exitRate[chosen]! : 0,
    pValue: chosen >= 0 ? chosenP : undefined,
    pValueMethod: method,
    grid: { from: 1, to: 0, step },
    guarantee: LTT_GUARANTEE(alpha),
  };
}

/** Conformal risk control on the monotonized harmful-exit loss. */
export function calibrateCrc(rollouts: readonly ScoredRollout[], delta: number, opts: TrajectoryOptions = {}): TrajectoryRule {
  checkDelta(delta);
  const step = opts.gridStep ?? 0.001;
  const curve = riskCurve(rollouts, makeGrid(step));
  const n = curve.nProblems;
  let chosen = -1;
  for (let g = 0; g < curve.grid.length; g++) {
    // R̃ is non-decreasing along the descending grid, so the admissible thresholds are a prefix.
    if ((n / (n + 1)) * curve.riskMonotone[g]! + 1 / (n + 1) > delta) break;
    chosen = g;
  }
  return {
    schema: CONFORMAL_SCHEMA,
    rule: 'crc',
    delta,
    threshold: chosen >= 0 ? curve.grid[chosen]! : null,
    nCal: n,
    nRollouts: curve.nRollouts,
    calRisk: chosen >= 0 ? curve.risk[chosen]! : 0,
    calRiskMonotone: chosen >= 0 ? curve.riskMonotone[chosen]! : 0,
    calExitRate: chosen >= 0 ? curve.exitRate[chosen]! : 0,
    grid: { from: 1, to: 0, step },
    guarantee: CRC_GUARANTEE,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Held-out evaluation and the sweep

/** Token counts a held-out rollout may carry, for `avgSavings`. */
export interface TokenInfo {
  /** Generated tokens of the full rollout (reasoning + answer), or its token counts. */
  fullTokens?: number | { total: number };
  /** Tokens of the exit cue. */
  exitCueTokens?: number;
}

export interface TokenEvent extends ScoredEvent {
  /** Generated tokens before the event token (0-based index of the event token). */
  tokenIndex?: number;
  /** Answer tokens decoded after the exit cue at this event. */
  answerTokens?: number;
}

/** Evaluate a rule on held-out rollouts (all their events scored and labelled). */
export function heldOutStats(rule: ExitRule, rollouts: readonly (ScoredRollout<TokenEvent> & TokenInfo)[]): HeldOutStats {
  const perProblem = new Map<string, { n: number; harm: number }>();
  let exits = 0;
  let correct = 0;
  let baseCorrect = 0;
  let saved = 0;
  let savedKnown = true;
  let wrongEvents = 0;
  let wrongAccepted = 0;
  for (const r of rollouts) {
    for (const e of r.events) {
      if (e.synthetic || e.correct) continue;
      wrongEvents++;
      if (ruleExits(rule, e.score)) wrongAccepted++;
    }
    const k = firstExit(rule, r.events);
    const pp = perProblem.get(r.problemId) ?? { n: 0, harm: 0 };
    pp.n++;
    baseCorrect += r.fullCorrect ? 1 : 0;
    if (k >= 0) {
      const e = r.events[k]!;
      exits++;
      correct += e.correct ? 1 : 0;
      if (!e.correct && r.fullCorrect) pp.harm++;
      const full = typeof r.fullTokens === 'number' ? r.fullTokens : r.fullTokens?.total;
      if (full !== undefined && r.exitCueTokens !== undefined && e.tokenIndex !== undefined && e.answerTokens !== undefined) {
        saved += full - (e.tokenIndex + r.exitCueTokens + e.answerTokens);
      } else savedKnown = false;
    } else {
      correct += r.fullCorrect ? 1 : 0;
    }
    perProblem.set(r.problemId, pp);
  }
  let harm = 0;
  for (const v of perProblem.values()) harm += v.harm / v.n;
  const n = rollouts.length;
  return {
    n,
    nProblems: perProblem.size,
    prematureExitRate: perProblem.size ? harm / perProblem.size : 0,
    exitRate: n ? exits / n : 0,
    accuracy: n ? correct / n : NaN,
    baselineAccuracy: n ? baseCorrect / n : NaN,
    avgSavings: savedKnown && n ? saved / n : null,
    eventErrorRate: wrongEvents ? wrongAccepted / wrongEvents : 0,
    nWrongEvents: wrongEvents,
  };
}

export interface SweepInput {
  /** Calibration events for LYNX's rule: probe probabilities and labels (synthetic events included, as in LYNX). */
  events?: { p: ArrayLike<number>; labels: ArrayLike<number> };
  /** Calibration rollouts for the trajectory rules. */
  rollouts?: readonly ScoredRollout[];
  /** Held-out rollouts to report next to δ. */
  heldOut?: readonly (ScoredRollout<TokenEvent> & TokenInfo)[];
  deltas?: readonly number[];
  rules?: readonly ExitRule['rule'][];
  trajectory?: TrajectoryOptions;
  /** LYNX's rule: exit with a clipped quantile (default false: refuse it). */
  useClipped?: boolean;
}

/** Calibrate every requested rule at every δ (and evaluate on held-out rollouts when given). */
export function conformalSweep(input: SweepInput): ExitRule[] {
  const deltas = input.deltas ?? DEFAULT_DELTAS;
  const rules = input.rules ?? (input.rollouts ? ['lynx', 'ltt', 'crc'] : ['lynx']);
  const out: ExitRule[] = [];
  for (const rule of rules) {
    for (const delta of deltas) {
      let r: ExitRule;
      if (rule === 'lynx') {
        if (!input.events) throw new InvalidInputError("the 'lynx' rule needs calibration events");
        r = calibrateLynx(input.events.p, input.events.labels, delta, { useClipped: input.useClipped });
      } else {
        if (!input.rollouts) throw new InvalidInputError(`the '${rule}' rule needs calibration rollouts (problems)`);
        r = rule === 'ltt' ? calibrateLtt(input.rollouts, delta, input.trajectory) : calibrateCrc(input.rollouts, delta, input.trajectory);
      }
      if (input.heldOut) r.heldOut = heldOutStats(r, input.heldOut);
      out.push(r);
    }
  }
  return out;
}
