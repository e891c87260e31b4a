/**
 * Simulated early exit (LYNX's evaluation without re-generating): from full rollouts whose cue events all carry a
 * probe score and a forced-exit outcome, replay each exit rule. At the first (non-synthetic) event where the rule
 * exits, the outcome is that event's forced-exit answer; otherwise the full rollout's answer.
 *
 * Token accounting (one for all methods, the same as `runRollout`): an exit at the event token with index t costs
 * t reasoning tokens (the trace is cut just before the cue token, as LYNX's `make_exit_prompt_prefix`), plus the exit
 * cue's tokens, plus the decoded answer tokens; a rollout that runs to the end costs all its generated tokens
 * (reasoning through `</think>` plus the answer). This is LYNX's `used_tokens = (pos_rel - 1) + cue_len + added_tokens`.
 * Decoded tokens: an exit decoded the trace up to where the event was decided (a cue word is confirmed by the token
 * after it: `decidedAt`, else the event token itself) plus the answer; prefilled: the prompt and the exit cue.
 */
import { firstExit, ruleExits, type ExitRule, type ScoredEvent } from '../calibration/conformal.js';
import { bootstrapCi } from '../calibration/stats.js';
import { tokenCounts, type TokenCounts } from '../token-counts.js';

/** A cue event of a full rollout, labelled by a forced exit and scored by the probe. */
export interface SimEvent extends ScoredEvent {
  /** Generated tokens before the event token (its 0-based index). */
  tokenIndex: number;
  /** Answer tokens decoded after the exit cue. */
  answerTokens: number;
  /** Extracted forced-exit answer. */
  answer: string | null;
  cue?: string;
  charOffset?: number;
  /** Tokens of the trace sampled when the event was decided online (default tokenIndex + 1). */
  decidedAt?: number;
}

/** A full rollout with all its cue events in trace order. */
export interface SimRollout {
  problemId: string;
  /** Rollout number within the problem (several rollouts per problem are clustered in the intervals). */
  rollout?: number;
  /** Position of the problem in the benchmark (orders records). */
  index?: number;
  problem?: string;
  gold?: string;
  fullCorrect: boolean;
  fullAnswer: string | null;
  /** Tokens of the full rollout: counts, or just the total generated (then taken as decoded too). */
  fullTokens: TokenCounts | number;
  /** Prompt tokens (prefilled once), when known. */
  promptTokens?: number;
  /** Tokens of the exit cue (the same for every event). */
  exitCueTokens: number;
  events: readonly SimEvent[];
  /** Wall time of the full rollout, when known. */
  wallMs?: number;
}

export interface SimOutcome {
  exited: boolean;
  /** Index into `events` of the exit event, or -1. */
  eventIndex: number;
  correct: boolean;
  answer: string | null;
  tokens: TokenCounts;
}

export function baselineCounts(r: SimRollout): TokenCounts {
  if (typeof r.fullTokens === 'number') return tokenCounts(r.fullTokens, 0, 0, { decoded: r.fullTokens, prefilled: r.promptTokens ?? 0 });
  return r.fullTokens;
}

/** The cost of an exit at a given token: cut before it, append the cue, decode the answer. */
export function exitTokenCounts(tokenIndex: number, exitCueTokens: number, answerTokens: number, decidedAt = tokenIndex + 1, promptTokens = 0): TokenCounts {
  return tokenCounts(tokenIndex, exitCueTokens, answerTokens, { decoded: decidedAt + answerTokens, prefilled: promptTokens + exitCueTokens });
}

/** What a rule does on one rollout. */
export function simulateRollout(rule: ExitRule | ((p: number) => boolean), r: SimRollout): SimOutcome {
  const k = firstExit(rule, r.events);
  if (k < 0) return { exited: false, eventIndex: -1, correct: r.fullCorrect, answer: r.fullAnswer, tokens: baselineCounts(r) };
  const e = r.events[k]!;
  return { exited: true, eventIndex: k, correct: e.correct, answer: e.answer, tokens: exitTokenCounts(e.tokenIndex, r.exitCueTokens, e.answerTokens, e.decidedAt, r.promptTokens) };
}

