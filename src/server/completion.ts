/**
 * One completion on the shared context: the request's early-exit method runs on the local generator with the
 * request's sampler and seed, its trace streams out as it is decided (text a later exit could still cut is held back
 * by the method), stop strings end it, and a client that goes away aborts it, which frees its sequences at once.
 *
 * The problem id of a request is `prompt`, as `lynx run` names its one question, so a request with a seed samples
 * exactly the trace `lynx run --seed` samples.
 */
import type { SamplerOptions, TokenLogprob } from '../engine/index.js';
import { methodEnv, traceSampler, withPrompt, type MethodOutcome, type ReasoningMethod } from '../reasoning/method.js';
import { lynxMethod, type ScoredCueEvent } from '../reasoning/lynx/online.js';
import { deer } from '../reasoning/peers/deer.js';
import { dynasorCot } from '../reasoning/peers/dynasor.js';
import type { StreamedToken } from '../reasoning/rollout.js';
import { tokenCounts } from '../reasoning/token-counts.js';
import { DecodingGenerator } from '../backends/decoding.js';
import type { ModelHost } from './host.js';
import type { Draft, EarlyExit } from './schemas.js';

export const REQUEST_PROBLEM_ID = 'prompt';

export interface CompletionJob {
  promptTokens: number[];
  /** Token budget of the trace (thinking + answer), as `lynx run -n`. */
  maxTokens: number;
  sampler: SamplerOptions;
  seed: number;
  /** The sampler's own seed (`sampler_seed`), replacing the one derived from `seed`; only without early exit. */
  samplerSeed?: number;
  stop: string[];
  /** undefined: no log-probabilities; 0: the sampled token's; k: also the top k. */
  logprobs?: number;
  earlyExit: EarlyExit;
  /** Speculative decoding or layer exit (default none). */
  draft?: Draft;
}

/** What the response reports about the request's decoding. */
export interface DraftReport {
  mode: string;
  lossless: boolean;
  drafted: number;
  accepted: number;
  /** Full-depth decodes (verifications) the request took. */
  verifications: number;
  /** Layer exit: tokens chosen by a head, per block. */
  exits?: Record<string, number>;
}

/** A piece of the streamed trace and the sampled tokens it completes (an appended exit cue has none). */
export interface TracePiece {
  text: string;
  tokens: StreamedToken[];
}

export interface CompletionHooks {
  onPiece?: (piece: TracePiece) => void;
  onCueEvent?: (event: ScoredCueEvent) => void;
}

/** What the response reports about early exit. */
export interface EarlyExitReport {
  method: string;
  rule?: string;
  delta?: number;
  triggered: boolean;
  /** Cue event (LYNX), trial answer (DEER) or probe (Dynasor) that exited. */
  event: number | null;
  cue: string | null;
  score: number | null;
  /** The calibrated threshold the score was held to (LYNX) or the confidence threshold (DEER). */
  threshold: number | null;
  /** Reasoning tokens kept before the exit. */
  position: number | null;
  /** Every token decoded for the request: the trace, exit cue and answer, and any probes or trial answers. */
  tokensDecoded: number;
}

export interface CompletionResult {
  text: string;
  finishReason: 'stop' | 'length';
  completionTokens: number;
  reasoningTokens: number;
  outcome?: MethodOutcome;
  earlyExit: EarlyExitReport | null;
  draft?: DraftReport;
}

/**
 * No early exit: sample until the model stops or max_tokens runs out (finish_reason "length"), as any OpenAI server
 * does. No answer is forced at the budget; that is LYNX's evaluation convention, kept for the early-exit methods so
 * that they equal `lynx run`.
 */
export function plainCompletion(samplerSeed?: number): ReasoningMethod {
  return {
    name: 'none',
    setting: 'plain',
    solve: (input, env) =>
      withPrompt(env, input.promptTokens, async (seq) => {
        const t0 = performance.now();
        const vocab = seq.vocab;
        const thinkEnd = vocab.info.special.thinkEnd;
        const tokens: number[] = [];
        let text = '';
        let reasoning = -1;
        let natural = false;
        const top = env.logprobs;
        const sampler = samplerSeed === undefined ? traceSampler(env, input.problemId) : { ...env.sampler, seed: samplerSeed };
        for await (const t of seq.generate({ maxTokens: env.maxTokens, sampler, logprobs: top !== undefined, topLogprobs: top || undefined })) {
          if (env.signal?.aborted) throw env.signal.reason;
          if (t.stopped) {
            natural = true;
            break;
          }
          tokens.push(t.token);
          text += t.text;
          if (reasoning < 0 && t.token === thinkEnd) reasoning = tokens.length;
          env.onText?.(t.text, { id: t.token, logprob: t.logprob, topLogprobs: t.topLogprobs });
        }
        // Without `</think>`, everything is reasoning if the prompt opened the thinking.
        const thinkStart = vocab.info.special.thinkStart;
        const opened = thinkStart !== undefined && input.promptTokens.slice(-3).includes(thinkStart);
        const r = reasoning >= 0 ? reasoning : opened ? tokens.length : 0;
        return {
          answerText: text,
          text,
          traceTokens: tokens,
          end: natural ? 'natural' : 'budget',
          tokens: tokenCounts(r, 0, tokens.length - r, { decoded: tokens.length + (natural ? 1 : 0), prefilled: input.promptTokens.length }),
          exit: null,
          wallMs: performance.now() - t0,
          extra: {},
        };
      }),
  };
}

/** Ends the method when a stop string appears in the streamed text (not an error: finish_reason "stop"). */
class StopReached extends Error {}

