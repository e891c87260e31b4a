/**
 * SplitReason's offloading: the small model reasons and writes `<bigmodel>` where it wants help; the big model then
 * continues (its copy of the text has no tags and no hint) until the small model would write `</bigmodel>` after some
 * prefix of the big model's latest chunk, or until the segment cap, where `</bigmodel>` is appended for it.
 */
import { InvalidInputError } from '../../util/errors.js';
import type { CompositionPolicy, Turn } from './policy.js';
import { BIG_CLOSE, BIG_OPEN, OFFLOAD_HINT, SPLIT_DEFAULTS } from './protocol.js';

export interface SplitOptions {
  /** Big tokens between hand-back checks. Default 8 (the original's STREAM_BUCKET). */
  handBackEvery?: number;
  /** Longest big segment in tokens. Default 128 (MAX_BIG_SEGMENT). */
  segmentCap?: number;
}

/** Inside a big segment: the generated text's last open tag comes after its last close tag. */
export function inBigSegment(text: string): boolean {
  const open = text.lastIndexOf(BIG_OPEN);
  return open >= 0 && open > text.lastIndexOf(BIG_CLOSE);
}

export function splitPolicy(opts: SplitOptions = {}): CompositionPolicy {
  const every = opts.handBackEvery ?? SPLIT_DEFAULTS.handBackEvery;
  const cap = opts.segmentCap ?? SPLIT_DEFAULTS.segmentCap;
  for (const [name, v] of [['hand-back interval', every], ['segment cap', cap]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new InvalidInputError(`split: the ${name} must be a positive integer (got ${v})`);
  }
  return {
    name: 'split',
    setting: `segment=${cap},every=${every}`,
    promptHint: OFFLOAD_HINT,
    hiddenFromBig: [BIG_OPEN, BIG_CLOSE],
    requiresSmall: ['fork'],
    usesBig: true,
    nextTurn(state): Turn {
      if (!inBigSegment(state.text)) return { model: 'small', maxTokens: Infinity, until: BIG_OPEN };
      return { model: 'big', maxTokens: cap - state.trailingBig, handBack: { every, tag: BIG_CLOSE, detect: SPLIT_DEFAULTS.detect }, closeWith: BIG_CLOSE };
    },
  };
}
