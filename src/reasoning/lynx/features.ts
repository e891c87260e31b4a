/**
 * Which layers LYNX reads, and how a cue event's feature vector is put together from the engine's taps.
 *
 * LYNX names layers by Hugging Face `hidden_states` index (0 = embeddings, N = output of block N-1). The engine taps
 * block outputs (`l_out-N` = hidden_states[N+1]), so hidden-state index h is tap h-1.
 */
import type { TapLayer } from '../../engine/index.js';
import { InvalidInputError } from '../../util/errors.js';

/** LYNX's choices for known depths (hidden_states indices), else about L/4, L/2, 3L/4 and L. */
export function defaultHiddenStateLayers(nLayer: number): number[] {
  const known: Record<number, number[]> = {
    28: [9, 16, 28], // DeepSeek-R1-Distill-Qwen-1.5B
    32: [8, 16, 24, 32], // 8B models
    64: [16, 32, 48, 64], // QwQ-32B
  };
  if (known[nLayer]) return known[nLayer]!;
  const picks = [Math.round(nLayer / 4), Math.round(nLayer / 2), Math.round((3 * nLayer) / 4), nLayer];
  return [...new Set(picks.filter((h) => h >= 1))];
}

/** Hidden-state indices (1..L) to engine tap layers (block indices 0..L-1). */
export function tapLayersFor(hiddenStateLayers: readonly number[], nLayer: number): number[] {
  return hiddenStateLayers.map((h) => {
    if (!Number.isInteger(h) || h < 1 || h > nLayer) {
      throw new InvalidInputError(`hidden-state layer ${h} is outside 1..${nLayer} (0, the embeddings, is not a block output)`);
    }
    return h - 1;
  });
}

/** Concatenate the tapped rows (one per layer, in `layers` order) into one float32 feature vector. */
export function concatFeatures(hidden: Map<TapLayer, Float32Array>, layers: readonly TapLayer[]): Float32Array {
  const rows = layers.map((l) => {
    const row = hidden.get(l);
    if (!row) throw new Error(`tap ${String(l)} missing from the captured hidden states`);
    return row;
  });
  const out = new Float32Array(rows.reduce((n, r) => n + r.length, 0));
  let off = 0;
  for (const r of rows) {
    out.set(r, off);
    off += r.length;
  }
  return out;
}
