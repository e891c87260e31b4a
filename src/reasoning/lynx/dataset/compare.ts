/** How far apart two datasets' features are: what a remote or resumed build is checked against the local one by. */
import type { Dataset } from './store.js';

/**
 * The largest feature difference of any row relative to that row's largest value (at least 1: hidden states near 0
 * compare absolutely). The datasets must have the same rows.
 */
export function maxRelativeFeatureDiff(a: Dataset, b: Dataset): number {
  const d = a.nFeatures;
  let worst = 0;
  for (let r = 0; r < a.rows; r++) {
    let diff = 0;
    let scale = 1;
    for (let j = r * d; j < (r + 1) * d; j++) {
      diff = Math.max(diff, Math.abs(a.features[j]! - b.features[j]!));
      scale = Math.max(scale, Math.abs(a.features[j]!));
    }
    worst = Math.max(worst, diff / scale);
  }
  return worst;
}
