/**
 * DEER, Dynamic Early Exit in Reasoning Models (Yang et al., 2025), as its public vLLM implementation
 * (`vllm-deer.py`) behaves:
 *
 * - The thinking is generated until the literal string `Wait` appears (vLLM stop string: case-sensitive, anywhere in
 *   the text; `--points 0` uses `Alternatively` instead). The text before it is the trace so far.
 * - There DEER appends `\n**Final Answer**\n\boxed` and decodes a trial answer of at most 20 tokens
 *   (`prob_check_max_tokens`), stopping where the box closes.
 * - Confidence = mean probability of the trial's tokens from the second one on (the first is the `{` the prompt
 *   asks for); aggregation (DEER calls it policy) `avg1` (arithmetic mean, the default), `avg2` (geometric) or `min`.
 * - Exit when confidence > threshold (strictly; default 0.95), or when the thinking has reached
 *   `think_ratio * max_tokens - 50` tokens at a judge point (`limitMargin`). Otherwise `Wait` is kept and thinking
 *   continues.
 * - At most `max_judge_steps` (10) trial answers per problem; after that only `</think>` ends the thinking.
 * - Thinking is capped at `floor(max_tokens * think_ratio)` tokens (`think_ratio` 0.9), leaving the rest for the
 *   answer.
 * - On exit DEER closes the thinking with `\n</think>\n\n` and lets the model write its answer (greedy, the rest of
 *   the budget), forcing `\n**Final Answer**\n\boxed` and 100 more tokens when that answer runs out of budget. This
 *   is `finalAnswer: 'conclude'`. The default here, `finalAnswer: 'trial'`, reuses the confident trial answer as the
 *   final answer (no second decode); both are offered because the project's harness reuses probe answers.
 *
 * - Trial answers are sampled at temperature 1 and top-p 1 (`trialSampling: 'sample'`, the default): DEER's vLLM
 *   request for them (`SamplingParams(max_tokens=..., stop=pred_prob_stop_tokens, logprobs=1)`) leaves temperature and
 *   top-p unset, i.e. vLLM's 1.0, next to a comment saying greedy; `trialSampling: 'greedy'` follows the comment.
 *   The confidence is then the mean probability of the sampled tokens under the model's distribution (vLLM's
 *   `logprobs=1` returns the sampled token's), each trial seeded on its own.
 *
 * Differences, on purpose: the trace is sampled with the harness's sampler (DEER's script defaults to greedy); the
 * box closing is tracked by brace matching instead of DEER's list of stop strings (`pred_prob_stop_tokens`).
 *
 * Tokens: output tokens are the final response's (reasoning + exit cue + answer), as DEER's `check.py` counts them;
 * decoded tokens add every trial answer (the exit's own included once) and DEER's concluding answer, and prefilled
 * tokens every trial prompt. `extra.trialTokens` keeps the trials' cue and answer tokens.
 */
import type { GeneratorSequence } from '../../backends/generator.js';
import { InvalidInputError } from '../../util/errors.js';
import { EXIT_CUES, exitCueText, forcedExit, type ForcedExitResult } from '../forced-exit.js';
import {
  inputSeed,
  outcomeOf,
  promptWork,
  traceRolloutOptions,
  withPrompt,
  type MethodEnv,
  type MethodInput,
  type MethodOutcome,
  type ReasoningMethod,
  type ReasoningSweep,
} from '../method.js';
import { runRollout, type RolloutResult, type StepDecision } from '../rollout.js';
import type { Requirement } from '../../backends/generator.js';
import type { SamplerOptions } from '../../engine/index.js';
import { addWork, tokenCounts, type ModelWork } from '../token-counts.js';
import { withDefaults } from '../../util/defaults.js';

export type DeerAggregation = 'avg1' | 'avg2' | 'min';