/** LYNX's `early_exit_metrics.json` fields, plus problem-clustered 95% intervals and the harmful-exit rate. */
export interface LynxMetrics {
  rollouts_attempted: number;
  exited_count: number;
  n_problems: number;
  baseline: { accuracy: number; avg_tokens: number; total_tokens: number };
  early_exit: {
    accuracy: number;
    avg_tokens: number;
    total_tokens: number;
    exit_rate: number;
    avg_savings: number;
    savings_rate: number;
  };
  accepted_subset: {
    rate: number;
    accuracy: number;
    baseline_accuracy: number;
    avg_tokens: number;
    total_tokens: number;
    help: number;
    harm: number;
    unchanged_correct: number;
    unchanged_incorrect: number;
  };
  /** harm / rollouts: exits with a wrong answer where the full rollout was right. */
  premature_exit_rate: number;
  wall_time_sec: number | null;
  /** Percentile bootstrap over problems (seeded). */
  ci95: Record<
    | 'baseline_accuracy'
    | 'baseline_avg_tokens'
    | 'early_exit_accuracy'
    | 'early_exit_avg_tokens'
    | 'exit_rate'
    | 'avg_savings'
    | 'savings_rate'
    | 'accepted_accuracy'
    | 'premature_exit_rate',
    [number, number]
  >;
}

// Per-problem sums, the unit of the bootstrap.
const F = {
  n: 0,
  baseCorrect: 1,
  baseTokens: 2,
  earlyCorrect: 3,
  earlyTokens: 4,
  exits: 5,
  acceptedCorrect: 6,
  acceptedBaseCorrect: 7,
  acceptedTokens: 8,
  help: 9,
  harm: 10,
  unchangedCorrect: 11,
  unchangedIncorrect: 12,
} as const;
const NF = 13;

function totals(sums: Float64Array, counts: Float64Array | null, nProblems: number): Float64Array {
  const t = new Float64Array(NF);
  for (let c = 0; c < nProblems; c++) {
    const w = counts ? counts[c]! : 1;
    if (w === 0) continue;
    for (let f = 0; f < NF; f++) t[f]! += w * sums[c * NF + f]!;
  }
  return t;
}

const div = (a: number, b: number) => a / Math.max(1, b);

