/**
 * The shape every reasoning method shares (full rollout, token budget, LYNX, DEER, DeepConf, Dynasor-CoT), so the
 * evaluation harness runs them all the same way: one problem in, one outcome out, tokens counted one way
 * (`TokenCounts`: output = reasoning + exit cue + answer, as `runRollout` counts them; decoded and prefilled = all the
 * work, probes and extra traces included).
 *
 * Also the two reference methods: the full rollout (the ceiling: think until the model stops) and a fixed thinking
 * budget (the floor: stop at B thinking tokens, then exit with the exit cue).
 */
import type { LlamaContext, SamplerOptions } from '../engine/index.js';
import { LocalGenerator } from '../backends/local.js';
import { requireCapabilities, type Generator, type GeneratorSequence, type Requirement, type Vocabulary } from '../backends/generator.js';
import { InvalidInputError } from '../util/errors.js';
import { Rng } from '../util/rng.js';
import { exitCueText, type ExitAccounting } from './forced-exit.js';
import { runRollout, type RolloutOptions, type RolloutResult } from './rollout.js';
import { NO_WORK, withWork, type ModelWork, type TokenCounts } from './token-counts.js';

/** Sampling defaults of the field for reasoning models (DeepSeek-R1 and LYNX): temperature 0.6, top-p 0.95. */
export const DEFAULT_SAMPLER: Readonly<SamplerOptions> = Object.freeze({ temperature: 0.6, topP: 0.95 });

export interface MethodEnv {
  /** What the method decodes with; a method may create, fork and dispose sequences in it. */
  generator: Generator;
  /** Sampler of the reasoning trace (its seed is replaced by a per-problem seed). */
  sampler: SamplerOptions;
  /** Maximum generated tokens of one trace (thinking + answer) before a budget exit. */
  maxTokens: number;
  /** Exit cue (a name from EXIT_CUES or literal text) for early and budget exits. */
  exitCue: string;
  /** Maximum answer tokens after an exit cue. Default 64. */
  answerMaxTokens?: number;
  /** Where forced exits stop decoding: 'box' (default) or 'lynx' (to end of sequence or the answer budget). */
  exitAccounting?: ExitAccounting;
  /**
   * Budget forcing: a trace out of tokens while thinking gets a forced answer (exit cue + answer). Unset: each
   * method's own default (on for all but DeepConf, whose budget-truncated traces vote without one, as in its code).
   * Set, it applies to every method alike.
   */
  budgetForcing?: boolean;
  /** Base seed; every problem (and every trace of a problem) gets its own seed derived from it. */
  seed: number;
  /** Streams the main trace's text as its reader sees it (RolloutOptions.onText): what a server sends while it runs. */
  onText?: RolloutOptions['onText'];
  /** Per-token log-probabilities of the streamed main trace: 0 = the sampled token's, k > 0 = also the top k. */
  logprobs?: number;
  /** Aborts every rollout of the method (a client that went away). */
  signal?: AbortSignal;
  /**
   * The small model of a big/small composition (src/reasoning/compose/); `generator` is then the big one. Only
   * composed methods read it (they declare `requiresSmall`).
   */
  small?: Generator;
}

export interface MethodInput {
  problemId: string;
  /** The prompt, already through the chat template, ending where the model starts thinking. */
  promptTokens: number[];
  /**
   * Which rollout of the problem this is (LYNX's `--test-rollouts`): its main trace samples with the seed of trace
   * `rollout`, the one the dataset builder's rollout of that number has, and its other traces and probes get seeds of
   * their own. Default 0.
   */
  rollout?: number;
  /**
   * The same prompt for another vocabulary and chat template, optionally with a hint line (SplitReason's), for methods
   * that decode with a second model. Absent where the caller only has tokens.
   */
  renderPrompt?: (vocab: Vocabulary, opts?: { hint?: string }) => number[];
}


/** Where a method stopped the reasoning early (the PredictionRecord's `exit`). */
export interface MethodExit {
  /** Ordinal of the decision point that exited (cue event, trial answer, probe, ...). */
  event: number;
  /** Generated reasoning tokens kept (the exit cue follows them). */
  position: number;
  cue?: string;
  score?: number;
}

export interface MethodOutcome {
  /** Text the evaluator extracts the final answer from (e.g. `\boxed{42}` after an exit cue, or the model's answer). */
  answerText: string;
  /** The boxed answer when the method already knows it (forced exits, votes); the evaluator may still re-extract. */
  answer?: string | null;
  /** Reasoning text of the (main) trace, for the trace viewer. */
  text: string;
  /** Generated token ids of the (main) trace up to the exit (what `text` decodes), for token-exact analysis. */
  traceTokens: number[];
  /** How the (main) trace ended. */
  end: RolloutResult['end'] | 'vote';
  tokens: TokenCounts;
  /** null = the method did not stop the reasoning early. */
  exit: MethodExit | null;
  wallMs: number;
  extra: Record<string, unknown>;
  /** The full rollout of the same problem and seed, when the method generated it anyway (a LYNX δ sweep). */
  baseline?: { tokens: TokenCounts; answerText: string };
}

