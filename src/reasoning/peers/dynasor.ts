/**
 * Dynasor-CoT (Fu et al., 2024/2025, "Efficiently Serving LLM Reasoning Programs with Certaindex"), as its public code
 * behaves: the rule is the one of `dynasor/core/cot.py` (`openai_chat_completion_stream`, with `evaluator.eqaul_group`
 * and `count_not_empty`). Not the server's `should_early_exit` (`dynasor/core/entropy.py`, called by
 * `handle_adaptive_compute` in `cli/vllm_server.py`): past its length and hesitation checks it ends in `return True`
 * whether or not the answers agree, so it would exit at the first certain probe once N probes exist.
 *
 * - Every `token_interval` generated tokens (32; the effort presets use 32 or 64), the text so far plus the probe
 *   `... Oh, I suddenly got the answer to the whole problem, **Final Answer**\n\n\[ \boxed{` is decoded for 20 tokens,
 *   sampled at temperature 0.6, top-p 0.95, with no early stop (what follows the box matters: hesitation).
 * - The probe's answer is its text up to the first unmatched `}` ('' when the box never closes); it is certain when
 *   the lowercased probe text contains none of `wait`, `hold`, `but`, `okay`, `no`, `hmm` (as substrings, so `not` and
 *   `know` count as `no`, as in Dynasor).
 * - Exit once there are at least N probe answers and the last N (N = `certainty_window`, 2 by default; the effort
 *   presets use 2 to 8) are all non-empty, all certain, and all equal to the first of them (`cot.py`).
 * - The exit answer is the probe's: Dynasor emits the probe text, the answer and `}\n\]`.
 *
 * Differences, on purpose: `cot.py` also probes the bare prompt (before any thinking) and decides after generating the
 * next chunk in parallel with the probe, so its response holds one more chunk than the probe saw; here probes start
 * after the first k tokens and an exit cuts at the probe (k tokens fewer, the same answer).
 *
 * Answers are compared by `answersEqual`, by default equal after removing white space; Dynasor uses its `math_equal`
 * (plug in the evaluator's equivalence for that).
 *
 * Token accounting, as every method's: output tokens are the response (reasoning + exit cue + answer, the last probe
 * being the exit); decoded tokens add every probe's generated tokens, prefilled tokens every probe's cue. Dynasor's code
 * defines no accounting of its own. `extra.probeTokens` / `extra.probeCueTokens` keep the probes' totals.
 */
import type { SamplerOptions } from '../../engine/index.js';
import type { GeneratorSequence } from '../../backends/generator.js';
import { InvalidInputError } from '../../util/errors.js';
import { EXIT_CUES, exitCueText, type ForcedExitResult } from '../forced-exit.js';
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
import { addWork, tokenCounts, type ModelWork } from '../token-counts.js';
import { withDefaults } from '../../util/defaults.js';

export const UNCERTAIN_WORDS: readonly string[] = ['wait', 'hold', 'but', 'okay', 'no', 'hmm'];

/** Dynasor's closing of the boxed answer after an exit. */
export const DYNASOR_PROBE_END = '}\n\\]';

/** Dynasor's effort presets (`cot.py`): [N, token interval]. */
export const DYNASOR_EFFORT = {
  mild: [8, 64],
  low: [5, 64],
  mid: [3, 64],
  high: [2, 64],
  crazy: [2, 32],
} as const satisfies Record<string, readonly [number, number]>;

export interface DynasorOptions {
  /** Probe every this many generated tokens. Default 32. */
  interval?: number;
  /** Consecutive agreeing, certain probe answers needed to exit. Default 2. */
  agreement?: number;
  probe?: string;
  /** Probe length in tokens. Default 20. */
  probeMaxTokens?: number;
  /** Probe sampler (its seed is derived per probe). Default temperature 0.6, top-p 0.95. */
  probeSampler?: SamplerOptions;
  uncertainWords?: readonly string[];
  /** The answer of a probe's text. Default Dynasor's `obtain_answer`. */
  extractAnswer?: (probeText: string) => string;
  answersEqual?: (a: string, b: string) => boolean;
}

export const DYNASOR_DEFAULTS = {
  interval: 32,
  agreement: 2,
  probe: EXIT_CUES.dynasor as string,
  probeMaxTokens: 20,
  probeSampler: { temperature: 0.6, topP: 0.95 } as SamplerOptions,
  uncertainWords: UNCERTAIN_WORDS,
  extractAnswer: (probeText: string) => obtainAnswer(probeText),
  answersEqual: (a: string, b: string) => a.replace(/\s+/g, '') === b.replace(/\s+/g, ''),
};

type Resolved = typeof DYNASOR_DEFAULTS;

