/**
 * How a generation produces its tokens, when not one full-depth decode per token: the seam behind
 * `GenerateOptions.decoding`. A mode runs inside `Sequence.generate` and keeps its contract: each yielded token is in
 * the sequence (except one that stops generation), an abort or a consumer that stops early leaves the sequence
 * holding exactly the tokens yielded, and the stop rules, taps and log-probabilities work as in plain decoding.
 *
 * Modes: speculative decoding (speculative.ts) with a TokenPredictor (a draft from the model's own first blocks and
 * an early-exit head, self-draft.ts, or a second, smaller model, draft-model.ts), lossless; and layer exit
 * (layer-exit.ts), which emits a head's token when the head is confident, lossy.
 */
import type { Sampler, TokenLogprob } from '../sampler.js';
import type { GenerateOptions, GeneratedToken, Sequence } from '../sequence.js';
import type { StopWatch } from '../stop-watch.js';

/** The next token, sampled but not decoded yet. */
export interface PendingToken {
  token: number;
  logprob?: number;
  top?: TokenLogprob[];
}

/** What `Sequence.generate` hands a mode. */
export interface DecodingRun {
  seq: Sequence;
  opts: GenerateOptions;
  /** The generation's sampler chain (seeded); it drew `first`. */
  sampler: Sampler;
  first: PendingToken;
  /** Text and stop rules of this generation (nothing pushed yet). */
  stops: StopWatch;
  wantLogprob: boolean;
  topLogprobs: number;
}

/** Counters of a mode over every generation it ran (a benchmark or `--json` reads them). */
export interface DecodingStats {
  /** Generations run. */
  runs: number;
  /** Tokens yielded (a token that stops generation excluded). */
  tokens: number;
  /** Full-depth decodes: verifications (speculative), full steps and catch-ups of a partial tail (layer exit). */
  fullDecodes: number;
  /** Speculative: draft tokens proposed, and those the full model accepted. */
  drafted: number;
  accepted: number;
  /** Speculative: verifications whose every draft was accepted. */
  allAccepted: number;
  /** Layer exit: tokens chosen by a head, per block. */
  exits: Record<number, number>;
  /** Decodes stopped after an early block, and those whose stop did not hold (a later graph split ran anyway). */
  partialDecodes: number;
  partialStopsIgnored: number;
  /** Wall time (ms) spent drafting (partial decodes, heads, a draft model) and verifying. */
  draftMs: number;
  verifyMs: number;
}

export function emptyStats(): DecodingStats {
  return { runs: 0, tokens: 0, fullDecodes: 0, drafted: 0, accepted: 0, allAccepted: 0, exits: {}, partialDecodes: 0, partialStopsIgnored: 0, draftMs: 0, verifyMs: 0 };
}

export interface DecodingMode {
  /** Short name for messages and records, e.g. `speculative(heads@3, draft-max 5)`. */
  readonly name: string;
  /** True when the tokens are the full model's (for greedy decoding: the same tokens; for sampling: the same distribution). */
  readonly lossless: boolean;
  readonly stats: DecodingStats;
  /** @internal Called by Sequence.generate. */
  run(r: DecodingRun): AsyncGenerator<GeneratedToken, void, void>;
}
