/**
 * `lynx deer-rollouts`: LYNX on pre-generated rollouts in DEER's format, as LYNX's `eval_on_deer_rollouts.py`. Each
 * stored response is prefilled once after its rebuilt prompt, the hidden states of its cue events go through the
 * probe, the first event the calibrated rule accepts is the exit (cut before the cue token, exit cue, decoded
 * answer), and the rows are written back in DEER's format for DEER's `check.py`. The decision is online LYNX's
 * (`solveWithLynx`): the same features (`concatFeatures` of the policy's layers), the same probe and `ruleExits`.
 */
import { LlamaContext, type LlamaModel, type TapLayer } from '../engine/index.js';
import { ruleExits } from '../reasoning/calibration/conformal.js';
import {
  applyAtDeerEvents,
  readDeerRollouts,
  toDeerRows,
  writeDeerRollouts,
  type DecideAtEvents,
  type DeerEventResult,
  type DeerRollout,
} from '../reasoning/lynx/deer-rollouts.js';
import { concatFeatures } from '../reasoning/lynx/features.js';
import type { LynxPolicy } from '../reasoning/lynx/online.js';
import { loadLynxPolicy, policyTaps } from '../reasoning/lynx/policy.js';
import { exitCueText } from '../reasoning/forced-exit.js';
import { problemPromptTokens } from '../reasoning/prompt-tokens.js';
import type { TokenCounts } from '../reasoning/token-counts.js';
import { extractAnswer } from '../tasks/answer-extract.js';
import { answersEquivalent, gradingRules, type Grading } from '../tasks/answer-equiv.js';
import type { Choice } from '../tasks/problem.js';
import type { PromptStyle } from '../tasks/prompts.js';
import { InvalidInputError } from '../util/errors.js';
import { writeJsonAtomic } from '../util/fs.js';
import { openModel } from './model.js';

export interface DeerRolloutsStepOptions {
  /** The model that wrote the rollouts: loaded, or a GGUF file / Hugging Face folder. */
  model: LlamaModel | string;
  /** Experiment folder (with probe/ and conformal/) or a probe folder. */
  probe: string;
  /** DEER's output JSONL (question, generated_responses, gold_answer). */
  in: string;
  /** Output JSONL in DEER's format. */
  out: string;
  delta: number;
  rule: string;
  exitCue: string;
  answerMaxTokens: number;
  limit?: number;
  /** The prompt the rollouts were generated from: deer (DEER's own, as LYNX rebuilds it), zst, ours, or csqa (rows need "choices"). */
  promptStyle: PromptStyle;
  /** Exit with a LYNX rule whose quantile was clipped (LYNX's behaviour); default: it never exits. */
  allowClipped?: boolean;
  /** Answer grading of the summary. */
  grading: Grading;
  /** Also write the summary and every rollout (events, scores, tokens, answers) as JSON. */
  metrics?: string;
  onRollout?: (done: number, total: number) => void;
}

/** One cue event of a stored response with its probe score. */
export interface DeerScoredEvent {
  cue: string;
  word: string;
  /** Response token completing the cue (the exit cuts before it). */
  tokenIndex: number;
  score: number;
  /** This event is the exit (the first one the rule accepts). */
  exit: boolean;
}

/** One rollout in the metrics file. */
export interface DeerRolloutRecord {
  index: number;
  question: string;
  gold: string;
  events: DeerScoredEvent[];
  /** Index into `events` of the exit, or null when the stored response is kept. */
  exitEvent: number | null;
  baselineTokens: number;
  tokens: TokenCounts;
  baselineAnswer: string | null;
  earlyExitAnswer: string | null;
  /** Only when the rollout has a gold answer. */
  baselineCorrect?: boolean;
  earlyExitCorrect?: boolean;
}

