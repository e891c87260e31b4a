/**
 * Simulated evaluation runs: every calibrated rule replayed on labelled full rollouts (reasoning/lynx/simulate.ts),
 * written as the same run folders the online harness writes, so the report and the tables read both alike.
 */
import { join } from 'node:path';
import { InvalidInputError } from '../util/errors.js';
import { writeFileAtomic } from '../util/fs.js';
import { computeMetrics } from './metrics.js';
import { PREDICTIONS_FILE, runDir, writeConfig, writeMetrics, type CueEventRecord, type PredictionRecord, type RunMetrics } from './records.js';
import type { ExitRule } from '../reasoning/calibration/conformal.js';
import {
  baselineCounts,
  lynxMetrics,
  ruleMethod,
  ruleSetting,
  simulateRollout,
  type LynxMetrics,
  type SimOutcome,
  type SimRollout,
} from '../reasoning/lynx/simulate.js';
import { simulateOracle } from '../reasoning/lynx/oracle.js';
import { lynxPredictionRows, type LynxRolloutView } from '../reasoning/lynx/lynx-files.js';

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

/** Method and setting of the oracle exit's run (`reasoning/lynx/oracle.ts`). */
export const ORACLE_METHOD = 'oracle';
export const ORACLE_SETTING = 'first-correct';

/** Replay every rule on the rollouts. */
export function simulate(rollouts: readonly SimRollout[], rules: readonly ExitRule[], opts: SimulationOptions): SimulationResult[] {
  checkRollouts(rollouts);
  return rules.map((rule) => {
    const outcomes = rollouts.map((r) => simulateRollout(rule, r));
    return { rule, ...simulatedRun(rollouts, outcomes, ruleMethod(rule), ruleSetting(rule), { rule: rule.rule, delta: rule.delta }, opts) };
  });
}

/** The oracle exit as a run: the first cue event whose forced exit is correct, never an exit when none is. */
export function simulateOracleRun(rollouts: readonly SimRollout[], opts: SimulationOptions): Omit<SimulationResult, 'rule'> {
  checkRollouts(rollouts);
  return simulatedRun(rollouts, rollouts.map(simulateOracle), ORACLE_METHOD, ORACLE_SETTING, { oracle: true }, opts);
}

/** The rollouts under a run's outcomes as LYNX's prediction rows see them. */
export function lynxViews(rollouts: readonly SimRollout[], outcomes: readonly SimOutcome[]): LynxRolloutView[] {
  return rollouts.map((r, i) => {
    const o = outcomes[i]!;
    const e = o.exited ? r.events[o.eventIndex] : undefined;
    return {
      index: r.index ?? i,
      rollout: r.rollout ?? 0,
      events: r.events.map((ev) => ({ tokenIndex: ev.tokenIndex, cue: ev.cue ?? '', score: ev.score, synthetic: ev.synthetic })),
      exitEvent: o.eventIndex,
      earlyCorrect: o.correct,
      baselineCorrect: r.fullCorrect,
      ...(e ? { usedTokens: o.tokens.total, addedTokens: e.answerTokens, cueLen: r.exitCueTokens } : {}),
    };
  });
}

/** LYNX's per-event rows of a simulated run under a rule. */
export function simulatedLynxRows(rollouts: readonly SimRollout[], outcomes: readonly SimOutcome[], rule: ExitRule) {
  return lynxPredictionRows(lynxViews(rollouts, outcomes), rule);
}

function simulatedRun(
  rollouts: readonly SimRollout[],
  outcomes: SimOutcome[],
  method: string,
  setting: string,
  tag: Record<string, unknown>,
  opts: SimulationOptions,
): Omit<SimulationResult, 'rule'> {
  const includeEvents = opts.includeEvents ?? true;
  {
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
        baseline: { tokens: base.total, decoded: base.decoded, correct: r.fullCorrect, extracted: r.fullAnswer },
        extra: { simulated: true, ...tag },
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
      extra: { simulated: true, ...tag, lynx },
    });
    return { method, setting, outcomes, predictions, lynx, metrics };
  }
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