export interface ReasoningMethod {
  /** Method name as it appears in run folders and plots (letters, digits, `._+-`). */
  name: string;
  /** Setting of this instance, e.g. `threshold=0.95`; `full` for full rollouts. */
  setting: string;
  /** What the method needs of the generator beyond sampling (checked before any work: `checkRequirements`). */
  requires?: readonly Requirement[];
  /** A composed method: what it needs of `env.small` (set, even empty, means it needs a small model at all). */
  requiresSmall?: readonly Requirement[];
  solve(input: MethodInput, env: MethodEnv): Promise<MethodOutcome>;
}

/**
 * Several settings of one method from one generation per problem: valid where a setting only changes *when* the
 * method stops, not what it generates before (the probes never feed back into the main trace, so with the same seed
 * the trace is the same up to the exit). Each outcome equals what `ReasoningMethod.solve` gives for that setting.
 */
export interface ReasoningSweep {
  name: string;
  settings: string[];
  requires?: readonly Requirement[];
  requiresSmall?: readonly Requirement[];
  solveAll(input: MethodInput, env: MethodEnv): Promise<Map<string, MethodOutcome>>;
}

/** An environment with the defaults filled in; a context stands for the local generator over it. */
export function methodEnv(
  base: ({ generator: Generator } | { context: LlamaContext }) & Partial<Omit<MethodEnv, 'generator'>>,
): MethodEnv {
  const env: MethodEnv = {
    generator: 'generator' in base ? base.generator : new LocalGenerator(base.context),
    sampler: { ...(base.sampler ?? DEFAULT_SAMPLER) },
    maxTokens: base.maxTokens ?? 16384,
    exitCue: base.exitCue ?? 'paper',
    answerMaxTokens: base.answerMaxTokens,
    exitAccounting: base.exitAccounting,
    budgetForcing: base.budgetForcing,
    seed: base.seed ?? 0,
    onText: base.onText,
    signal: base.signal,
    logprobs: base.logprobs,
    ...(base.small ? { small: base.small } : {}),
  };
  if (!Number.isInteger(env.maxTokens) || env.maxTokens < 1) {
    throw new InvalidInputError(`maxTokens must be a positive integer (got ${env.maxTokens})`);
  }
  return env;
}

/**
 * Seed of trace `trace` of a problem: a pure function of the base seed, the problem id and the trace number, so every
 * method samples the same main trace for the same problem (that is what makes probes comparable to no probes).
 */
export function traceSeed(env: Pick<MethodEnv, 'seed'>, problemId: string, trace: number | string = 0): number {
  return Rng.derive(env.seed, `${problemId}\u0000${trace}`).nextU32();
}

/** The sampler of a problem's trace. */
export function traceSampler(env: MethodEnv, problemId: string, trace: number | string = 0): SamplerOptions {
  return { ...env.sampler, seed: traceSeed(env, problemId, trace) };
}

/**
 * The seed key of trace `trace` (0 = the main trace; a number or a name such as `probe3`) of an input: rollout r's main
 * trace is trace r, its other traces and probes `r:<trace>` (plain `<trace>` for rollout 0, as before rollouts existed).
 */
export function traceKey(input: Pick<MethodInput, 'rollout'>, trace: number | string = 0): number | string {
  const r = input.rollout ?? 0;
  if (trace === 0) return r;
  return r === 0 ? trace : `${r}:${trace}`;
}

/** The seed of a probe or extra trace of an input (`traceKey`). */
export function inputSeed(env: Pick<MethodEnv, 'seed'>, input: Pick<MethodInput, 'problemId' | 'rollout'>, trace: number | string): number {
  return traceSeed(env, input.problemId, traceKey(input, trace));
}

/**
 * What every method's trace takes from the environment: its token budget, exit cue, answer budget, exit accounting,
 * budget forcing and seeded sampler. `budgetForcing` is the method's default when the environment leaves it unset.
 */
export function traceRolloutOptions(
  env: MethodEnv,
  input: Pick<MethodInput, 'problemId' | 'rollout'>,
  trace: number | string = 0,
  budgetForcing = true,
): Pick<
  RolloutOptions,
  'maxTokens' | 'sampler' | 'exitCue' | 'answerMaxTokens' | 'exitAccounting' | 'budgetForcing' | 'onText' | 'signal' | 'logprobs' | 'topLogprobs'
