/**
 * One reasoning rollout with a decision hook at every generated token. Every method (full rollout, LYNX, DEER,
 * DeepConf, Dynasor-CoT, token budgets) is a hook on this loop, so they all generate, exit and count tokens the same way.
 */
import type { GeneratedToken, SamplerOptions, TapLayer } from '../engine/index.js';
import type { GeneratorSequence } from '../backends/generator.js';
import { exitCueText, forcedExit, type ExitAccounting, type ForcedExitResult } from './forced-exit.js';
import { tokenCounts, type TokenCounts } from './token-counts.js';

export interface RolloutStep {
  token: number;
  /** Index of this token among the generated ones (0-based). */
  index: number;
  /** The text this token adds, and all generated text so far (including it). */
  piece: string;
  text: string;
  /** True while the model is still inside its thinking (no `</think>` generated yet). */
  thinking: boolean;
  hidden?: Map<TapLayer, Float32Array>;
  logprob?: number;
  topLogprobs?: GeneratedToken['topLogprobs'];
}

/** How the thinking ended: the think-end token, the model stopping while thinking, or the token budget. */
export interface ThinkingEnd {
  reason: 'think-end' | 'stopped' | 'budget';
  /** Generated tokens so far (the think-end token included). */
  tokens: number;
}

/** What a method decides after a token. */
export type StepDecision =
  | { action: 'continue' }
  /**
   * Stop thinking and answer. `cut` = generated tokens to keep (default all); `answer` reuses a probe's answer, whose
   * decoding the method counts itself (the rollout's `decoded` / `prefilled` then leave it out).
   */
  | {
      action: 'exit';
      cut?: number;
      answer?: ForcedExitResult;
      /** The cue text `answer` was decoded after, when it is not the rollout's exit cue (for `onText`). */
      cue?: string;
      info?: Record<string, unknown>;
    }
  /** Abandon the trace with no answer (DeepConf's early stop). */
  | { action: 'stop'; info?: Record<string, unknown> };

export interface RolloutOptions {
  /** Maximum generated tokens (thinking + answer) before a budget exit. */
  maxTokens: number;
  sampler: SamplerOptions;
  /** Exit cue for early and budget exits. */
  exitCue: string;
  /** Maximum answer tokens after an exit cue. Default 64. */
  answerMaxTokens?: number;
  /** Where the rollout's own forced exits stop decoding. Default 'box'. */
  exitAccounting?: ExitAccounting;
  /**
   * A trace that runs out of tokens while still thinking gets a forced answer (the exit cue and a decoded answer:
   * budget forcing). Default true. false: it ends there, and the truncated text is what gets graded, as in LYNX's
   * scripts and DeepConf's.
   */
  budgetForcing?: boolean;
  tapLayers?: TapLayer[];
  tapWhen?: (token: number, text: string) => boolean;
  topLogprobs?: number;
  logprobs?: boolean;
  /** Called after every decoded thinking token; may fork `seq` to probe. */
  onStep?: (step: RolloutStep, seq: GeneratorSequence) => StepDecision | Promise<StepDecision>;
  /**
   * Called once when the thinking ends and no decision has stopped it: right after the think-end token (before the
   * answer is generated; `onStep` does not see that token), or when generation ends while still thinking (the model
   * stopped, or the budget ran out). A decision point that only the end of the thinking completes (a cue word right
   * before `</think>` or at the very end) can still exit here, with a `cut` before it.
   */
  onThinkingEnd?: (end: ThinkingEnd, seq: GeneratorSequence) => StepDecision | Promise<StepDecision>;
  /**
   * Observes every decoded generated token (thinking, the `</think>` token and answer tokens alike), before `onStep`;
   * it cannot change the rollout. DeepConf needs it: its group confidence runs over the whole trace.
   */
  onToken?: (step: RolloutStep) => void;
  /**
   * The trace as its reader sees it, streamed: the text of each kept generated token once no exit can cut it any more
   * (tokens from `commitHorizon()` on are held back), then, on an early or budget exit, the exit cue and the decoded
   * answer. Concatenated: `text`, then (after an exit cue) the cue and `answerText`.
   */
  onText?: (piece: string, token?: StreamedToken) => void;
  /**
   * The first generated token index a later exit may still cut at (asked after every `onStep`); tokens before it are
   * final. Default: every token is final once `onStep` lets it stand.
   */
  commitHorizon?: () => number;
  /** Abort the rollout: the next step throws `signal.reason` (the sequence keeps what was decoded). */
  signal?: AbortSignal;
}

