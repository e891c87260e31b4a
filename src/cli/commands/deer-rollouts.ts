/**
 * `lynx deer-rollouts`: LYNX on pre-generated rollouts in DEER's format, as LYNX's `eval_on_deer_rollouts.py`. Each
 * stored response is prefilled once after its rebuilt prompt, the hidden states of its cue events go through the
 * probe, the first event the calibrated rule accepts is the exit (cut before the cue token, exit cue, decoded
 * answer), and the rows are written back in DEER's format for DEER's `check.py`. The decision is online LYNX's
 * (`solveWithLynx`): the same features (`concatFeatures` of the policy's layers), the same probe and `ruleExits`.
 */
import type { Command } from 'commander';
import { LlamaContext, LlamaModel, type TapLayer } from '../../engine/index.js';
import type { Choice } from '../../tasks/benchmarks.js';
import { extractAnswer } from '../../tasks/answer-extract.js';
import { answersEquivalent, checkPolicy, policyRules, type Policy } from '../../tasks/answer-equiv.js';
import type { PromptStyle } from '../../tasks/prompts.js';
import { exitCueText } from '../../reasoning/forced-exit.js';
import { ruleExits } from '../../reasoning/calibration/conformal.js';
import { concatFeatures, tapLayersFor } from '../../reasoning/lynx/features.js';
import type { LynxPolicy } from '../../reasoning/lynx/online.js';
import { loadLynxPolicy } from '../../reasoning/lynx/policy.js';
import {
  applyAtDeerEvents,
  readDeerRollouts,
  toDeerRows,
  writeDeerRollouts,
  type DecideAtEvents,
  type DeerEventResult,
  type DeerRollout,
} from '../../reasoning/lynx/deer-rollouts.js';
import type { TokenCounts } from '../../reasoning/token-counts.js';
import { problemPromptTokens } from '../../reasoning/prompt-tokens.js';
import { InvalidInputError } from '../../util/errors.js';
import { writeJsonAtomic } from '../../util/fs.js';
import { resolveModelPath } from '../model-arg.js';
import { floatOption, intOption } from '../options.js';
import { progressBar } from '../progress.js';

