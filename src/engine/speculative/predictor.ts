/**
 * The token-predictor seam of speculative decoding: something that proposes the next few tokens of a sequence,
 * which the full model then verifies in one batched decode. The shape follows node-llama-cpp's TokenPredictor
 * (reset/pushTokens/predictTokens), reduced to one call: the predictor is handed the target sequence (every token
 * in it decoded at full depth and final) and the pending token, and returns its drafts. A draft carries the
 * distribution it was drawn from when the standard rejection rule needs it.
 */
import type { Sequence } from '../sequence.js';

export interface DraftToken {
  token: number;
  /** The draft distribution the token was drawn from (probabilities over the vocabulary); absent for an argmax draft. */
  probs?: Float32Array;
}

export interface PredictionRequest {
  /** The sequence being generated: all its tokens are decoded and final. */
  target: Sequence;
  /** The next token, sampled from the full model but not decoded yet: the drafts continue it. */
  pending: number;
  /** Draft at most this many tokens (>= 1). */
  max: number;
  /**
   * Sampling with the rejection rule: draw a draft from the predictor's logits (after the generation's temperature
   * and truncation) and return it with its distribution. Absent: propose the argmax.
   */
  draw?: (logits: Float32Array) => DraftToken;
  signal?: AbortSignal;
}

export interface TokenPredictor {
  readonly name: string;
  /** Proposed continuations of `pending`, at most `max`; fewer (or none) where the predictor is unsure. */
  predict(req: PredictionRequest): Promise<DraftToken[]>;
  /** Partial-depth decodes it ran and those whose early stop did not hold, since it was created. */
  readonly counters?: { partialDecodes: number; partialStopsIgnored: number };
  /** Free what it holds (a draft sequence). */
  dispose(): void;
}

/** A predictor per generation: one for each sequence being generated (a draft model keeps a sequence of its own). */
export type PredictorFactory = (target: Sequence) => TokenPredictor;

/** A head on an intermediate block: hidden state of block `layer` (llama.cpp's `l_out-layer`) to next-token logits. */
export interface LayerHead {
  readonly layer: number;
  /** Logits of one hidden state (nEmbd floats): one per vocabulary token, or one per entry of `tokens`. */
  logits(hidden: Float32Array): Float32Array;
  /**
   * A head over part of the vocabulary (a draft vocabulary of frequent tokens, as FR-Spec drafts): the token id of
   * each logit. Absent: logit i is token i. Drafting only; the full model's verification keeps decoding lossless.
   */
  readonly tokens?: Int32Array;
}

/** A head's logits over the whole vocabulary: a partial head's tokens at their ids, -Infinity (probability 0) elsewhere. */
export function fullVocabularyLogits(head: LayerHead, logits: Float32Array, nVocab: number): Float32Array {
  if (!head.tokens) return logits;
  const out = new Float32Array(nVocab).fill(-Infinity);
  for (let i = 0; i < head.tokens.length; i++) out[head.tokens[i]!] = logits[i]!;
  return out;
}
