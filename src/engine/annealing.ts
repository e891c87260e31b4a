/**
 * Exploratory annealed decoding (EAD; Yang et al., 2025, "Let it Calm: Exploratory Annealed Decoding for Verifiable
 * Reinforcement Learning", arXiv 2510.05251): explore early, exploit late. The temperature of the t-th generated token
 * is τ_t = max(1 + τ_max − e^{t/d}, τ_min), starting above 1 and cooling as the response grows; the first `warmup`
 * tokens (the paper's c, template tokens) are sampled at 1.0.
 */

export interface AnnealingSchedule {
  /** Starting temperature τ_max (> 0; the paper uses values above 1, e.g. 1.2). */
  tauMax: number;
  /** Floor τ_min (> 0, at most τ_max). */
  tauMin: number;
  /** Decay d (> 0): larger cools more slowly (the temperature reaches 1 at t = d·ln τ_max). */
  decay: number;
  /** Tokens sampled at 1.0 before the schedule starts (the paper's c). Default 0. */
  warmup?: number;
}

export function annealedTemperature(s: AnnealingSchedule, t: number): number {
  if (t < (s.warmup ?? 0)) return 1;
  return Math.max(1 + s.tauMax - Math.exp(t / s.decay), s.tauMin);
}