interface DeerRolloutsArgs {
  model: string;
  probe: string;
  in: string;
  out: string;
  delta: number;
  rule: string;
  exitCue: string;
  answerMaxTokens: number;
  limit?: number;
  promptStyle: string;
  policy: string;
  metrics?: string;
  json?: boolean;
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
 * The policy's taps for this model, checked: every hidden-state layer exists and the probe reads exactly the
 * features they give (else the probe was trained on another model).
 */
export function policyTaps(policy: LynxPolicy, model: LlamaModel, probeSource: string): TapLayer[] {
  const { nLayer, nEmbd } = model.info;
  let taps: number[];
  try {
    taps = tapLayersFor(policy.hiddenStateLayers, nLayer);
  } catch (e) {
    throw new InvalidInputError(`the probe in ${probeSource} reads hidden-state layers [${policy.hiddenStateLayers.join(', ')}], but the model has ${nLayer} layers: ${(e as Error).message}`);
  }
  if (policy.probe.nFeatures !== taps.length * nEmbd) {
    throw new InvalidInputError(
      `the probe in ${probeSource} expects ${policy.probe.nFeatures} features, but ${taps.length} hidden-state layers x ${nEmbd} ` +
        `(the model's embedding size) = ${taps.length * nEmbd}: was it trained on another model?`,
    );
  }
  return taps;
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

async function grade(text: string, gold: string, choices: Choice[] | undefined, policy: Policy): Promise<{ answer: string | null; correct?: boolean }> {
  const ex = extractAnswer(text, { choices }, { fallback: policyRules(policy).boxedOnly ? 'boxed' : 'default' });
  if (gold.trim() === '') return { answer: ex.answer };
  if (ex.answer === null) return { answer: null, correct: false };
  if (choices && choices.length > 0) return { answer: ex.answer, correct: ex.answer.trim().toUpperCase() === gold.trim().toUpperCase() };
  return { answer: ex.answer, correct: (await answersEquivalent(ex.answer, gold, { policy })).equivalent };
}

/** Per-rollout records and the summary of a run. */
export async function summarizeDeerResults(
  results: readonly DeerEventResult[],
  scored: ReadonlyMap<number, DeerScoredEvent[]>,
  opts: { rule: string; delta: number; policy: Policy; wallSec: number },
): Promise<{ records: DeerRolloutRecord[]; summary: DeerRolloutsSummary }> {
  const records: DeerRolloutRecord[] = [];
  for (const r of results) {
    const choices = choicesOf(r.rollout);
    const base = await grade(r.rollout.response, r.rollout.gold, choices, opts.policy);
    const early = r.exitEvent === null ? base : await grade(r.response, r.rollout.gold, choices, opts.policy);
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

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

export function registerDeerRollouts(program: Command): void {
  program
    .command('deer-rollouts')
    .description(
      "LYNX on pre-generated rollouts in DEER's format (as LYNX's eval_on_deer_rollouts): score each stored response's cue " +
        "events with the probe, exit where the calibrated rule says, decode the answer, and write DEER's JSONL back for check.py",
    )
    .requiredOption('-m, --model <path>', 'GGUF file or Hugging Face folder (the model that wrote the rollouts)')
    .requiredOption('--probe <dir>', 'experiment folder (with probe/ and conformal/) or a probe folder')
    .requiredOption('--in <file>', "DEER's output JSONL (question, generated_responses, gold_answer)")
    .requiredOption('-o, --out <file>', "output JSONL in DEER's format")
    .option('--delta <d>', 'error level of the stop rule', floatOption('--delta', 0, 1), 0.1)
    .option('--rule <name>', 'lynx (per event, the paper), ltt or crc (per problem)', 'lynx')
    .option('--exit-cue <cue>', 'paper, answer_tag or literal text', 'paper')
    .option('--answer-max-tokens <n>', 'answer tokens decoded after the exit cue', intOption('--answer-max-tokens', 1), 64)
    .option('--limit <n>', 'only the first N rollouts', intOption('--limit', 1))
    .option('--prompt-style <style>', 'zst, or csqa (rows need "choices"): the prompt the rollouts were generated from', 'zst')
    .option('--policy <name>', 'answer checking of the summary: zst, deer (boxed only) or strict', 'zst')
    .option('--metrics <file>', 'also write the summary and every rollout (events, scores, tokens, answers) as JSON')
    .option('--json', 'print the summary as one JSON object')
    .action(async (args: DeerRolloutsArgs) => {
      const t0 = performance.now();
      if (args.promptStyle !== 'zst' && args.promptStyle !== 'csqa') throw new InvalidInputError(`unknown --prompt-style '${args.promptStyle}': use zst or csqa`);
      const answerPolicy = checkPolicy(args.policy);
      const policy = loadLynxPolicy(args.probe, { rule: args.rule, delta: args.delta });
      const rollouts = readDeerRollouts(args.in, { limit: args.limit });
      if (rollouts.length === 0) throw new InvalidInputError(`no rollouts in ${args.in}`);
      const model = LlamaModel.load(await resolveModelPath(args.model));
      let context: LlamaContext | undefined;
      try {
        const taps = policyTaps(policy, model, args.probe);
        const style = args.promptStyle as PromptStyle;
        const prompts = rollouts.map((r) => {
          const choices = choicesOf(r);
          if (style === 'csqa' && !choices) throw new InvalidInputError(`${args.in}: rollout ${r.index + 1} has no "choices" list, which --prompt-style csqa needs`);
          return problemPromptTokens(model, { problem: r.question, choices }, style);
        });
        const tok = (s: string) => model.tokenize(s, { addSpecial: false, parseSpecial: true }).length;
        const longest = rollouts.reduce((m, r, i) => Math.max(m, prompts[i]!.length + tok(r.response)), 0);
        context = new LlamaContext(model, {
          nCtx: longest + tok(exitCueText(args.exitCue)) + args.answerMaxTokens + 16,
          nSeqMax: 2,
          // Batch-invariant numerics, as the dataset builder's: the features are the ones the probe was trained on.
          kvType: 'f32',
          flashAttention: false,
        });
        const { decide, scored } = lynxDecider(policy, taps);
        const bar = progressBar('deer-rollouts', rollouts.length);
        let results: DeerEventResult[];
        try {
          results = await applyAtDeerEvents(rollouts, {
            context,
            promptTokens: (r) => prompts[r.index]!,
            tapLayers: taps,
            decideAtEvents: decide,
            cues: policy.cues,
            exitCue: args.exitCue,
            answerMaxTokens: args.answerMaxTokens,
            onResult: () => bar.tick(),
          });
        } finally {
          bar.stop();
        }
        writeDeerRollouts(args.out, toDeerRows(results));
        const { records, summary } = await summarizeDeerResults(results, scored, {
          rule: policy.rule.rule,
          delta: policy.rule.delta,
          policy: answerPolicy,
          wallSec: (performance.now() - t0) / 1000,
        });
        if (args.metrics) writeJsonAtomic(args.metrics, { summary, rollouts: records });
        const out = process.stdout;
        if (args.json) {
          out.write(JSON.stringify(summary) + '\n');
        } else {
          const s = summary;
          out.write(`LYNX (${s.rule}, delta ${s.delta}) on ${s.rollouts} DEER rollouts (${s.events} cue events in ${s.withEvents}): exited ${s.exits} (${pct(s.exitRate)})\n`);
          out.write(
            `Tokens per rollout: stored ${s.baselineAvgTokens.toFixed(1)}, early exit ${s.earlyExitAvgTokens.toFixed(1)} (savings ${pct(s.tokenSavings)})\n`,
          );
          if (s.graded > 0) {
            out.write(`Accuracy (${s.graded} with a gold answer): stored ${pct(s.baselineAccuracy!)}, early exit ${pct(s.earlyExitAccuracy!)}\n`);
          }
          out.write(`Wrote ${args.out}${args.metrics ? ` and ${args.metrics}` : ''} (${s.wallSec.toFixed(1)} s)\n`);
        }
      } finally {
        context?.dispose();
        model.dispose();
      }
    });
}
