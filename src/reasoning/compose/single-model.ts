/**
 * The two ends of every composition: the small model alone and the big model alone, run through the same composed
 * sequence so that their records carry the same per-model counts as the composed modes (and LYNX runs on top of them
 * the same way). The model that does not write is never given a token.
 */
import type { CompositionPolicy } from './policy.js';
import { offloadPrompting, type OffloadPrompting } from './random-switch.js';

/** The small model alone (with `offloadHint`, prompted as a SplitReason-trained small model is: it may write tags). */
export function smallOnlyPolicy(opts: OffloadPrompting = {}): CompositionPolicy {
  return {
    name: 'small',
    setting: opts.offloadHint ? 'small-only,hint' : 'small-only',
    ...offloadPrompting(opts),
    requiresSmall: [],
    usesBig: false,
    nextTurn: () => ({ model: 'small', maxTokens: Infinity }),
  };
}

export function bigOnlyPolicy(): CompositionPolicy {
  return { name: 'big', setting: 'big-only', hiddenFromBig: [], requiresSmall: [], usesBig: true, nextTurn: () => ({ model: 'big', maxTokens: Infinity }) };
}
