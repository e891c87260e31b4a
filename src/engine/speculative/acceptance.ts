/**
 * Which drafts the full model accepts, from the logits of one batched verification: row i holds the full model's
 * logits after the pending token and the first i drafts, so row i judges draft i and, where the drafts end or one is
 * rejected, gives the next token.
 *
 * - greedy: accept while the draft is the row's argmax; the next token is the argmax of the first row that disagrees
 *   (or of the last row). The tokens are exactly greedy decoding's, as far as the batched logits equal one-token ones.
 * - match (sampling): draw each row's token with the generation's own sampler chain and accept while it equals the
 *   draft. One draw per emitted token, in order, as in plain decoding: for a seed, the same tokens as plain sampling.
 * - rejection (sampling; Leviathan et al. 2023, Chen et al. 2023): accept draft d ~ q with probability
 *   min(1, p(d)/q(d)); at the first rejection draw from the residual max(0, p - q), renormalised; when every draft
 *   is accepted draw the next token from the last row. Every emitted token is distributed as plain sampling's. An
 *   argmax draft is q = a point mass at d: accept with p(d), else draw from p without d.
 */
import { argmax } from '../sampler.js';
import { drawFrom } from './distribution.js';
import type { DraftToken } from './predictor.js';

export type AcceptRule = 'greedy' | 'match' | 'rejection';

export interface Verdict {
  /** Drafts accepted, a prefix of them. */
  accepted: number;
  /** The full model's token after the accepted drafts: its correction of the first rejected one, or the next token. */
  next: number;
}

export interface AcceptOptions {
  rule: AcceptRule;
  /** match: draw a token from a row of logits with the generation's sampler chain (it advances the chain's RNG). */
  sampleRow?: (logits: Float32Array) => number;
  /** rejection: the distribution the generation's sampler draws from, for a row of logits. */
  targetProbs?: (logits: Float32Array) => Float32Array;
  /** rejection: uniform numbers in [0, 1). */
  uniform?: () => number;
}

export function acceptDrafts(drafts: readonly DraftToken[], row: (i: number) => Float32Array, o: AcceptOptions): Verdict {
  const n = drafts.length;
  if (o.rule === 'greedy' || o.rule === 'match') {
    const pick = o.rule === 'greedy' ? argmax : o.sampleRow;
    if (!pick) throw new Error('internal: the match rule needs sampleRow');
    for (let i = 0; i < n; i++) {
      const t = pick(row(i));
      if (t !== drafts[i]!.token) return { accepted: i, next: t };
    }
    return { accepted: n, next: pick(row(n)) };
  }
  const { targetProbs, uniform } = o;
  if (!targetProbs || !uniform) throw new Error('internal: the rejection rule needs targetProbs and uniform');
  for (let i = 0; i < n; i++) {
    const p = targetProbs(row(i));
    const { token: d, probs: q } = drafts[i]!;
    const qd = q ? q[d]! : 1;
    const ratio = qd > 0 ? p[d]! / qd : 0;
    if (uniform() < Math.min(1, ratio)) continue;
    return { accepted: i, next: residualDraw(p, q, d, uniform()) };
  }
  return { accepted: n, next: drawFrom(targetProbs(row(n)), uniform()) };
}

/** A draw from max(0, p - q) renormalised (q a point mass at d when absent); from p itself if that is empty. */
export function residualDraw(p: Float32Array, q: Float32Array | undefined, d: number, u: number): number {
  const r = new Float32Array(p.length);
  let total = 0;
  for (let i = 0; i < p.length; i++) {
    const v = q ? p[i]! - q[i]! : i === d ? 0 : p[i]!;
    if (v > 0) {
      r[i] = v;
      total += v;
    }
  }
  // p = q leaves nothing (then a rejection has probability 0, so only rounding gets here).
  return total > 0 ? drawFrom(r, u, total) : drawFrom(p, u);
}
