/**
 * The analytic speedup of speculative decoding (Leviathan et al. 2023, eq. 1 generalised to a verification cost):
 * with each draft accepted independently with probability α and γ drafts per verification, a verification emits
 * E = (1 - α^(γ+1)) / (1 - α) tokens on average (the accepted drafts and the full model's next token) and costs
 * γ·c + v full decode steps, where c is a draft step's cost and v a verification's (a batch of γ+1 tokens), both in
 * units of one full one-token decode. The speedup over plain decoding is E / (γ·c + v).
 */

/** Expected tokens per verification for acceptance rate `alpha` and `gamma` drafts. */
export function expectedTokensPerVerification(alpha: number, gamma: number): number {
  if (alpha >= 1) return gamma + 1;
  return (1 - Math.pow(alpha, gamma + 1)) / (1 - alpha);
}

export interface SpeedupInputs {
  /** Probability that a draft is accepted. */
  alpha: number;
  /** Drafts per verification. */
  gamma: number;
  /** Cost of one draft step over one full decode step. */
  draftCost: number;
  /** Cost of verifying gamma + 1 tokens over one full decode step. Default 1 (memory-bound: a batch costs a step). */
  verifyCost?: number;
}

export function speculativeSpeedup(o: SpeedupInputs): number {
  return expectedTokensPerVerification(o.alpha, o.gamma) / (o.gamma * o.draftCost + (o.verifyCost ?? 1));
}

/** The draft length that maximises the speedup, 1 to `maxGamma`. */
export function bestDraftLength(o: Omit<SpeedupInputs, 'gamma'> & { maxGamma?: number }): { gamma: number; speedup: number } {
  let best = { gamma: 1, speedup: speculativeSpeedup({ ...o, gamma: 1 }) };
  for (let g = 2; g <= (o.maxGamma ?? 16); g++) {
    const s = speculativeSpeedup({ ...o, gamma: g });
    if (s > best.speedup) best = { gamma: g, speedup: s };
  }
  return best;
}
