/**
 * A draft vocabulary: the tokens a head drafts from, the ones the full model emits most (FR-Spec's frequency-ranked
 * drafting, Zhao et al. 2025). A head's matrix is a [nVocab, nEmbd] product per draft step; on a model with a large
 * vocabulary (151,936 tokens for R1-Distill-Qwen) that product is a large share of a shallow draft's cost, and most
 * rows are tokens the model almost never emits. Drafting from the top N keeps decoding lossless (the full model still
 * verifies every draft) and only loses the drafts whose token is outside the N.
 *
 * The ranking comes from the heads' training data: how often each token was the full model's argmax there
 * (`lynx heads train` stores the counts beside the heads). Heads trained without counts rank by token id, which in a
 * BPE vocabulary roughly follows merge order and so frequency.
 */
import { InvalidInputError } from '../../util/errors.js';

/** Add each row's argmax token to `counts` (one slot per vocabulary token). */
export function countArgmax(counts: Int32Array, argmax: ArrayLike<number>): void {
  for (let i = 0; i < argmax.length; i++) {
    const t = argmax[i]!;
    if (t >= 0 && t < counts.length) counts[t]!++;
  }
}

/** The `n` draft tokens: the most frequent argmaxes, ties and unseen tokens by id; returned in ascending id order. */
export function draftVocabulary(nVocab: number, n: number, counts?: ArrayLike<number>): Int32Array {
  if (!Number.isInteger(n) || n < 1 || n > nVocab) throw new InvalidInputError(`a draft vocabulary must be 1 to ${nVocab} tokens (got ${n})`);
  if (counts && counts.length !== nVocab) throw new InvalidInputError(`argmax counts cover ${counts.length} tokens; the vocabulary has ${nVocab}`);
  const ids = Int32Array.from({ length: nVocab }, (_, i) => i);
  if (counts) ids.sort((a, b) => counts[b]! - counts[a]! || a - b);
  return ids.subarray(0, n).sort();
}

/** The rows of `tokens` from a [nVocab, nEmbd] matrix. */
export function gatherRows(matrix: Float32Array, nEmbd: number, tokens: Int32Array): Float32Array {
  const out = new Float32Array(tokens.length * nEmbd);
  for (let i = 0; i < tokens.length; i++) out.set(matrix.subarray(tokens[i]! * nEmbd, (tokens[i]! + 1) * nEmbd), i * nEmbd);
  return out;
}

/** Share of `counts` (argmax events) the tokens cover: the ceiling on a draft vocabulary's acceptance, against a full head's. */
export function argmaxCoverage(counts: ArrayLike<number>, tokens: Int32Array): number {
  let all = 0;
  for (let i = 0; i < counts.length; i++) all += counts[i]!;
  let kept = 0;
  for (const t of tokens) kept += counts[t]!;
  return all > 0 ? kept / all : NaN;
}
