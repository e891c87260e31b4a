/**
 * DeepConf online (Fu et al., 2025, "Deep Think with Confidence"), as its public code behaves (`deepconf-online.py`,
 * `helper.py`, and the `conf-stop` patch of vLLM it runs on):
 *
 * - Token confidence = minus the mean log-probability of the top-k candidates of the step (k = 20: vLLM
 *   `logprobs=20`). High when the distribution is peaked.
 * - Group confidence = mean token confidence over a sliding window (2,048 tokens in DeepConf's runs, whose traces may
 *   run to 64,000: `example_online.py --window_size 2048 --max_tokens 64000`); a trace's confidence is its lowest group
 *   confidence (the mean of all its tokens when it is shorter than a window). By default the window here is scaled
 *   to the token budget by that ratio, `round(maxTokens * 2048 / 64000)` (16 tokens at a 512-token budget): at the
 *   original 2,048 no window ever fills in a trace of a few hundred tokens, and the online stop can never fire.
 * - Warm-up: 16 traces run to the end; the stopping threshold is the `np.percentile` (linear interpolation) of their
 *   lowest group confidences at 90 for DeepConf-low (keeps the top 10%) or at 10 for DeepConf-high (keeps 90%).
 * - The other traces (up to the budget, 256 in total including the warm-up) stop as soon as a full window's mean
 *   confidence falls below the threshold; a finished trace whose lowest group confidence is below it is dropped too.
 * - Final answer: majority vote weighted by each trace's lowest group confidence, over the warm-up traces at or above
 *   the threshold and the final traces not stopped, each with a non-empty `\boxed` answer (votes by exact string).
 * - Tokens: decoded = every token of every trace of the problem, warm-up and stopped traces included (DeepConf's
 *   `total_tokens`); output = the trace shown for the voted answer (the most confident trace that voted for it).
 * - A trace that runs out of budget votes with what it wrote, without a forced answer (DeepConf extracts the answer of
 *   whatever vLLM returned); the environment's `budgetForcing` overrides that.
 *
 * The paper's adaptive sampling (stop drawing traces once the winning answer holds a share tau = 0.95 of the vote) is
 * not in the public code; it is `consensus` here, off by default. Traces decode concurrently in one context (forks of
 * one prompt prefill), so their steps share `llama_decode` calls. Confidences are not rounded (`helper.py` rounds to 3
 * decimals) and use the top-k candidates only (vLLM's stopping rule), the same for warm-up and online traces.
 */
import type { GeneratorSequence } from '../../backends/generator.js';
import { quantile } from '../../util/stats.js';
import { InvalidInputError } from '../../util/errors.js';
import { exitCueText } from '../forced-exit.js';
import {
  promptWork,
  traceRolloutOptions,
  withPrompt,
  type MethodEnv,
  type MethodInput,
  type MethodOutcome,
  type ReasoningMethod,
  type ReasoningSweep,
} from '../method.js';
import { runRollout, type RolloutResult } from '../rollout.js';
import { addWork, withWork, workOf, type TokenCounts } from '../token-counts.js';
import type { Requirement } from '../../backends/generator.js';

export type DeepConfVariant = 'low' | 'high';

export interface DeepConfOptions {
  /** 'low' keeps the top 10% (threshold at the 90th percentile), 'high' the top 90% (10th). Default 'low'. */
  variant?: DeepConfVariant;
  /** Percentile of the warm-up confidences that sets the threshold; overrides the variant's. */
  percentile?: number;
  /** Traces per problem, warm-up included. Default 256 (the public code; the paper uses 512). */
  budget?: number;
  /** Warm-up traces. Default 16. */
  warmupTraces?: number;
  /** Sliding window of the group confidence, in tokens. Default: the token budget scaled as DeepConf's 2048 of 64000. */
  windowSize?: number;
  /** Candidates per step in the token confidence. Default 20. */
  topK?: number;
  /** Traces decoding at once. Default: as many as the context has sequence slots and KV room for. */
  concurrency?: number;
  /** The paper's adaptive sampling: stop launching traces once the leading answer's vote share reaches this. */
  consensus?: number;
  /** Key answers are voted by. Default: the answer string as is (DeepConf's `str(answer)`). */
  answerKey?: (answer: string) => string;
}

export const DEEPCONF_DEFAULTS = {
  variant: 'low' as DeepConfVariant,
  budget: 256,
  warmupTraces: 16,
  topK: 20,
};