export interface DeerOptions {
  /** Exit when the trial answer's confidence is above this. Default 0.95. */
  threshold?: number;
  /** Literal strings that mark a judge point (DEER: `Wait`, or `Alternatively` with `--points 0`). */
  cues?: readonly string[];
  /** Appended to the trace to induce a trial answer. Default `\n**Final Answer**\n\boxed`. */
  answerPrompt?: string;
  /** Maximum trial answer tokens. Default 20. */
  trialMaxTokens?: number;
  /** How token probabilities become a confidence (DEER's --policy): avg1 (mean, default), avg2 (geometric), min. */
  aggregation?: DeerAggregation;
  /** Share of the token budget allowed for thinking. Default 0.9. */
  thinkRatio?: number;
  /** Maximum trial answers per problem. Default 10. */
  maxJudgeSteps?: number;
  /** 'trial' (default): the confident trial answer is the final answer. 'conclude': DEER's own ending. */
  finalAnswer?: 'trial' | 'conclude';
  /** A judge point this close to the think limit exits whatever the confidence. Default 50 (hard-coded in DEER). */
  limitMargin?: number;
  /** 'sample' (default): trial answers at temperature 1, top-p 1, as DEER's vLLM request runs them; 'greedy'. */
  trialSampling?: 'sample' | 'greedy';
}

export const DEER_DEFAULTS = {
  threshold: 0.95,
  cues: ['Wait'] as readonly string[],
  answerPrompt: EXIT_CUES.deer as string,
  trialMaxTokens: 20,
  aggregation: 'avg1' as DeerAggregation,
  thinkRatio: 0.9,
  maxJudgeSteps: 10,
  finalAnswer: 'trial' as 'trial' | 'conclude',
  limitMargin: 50,
  trialSampling: 'sample' as 'sample' | 'greedy',
};

/** vLLM's defaults, which DEER's trial request leaves in place. */
export const DEER_TRIAL_SAMPLER: Readonly<SamplerOptions> = Object.freeze({ temperature: 1, topP: 1 });

/** How DEER closes the thinking before writing the final answer itself ('conclude'). */
export const DEER_THINK_END = '\n</think>\n\n';

/** Tokens of DEER's answer forcing, when the concluding answer ran out of budget without a box. */
export const DEER_FORCE_TOKENS = 100;

type ResolvedDeer = typeof DEER_DEFAULTS;

function resolve(opts: DeerOptions): ResolvedDeer {
  const o = withDefaults<ResolvedDeer>(DEER_DEFAULTS, opts);
  if (!(o.threshold >= 0) && o.threshold !== Infinity) throw new InvalidInputError(`DEER threshold must be a number >= 0 (got ${o.threshold})`);
  if (o.cues.length === 0 || o.cues.some((c) => c.length === 0)) throw new InvalidInputError('DEER needs at least one non-empty cue string');
  if (!(o.thinkRatio > 0 && o.thinkRatio <= 1)) throw new InvalidInputError(`thinkRatio must be in (0, 1] (got ${o.thinkRatio})`);
  if (!Number.isInteger(o.maxJudgeSteps) || o.maxJudgeSteps < 0) throw new InvalidInputError(`maxJudgeSteps must be an integer >= 0`);
  if (!Number.isInteger(o.trialMaxTokens) || o.trialMaxTokens < 1) throw new InvalidInputError(`trialMaxTokens must be an integer >= 1`);
  if (!Number.isInteger(o.limitMargin) || o.limitMargin < 0) throw new InvalidInputError(`limitMargin must be an integer >= 0`);
  if (o.trialSampling !== 'sample' && o.trialSampling !== 'greedy') throw new InvalidInputError(`trialSampling must be sample or greedy (got ${String(o.trialSampling)})`);
  return o;
}

// ---------------------------------------------------------------------------------------------------------------
// Decision logic (pure)

/**
 * Confidence of a trial answer from its token probabilities (greedy, so each is the maximum probability), as DEER's
 * `calculate_average_max_prob_from_logprobs`: tokens from the second on; 0 when there are none.
 */
