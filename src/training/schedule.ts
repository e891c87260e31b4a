/** The learning-rate schedule and the order rows are trained in: the same for every trainer. */
import { Rng } from '../util/rng.js';

/** Learning rate of 1-based step `step` of `total`: linear warm-up, then cosine from lr to lrMin. */
export function cosineLr(step: number, total: number, lr: number, lrMin: number, warmupSteps: number): number {
  if (warmupSteps > 0 && step <= warmupSteps) return Math.max(lrMin, (lr * step) / warmupSteps);
  const span = Math.max(1, total - warmupSteps);
  const p = Math.min(1, Math.max(0, (step - warmupSteps) / span));
  return lrMin + 0.5 * (lr - lrMin) * (1 + Math.cos(Math.PI * p));
}

/** The rows of one epoch in training order: shuffled per epoch from the seed (the same for both training paths). */
export function epochOrder(nRows: number, epoch: number, o: { shuffle: boolean; seed: number }): number[] {
  const order = Array.from({ length: nRows }, (_, i) => i);
  if (o.shuffle) Rng.derive(o.seed, `epoch-${epoch}`).shuffle(order);
  return order;
}
