/**
 * Prompt length against the context, checked before any context is allocated: contexts are sized from the longest
 * prompt, so one 10 MB problem in a JSONL would otherwise make a context of millions of cells (tens of GB; the kernel
 * kills the process) or fill the KV cache mid-run with a message that names no problem.
 */
import type { LlamaModel } from '../engine/index.js';
import { problemPromptTokens } from '../reasoning/prompt-tokens.js';
import type { Problem } from '../tasks/problem.js';
import type { PromptStyle } from '../tasks/prompts.js';
import { InvalidInputError } from '../util/errors.js';

export interface PromptLimitOptions {
  /** Longest prompt accepted, in tokens; default the model's training context. */
  maxPromptTokens?: number;
  /** Leave out problems whose prompt is longer (named on `onSkip`) instead of refusing the run. */
  skipLongPrompts?: boolean;
  promptStyle?: PromptStyle;
  /** Told of each problem left out. */
  onSkip?: (problem: Problem, tokens: number, limit: number) => void;
}

/** A prompt longer than any tokenization of it could fit: one token per byte at most, plus the template's. */
const bytesOf = (p: Problem) => Buffer.byteLength(p.problem, 'utf8') + (p.choices ?? []).reduce((n, c) => n + Buffer.byteLength(c.text, 'utf8'), 0);

/**
 * The problems whose prompt fits the limit; a longer one is refused (InvalidInputError naming its id, its length and
 * the options) or, with `skipLongPrompts`, left out.
 */
export function checkPromptLengths(model: LlamaModel, problems: readonly Problem[], o: PromptLimitOptions = {}): Problem[] {
  const limit = o.maxPromptTokens ?? model.info.nCtxTrain;
  const kept: Problem[] = [];
  for (const p of problems) {
    // Tokenizing a 10 MB question takes a while and proves nothing: 8 bytes a token is past any tokenizer's average.
    const tokens = bytesOf(p) > 8 * limit + 4096 ? Math.ceil(bytesOf(p) / 8) : problemPromptTokens(model, p, o.promptStyle).length;
    if (tokens <= limit) {
      kept.push(p);
      continue;
    }
    const size = bytesOf(p) > 8 * limit + 4096 ? `more than ${tokens} tokens (${bytesOf(p)} bytes)` : `${tokens} tokens`;
    if (!o.skipLongPrompts) {
      throw new InvalidInputError(
        `problem ${p.id}: its prompt has ${size}, beyond the ${limit} the model's context allows` +
          `${o.maxPromptTokens === undefined ? ' (its training context)' : ' (--max-prompt-tokens)'}: ` +
          'pass --skip-long-prompts to leave such problems out, or remove it from the benchmark',
      );
    }
    o.onSkip?.(p, tokens, limit);
  }
  if (kept.length === 0) throw new InvalidInputError(`every selected problem's prompt is longer than ${limit} tokens: nothing to run`);
  return kept;
}