export interface DeerRolloutsSummary {
  rollouts: number;
  rule: string;
  delta: number;
  /** Rollouts with at least one cue event, and cue events in all. */
  withEvents: number;
  events: number;
  exits: number;
  exitRate: number;
  baselineAvgTokens: number;
  earlyExitAvgTokens: number;
  /** 1 - early-exit tokens / stored tokens, over all rollouts. */
  tokenSavings: number;
  /** Rollouts with a gold answer; the accuracies are over those (null when none has one). */
  graded: number;
  baselineAccuracy: number | null;
  earlyExitAccuracy: number | null;
  wallSec: number;
}

/**
 * Online LYNX's decision at the events of a stored response: score each event's features with the probe, in order;
 * the first one the rule accepts is the exit. Every event's score is recorded per rollout index (the ones after the
 * exit too, for analysis; online LYNX never sees those).
 */
export function lynxDecider(policy: LynxPolicy, taps: readonly TapLayer[]): { decide: DecideAtEvents; scored: Map<number, DeerScoredEvent[]> } {
  const scored = new Map<number, DeerScoredEvent[]>();
  const decide: DecideAtEvents = (events, ctx) => {
    const out: DeerScoredEvent[] = [];
    scored.set(ctx.rollout.index, out);
    let exitAt: number | null = null;
    for (let i = 0; i < events.length; i++) {
      const e = events[i]!;
      // Cannot happen: applyAtDeerEvents taps every event token when given tap layers.
      if (!e.hidden) throw new Error(`rollout ${ctx.rollout.index}: no hidden states for event ${i}`);
      const score = policy.probe.predictOne(concatFeatures(e.hidden, taps));
      const exit = exitAt === null && ruleExits(policy.rule, score);
      if (exit) exitAt = i;
      out.push({ cue: e.cue, word: e.word, tokenIndex: e.tokenIndex, score, exit });
    }
    return exitAt;
  };
  return { decide, scored };
}

/** Choices of a multiple-choice row (`choices`: strings lettered A, B, ..., or {label, text}), if any. */
function choicesOf(rollout: DeerRollout): Choice[] | undefined {
  const c = rollout.row.choices;
  if (!Array.isArray(c)) return undefined;
  return c.map((x: unknown, k: number) =>
    typeof x === 'string' ? { label: String.fromCharCode(65 + k), text: x } : { label: String((x as Choice).label), text: String((x as Choice).text) },
  );
}

async function grade(text: string, gold: string, choices: Choice[] | undefined, grading: Grading): Promise<{ answer: string | null; correct?: boolean }> {
  const ex = extractAnswer(text, { choices }, { fallback: gradingRules(grading).boxedOnly ? 'boxed' : 'default' });
  if (gold.trim() === '') return { answer: ex.answer };
  if (ex.answer === null) return { answer: null, correct: false };
  if (choices && choices.length > 0) return { answer: ex.answer, correct: ex.answer.trim().toUpperCase() === gold.trim().toUpperCase() };
  return { answer: ex.answer, correct: (await answersEquivalent(ex.answer, gold, { grading })).equivalent };
}