/** DeepConf's window and the trace budget it runs with (`example_online.py`: `--window_size 2048 --max_tokens 64000`). */
export const DEEPCONF_WINDOW = { tokens: 2048, ofMaxTokens: 64000 } as const;

/** The default window for a token budget: DeepConf's 2048 of 64000, scaled (at least 1). */
export function scaledWindow(maxTokens: number): number {
  return Math.max(1, Math.round((maxTokens * DEEPCONF_WINDOW.tokens) / DEEPCONF_WINDOW.ofMaxTokens));
}

// ---------------------------------------------------------------------------------------------------------------
// Decision logic (pure)

/** Token confidence: minus the mean log-probability of the top-k candidates; 0 for an empty list. */
export function tokenConfidence(topLogprobs: readonly number[]): number {
  if (topLogprobs.length === 0) return 0;
  let s = 0;
  for (const lp of topLogprobs) s += lp;
  return -s / topLogprobs.length;
}

/** Sliding-window group confidence of a growing trace, as vLLM's conf-stop patch keeps it (a running window sum). */
export class GroupConfidence {
  readonly window: number;
  private readonly buf: number[] = [];
  private sum = 0;
  private total = 0;
  private n = 0;
  private lowestFull = Infinity;

  constructor(window: number) {
    if (!Number.isInteger(window) || window < 1) throw new InvalidInputError(`the confidence window must be a positive integer (got ${window})`);
    this.window = window;
  }

  push(conf: number): void {
    this.buf.push(conf);
    this.sum += conf;
    this.total += conf;
    this.n++;
    if (this.buf.length > this.window) this.sum -= this.buf.shift()!;
    if (this.buf.length === this.window) this.lowestFull = Math.min(this.lowestFull, this.sum / this.window);
  }

  /** Tokens seen. */
  get count(): number {
    return this.n;
  }

  /** Whether the window is full (DeepConf only stops on a full window). */
  get full(): boolean {
    return this.buf.length === this.window;
  }

  /** Mean confidence of the current window (of all tokens while it is not full); 0 before any token. */
  get mean(): number {
    return this.buf.length === 0 ? 0 : this.sum / this.buf.length;
  }

  /** The trace's confidence: its lowest full-window mean, or the mean of all tokens if no window filled; 0 if empty. */
  get lowest(): number {
    if (this.n === 0) return 0;
    return this.n >= this.window ? this.lowestFull : this.total / this.n;
  }
}

/** All group confidences of a finished trace (`helper.compute_least_grouped`, without its rounding). */
export function groupConfidences(confs: readonly number[], window: number): number[] {
  if (confs.length === 0) return [0];
  if (confs.length < window) return [confs.reduce((a, c) => a + c, 0) / confs.length];
  const out: number[] = [];
  let s = 0;
  for (let i = 0; i < window; i++) s += confs[i]!;
  out.push(s / window);
  for (let i = window; i < confs.length; i++) {
    s += confs[i]! - confs[i - window]!;
    out.push(s / window);
  }
  return out;
}

/** A trace's confidence: its lowest group confidence. */
export function lowestGroupConfidence(confs: readonly number[], window: number): number {
  return Math.min(...groupConfidences(confs, window));
}

/** `np.percentile(values, p)` with its default linear interpolation. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) throw new InvalidInputError('percentile of an empty list');
  if (!(p >= 0 && p <= 100)) throw new InvalidInputError(`a percentile must be in [0, 100] (got ${p})`);
  return quantile([...values].sort((a, b) => a - b), p / 100);
}

/** DeepConf-low keeps the top 10% of warm-up traces (90th percentile), DeepConf-high the top 90% (10th). */
export function variantPercentile(variant: DeepConfVariant): number {
  return variant === 'low' ? 90 : 10;
}

/** The stopping threshold from the warm-up traces' confidences. */
export function deepConfThreshold(warmupConfidences: readonly number[], pct: number): number {
  return percentile(warmupConfidences, pct);
}

/** vLLM conf-stop: stop once a full window's mean confidence is below the threshold. */
export function shouldStopTrace(g: GroupConfidence, threshold: number): boolean {
  return g.full && g.mean < threshold;
}

/**
 * Confidence-weighted majority vote (`helper.weighted_majority_vote`): weights summed per answer; the first answer
 * (in order of appearance) with the largest total wins; null when nothing votes. `key` groups answers.
 */
