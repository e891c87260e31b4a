/**
 * Tokens of one answered problem, counted one way for every method, on two footings:
 *
 * - output tokens (`total` = reasoning + exitCue + answer): the response the user reads, the kept reasoning, the exit
 *   cue an early or budget exit appended, and the answer (with the end-of-sequence token of a natural end, which LYNX's
 *   scripts count: Hugging Face's `generate` returns it);
 * - decoded tokens (`decoded`): every token a model sampled for the problem, whatever became of it: the response's own,
 *   and every probe (Dynasor-CoT), trial answer (DEER), forced exit, warm-up, stopped or outvoted trace (DeepConf),
 *   plus the few tokens a method generated past its cut before it decided (a cue word is confirmed by the token after
 *   it). This is the compute a method costs, one decode step per token;
 * - prefilled tokens (`prefilled`): tokens read in batch without sampling: the prompt (once: probes and traces fork
 *   it) and every appended cue (exit cues, probe cues, trial prompts).
 *
 * With more than one model (big/small composition), `models` holds each model's work and `decoded` / `prefilled` are
 * the sums over it.
 */

/** What one model did for a problem: tokens it sampled, tokens it read in batch. */
export interface ModelWork {
  decoded: number;
  prefilled: number;
}

export interface TokenCounts {
  /** Thinking tokens kept (through `</think>` on a natural end; up to the cut on an exit). */
  reasoning: number;
  /** Tokens of the exit cue appended at an early or budget exit. */
  exitCue: number;
  /** Answer tokens after `</think>` or after the exit cue (a natural end's end-of-sequence token included). */
  answer: number;
  /** Output tokens: reasoning + exitCue + answer. */
  total: number;
  /** Every token sampled for the problem (see the file comment). */
  decoded: number;
  /** Every token read without sampling: the prompt and every appended cue. */
  prefilled: number;
  /** Per model (named), when several models worked on the problem; `decoded` and `prefilled` are their sums. */
  models?: Record<string, ModelWork>;
}

/** Counts as records hold them: records written before decoded and prefilled tokens were counted lack those. */
export type RecordedTokenCounts = Omit<TokenCounts, 'decoded' | 'prefilled'> & Partial<Pick<TokenCounts, 'decoded' | 'prefilled'>>;

export const NO_WORK: Readonly<ModelWork> = Object.freeze({ decoded: 0, prefilled: 0 });

/** Counts from the response's parts and the work done. */
export function tokenCounts(reasoning: number, exitCue: number, answer: number, work: ModelWork): TokenCounts {
  return { reasoning, exitCue, answer, total: reasoning + exitCue + answer, decoded: work.decoded, prefilled: work.prefilled };
}

/** Work summed. */
export function addWork(...parts: readonly ModelWork[]): ModelWork {
  return parts.reduce<ModelWork>((a, w) => ({ decoded: a.decoded + w.decoded, prefilled: a.prefilled + w.prefilled }), { decoded: 0, prefilled: 0 });
}

/** The same output with more work on top (probes, trials, the prompt). */
export function withWork(counts: TokenCounts, extra: ModelWork): TokenCounts {
  return { ...counts, decoded: counts.decoded + extra.decoded, prefilled: counts.prefilled + extra.prefilled };
}

/** The work a count records. */
export function workOf(counts: Pick<TokenCounts, 'decoded' | 'prefilled'>): ModelWork {
  return { decoded: counts.decoded, prefilled: counts.prefilled };
}

/**
 * Decoded tokens of a record, or null for records written before decoded tokens were counted (their `total` then was
 * the only figure, and for DEER and DeepConf it meant something else: read them as output tokens).
 */
export function decodedOf(counts: Partial<TokenCounts> | undefined): number | null {
  return counts && typeof counts.decoded === 'number' && Number.isFinite(counts.decoded) ? counts.decoded : null;
}
