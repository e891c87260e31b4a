/**
 * SplitReason's random-switch baseline: the trace is cut into chunks of `switch_chunk` tokens and each chunk is written
 * by the big model with probability 1 / (switch_ratio + 1), else by the small one. Neither model sees tags or hints.
 *
 * Each chunk's coin is a pure function of the problem's seed and the chunk's index, so a fork or a rerun of the same
 * trace switches at the same places.
 */
import { InvalidInputError } from '../../util/errors.js';
import { Rng } from '../../util/rng.js';
import type { CompositionPolicy, Turn } from './policy.js';
import { BIG_CLOSE, BIG_OPEN, OFFLOAD_HINT } from './protocol.js';

/**
 * For a small model trained on SplitReason's tags (the demo's): prompt it with the hint in a baseline too, as it was
 * trained, and keep the tags it may write out of the big model's copy. The original's baselines use no hint.
 */
export interface OffloadPrompting {
  offloadHint?: boolean;
}

export function offloadPrompting(o: OffloadPrompting): Pick<CompositionPolicy, 'promptHint' | 'hiddenFromBig'> {
  return o.offloadHint ? { promptHint: OFFLOAD_HINT, hiddenFromBig: [BIG_OPEN, BIG_CLOSE] } : { hiddenFromBig: [] };
}

export interface RandomSwitchOptions extends OffloadPrompting {
  /** Small chunks per big chunk on average: P(big) = 1 / (ratio + 1). Any ratio >= 0 (0: big only). */
  switchRatio: number;
  /** Tokens per chunk. Default 16. */
  switchChunk?: number;
}

/** P(big) of a switch ratio, and back: the ratio that offloads a given share of the chunks. */
export const bigChance = (switchRatio: number): number => 1 / (switchRatio + 1);
export const ratioForShare = (share: number): number => (1 - share) / share;

/** Is chunk `index` of a trace with policy seed `seed` the big model's? */
export function chunkIsBig(seed: number, index: number, switchRatio: number): boolean {
  return Rng.derive(seed, `switch-chunk-${index}`).next() < bigChance(switchRatio);
}

export function randomSwitchPolicy(opts: RandomSwitchOptions): CompositionPolicy {
  const ratio = opts.switchRatio;
  const chunk = opts.switchChunk ?? 16;
  if (!(ratio >= 0) || !Number.isFinite(ratio)) throw new InvalidInputError(`random switch: the switch ratio must be a number >= 0 (got ${ratio})`);
  if (!Number.isInteger(chunk) || chunk < 1) throw new InvalidInputError(`random switch: the chunk must be a positive number of tokens (got ${chunk})`);
  return {
    name: 'random-switch',
    setting: `ratio=${+ratio.toFixed(4)},chunk=${chunk}${opts.offloadHint ? ',hint' : ''}`,
    ...offloadPrompting(opts),
    requiresSmall: [],
    usesBig: true,
    nextTurn(state): Turn {
      const index = Math.floor(state.generated / chunk);
      const maxTokens = chunk - (state.generated % chunk);
      return { model: chunkIsBig(state.seed, index, ratio) ? 'big' : 'small', maxTokens };
    },
  };
}