export function deerConfidence(tokenProbs: readonly number[], aggregation: DeerAggregation = 'avg1'): number {
  const ps = tokenProbs.slice(1);
  if (ps.length === 0) return 0;
  switch (aggregation) {
    case 'avg1':
      return ps.reduce((a, p) => a + p, 0) / ps.length;
    case 'avg2':
      return Math.exp(ps.reduce((a, p) => a + Math.log(Math.max(p, 1e-10)), 0) / ps.length);
    case 'min':
      return Math.min(1, ...ps);
  }
}

/** Thinking tokens DEER allows: `int(max_len * think_ratio)`. */
export function deerThinkLimit(maxTokens: number, thinkRatio: number): number {
  return Math.floor(maxTokens * thinkRatio);
}

/** Whether a judge point with this confidence exits, and why; null = keep thinking. */
export function deerExitReason(
  confidence: number,
  thinkingTokens: number,
  opts: { threshold: number; thinkLimit: number; limitMargin?: number },
): 'confident' | 'think-limit' | null {
  if (confidence > opts.threshold) return 'confident';
  if (thinkingTokens >= opts.thinkLimit - (opts.limitMargin ?? DEER_DEFAULTS.limitMargin)) return 'think-limit';
  return null;
}

/** A judge point found in the streamed text. */
export interface CueOccurrence {
  cue: string;
  /** Character offset of the cue in the generated text. */
  charStart: number;
  /** Index of the token holding the cue's first character: the trace before the judge point is the tokens before
   * it plus `prefix`. */
  tokenIndex: number;
  /** Text of that token before the cue (e.g. `\n\n` of a `\n\nWait` token). */
  prefix: string;
}

/**
 * Finds judge points as vLLM stop strings do: the first new occurrence of any cue string (literal, case-sensitive,
 * anywhere, so `Waiting` counts) once the text holding it has been generated. Feed every token's text in order.
 */
export class LiteralCueFinder {
  private readonly cues: readonly string[];
  private text = '';
  private readonly starts: number[] = [];
  private searchFrom = 0;
  /** The last push found a cue: the text may hold another one already (reported with the next push). */
  private pending = false;

  constructor(cues: readonly string[]) {
    if (cues.length === 0 || cues.some((c) => c.length === 0)) throw new InvalidInputError('cue strings must not be empty');
    this.cues = cues;
  }

  push(piece: string): CueOccurrence | null {
    const before = this.text.length;
    this.starts.push(before);
    this.text += piece;
    let best: { cue: string; at: number } | null = null;
    for (const cue of this.cues) {
      // Without a pending hit only occurrences ending in the new piece are new; scanning from there keeps it linear.
      const from = this.pending ? this.searchFrom : Math.max(this.searchFrom, before - cue.length + 1);
      const at = this.text.indexOf(cue, from);
      if (at >= 0 && (best === null || at < best.at)) best = { cue, at };
    }
    this.pending = best !== null;
    if (best === null) return null;
    this.searchFrom = best.at + best.cue.length;
    // The token holding the first character: the last token starting at or before it (empty pieces start nowhere).
    let t = this.starts.length - 1;
    while (t > 0 && (this.starts[t]! > best.at || this.starts[t] === this.starts[t + 1])) t--;
    return { cue: best.cue, charStart: best.at, tokenIndex: t, prefix: this.text.slice(this.starts[t]!, best.at) };
  }