> {
  // Only the main trace of the first rollout is streamed; every trace stops with the method.
  const streamed = trace === 0 && (input.rollout ?? 0) === 0;
  return {
    maxTokens: env.maxTokens,
    sampler: traceSampler(env, input.problemId, traceKey(input, trace)),
    exitCue: env.exitCue,
    answerMaxTokens: env.answerMaxTokens,
    exitAccounting: env.exitAccounting,
    budgetForcing: env.budgetForcing ?? budgetForcing,
    onText: streamed ? env.onText : undefined,
    signal: env.signal,
    ...(streamed && env.logprobs !== undefined ? { logprobs: true, topLogprobs: env.logprobs } : {}),
  };
}

/** The prompt's prefill, once per problem (probes and extra traces fork it). */
export function promptWork(input: Pick<MethodInput, 'promptTokens'>): ModelWork {
  return { decoded: 0, prefilled: input.promptTokens.length };
}

/** Refuse, before any work, a method whose needs the environment's generators do not meet. */
export function checkRequirements(method: Pick<ReasoningMethod, 'name' | 'requires' | 'requiresSmall'>, env: Pick<MethodEnv, 'generator' | 'small'>): void {
  requireCapabilities(env.generator, method.requires ?? [], method.name);
  if (method.requiresSmall) {
    if (!env.small) throw new InvalidInputError(`${method.name} composes a small model with the big one: give the small model (--small SMALL)`);
    requireCapabilities(env.small, method.requiresSmall, `${method.name} (small model)`);
  }
}

/** Prefill the prompt in a new sequence, run `fn`, and free the sequence whatever happens. */
export async function withPrompt<T>(env: MethodEnv, promptTokens: readonly number[], fn: (seq: GeneratorSequence) => Promise<T>): Promise<T> {
  if (promptTokens.length === 0) throw new InvalidInputError('the prompt is empty: give at least one prompt token');
  const seq = env.generator.createSequence();
  try {
    await seq.append(promptTokens);
    return await fn(seq);
  } finally {
    seq.dispose();
  }
}

/**
 * The text to extract a final answer from. After an exit cue the cue itself opens the box (`... \boxed{`), so the
 * cue is put back in front of the decoded answer; after a natural end it is what the model wrote after `</think>`
 * (or the whole text when it never closed its thinking).
 */
export function answerTextOf(r: RolloutResult, cueText: string): string {
  if (r.end === 'stopped') return '';
  if (r.end === 'exit' || (r.end === 'budget' && r.tokenCounts.exitCue > 0)) return cueText + r.answerText;
  return r.answerText !== '' ? r.answerText : r.text;
}

/** A MethodOutcome from a single rollout; `work` is what the method did besides it (the prompt, probes, trials). */
export function outcomeOf(
  r: RolloutResult,
  cueText: string,
  exit: MethodExit | null,
  extra: Record<string, unknown> = {},
  wallMs = r.wallMs,
  work: ModelWork = NO_WORK,
): MethodOutcome {
  return {
    answerText: answerTextOf(r, cueText),
    answer: r.boxedAnswer,
    text: r.text,
    traceTokens: r.tokens.slice(),
    end: r.end,
    tokens: withWork(r.tokenCounts, work),
    exit,
    wallMs,
    extra: { end: r.end, ...extra },
  };
}

/** The ceiling: sample until the model ends its thinking (or the token budget runs out, then exit with the cue). */
export function fullRollout(): ReasoningMethod {
  return {
    name: 'full',
    setting: 'full',
    async solve(input, env) {
      const t0 = performance.now();
      return withPrompt(env, input.promptTokens, async (seq) => {
        const r = await runRollout(seq, traceRolloutOptions(env, input));
        return outcomeOf(r, exitCueText(env.exitCue), null, {}, performance.now() - t0, promptWork(input));
      });
    },
  };
}

/**
 * The floor: think for at most `budget` tokens, then exit with the exit cue and decode the answer. A trace that ends
 * its thinking earlier answers by itself, as in the full rollout (same seed, same tokens up to there).
 */
export function tokenBudget(budget: number): ReasoningMethod {
  if (!Number.isInteger(budget) || budget < 1) throw new InvalidInputError(`a token budget must be a positive integer (got ${budget})`);
  return {
    name: 'budget',
    setting: `budget=${budget}`,
    async solve(input, env) {
      const t0 = performance.now();
      return withPrompt(env, input.promptTokens, async (seq) => {
        const r = await runRollout(seq, {
          ...traceRolloutOptions(env, input),
          onStep: (step) => (step.index + 1 >= budget ? { action: 'exit', info: { reason: 'budget' } } : { action: 'continue' }),
        });
        const exit = r.end === 'exit' ? { event: 0, position: r.tokenCounts.reasoning, cue: 'budget' } : null;
        return outcomeOf(r, exitCueText(env.exitCue), exit, { budget }, performance.now() - t0, promptWork(input));
      });
    },
  };
}
