/**
 * Simulated early exit (LYNX's evaluation without re-generating): from full rollouts whose cue events all carry a
 * probe score and a forced-exit outcome, replay each exit rule. At the first (non-synthetic) event where the rule
 * exits, the outcome is that event's forced-exit answer; otherwise the full rollout's answer.
 *
 * Token accounting (one for all methods, the same as `runRollout`): an exit at the event token with index t costs
 * t reasoning tokens (the trace is cut just before the cue token, as LYNX's `make_exit_prompt_prefix`), plus the exit
 * cue's tokens, plus the decoded answer tokens; a rollout that runs to the end costs all its generated tokens
 * (reasoning through `</think>` plus the answer). This is LYNX's `used_tokens = (pos_rel - 1) + cue_len + added_tokens`.
 */
import { join } from 'node:path';
import { InvalidInputError } from '../../util/errors.js';
import { writeFileAtomic } from '../../util/fs.js';
import { computeMetrics } from '../../eval/metrics.js';
import {
  PREDICTIONS_FILE,
  runDir,
  writeConfig,
  writeMetrics,
  type CueEventRecord,
  type PredictionRecord,
  type RunMetrics,
  type TokenCounts,
} from '../../eval/records.js';
import { firstExit, ruleExits, type ExitRule, type ScoredEvent } from './conformal.js';
import { bootstrapCi } from './stats.js';

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
  /** Tokens of the full rollout: counts, or just the total generated. */
  fullTokens: TokenCounts | number;
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

function baselineCounts(r: SimRollout): TokenCounts {
  if (typeof r.fullTokens === 'number') return { reasoning: r.fullTokens, exitCue: 0, answer: 0, total: r.fullTokens };
  return r.fullTokens;
}

/** The cost of an exit at a given token: cut before it, append the cue, decode the answer. */
export function exitTokenCounts(tokenIndex: number, exitCueTokens: number, answerTokens: number): TokenCounts {
  return { reasoning: tokenIndex, exitCue: exitCueTokens, answer: answerTokens, total: tokenIndex + exitCueTokens + answerTokens };
}