/** A sampled token of the streamed trace (appended text such as an exit cue has none). */
export interface StreamedToken {
  id: number;
  /** With `logprobs` / `topLogprobs` (answer tokens of a forced exit always carry their logprob). */
  logprob?: number;
  topLogprobs?: GeneratedToken['topLogprobs'];
}

export interface RolloutResult {
  /** Generated text up to the end (natural) or up to the exit point. */
  text: string;
  tokens: number[];
  /** How the trace ended: the model finished, a method exited early, the token budget ran out, or it was abandoned. */
  end: 'natural' | 'exit' | 'budget' | 'stopped';
  /** For 'exit': the index of the token after which the method exited (tokens kept = cut). */
  exitIndex?: number;
  exitInfo?: Record<string, unknown>;
  /** The answer text: what the model wrote after `</think>` (natural) or decoded after the exit cue. */
  answerText: string;
  /** Boxed answer decoded after an exit cue (natural ends leave extraction to the evaluator). */
  boxedAnswer?: string | null;
  /**
   * Output tokens, and the rollout's own work: `decoded` = every token it sampled (past a cut too, and the
   * end-of-sequence token) plus the answer of a forced exit it decoded; `prefilled` = the exit cue it appended. The
   * prompt (prefilled before) and an `answer` a decision handed over are the caller's to count.
   */
  tokenCounts: TokenCounts;
  wallMs: number;
}

/**
 * Run one rollout on a sequence that already holds the prompt. The sequence is left holding the whole trace.
 */