export function weightedMajorityVote(
  answers: readonly (string | null)[],
  weights: readonly number[],
  key: (a: string) => string = (a) => a,
): { answer: string | null; weight: number; total: number } {
  const totals = new Map<string, { answer: string; weight: number }>();
  let total = 0;
  answers.forEach((a, i) => {
    if (a === null) return;
    const k = key(a);
    const w = weights[i]!;
    const cur = totals.get(k);
    if (cur) cur.weight += w;
    else totals.set(k, { answer: a, weight: w });
    total += w;
  });
  let best: { answer: string; weight: number } | null = null;
  for (const v of totals.values()) if (best === null || v.weight > best.weight) best = v;
  return best === null ? { answer: null, weight: 0, total } : { answer: best.answer, weight: best.weight, total };
}

/**
 * DeepConf's answer extraction (`helper.extract_answer`): the text after the last `boxed`; its brace group when it
 * opens one (everything to the end if it never closes), else up to the next `$`; null when there is no `boxed`.
 */
export function deepConfExtract(text: string): string | null {
  const at = text.lastIndexOf('boxed');
  if (at < 0) return null;
  const rest = text.slice(at + 'boxed'.length);
  if (rest.length === 0) return '';
  if (rest[0] !== '{') return rest.split('$')[0]!.trim();
  let depth = 1;
  let out = '';
  for (const c of rest.slice(1)) {
    if (c === '{') depth++;
    else if (c === '}') {
      depth--;
      if (depth === 0) break;
    }
    out += c;
  }
  return out.trim();
}

// ---------------------------------------------------------------------------------------------------------------
// The method

export interface DeepConfTrace {
  index: number;
  warmup: boolean;
  /** The trace's own output and work (its decoded tokens, the exit cue of a forced answer). */
  tokens: TokenCounts;
  /** Lowest group confidence (the vote weight). */
  confidence: number;
  /** The extracted answer ('' or null: none). */
  answer: string | null;
  end: RolloutResult['end'];
  /** Stopped online by the confidence threshold (generation cut short). */
  stoppedOnline: boolean;
  /** The window's mean confidence when it stopped online. */
  stopWindow?: number;
  /** Counts in the vote. */
  votes: boolean;
  /** Milliseconds from the start of the problem until this trace finished. */
  finishedMs: number;
  text: string;
  traceTokens: number[];
}

interface Resolved {
  pct: number;
  variant: DeepConfVariant | 'custom';
  budget: number;
  warmupTraces: number;
  /** null: scaled to the environment's token budget. */
  windowSize: number | null;
  topK: number;
  concurrency?: number;
  consensus?: number;
  answerKey: (a: string) => string;
}

function resolve(opts: DeepConfOptions): Resolved {
  const variant = opts.variant ?? DEEPCONF_DEFAULTS.variant;
  const r: Resolved = {
    pct: opts.percentile ?? variantPercentile(variant),
    variant: opts.percentile !== undefined ? 'custom' : variant,
    budget: opts.budget ?? DEEPCONF_DEFAULTS.budget,
    warmupTraces: opts.warmupTraces ?? DEEPCONF_DEFAULTS.warmupTraces,
    windowSize: opts.windowSize ?? null,
    topK: opts.topK ?? DEEPCONF_DEFAULTS.topK,
    concurrency: opts.concurrency,
    consensus: opts.consensus,
    answerKey: opts.answerKey ?? ((a) => a),
  };
  if (!Number.isInteger(r.budget) || r.budget < 1) throw new InvalidInputError(`the DeepConf trace budget must be a positive integer (got ${r.budget})`);
  if (!Number.isInteger(r.warmupTraces) || r.warmupTraces < 1) throw new InvalidInputError(`warmupTraces must be a positive integer (got ${r.warmupTraces})`);
  if (!Number.isInteger(r.topK) || r.topK < 1) throw new InvalidInputError(`topK must be a positive integer (got ${r.topK})`);
  if (r.concurrency !== undefined && (!Number.isInteger(r.concurrency) || r.concurrency < 1)) {
    throw new InvalidInputError(`concurrency must be a positive integer (got ${r.concurrency})`);
  }
  if (r.consensus !== undefined && !(r.consensus > 0 && r.consensus <= 1)) throw new InvalidInputError(`consensus must be in (0, 1] (got ${r.consensus})`);
  percentile([0], r.pct); // validates the percentile
  if (r.windowSize !== null) new GroupConfidence(r.windowSize); // validates the window
  return r;
}