  /**
   * The first token a later occurrence can start in (a judge point cuts there): the one holding the first character
   * not yet ruled out — an unreported occurrence, or a cue whose beginning the text may already end with.
   */
  horizon(): number {
    const longest = Math.max(...this.cues.map((c) => c.length));
    const from = this.pending ? this.searchFrom : Math.max(this.searchFrom, this.text.length - longest + 1);
    if (from >= this.text.length) return this.starts.length;
    let t = this.starts.length - 1;
    while (t > 0 && (this.starts[t]! > from || this.starts[t] === this.starts[t + 1])) t--;
    return t;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The method

/** One trial answer at a judge point. */
export interface DeerTrial {
  /** Ordinal of the judge point (0-based). */
  index: number;
  cue: string;
  /** Reasoning tokens kept before the trial (the exit position). */
  position: number;
  /** Thinking tokens before the judge point (what DEER's think limit is checked against). */
  thinkingTokens: number;
  confidence: number;
  answer: string | null;
  /** The trial's own accounting: the answer prompt (with the part of the cue token before the cue) and the answer. */
  cueText: string;
  text: string;
  cueTokens: number;
  answerTokens: number;
  /** DEER exits here whatever the confidence (the thinking reached its limit). */
  forced: boolean;
  /** Tokens of the trace sampled when the judge point was found (an exit here decoded these of the trace). */
  decidedAt: number;
  /** Milliseconds from the start of the problem to the end of this trial. */
  ms: number;
}

interface DeerRun {
  rollout: RolloutResult;
  trials: DeerTrial[];
  /** Exit cue text of the rollout's final answer. */
  cueText: string;
  exitReason: 'confident' | 'think-limit' | null;
  wallMs: number;
  /** Work of DEER's concluding answer in a direct run ('conclude'), which the rollout does not count. */
  concludeWork: ModelWork;
  /** The sequence after the rollout (still holding the trace); only valid inside `withPrompt`. */
  seq: GeneratorSequence;
  promptLength: number;
}

/** Decoding work of trials (their prompts prefilled, their answers decoded). */
function trialWork(trials: readonly DeerTrial[]): ModelWork {
  return trials.reduce<ModelWork>((a, t) => ({ decoded: a.decoded + t.answerTokens, prefilled: a.prefilled + t.cueTokens }), { decoded: 0, prefilled: 0 });
}

const answerWork = (a: ForcedExitResult): ModelWork => ({ decoded: a.answerTokens, prefilled: a.cueTokens });

/** DEER's own ending: close the thinking, let the model answer, force the answer prompt if it ran out of budget. */
async function concludeAnswer(seq: GeneratorSequence, at: number, maxTokens: number, answerPrompt: string): Promise<ForcedExitResult> {
  const fork = seq.fork();
  try {
    fork.truncate(at);
    const a = await forcedExit(fork, { cue: DEER_THINK_END, maxTokens, mode: 'inplace' });
    if (a.answer !== null || a.answerTokens < maxTokens) return a;
    const b = await forcedExit(fork, { cue: answerPrompt, maxTokens: DEER_FORCE_TOKENS, mode: 'inplace' });
    return {
      text: a.text + answerPrompt + b.text,
      answer: b.answer,
      cueTokens: a.cueTokens + b.cueTokens,
      answerTokens: a.answerTokens + b.answerTokens,
      tokenProbs: [...a.tokenProbs, ...b.tokenProbs],
    };
  } finally {
    fork.dispose();
  }
}

async function runDeer(
  seq: GeneratorSequence,
  input: MethodInput,
  env: MethodEnv,
  o: ResolvedDeer,
  t0: number,
): Promise<DeerRun> {
  const promptLength = seq.length;
  const thinkLimit = deerThinkLimit(env.maxTokens, o.thinkRatio);
  const finder = new LiteralCueFinder(o.cues);
  const trials: DeerTrial[] = [];
  let cueText = exitCueText(env.exitCue);
  let exitReason: DeerRun['exitReason'] = null;
  let concludeWork: ModelWork = { decoded: 0, prefilled: 0 };
  const trialSampler = (k: number): SamplerOptions =>
    o.trialSampling === 'greedy' ? { temperature: 0 } : { ...DEER_TRIAL_SAMPLER, seed: inputSeed(env, input, `trial${k}`) };

  const onStep = async (step: { index: number; piece: string }, s: GeneratorSequence): Promise<StepDecision> => {
    const thinkingTokens = step.index + 1;
    const hit = finder.push(step.piece);
    if (thinkingTokens >= thinkLimit) {
      exitReason = 'think-limit';
      if (o.finalAnswer === 'conclude') {
        cueText = DEER_THINK_END;
        const answer = await concludeAnswer(s, promptLength + thinkingTokens, Math.max(1, env.maxTokens - thinkingTokens), o.answerPrompt);
        concludeWork = answerWork(answer);
        return { action: 'exit', answer, cue: DEER_THINK_END, info: { reason: exitReason } };
      }
      return { action: 'exit', info: { reason: exitReason } };
    }
    if (hit === null || trials.length >= o.maxJudgeSteps) return { action: 'continue' };

    const trialCue = hit.prefix + o.answerPrompt;
    const trial = await forcedExit(s, {
      cue: trialCue,
      maxTokens: o.trialMaxTokens,
      at: promptLength + hit.tokenIndex,
      mode: 'fork',
      sampler: trialSampler(trials.length),
    });
    const confidence = deerConfidence(trial.tokenProbs, o.aggregation);
    // DEER measures the thinking without the cue (the stop string is not part of its text).
    const reason = deerExitReason(confidence, hit.tokenIndex, { threshold: o.threshold, thinkLimit, limitMargin: o.limitMargin });
    trials.push({
      index: trials.length,
      cue: hit.cue,
      position: hit.tokenIndex,
      thinkingTokens: hit.tokenIndex,
      confidence,
      answer: trial.answer,
      cueText: trialCue,
      text: trial.text,
      cueTokens: trial.cueTokens,
      answerTokens: trial.answerTokens,
      forced: hit.tokenIndex >= thinkLimit - o.limitMargin,
      decidedAt: thinkingTokens,
      ms: performance.now() - t0,
    });
    if (reason === null) return { action: 'continue' };
    exitReason = reason;
    const info = { reason, trial: trials.length - 1, confidence };
    if (o.finalAnswer === 'conclude') {
      cueText = DEER_THINK_END;
      const answer = await concludeAnswer(s, promptLength + hit.tokenIndex, Math.max(1, env.maxTokens - hit.tokenIndex), o.answerPrompt);
      concludeWork = answerWork(answer);
      return { action: 'exit', cut: hit.tokenIndex, answer, cue: DEER_THINK_END, info };
    }
    cueText = trialCue;
    return { action: 'exit', cut: hit.tokenIndex, answer: trial, cue: trialCue, info };
  };

  const rollout = await runRollout(seq, {
    logprobs: false,
    ...traceRolloutOptions(env, input),
    onStep,
    commitHorizon: () => finder.horizon(),
  });
  if (rollout.end !== 'exit') cueText = exitCueText(env.exitCue);
  return { rollout, trials, cueText, exitReason, wallMs: performance.now() - t0, concludeWork, seq, promptLength };
}

function trialExtras(trials: readonly DeerTrial[], upTo: number) {
  const used = trials.slice(0, upTo);
  return {
    trials: used.map((t) => ({ index: t.index, position: t.position, confidence: t.confidence, answer: t.answer, forced: t.forced })),
    trialTokens: used.reduce((a, t) => a + t.cueTokens + t.answerTokens, 0),
  };
}

function deerOutcome(run: DeerRun, o: ResolvedDeer, input: MethodInput): MethodOutcome {
  const r = run.rollout;
  const info = r.exitInfo as { trial?: number; confidence?: number } | undefined;
  const exitTrial = r.end === 'exit' && info?.trial !== undefined ? run.trials[info.trial] : undefined;
  const exit =
    r.end === 'exit'
      ? exitTrial
        ? { event: exitTrial.index, position: exitTrial.position, cue: exitTrial.cue, score: exitTrial.confidence }
        : { event: run.trials.length, position: r.tokenCounts.reasoning, cue: 'think-limit' }
      : null;
  // The rollout did not count an exit trial's answer (handed over) nor the concluding answer: trials and conclusion are added here.
  const work = addWork(promptWork(input), trialWork(run.trials), run.concludeWork);
  return outcomeOf(r, run.cueText, exit, { exitReason: run.exitReason, options: { ...o }, ...trialExtras(run.trials, run.trials.length) }, run.wallMs, work);
}

function describe(o: ResolvedDeer): string {
  return `threshold=${o.threshold}`;
}

/** Trial answers decode on forks, and their confidence is the mean probability of their tokens. */
const DEER_NEEDS: readonly Requirement[] = ['fork', 'logprobs'];

/** DEER as a method. Setting `threshold=<t>`. */
export function deer(opts: DeerOptions = {}): ReasoningMethod {
  const o = resolve(opts);
  return {
    name: 'deer',
    setting: describe(o),
    requires: DEER_NEEDS,
    async solve(input, env) {
      const t0 = performance.now();
      return withPrompt(env, input.promptTokens, async (seq) => deerOutcome(await runDeer(seq, input, env, o, t0), o, input));
    },
  };
}

/**
 * Outcomes of several thresholds from one generation per problem. The trace runs with every judge point probed and
 * no confident exit (threshold = infinity, so only the think-limit ends it early); threshold t then exits at the
 * first trial whose confidence is above t. Exactly what `deer({ threshold: t })` gives, because the trials decode on
 * forks and never change the trace before the exit.
 */
export function deerSweep(thresholds: readonly number[], opts: Omit<DeerOptions, 'threshold'> = {}): ReasoningSweep {
  if (thresholds.length === 0) throw new InvalidInputError('a DEER sweep needs at least one threshold');
  const o = resolve({ ...opts, threshold: Infinity });
  const settings = thresholds.map((t) => describe(resolve({ ...opts, threshold: t })));
  return {
    name: 'deer',
    settings,
    requires: DEER_NEEDS,
    async solveAll(input, env) {
      const t0 = performance.now();
      return withPrompt(env, input.promptTokens, async (seq) => {
        const run = await runDeer(seq, input, env, o, t0);
        const base = deerOutcome(run, o, input);
        const out = new Map<string, MethodOutcome>();
        const concluded = new Map<number, { answer: ForcedExitResult; ms: number }>();
        for (let i = 0; i < thresholds.length; i++) {
          const threshold = thresholds[i]!;
          const k = run.trials.findIndex((t) => t.confidence > threshold || t.forced);
          if (k < 0) {
            out.set(settings[i]!, { ...base, extra: { ...base.extra, options: { ...o, threshold } } });
            continue;
          }
          const trial = run.trials[k]!;
          let answer: ForcedExitResult = { text: trial.text, answer: trial.answer, cueTokens: trial.cueTokens, answerTokens: trial.answerTokens, tokenProbs: [] };
          let cueText = trial.cueText;
          let ms = trial.ms;
          let conclusion: ModelWork = { decoded: 0, prefilled: 0 };
          if (o.finalAnswer === 'conclude') {
            let c = concluded.get(k);
            if (!c) {
              const t1 = performance.now();
              const a = await concludeAnswer(run.seq, run.promptLength + trial.position, Math.max(1, env.maxTokens - trial.position), o.answerPrompt);
              c = { answer: a, ms: trial.ms + (performance.now() - t1) };
              concluded.set(k, c);
            }
            answer = c.answer;
            ms = c.ms;
            cueText = DEER_THINK_END;
            conclusion = answerWork(c.answer);
          }
          const tokens = run.rollout.tokens.slice(0, trial.position);
          const reasoning = tokens.length;
          out.set(settings[i]!, {
            answerText: cueText + answer.text,
            answer: answer.answer,
            text: env.generator.vocab.detokenize(tokens),
            traceTokens: tokens,
            end: 'exit',
            // As a direct run at this threshold: the trace to the judge point, the trials up to this one, the conclusion.
            tokens: tokenCounts(
              reasoning,
              answer.cueTokens,
              answer.answerTokens,
              addWork(promptWork(input), { decoded: trial.decidedAt, prefilled: 0 }, trialWork(run.trials.slice(0, k + 1)), conclusion),
            ),
            exit: { event: trial.index, position: trial.position, cue: trial.cue, score: trial.confidence },
            wallMs: ms,
            extra: {
              end: 'exit',
              exitReason: trial.confidence > threshold ? 'confident' : 'think-limit',
              options: { ...o, threshold },
              ...trialExtras(run.trials, k + 1),
            },
          });
        }
        return out;
      });
    },
  };
}
