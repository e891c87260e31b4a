/**
 * A small and a big generator composed into one: its sequences are `ComposedSequence`s in the small model's
 * vocabulary, written by whichever model the policy picks. One per problem (it counts that problem's work), made by
 * `composeMethod` around any method.
 */
import type { Capabilities, Generator, Vocabulary } from '../../backends/generator.js';
import { ComposedSequence, type ComposeShared } from './composed-sequence.js';
import type { CompositionPolicy } from './policy.js';
import { authorship, newWork, type ComposeStats } from './stats.js';

export interface ComposedGeneratorOptions {
  small: Generator;
  big: Generator;
  policy: CompositionPolicy;
  /** Seed of the policy's own randomness for this problem. */
  seed: number;
  /** The problem's prompt as each model reads it (the small's with the policy's hint). */
  prompts?: { small: readonly number[]; big: readonly number[] };
}

const sameVocabCache = new WeakMap<Vocabulary, WeakMap<Vocabulary, boolean>>();

/** Do two vocabularies turn every id into the same bytes (and agree on the special tokens that end text and thinking)? */
export function sameVocabulary(a: Vocabulary, b: Vocabulary): boolean {
  if (a === b) return true;
  let inner = sameVocabCache.get(a);
  const known = inner?.get(b);
  if (known !== undefined) return known;
  let same = a.info.nVocab === b.info.nVocab && a.info.special.eos === b.info.special.eos && a.info.special.thinkEnd === b.info.special.thinkEnd;
  for (let id = 0; same && id < a.info.nVocab; id++) {
    const x = a.tokenBytes(id);
    const y = b.tokenBytes(id);
    same = x.length === y.length && x.every((v, i) => v === y[i]);
  }
  if (!inner) sameVocabCache.set(a, (inner = new WeakMap()));
  inner.set(b, same);
  return same;
}

export class ComposedGenerator implements Generator {
  readonly name: string;
  readonly capabilities: Readonly<Capabilities>;
  private readonly shared: ComposeShared;
  private main: ComposedSequence | undefined;

  constructor(opts: ComposedGeneratorOptions) {
    const { small, big, policy } = opts;
    const sameVocab = sameVocabulary(small.vocab, big.vocab);
    this.name = `${policy.name} (small ${small.name}, big ${big.name})`;
    const bigTokens = policy.usesBig;
    // Log-probabilities of big tokens are the big model's: they mean something in the small's vocabulary only when the
    // two are the same.
    const bigLogprobs = !bigTokens || (sameVocab && big.capabilities.logprobs);
    this.capabilities = Object.freeze({
      hiddenStates: small.capabilities.hiddenStates,
      fork: small.capabilities.fork && (!bigTokens || big.capabilities.fork),
      logprobs: small.capabilities.logprobs && bigLogprobs,
      topLogprobs: !bigTokens ? small.capabilities.topLogprobs : sameVocab ? Math.min(small.capabilities.topLogprobs, big.capabilities.topLogprobs) : 0,
    });
    this.shared = { small, big, policy, sameVocab, seed: opts.seed, prompts: opts.prompts, work: { small: newWork(), big: { decoded: 0, prefilled: 0 } } };
  }

  get vocab(): Vocabulary {
    return this.shared.small.vocab;
  }

  get sameVocab(): boolean {
    return this.shared.sameVocab;
  }

  capacity(): { contextTokens: number; freeSequences: number } {
    const s = this.shared.small.capacity();
    if (!this.shared.policy.usesBig) return s;
    const b = this.shared.big.capacity();
    return { contextTokens: Math.min(s.contextTokens, b.contextTokens), freeSequences: Math.min(s.freeSequences, b.freeSequences) };
  }

  /** A new composed sequence; the first one made is the problem's main trace (what `stats` reports authorship of). */
  createSequence(): ComposedSequence {
    const seq = new ComposedSequence(this.shared);
    this.main ??= seq;
    return seq;
  }

  /** This problem's work per model, and authorship of the main trace's first `traceTokens` generated tokens. */
  stats(traceTokens?: number): ComposeStats {
    const authors = this.main?.generatedAuthors() ?? [];
    const w = this.shared.work;
    const scores = this.main?.stepScores ?? [];
    return {
      mode: this.shared.policy.name,
      small: { ...w.small },
      big: { ...w.big },
      ...authorship(traceTokens === undefined ? authors : authors.slice(0, traceTokens)),
      ...(scores.length > 0 ? { steps: { accepted: scores.filter((x) => x >= 0).length, rejected: scores.filter((x) => x < 0).length } } : {}),
    };
  }
}