/** The method a request's `early_exit` names, on this host. */
export function requestMethod(host: ModelHost, e: EarlyExit, onCueEvent?: (ev: ScoredCueEvent) => void, samplerSeed?: number): ReasoningMethod {
  switch (e.method) {
    case 'none':
      return plainCompletion(samplerSeed);
    case 'lynx':
      return lynxMethod(host.policy(e.rule, e.delta), { onEvent: onCueEvent });
    case 'deer':
      return deer({ threshold: e.threshold });
    case 'dynasor':
      return dynasorCot({ agreement: e.agreement, interval: e.interval });
  }
}

export async function runCompletion(host: ModelHost, job: CompletionJob, signal: AbortSignal, hooks: CompletionHooks = {}): Promise<CompletionResult> {
  // A decoding mode per request, so its counters are this request's.
  const mode = job.draft && job.draft.type !== 'none' ? host.decoding(job.draft) : undefined;
  const generator = mode ? new DecodingGenerator(host.ready.generator, mode) : host.ready.generator;
  const vocab = generator.vocab;
  const method = requestMethod(host, job.earlyExit, hooks.onCueEvent, job.samplerSeed);
  const stopper = new StopFilter(job.stop);
  const controller = new AbortController();
  const onAbort = () => controller.abort(signal.reason);
  signal.addEventListener('abort', onAbort, { once: true });
  if (signal.aborted) onAbort();
  let text = '';
  let sampled = 0;
  let appended = '';
  let pending: StreamedToken[] = [];
  const emit = (piece: TracePiece) => {
    text += piece.text;
    hooks.onPiece?.(piece);
  };
  const env = methodEnv({
    generator,
    sampler: job.sampler,
    maxTokens: job.maxTokens,
    exitCue: 'paper',
    seed: job.seed,
    signal: controller.signal,
    logprobs: job.logprobs,
    onText: (piece, token) => {
      if (token) {
        sampled++;
        pending.push(token);
      } else {
        appended += piece;
      }
      const { pass, stopped } = stopper.push(piece);
      if (pass !== '') {
        emit({ text: pass, tokens: pending });
        pending = [];
      }
      if (stopped) controller.abort(new StopReached());
    },
  });
  let outcome: MethodOutcome | undefined;
  try {
    outcome = await method.solve({ problemId: REQUEST_PROBLEM_ID, promptTokens: job.promptTokens }, env);
    const rest = stopper.finish();
    if (rest !== '' || pending.length > 0) emit({ text: rest, tokens: pending });
  } catch (e) {
    if (!(controller.signal.reason instanceof StopReached) || signal.aborted) throw e;
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
  const stoppedByString = outcome === undefined;
  const appendedTokens = appended === '' ? 0 : vocab.tokenize(appended, { addSpecial: false, parseSpecial: true }).length;
  const completionTokens = outcome ? outcome.tokens.total : sampled + appendedTokens;
  return {
    text,
    finishReason: !stoppedByString && outcome?.end === 'budget' ? 'length' : 'stop',
    completionTokens,
    reasoningTokens: outcome ? outcome.tokens.reasoning : Math.min(completionTokens, sampled),
    outcome,
    earlyExit: job.earlyExit.method === 'none' ? null : exitReport(job.earlyExit, outcome, completionTokens, host),
    ...(mode
      ? {
          draft: {
            mode: mode.name,
            lossless: mode.lossless,
            drafted: mode.stats.drafted,
            accepted: mode.stats.accepted,
            verifications: mode.stats.fullDecodes,
            ...(mode.lossless ? {} : { exits: { ...mode.stats.exits } }),
          },
        }
      : {}),
  };
}

function exitReport(e: EarlyExit, o: MethodOutcome | undefined, completionTokens: number, host: ModelHost): EarlyExitReport {
  const exit = o?.exit ?? null;
  const base = { method: e.method, triggered: exit !== null, event: exit?.event ?? null, cue: exit?.cue ?? null, score: exit?.score ?? null, position: exit?.position ?? null };
  // Every token the method sampled for the request (probes, trial answers, past-the-cut tokens), as its outcome counts them.
  const decoded = o?.tokens.decoded ?? completionTokens;
  if (e.method === 'lynx') {
    const rule = host.policy(e.rule, e.delta).rule;
    return { ...base, rule: e.rule, delta: e.delta, threshold: rule.threshold, tokensDecoded: decoded };
  }
  return { ...base, threshold: e.method === 'deer' ? e.threshold : null, tokensDecoded: decoded };
}

/**
 * Passes streamed text through until a stop string appears; holds back a tail that could be the start of one, so no
 * part of a stop string is ever sent.
 */
export class StopFilter {
  private held = '';
  private readonly longest: number;

  constructor(private readonly stops: readonly string[]) {
    this.longest = Math.max(0, ...stops.map((s) => s.length));
  }

  push(piece: string): { pass: string; stopped: boolean } {
    if (this.stops.length === 0) return { pass: piece, stopped: false };
    const text = this.held + piece;
    let at = -1;
    for (const s of this.stops) {
      const i = text.indexOf(s);
      if (i >= 0 && (at < 0 || i < at)) at = i;
    }
    if (at >= 0) {
      this.held = '';
      return { pass: text.slice(0, at), stopped: true };
    }
    const keep = Math.min(text.length, this.longest - 1);
    this.held = text.slice(text.length - keep);
    return { pass: text.slice(0, text.length - keep), stopped: false };
  }

  finish(): string {
    const rest = this.held;
    this.held = '';
    return rest;
  }
}

/** The OpenAI `top_logprobs` entries of a token. */
export function topLogprobEntries(vocab: { tokenBytes(t: number): Uint8Array }, top: readonly TokenLogprob[] | undefined) {
  return (top ?? []).map((t) => {
    const bytes = vocab.tokenBytes(t.token);
    return { token: Buffer.from(bytes).toString('utf8'), logprob: t.logprob, bytes: Array.from(bytes) };
  });
}