function methodName(r: Resolved): string {
  return r.variant === 'custom' ? `deepconf-p${r.pct}` : `deepconf-${r.variant}`;
}

/** Run traces `indices` with at most `concurrency` decoding at once; `more()` is asked before each launch. */
async function pool<T>(indices: readonly number[], concurrency: number, run: (i: number) => Promise<T>, more: () => boolean = () => true): Promise<T[]> {
  const out: T[] = [];
  let next = 0;
  const worker = async () => {
    while (next < indices.length && more()) out.push(await run(indices[next++]!));
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, indices.length)) }, worker));
  return out;
}

interface DeepConfRun {
  threshold: number;
  traces: DeepConfTrace[];
  warmupCount: number;
  windowSize: number;
}

async function runDeepConf(promptSeq: GeneratorSequence, input: MethodInput, env: MethodEnv, r: Resolved, t0: number): Promise<DeepConfRun> {
  const cueText = exitCueText(env.exitCue);
  const cellsPerTrace = env.maxTokens + (env.answerMaxTokens ?? 64) + 64;
  const room = Math.floor((env.generator.capacity().contextTokens - promptSeq.length) / cellsPerTrace);
  const concurrency = Math.max(1, Math.min(r.concurrency ?? Infinity, env.generator.capacity().freeSequences, room));
  const windowSize = r.windowSize ?? scaledWindow(env.maxTokens);

  const runTrace = async (index: number, warmup: boolean, threshold: number | null): Promise<DeepConfTrace> => {
    const seq = promptSeq.fork();
    try {
      const g = new GroupConfidence(windowSize);
      const res = await runRollout(seq, {
        // DeepConf votes a budget-truncated trace as it is, without a forced answer.
        ...traceRolloutOptions(env, input, index, false),
        topLogprobs: r.topK,
        onToken: (step) => g.push(tokenConfidence((step.topLogprobs ?? []).map((t) => t.logprob))),
        onStep:
          threshold === null
            ? undefined
            : () => (shouldStopTrace(g, threshold) ? { action: 'stop', info: { windowConfidence: g.mean } } : { action: 'continue' }),
      });
      const full = res.tokenCounts.exitCue > 0 ? res.text + cueText + res.answerText : res.text;
      const answer = res.end === 'stopped' ? null : deepConfExtract(full);
      return {
        index,
        warmup,
        tokens: { ...res.tokenCounts },
        confidence: g.lowest,
        answer: answer === '' ? null : answer,
        end: res.end,
        stoppedOnline: res.end === 'stopped',
        stopWindow: res.end === 'stopped' ? (res.exitInfo as { windowConfidence: number }).windowConfidence : undefined,
        votes: false,
        finishedMs: performance.now() - t0,
        text: res.text,
        traceTokens: res.tokens,
      };
    } finally {
      seq.dispose();
    }
  };

  const warmupCount = Math.min(r.warmupTraces, r.budget);
  const range = (a: number, b: number) => Array.from({ length: Math.max(0, b - a) }, (_, i) => a + i);
  const warm = await pool(range(0, warmupCount), concurrency, (i) => runTrace(i, true, null));
  const threshold = deepConfThreshold(
    warm.map((t) => t.confidence),
    r.pct,
  );
  for (const t of warm) t.votes = t.confidence >= threshold && t.answer !== null;

  const final: DeepConfTrace[] = [];
  const consensusReached = () => {
    if (r.consensus === undefined) return false;
    const voters = [...warm, ...final].filter((t) => t.votes);
    const v = weightedMajorityVote(voters.map((t) => t.answer), voters.map((t) => t.confidence), r.answerKey);
    return v.total > 0 && v.weight / v.total >= r.consensus;
  };
  await pool(
    range(warmupCount, r.budget),
    concurrency,
    async (i) => {
      const t = await runTrace(i, false, threshold);
      // A finished trace below the threshold is dropped as if stopped (deepconf-online.py, after generation).
      t.votes = !t.stoppedOnline && t.confidence >= threshold && t.answer !== null;
      final.push(t);
      return t;
    },
    () => !consensusReached(),
  );
  const traces = [...warm, ...final].sort((a, b) => a.index - b.index);
  return { threshold, traces, warmupCount, windowSize };
}

