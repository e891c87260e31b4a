/**
 * SpecReason (Pan et al., 2025, ruipeterpan/specreason): the small model writes each reasoning step (up to a blank
 * line); the big model reads it and scores it 0-9 with a judge prompt, one greedy token; a step scoring below the
 * threshold (7) is dropped and the big model writes that step instead.
 *
 * Here the big model's cache already holds every accepted step when it judges the next one, and the judge prompt runs
 * on a fork of it, so judging a step costs its own tokens and the prompt; the original re-sends the whole text for the
 * score and again for a rewrite.
 */
import { InvalidInputError } from '../../util/errors.js';
import type { CompositionPolicy, Speculate } from './policy.js';
import { withDefaults } from '../../util/defaults.js';

/** SpecReason's judge prompt, appended after the step; the next token is the score. */
export const SPECREASON_JUDGE =
  '\nEvaluate the last reasoning step solely based on factual correctness and logical validity. Ignore style, phrasing, or overall usefulness—only judge whether the step is objectively correct and logically follows from prior steps. Assign a score from 0 to 9.\n<think>I think the quality score is: ';

export const SPECREASON_DEFAULTS: Readonly<Speculate> = Object.freeze({ stepEnd: '\n\n', judge: SPECREASON_JUDGE, threshold: 7, maxStepTokens: 512 });

export function specReasonPolicy(opts: Partial<Speculate> = {}): CompositionPolicy {
  const s: Speculate = withDefaults(SPECREASON_DEFAULTS, opts);
  if (!(s.threshold >= 0 && s.threshold <= 10)) throw new InvalidInputError(`specreason: the score threshold must be in 0..10 (got ${s.threshold})`);
  if (!Number.isInteger(s.maxStepTokens) || s.maxStepTokens < 1) throw new InvalidInputError(`specreason: the step length must be a positive integer (got ${s.maxStepTokens})`);
  if (s.stepEnd === '') throw new InvalidInputError('specreason: give the text that ends a step');
  return {
    name: 'specreason',
    setting: `threshold=${s.threshold}`,
    hiddenFromBig: [],
    requiresSmall: ['fork'],
    requiresBig: ['fork'],
    usesBig: true,
    nextTurn: () => ({ model: 'speculate', speculate: s }),
  };
}