/** Per-rollout records and the summary of a run. */
export async function summarizeDeerResults(
  results: readonly DeerEventResult[],
  scored: ReadonlyMap<number, DeerScoredEvent[]>,
  opts: { rule: string; delta: number; grading: Grading; wallSec: number },
): Promise<{ records: DeerRolloutRecord[]; summary: DeerRolloutsSummary }> {
  const records: DeerRolloutRecord[] = [];
  for (const r of results) {
    const choices = choicesOf(r.rollout);
    const base = await grade(r.rollout.response, r.rollout.gold, choices, opts.grading);
    const early = r.exitEvent === null ? base : await grade(r.response, r.rollout.gold, choices, opts.grading);
    records.push({
      index: r.rollout.index,
      question: r.rollout.question,
      gold: r.rollout.gold,
      events: scored.get(r.rollout.index) ?? [],
      exitEvent: r.exitEvent,
      baselineTokens: r.baselineTokens,
      tokens: r.tokens,
      baselineAnswer: base.answer,
      earlyExitAnswer: early.answer,
      ...(base.correct === undefined ? {} : { baselineCorrect: base.correct, earlyExitCorrect: early.correct }),
    });
  }
  const n = records.length;
  const sum = (f: (r: DeerRolloutRecord) => number) => records.reduce((a, r) => a + f(r), 0);
  const graded = records.filter((r) => r.baselineCorrect !== undefined);
  const baselineAvgTokens = n > 0 ? sum((r) => r.baselineTokens) / n : 0;
  const earlyExitAvgTokens = n > 0 ? sum((r) => r.tokens.total) / n : 0;
  const exits = records.filter((r) => r.exitEvent !== null).length;
  return {
    records,
    summary: {
      rollouts: n,
      rule: opts.rule,
      delta: opts.delta,
      withEvents: records.filter((r) => r.events.length > 0).length,
      events: sum((r) => r.events.length),
      exits,
      exitRate: n > 0 ? exits / n : 0,
      baselineAvgTokens,
      earlyExitAvgTokens,
      tokenSavings: baselineAvgTokens > 0 ? 1 - earlyExitAvgTokens / baselineAvgTokens : 0,
      graded: graded.length,
      baselineAccuracy: graded.length > 0 ? graded.filter((r) => r.baselineCorrect).length / graded.length : null,
      earlyExitAccuracy: graded.length > 0 ? graded.filter((r) => r.earlyExitCorrect).length / graded.length : null,
      wallSec: opts.wallSec,
    },
  };
}


/** Apply a LYNX policy at the cue events of DEER's stored rollouts and write them back in DEER's format. */
export async function deerRolloutsStep(o: DeerRolloutsStepOptions): Promise<{ records: DeerRolloutRecord[]; summary: DeerRolloutsSummary }> {
  const t0 = performance.now();
  const policy = loadLynxPolicy(o.probe, { rule: o.rule, delta: o.delta, allowClipped: o.allowClipped });
  const rollouts = readDeerRollouts(o.in, { limit: o.limit });
  if (rollouts.length === 0) throw new InvalidInputError(`no rollouts in ${o.in}`);
  const model = typeof o.model === 'string' ? await openModel(o.model) : o.model;
  let context: LlamaContext | undefined;
  try {
    const taps = policyTaps(policy, model, o.probe);
    const prompts = rollouts.map((r) => {
      const choices = choicesOf(r);
      if (o.promptStyle === 'csqa' && !choices) throw new InvalidInputError(`${o.in}: rollout ${r.index + 1} has no "choices" list, which --prompt-style csqa needs`);
      return problemPromptTokens(model, { problem: r.question, choices }, o.promptStyle);
    });
    const tok = (s: string) => model.tokenize(s, { addSpecial: false, parseSpecial: true }).length;
    const longest = rollouts.reduce((m, r, i) => Math.max(m, prompts[i]!.length + tok(r.response)), 0);
    context = new LlamaContext(model, {
      nCtx: longest + tok(exitCueText(o.exitCue)) + o.answerMaxTokens + 16,
      nSeqMax: 2,
      // Batch-invariant numerics, as the dataset builder's: the features are the ones the probe was trained on.
      kvType: 'f32',
      flashAttention: false,
    });
    const { decide, scored } = lynxDecider(policy, taps);
    let done = 0;
    const results = await applyAtDeerEvents(rollouts, {
      context,
      promptTokens: (r) => prompts[r.index]!,
      tapLayers: taps,
      decideAtEvents: decide,
      cues: policy.cues,
      exitCue: o.exitCue,
      answerMaxTokens: o.answerMaxTokens,
      onResult: () => o.onRollout?.(++done, rollouts.length),
    });
    writeDeerRollouts(o.out, toDeerRows(results));
    const out = await summarizeDeerResults(results, scored, {
      rule: policy.rule.rule,
      delta: policy.rule.delta,
      grading: o.grading,
      wallSec: (performance.now() - t0) / 1000,
    });
    if (o.metrics) writeJsonAtomic(o.metrics, { summary: out.summary, rollouts: out.records });
    return out;
  } finally {
    context?.dispose();
    if (typeof o.model === 'string') model.dispose();
  }
}