export async function runRollout(seq: GeneratorSequence, opts: RolloutOptions): Promise<RolloutResult> {
  const t0 = performance.now();
  const model = seq.vocab;
  const promptLength = seq.length;
  const thinkEnd = model.info.special.thinkEnd;
  const tokens: number[] = [];
  let text = '';
  let thinking = true;
  let reasoningTokens = -1; // tokens up to and including </think>, once seen
  let decision: StepDecision = { action: 'continue' };
  let naturalEnd = false;
  const pieces: { text: string; token: StreamedToken }[] = [];
  let emitted = 0;
  /** Stream the text of the kept tokens before `upTo`. */
  const commit = (upTo: number) => {
    if (!opts.onText) return;
    const end = Math.min(upTo, pieces.length);
    for (; emitted < end; emitted++) opts.onText(pieces[emitted]!.text, pieces[emitted]!.token);
  };
  const aborted = () => {
    if (opts.signal?.aborted) throw opts.signal.reason ?? new Error('the rollout was aborted');
  };
  let sampled = 0; // every token generate() handed out, the stopping one included

  for await (const t of seq.generate({
    maxTokens: opts.maxTokens,
    sampler: opts.sampler,
    tapLayers: opts.tapLayers,
    tapWhen: opts.tapWhen ? (token, txt) => thinking && opts.tapWhen!(token, txt) : undefined,
    topLogprobs: opts.topLogprobs,
    logprobs: opts.logprobs,
  })) {
    aborted();
    sampled++;
    if (t.stopped) {
      naturalEnd = true;
      break;
    }
    tokens.push(t.token);
    if (opts.onText) pieces.push({ text: t.text, token: { id: t.token, logprob: t.logprob, topLogprobs: t.topLogprobs } });
    text += t.text;
    const endsThinking = thinking && (t.token === thinkEnd || (thinkEnd === undefined && text.includes('</think>')));
    if (endsThinking) {
      thinking = false;
      reasoningTokens = tokens.length;
    }
    const step: RolloutStep = {
      token: t.token,
      index: t.index,
      piece: t.text,
      text,
      thinking,
      hidden: t.hidden,
      logprob: t.logprob,
      topLogprobs: t.topLogprobs,
    };
    opts.onToken?.(step);
    if (endsThinking && opts.onThinkingEnd) {
      decision = await opts.onThinkingEnd({ reason: 'think-end', tokens: tokens.length }, seq);
      if (decision.action !== 'continue') break;
    }
    if (!endsThinking && thinking && opts.onStep) {
      decision = await opts.onStep(step, seq);
      if (decision.action !== 'continue') break;
    }
    // While thinking, a later exit may cut back to the method's horizon; after `</think>` nothing is cut.
    commit(thinking && opts.commitHorizon ? opts.commitHorizon() : tokens.length);
  }
  aborted();
  if (thinking && decision.action === 'continue' && opts.onThinkingEnd) {
    decision = await opts.onThinkingEnd({ reason: naturalEnd ? 'stopped' : 'budget', tokens: tokens.length }, seq);
  }

  const answerMax = opts.answerMaxTokens ?? 64;
  const exitOpts = { cue: opts.exitCue, maxTokens: answerMax, accounting: opts.exitAccounting, mode: 'inplace' as const, onText: opts.onText, signal: opts.signal };
  if (decision.action === 'stop') {
    return finish('stopped', tokens.length, 0, 0, '', { decoded: sampled, prefilled: 0 }, undefined, decision.info);
  }
  if (decision.action === 'exit') {
    const cut = decision.cut ?? tokens.length;
    commit(cut);
    const own = decision.answer === undefined;
    if (!own && opts.onText) opts.onText(exitCueText(decision.cue ?? opts.exitCue) + decision.answer!.text);
    const exit = decision.answer ?? (await forcedExit(seq, { ...exitOpts, at: promptLength + cut }));
    tokens.length = cut;
    text = model.detokenize(tokens);
    const work = { decoded: sampled + (own ? exit.answerTokens : 0), prefilled: own ? exit.cueTokens : 0 };
    return finish('exit', cut, exit.cueTokens, exit.answerTokens, exit.text, work, exit.answer, decision.info, cut - 1);
  }
  commit(tokens.length);
  if (naturalEnd || !thinking) {
    // The model closed its thinking (and possibly answered) by itself. A natural end's end-of-sequence token counts
    // as the last answer token, as LYNX counts it (`len(seq_ids) - enc_len` includes it).
    const reasoning = reasoningTokens >= 0 ? reasoningTokens : tokens.length;
    const answerText = reasoningTokens >= 0 ? model.detokenize(tokens.slice(reasoningTokens)) : '';
    const eos = naturalEnd ? 1 : 0;
    if (naturalEnd || reasoningTokens >= 0) {
      return finish(naturalEnd ? 'natural' : 'budget', reasoning, 0, tokens.length - reasoning + eos, answerText, { decoded: sampled, prefilled: 0 });
    }
  }
  if (opts.budgetForcing === false) {
    // Out of budget while thinking, and no forced answer: the truncated trace is the response.
    return finish('budget', tokens.length, 0, 0, '', { decoded: sampled, prefilled: 0 });
  }
  // Out of budget while still thinking: force the exit so the trace still yields an answer (budget forcing).
  const exit = await forcedExit(seq, exitOpts);
  return finish('budget', tokens.length, exit.cueTokens, exit.answerTokens, exit.text, { decoded: sampled + exit.answerTokens, prefilled: exit.cueTokens }, exit.answer);

  function finish(
    end: RolloutResult['end'],
    reasoning: number,
    exitCue: number,
    answer: number,
    answerText: string,
    work: { decoded: number; prefilled: number },
    boxedAnswer?: string | null,
    exitInfo?: Record<string, unknown>,
    exitIndex?: number,
  ): RolloutResult {
    return {
      text,
      tokens: tokens.slice(),
      end,
      exitIndex,
      exitInfo,
      answerText,
      boxedAnswer,
      tokenCounts: tokenCounts(reasoning, exitCue, answer, work),
      wallMs: performance.now() - t0,
    };
  }
}