function resolve(opts: DynasorOptions): Resolved {
  const o = withDefaults<Resolved>(DYNASOR_DEFAULTS, opts);
  if (!Number.isInteger(o.interval) || o.interval < 1) throw new InvalidInputError(`the probe interval must be a positive integer (got ${o.interval})`);
  if (!(Number.isInteger(o.agreement) && o.agreement >= 1) && o.agreement !== Infinity) {
    throw new InvalidInputError(`the agreement count N must be a positive integer (got ${o.agreement})`);
  }
  if (!Number.isInteger(o.probeMaxTokens) || o.probeMaxTokens < 1) throw new InvalidInputError(`probeMaxTokens must be a positive integer`);
  return o;
}

// ---------------------------------------------------------------------------------------------------------------
// Decision logic (pure)

/** The probe's answer: its text up to the first `}` without a matching `{`; '' when there is none. */
export function obtainAnswer(probeText: string): string {
  let depth = 0;
  for (let i = 0; i < probeText.length; i++) {
    const c = probeText[i];
    if (c === '{') depth++;
    else if (c === '}') {
      if (depth === 0) return probeText.slice(0, i);
      depth--;
    }
  }
  return '';
}

/** Certain = no uncertain word occurs (as a substring) in the lowercased probe text. */
export function isCertain(probeText: string, words: readonly string[] = UNCERTAIN_WORDS): boolean {
  const lower = probeText.toLowerCase();
  return !words.some((w) => lower.includes(w));
}

export interface ProbeRecord {
  answer: string;
  certain: boolean;
}

/**
 * `cot.py`'s exit test after the latest probe: at least N answers, and the last N all equal to the first of them
 * (`eqaul_group`), all non-empty (`count_not_empty`) and all certain (which includes the latest probe).
 */
export function dynasorShouldExit(
  probes: readonly ProbeRecord[],
  n: number,
  equal: (a: string, b: string) => boolean = DYNASOR_DEFAULTS.answersEqual,
): boolean {
  if (probes.length < n || probes.length === 0) return false;
  const last = probes.slice(-n);
  if (!last[last.length - 1]!.certain) return false;
  const first = last[0]!.answer;
  return last.every((p) => p.answer !== '' && p.certain && equal(p.answer, first));
}

/** Index of the first probe after which Dynasor exits with agreement N, or -1. */
export function firstExitProbe(probes: readonly ProbeRecord[], n: number, equal?: (a: string, b: string) => boolean): number {
  for (let i = 0; i < probes.length; i++) if (dynasorShouldExit(probes.slice(0, i + 1), n, equal)) return i;
  return -1;
}

// ---------------------------------------------------------------------------------------------------------------
// The method

export interface DynasorProbe extends ProbeRecord {
  index: number;
  /** Generated tokens before the probe (the exit position). */
  position: number;
  text: string;
  cueTokens: number;
  /** Tokens the probe generated. */
  tokens: number;
  ms: number;
}

/** Decode a probe on a fork: append the cue, sample `maxTokens` tokens, dispose the fork. */
async function runProbe(seq: GeneratorSequence, cueTokens: readonly number[], maxTokens: number, sampler: SamplerOptions): Promise<{ text: string; tokens: number }> {
  const fork = seq.fork();
  try {
    await fork.append(cueTokens);
    let text = '';
    let tokens = 0;
    for await (const t of fork.generate({ maxTokens, sampler })) {
      tokens++;
      if (t.stopped) break;
      text += t.text;
    }
    return { text, tokens };
  } finally {
    fork.dispose();
  }
}

interface DynasorRun {
  rollout: RolloutResult;
  probes: DynasorProbe[];
  cueTokens: number;
  wallMs: number;
}

async function runDynasor(seq: GeneratorSequence, input: MethodInput, env: MethodEnv, o: Resolved, t0: number): Promise<DynasorRun> {
  const cueTokens = env.generator.vocab.tokenize(o.probe, { addSpecial: false, parseSpecial: true });
  const probes: DynasorProbe[] = [];
  const onStep = async (step: { index: number }, s: GeneratorSequence): Promise<StepDecision> => {
    const position = step.index + 1;
    if (position % o.interval !== 0) return { action: 'continue' };
    const sampler = { ...o.probeSampler, seed: inputSeed(env, input, `probe${probes.length}`) };
    const p = await runProbe(s, cueTokens, o.probeMaxTokens, sampler);
    const probe: DynasorProbe = {
      index: probes.length,
      position,
      text: p.text,
      answer: o.extractAnswer(p.text),
      certain: isCertain(p.text, o.uncertainWords),
      cueTokens: cueTokens.length,
      tokens: p.tokens,
      ms: performance.now() - t0,
    };
    probes.push(probe);
    if (!dynasorShouldExit(probes, o.agreement, o.answersEqual)) return { action: 'continue' };
    return { action: 'exit', answer: probeAsExit(probe), cue: o.probe, info: { probe: probe.index } };
  };
  const rollout = await runRollout(seq, {
    ...traceRolloutOptions(env, input),
    onStep,
  });
  return { rollout, probes, cueTokens: cueTokens.length, wallMs: performance.now() - t0 };
}