/** What a rule does on one rollout. */
export function simulateRollout(rule: ExitRule | ((p: number) => boolean), r: SimRollout): SimOutcome {
  const k = firstExit(rule, r.events);
  if (k < 0) return { exited: false, eventIndex: -1, correct: r.fullCorrect, answer: r.fullAnswer, tokens: baselineCounts(r) };
  const e = r.events[k]!;
  return { exited: true, eventIndex: k, correct: e.correct, answer: e.answer, tokens: exitTokenCounts(e.tokenIndex, r.exitCueTokens, e.answerTokens) };
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

export interface SimulationOptions {
  benchmark: string;
  /** Record every event with its score in the predictions (for the trace viewer). Default true. */
  includeEvents?: boolean;
  /** Bootstrap seed and resamples. */
  seed?: number;
  resamples?: number;
}

export interface SimulationResult {
  rule: ExitRule;
  method: string;
  setting: string;
  outcomes: SimOutcome[];
  predictions: PredictionRecord[];
  lynx: LynxMetrics;
  /** The project's run metrics (src/eval/metrics.ts), with `extra.lynx` = LYNX's metrics and `extra.simulated`. */
  metrics: RunMetrics;
}

/** A rollout's prediction id: the problem id, with `#rollout` when a problem has several. */
export function rolloutId(r: SimRollout): string {
  return r.rollout === undefined ? r.problemId : `${r.problemId}#${r.rollout}`;
}

/** A rollout's cue events as prediction-record events (the report's trace viewer shows them). */
export function rolloutEventRecords(r: SimRollout): CueEventRecord[] {
  return r.events.map((ev, k) => ({
    index: k,
    position: ev.tokenIndex,
    charOffset: ev.charOffset ?? -1,
    cue: ev.cue ?? (ev.synthetic ? 'synthetic' : ''),
    score: ev.score,
    label: ev.correct ? 1 : 0,
    synthetic: ev.synthetic,
    exitAnswer: ev.answer,
  }));
}

function checkRollouts(rollouts: readonly SimRollout[]): void {
  const ids = new Set<string>();
  for (const r of rollouts) {
    const id = rolloutId(r);
    if (ids.has(id)) throw new InvalidInputError(`rollout ${id} appears twice; give each rollout of a problem its own 'rollout' number`);
    ids.add(id);
    let last = -1;
    for (const e of r.events) {
      if (!Number.isFinite(e.score)) throw new InvalidInputError(`rollout ${id}: an event has no probe score`);
      if (e.synthetic) continue; // not a decision point
      if (!(e.tokenIndex >= last)) throw new InvalidInputError(`rollout ${id}: events are not in trace order (token ${e.tokenIndex} after ${last})`);
      last = e.tokenIndex;
    }
  }
}

/** Replay every rule on the rollouts. */
export function simulate(rollouts: readonly SimRollout[], rules: readonly ExitRule[], opts: SimulationOptions): SimulationResult[] {
  checkRollouts(rollouts);
  const includeEvents = opts.includeEvents ?? true;
  return rules.map((rule) => {
    const method = ruleMethod(rule);
    const setting = ruleSetting(rule);
    const outcomes = rollouts.map((r) => simulateRollout(rule, r));
    const predictions = rollouts.map((r, i): PredictionRecord => {
      const o = outcomes[i]!;
      const base = baselineCounts(r);
      const e = o.exited ? r.events[o.eventIndex]! : undefined;
      const rec: PredictionRecord = {
        id: rolloutId(r),
        benchmark: opts.benchmark,
        method,
        setting,
        problem: r.problem ?? '',
        gold: r.gold ?? '',
        extracted: o.answer,
        correct: o.correct,
        tokens: o.tokens,
        // Simulated: time is not measured; scale the full rollout's time by the tokens used when known.
        wallMs: r.wallMs !== undefined && base.total > 0 ? (r.wallMs * o.tokens.total) / base.total : 0,
        exit: e ? { event: o.eventIndex, position: e.tokenIndex, cue: e.cue, score: e.score } : null,
        baseline: { tokens: base.total, correct: r.fullCorrect, extracted: r.fullAnswer },
        extra: { simulated: true, rule: rule.rule, delta: rule.delta },
      };
      if (r.index !== undefined) rec.index = r.index;
      if (includeEvents) rec.events = rolloutEventRecords(r);
      return rec;
    });
    const lynx = lynxMetrics(rollouts, outcomes, { seed: opts.seed, resamples: opts.resamples });
    const metrics = computeMetrics(predictions, {
      method,
      setting,
      benchmark: opts.benchmark,
      seed: opts.seed,
      extra: { simulated: true, rule: rule.rule, delta: rule.delta, lynx },
    });
    return { rule, method, setting, outcomes, predictions, lynx, metrics };
  });
}

/**
 * Write each result as a run folder `<root>/eval/<benchmark>/<method>/<setting>/` (metrics.json, predictions.jsonl,
 * config.json), every file atomically. Returns the folders.
 */
export function writeSimulation(root: string, results: readonly SimulationResult[], config: Record<string, unknown> = {}): string[] {
  return results.map((res) => {
    const benchmark = res.metrics.benchmark;
    const dir = runDir(root, benchmark, res.method, res.setting);
    writeFileAtomic(join(dir, PREDICTIONS_FILE), res.predictions.map((p) => JSON.stringify(p)).join('\n') + '\n');
    writeConfig(dir, {
      ...config,
      benchmark,
      method: res.method,
      setting: res.setting,
      simulated: true,
      rule: JSON.parse(JSON.stringify(res.rule, (_k, v) => (typeof v === 'number' && !Number.isFinite(v) ? null : v))),
      createdAt: new Date().toISOString(),
    });
    writeMetrics(dir, res.metrics);
    return dir;
  });
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
