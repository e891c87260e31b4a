/**
 * Forced exit: cut a reasoning trace, append an exit cue such as `</think> Final Answer: \boxed{`, and decode the
 * answer greedily. LYNX labels events with it, DEER and Dynasor-CoT probe with it, and every early-exit method ends
 * with it, so all methods share this one implementation and one token accounting.
 */
import type { SamplerOptions } from '../engine/index.js';
import type { GeneratorSequence } from '../backends/generator.js';
import { InvalidInputError } from '../util/errors.js';

/** Exit cues of the methods this project implements. */
export const EXIT_CUES = {
  /** LYNX paper default. */
  paper: '</think> Final Answer: \\boxed{',
  /** LYNX's alternative for models trained with <answer> tags. */
  answer_tag: '</think><answer> The final answer is \\boxed{',
  /** DEER's trial-answer prompt (appended inside the thinking, at a "Wait"). */
  deer: '\n**Final Answer**\n\\boxed',
  /** Dynasor-CoT's probe. */
  dynasor: '... Oh, I suddenly got the answer to the whole problem, **Final Answer**\n\n\\[ \\boxed{',
} as const;

export type ExitCueName = keyof typeof EXIT_CUES;

/** An exit cue given by name or as literal text. */
export function exitCueText(cue: string): string {
  return (EXIT_CUES as Record<string, string>)[cue] ?? cue;
}

/**
 * Where a forced exit stops decoding. 'box' (default): where the `\boxed{...}` the cue opened closes, which is all the
 * answer a grader reads. 'lynx': to the end-of-sequence token or the answer budget, as LYNX's `generate_from_prefix`
 * (`lynx/utils.py`: Hugging Face `generate` with `max_new_tokens`, `eos_token_id`, no stop string) and so as LYNX's
 * `used_tokens = (pos_rel - 1) + cue_len + added_tokens` counts them. The answer is the box's in both (what follows
 * it is decoded and counted, not kept), so the accounting changes token counts only.
 */
export type ExitAccounting = 'box' | 'lynx';

export const EXIT_ACCOUNTINGS: readonly ExitAccounting[] = ['box', 'lynx'];

export function checkExitAccounting(s: string): ExitAccounting {
  if (!(EXIT_ACCOUNTINGS as readonly string[]).includes(s)) throw new InvalidInputError(`unknown exit accounting '${s}': use box or lynx`);
  return s as ExitAccounting;
}

export interface ForcedExitOptions {
  /** Exit cue text (or a name from EXIT_CUES). */
  cue: string;
  /** Maximum answer tokens to decode. Default 64. */
  maxTokens?: number;
  /** Cut the trace to this many tokens of the sequence before appending the cue (default: no cut). */
  at?: number;
  /**
   * 'fork' (default) leaves `seq` untouched and decodes on a fork that is disposed afterwards (a probe);
   * 'inplace' appends to `seq` itself (the final exit of a trace).
   */
  mode?: 'fork' | 'inplace';
  /** Streams the cue text, then each answer token's text as it is decoded. */
  onText?: (piece: string, token?: { id: number; logprob?: number }) => void;
  /** Stop decoding the answer (throws `signal.reason`). */
  signal?: AbortSignal;
  /** Where decoding stops (see ExitAccounting). Default 'box'. */
  accounting?: ExitAccounting;
  /** Sampler of the answer; default greedy (LYNX's `exit_temperature 0`). DEER samples its trial answers. */
  sampler?: SamplerOptions;
}

export interface ForcedExitResult {
  /** The decoded text after the cue. */
  text: string;
  /** The content of the `\boxed{...}` the cue opened (or the model wrote), or null when it never closed. */
  answer: string | null;
  cueTokens: number;
  /** Tokens decoded after the cue (with 'lynx' accounting, those after the box too; an end-of-sequence token included). */
  answerTokens: number;
  /** Probability of each answer token up to the box, under the model's distribution (DEER's confidence is their mean). */
  tokenProbs: number[];
}

/** Decode an answer after an exit cue (greedy unless a sampler is given); stops as `accounting` says. */
export async function forcedExit(seq: GeneratorSequence, opts: ForcedExitOptions): Promise<ForcedExitResult> {
  const model = seq.vocab;
  const cue = exitCueText(opts.cue);
  const target = (opts.mode ?? 'fork') === 'fork' ? seq.fork() : seq;
  try {
    if (opts.at !== undefined) target.truncate(opts.at);
    const cueTokens = model.tokenize(cue, { addSpecial: false, parseSpecial: true });
    await target.append(cueTokens);
    opts.onText?.(cue);
    const box = new BoxTracker(cue);
    let text = '';
    const tokenProbs: number[] = [];
    let answerTokens = 0;
    let closed = false;
    const toEos = (opts.accounting ?? 'box') === 'lynx';
    for await (const t of target.generate({ maxTokens: opts.maxTokens ?? 64, sampler: opts.sampler ?? { temperature: 0 }, logprobs: true })) {
      if (opts.signal?.aborted) throw opts.signal.reason ?? new Error('the forced exit was aborted');
      answerTokens++;
      if (closed) {
        if (t.stopped) break;
        continue;
      }
      tokenProbs.push(Math.exp(t.logprob ?? 0));
      if (t.stopped) break;
      text += t.text;
      opts.onText?.(t.text, { id: t.token, logprob: t.logprob });
      if (box.push(t.text)) {
        closed = true;
        if (!toEos) break;
      }
    }
    return { text, answer: box.answer(), cueTokens: cueTokens.length, answerTokens, tokenProbs };
  } finally {
    if (target !== seq) target.dispose();
  }
}

/**
 * Follows the last `\boxed` of a growing text and reports when its braces close. The cue may already have opened it
 * (`\boxed{`) or only name it (`\boxed`, DEER), in which case the model writes the opening brace.
 */
export class BoxTracker {
  private text: string;
  private readonly start: number;

  constructor(prefix: string) {
    this.text = prefix;
    const i = prefix.lastIndexOf('\\boxed');
    this.start = i >= 0 ? i : -1;
  }

  /** Add generated text; true once the box is closed. */
  push(piece: string): boolean {
    this.text += piece;
    return this.answer() !== null;
  }

  /** Content of the box once closed, else null. */
  answer(): string | null {
    let from = this.start;
    if (from < 0) {
      from = this.text.lastIndexOf('\\boxed');
      if (from < 0) return null;
    }
    const open = this.text.indexOf('{', from);
    if (open < 0) return null;
    let depth = 0;
    for (let i = open; i < this.text.length; i++) {
      const c = this.text[i];
      if (c === '{') depth++;
      else if (c === '}') {
        depth--;
        if (depth === 0) return this.text.slice(open + 1, i).trim();
      }
    }
    return null;
  }
}