/** The probe as the trace's exit: Dynasor answers with the probe cue, the answer and `}\n\]`. */
function probeAsExit(p: DynasorProbe): ForcedExitResult {
  return { text: p.answer + DYNASOR_PROBE_END, answer: p.answer, cueTokens: p.cueTokens, answerTokens: p.tokens, tokenProbs: [] };
}

/** The probes' decoding: their cues prefilled, their tokens decoded (the exit probe's included: the rollout leaves it out). */
function probeWork(probes: readonly DynasorProbe[]): ModelWork {
  return probes.reduce<ModelWork>((a, p) => ({ decoded: a.decoded + p.tokens, prefilled: a.prefilled + p.cueTokens }), { decoded: 0, prefilled: 0 });
}

function probeExtras(probes: readonly DynasorProbe[]) {
  return {
    probeTokens: probes.reduce((a, p) => a + p.tokens, 0),
    probeCueTokens: probes.reduce((a, p) => a + p.cueTokens, 0),
    probes: probes.map((p) => ({ index: p.index, position: p.position, answer: p.answer, certain: p.certain, tokens: p.tokens })),
  };
}

function describe(o: Resolved): string {
  return `k=${o.interval},N=${o.agreement}`;
}

function dynasorOutcome(run: DynasorRun, env: MethodEnv, o: Resolved, input: MethodInput): MethodOutcome {
  const r = run.rollout;
  const exitProbe = r.end === 'exit' ? (r.exitInfo as { probe: number }).probe : null;
  const p = exitProbe === null ? undefined : run.probes[exitProbe];
  const cueText = p ? o.probe : exitCueText(env.exitCue);
  const work = addWork(promptWork(input), probeWork(run.probes));
  const base = outcomeOf(r, cueText, p ? { event: p.index, position: p.position, cue: 'probe' } : null, {}, run.wallMs, work);
  return { ...base, extra: { ...base.extra, options: optionsRecord(o), ...probeExtras(run.probes) } };
}

function optionsRecord(o: Resolved) {
  return { interval: o.interval, agreement: o.agreement, probeMaxTokens: o.probeMaxTokens, probeSampler: o.probeSampler };
}

/** Dynasor-CoT as a method. Setting `k=<interval>,N=<agreement>`. */
export function dynasorCot(opts: DynasorOptions = {}): ReasoningMethod {
  const o = resolve(opts);
  return {
    name: 'dynasor-cot',
    setting: describe(o),
    requires: ['fork'],
    async solve(input, env) {
      const t0 = performance.now();
      return withPrompt(env, input.promptTokens, async (seq) => dynasorOutcome(await runDynasor(seq, input, env, o, t0), env, o, input));
    },
  };
}

/**
 * Outcomes of several agreement counts N from one generation per problem: the trace runs with probes at every
 * interval and no exit (N = infinity); N then exits at its first qualifying probe. Exactly what
 * `dynasorCot({ agreement: N })` gives: probes decode on forks with seeds of their own and never change the trace.
 */
export function dynasorSweep(agreements: readonly number[], opts: Omit<DynasorOptions, 'agreement'> = {}): ReasoningSweep {
  if (agreements.length === 0) throw new InvalidInputError('a Dynasor sweep needs at least one agreement count');
  const o = resolve({ ...opts, agreement: Infinity });
  const perN = agreements.map((n) => resolve({ ...opts, agreement: n }));
  return {
    name: 'dynasor-cot',
    settings: perN.map(describe),
    requires: ['fork'],
    async solveAll(input, env) {
      const t0 = performance.now();
      return withPrompt(env, input.promptTokens, async (seq) => {
        const run = await runDynasor(seq, input, env, o, t0);
        const out = new Map<string, MethodOutcome>();
        for (const on of perN) {
          const k = firstExitProbe(run.probes, on.agreement, on.answersEqual);
          if (k < 0) {
            const base = dynasorOutcome(run, env, on, input);
            out.set(describe(on), base);
            continue;
          }
          const p = run.probes[k]!;
          const probes = run.probes.slice(0, k + 1);
          const exit = probeAsExit(p);
          // As a direct run with this N: the trace to the probe, the probes up to it (the exit probe's tokens are its answer).
          const counts = tokenCounts(p.position, exit.cueTokens, exit.answerTokens, addWork(promptWork(input), { decoded: p.position, prefilled: 0 }, probeWork(probes)));
          out.set(describe(on), {
            answerText: on.probe + exit.text,
            answer: p.answer,
            text: env.generator.vocab.detokenize(run.rollout.tokens.slice(0, p.position)),
            traceTokens: run.rollout.tokens.slice(0, p.position),
            end: 'exit',
            tokens: counts,
            exit: { event: p.index, position: p.position, cue: 'probe' },
            wallMs: p.ms,
            extra: { end: 'exit', options: optionsRecord(on), ...probeExtras(probes) },
          });
        }
        return out;
      });
    },
  };
}
