/**
 * SplitReason's logprob-subselect baseline (`modes/logprob_subselect.py`): the small model drafts `candidates`
 * continuations of `draftTokens` tokens, the big model scores each by its log-likelihood, the best 1/decay survive
 * (the big model optionally adds `bigTokens` to each), and rounds repeat until one candidate is left; the big model
 * writes the rest of the trace.
 *
 * Better than the original: the score is the big model's log-likelihood of the small model's draft, as its docstring
 * says (the code sums the log-probabilities of ten tokens the big model generates after the draft instead), read
 * from its own cache of the shared prefix; and every candidate is a fork, not a resent prompt.
 */
import { InvalidInputError } from '../../util/errors.js';
import type { CompositionPolicy, Subselect, Turn } from './policy.js';
import { withDefaults } from '../../util/defaults.js';

/** The original's defaults are sized for 16k-token traces (sgen 16, stok 512, sdecay 2, ltok 32); these fit short ones. */
export const SUBSELECT_DEFAULTS: Readonly<Subselect> = Object.freeze({ candidates: 4, draftTokens: 64, decay: 2, bigTokens: 16 });

export function logprobSubselectPolicy(opts: Partial<Subselect> = {}): CompositionPolicy {
  const s: Subselect = withDefaults(SUBSELECT_DEFAULTS, opts);
  if (!Number.isInteger(s.candidates) || s.candidates < 2) throw new InvalidInputError(`logprob subselect: give at least 2 candidates (got ${s.candidates})`);
  if (!Number.isInteger(s.draftTokens) || s.draftTokens < 1) throw new InvalidInputError(`logprob subselect: draft tokens must be a positive integer (got ${s.draftTokens})`);
  if (!Number.isInteger(s.decay) || s.decay < 2) throw new InvalidInputError(`logprob subselect: the decay must be an integer >= 2 (got ${s.decay})`);
  if (!Number.isInteger(s.bigTokens) || s.bigTokens < 0) throw new InvalidInputError(`logprob subselect: big tokens must be an integer >= 0 (got ${s.bigTokens})`);
  return {
    name: 'logprob-subselect',
    setting: `candidates=${s.candidates},draft=${s.draftTokens},decay=${s.decay},big=${s.bigTokens}`,
    hiddenFromBig: [],
    requiresSmall: ['fork'],
    requiresBig: ['fork'],
    usesBig: true,
    nextTurn: (state): Turn => (state.generated === 0 ? { model: 'select', subselect: s } : { model: 'big', maxTokens: Infinity }),
  };
}