/** LYNX's metrics of outcomes (one per rollout, aligned with `rollouts`). */
export function lynxMetrics(
  rollouts: readonly SimRollout[],
  outcomes: readonly SimOutcome[],
  opts: { seed?: number; resamples?: number; wallTimeSec?: number } = {},
): LynxMetrics {
  if (rollouts.length !== outcomes.length) throw new Error('lynxMetrics: one outcome per rollout');
  const problems = new Map<string, number>();
  for (const r of rollouts) if (!problems.has(r.problemId)) problems.set(r.problemId, problems.size);
  const P = problems.size;
  const sums = new Float64Array(P * NF);
  rollouts.forEach((r, i) => {
    const o = outcomes[i]!;
    const base = baselineCounts(r);
    const s = problems.get(r.problemId)! * NF;
    sums[s + F.n]! += 1;
    sums[s + F.baseCorrect]! += r.fullCorrect ? 1 : 0;
    sums[s + F.baseTokens]! += base.total;
    sums[s + F.earlyCorrect]! += o.correct ? 1 : 0;
    sums[s + F.earlyTokens]! += o.tokens.total;
    if (o.exited) {
      sums[s + F.exits]! += 1;
      sums[s + F.acceptedCorrect]! += o.correct ? 1 : 0;
      sums[s + F.acceptedBaseCorrect]! += r.fullCorrect ? 1 : 0;
      sums[s + F.acceptedTokens]! += o.tokens.total;
      if (!r.fullCorrect && o.correct) sums[s + F.help]! += 1;
      else if (r.fullCorrect && !o.correct) sums[s + F.harm]! += 1;
      else if (r.fullCorrect && o.correct) sums[s + F.unchangedCorrect]! += 1;
      else sums[s + F.unchangedIncorrect]! += 1;
    }
  });
  const t = totals(sums, null, P);
  const n = t[F.n]!;
  const baseAvg = div(t[F.baseTokens]!, n);
  const earlyAvg = div(t[F.earlyTokens]!, n);
  const exits = t[F.exits]!;

  const stat = (f: (t: Float64Array) => number) => bootstrapCi(P, (counts) => f(totals(sums, counts, P)), { seed: opts.seed ?? 0, resamples: opts.resamples });
  const savingsRate = (x: Float64Array) => {
    const b = div(x[F.baseTokens]!, x[F.n]!);
    return b > 0 ? (b - div(x[F.earlyTokens]!, x[F.n]!)) / b : 0;
  };
  return {
    rollouts_attempted: n,
    exited_count: exits,
    n_problems: P,
    baseline: { accuracy: div(t[F.baseCorrect]!, n), avg_tokens: baseAvg, total_tokens: t[F.baseTokens]! },
    early_exit: {
      accuracy: div(t[F.earlyCorrect]!, n),
      avg_tokens: earlyAvg,
      total_tokens: t[F.earlyTokens]!,
      exit_rate: div(exits, n),
      avg_savings: baseAvg - earlyAvg,
      savings_rate: savingsRate(t),
    },
    accepted_subset: {
      rate: div(exits, n),
      accuracy: exits > 0 ? t[F.acceptedCorrect]! / exits : 0,
      baseline_accuracy: exits > 0 ? t[F.acceptedBaseCorrect]! / exits : 0,
      avg_tokens: exits > 0 ? t[F.acceptedTokens]! / exits : 0,
      total_tokens: t[F.acceptedTokens]!,
      help: t[F.help]!,
      harm: t[F.harm]!,
      unchanged_correct: t[F.unchangedCorrect]!,
      unchanged_incorrect: t[F.unchangedIncorrect]!,
    },
    premature_exit_rate: div(t[F.harm]!, n),
    wall_time_sec: opts.wallTimeSec ?? null,
    ci95: {
      baseline_accuracy: stat((x) => div(x[F.baseCorrect]!, x[F.n]!)),
      baseline_avg_tokens: stat((x) => div(x[F.baseTokens]!, x[F.n]!)),
      early_exit_accuracy: stat((x) => div(x[F.earlyCorrect]!, x[F.n]!)),
      early_exit_avg_tokens: stat((x) => div(x[F.earlyTokens]!, x[F.n]!)),
      exit_rate: stat((x) => div(x[F.exits]!, x[F.n]!)),
      avg_savings: stat((x) => div(x[F.baseTokens]! - x[F.earlyTokens]!, x[F.n]!)),
      savings_rate: stat(savingsRate),
      accepted_accuracy: stat((x) => (x[F.exits]! > 0 ? x[F.acceptedCorrect]! / x[F.exits]! : NaN)),
      premature_exit_rate: stat((x) => div(x[F.harm]!, x[F.n]!)),
    },
  };
}

/** Method name of a rule in run records: `lynx`, `lynx-ltt`, `lynx-crc`. */
export function ruleMethod(rule: ExitRule): string {
  return rule.rule === 'lynx' ? 'lynx' : `lynx-${rule.rule}`;
}

/** Setting name of a rule in run records, e.g. `delta=0.05`. */
export function ruleSetting(rule: ExitRule): string {
  return `delta=${rule.delta}`;
}

/** Per-event view: does the rule accept each (non-synthetic) event? For per-event error rates against δ. */
export function eventDecisions(rule: ExitRule, rollouts: readonly SimRollout[]): { accepted: number; wrong: number; wrongAccepted: number; events: number } {
  let accepted = 0;
  let wrong = 0;
  let wrongAccepted = 0;
  let events = 0;
  for (const r of rollouts) {
    for (const e of r.events) {
      if (e.synthetic) continue;
      events++;
      const a = ruleExits(rule, e.score);
      if (a) accepted++;
      if (!e.correct) {
        wrong++;
        if (a) wrongAccepted++;
      }
    }
  }
  return { accepted, wrong, wrongAccepted, events };
}