/** The outcome of the first `budget` traces of a run (all of them by default). */
function deepConfOutcome(run: DeepConfRun, r: Resolved, input: MethodInput, budget = run.traces.length): MethodOutcome {
  const traces = run.traces.filter((t) => t.index < budget);
  const voters = traces.filter((t) => t.votes);
  const vote = weightedMajorityVote(voters.map((t) => t.answer), voters.map((t) => t.confidence), r.answerKey);
  // The response is the most confident trace that voted for the winner: the trace viewer shows it, and its tokens are
  // the output. Every trace's work is decoded, the prompt prefilled once (the traces fork it).
  const shown =
    voters.filter((t) => vote.answer !== null && r.answerKey(t.answer!) === r.answerKey(vote.answer)).sort((a, b) => b.confidence - a.confidence)[0] ??
    traces[0]!;
  const work = addWork(promptWork(input), ...traces.map((t) => workOf(t.tokens)));
  const tokens: TokenCounts = withWork({ ...shown.tokens, decoded: 0, prefilled: 0 }, work);
  return {
    answerText: vote.answer === null ? '' : `\\boxed{${vote.answer}}`,
    answer: vote.answer,
    text: shown?.text ?? '',
    traceTokens: shown?.traceTokens.slice() ?? [],
    end: 'vote',
    tokens,
    exit: null,
    wallMs: Math.max(0, ...traces.map((t) => t.finishedMs)),
    extra: {
      end: 'vote',
      threshold: run.threshold,
      percentile: r.pct,
      windowSize: run.windowSize,
      topK: r.topK,
      budget,
      traceCount: traces.length,
      warmupTraces: run.warmupCount,
      stoppedOnline: traces.filter((t) => t.stoppedOnline).length,
      voters: voters.length,
      voteShare: vote.total > 0 ? vote.weight / vote.total : 0,
      traces: traces.map((t) => ({
        index: t.index,
        warmup: t.warmup,
        confidence: t.confidence,
        answer: t.answer,
        end: t.end,
        stopWindow: t.stopWindow,
        votes: t.votes,
        tokens: t.tokens.total,
        decoded: t.tokens.decoded,
      })),
    },
  };
}

/** Traces fork from the prompt; token confidence needs the top-k log-probabilities of every step. */
function deepConfNeeds(r: Resolved): Requirement[] {
  return ['fork', { topLogprobs: r.topK }];
}

/** DeepConf online as a method. Name `deepconf-low` / `deepconf-high`, setting `budget=<traces>`. */
export function deepConf(opts: DeepConfOptions = {}): ReasoningMethod {
  const r = resolve(opts);
  return {
    name: methodName(r),
    setting: `budget=${r.budget}`,
    requires: deepConfNeeds(r),
    async solve(input, env) {
      const t0 = performance.now();
      return withPrompt(env, input.promptTokens, async (seq) => deepConfOutcome(await runDeepConf(seq, input, env, r, t0), r, input));
    },
  };
}

/**
 * Outcomes of several trace budgets from one run at the largest: traces are seeded by their index and the threshold
 * comes from the same warm-up, so budget B's traces are the run's first B (each budget must cover the warm-up).
 * Token counts and votes are those of the B traces; wall time is when the last of them finished, an estimate of a
 * run at B alone (which would decode in smaller batches). With several traces decoding together, batch composition
 * can change a trace's floating-point rounding, so a trace is the same as in a run at B up to such rounding.
 */
export function deepConfSweep(budgets: readonly number[], opts: Omit<DeepConfOptions, 'budget' | 'consensus'> = {}): ReasoningSweep {
  if (budgets.length === 0) throw new InvalidInputError('a DeepConf sweep needs at least one budget');
  const warmup = opts.warmupTraces ?? DEEPCONF_DEFAULTS.warmupTraces;
  for (const b of budgets) {
    if (!Number.isInteger(b) || b < warmup) {
      throw new InvalidInputError(`every swept budget must be an integer of at least the ${warmup} warm-up traces (got ${b})`);
    }
  }
  const max = Math.max(...budgets);
  const r = resolve({ ...opts, budget: max });
  return {
    name: methodName(r),
    settings: budgets.map((b) => `budget=${b}`),
    requires: deepConfNeeds(r),
    async solveAll(input, env) {
      const t0 = performance.now();
      return withPrompt(env, input.promptTokens, async (seq) => {
        const run = await runDeepConf(seq, input, env, r, t0);
        return new Map(budgets.map((b) => [`budget=${b}`, deepConfOutcome(run, r, input, b)] as const));
      });
    },
  };
}
