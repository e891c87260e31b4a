/**
 * Which layers LYNX reads, and how a cue event's feature vector is put together from the engine's taps.
 *
 * LYNX names layers by Hugging Face `hidden_states` index (0 = embeddings, N = output of block N-1) and appends the last
 * one, `hidden_states[L]` (`lynx/utils.py` `build_event_features`: `layers + [len(hidden_states) - 1]`). In Hugging
 * Face's Llama/Qwen2 models that last entry is taken *after* the final norm (`hidden_states = self.norm(...)`, then
 * appended), while every earlier one is a block's raw output. The engine taps block outputs (`l_out-N` =
 * hidden_states[N+1]) and the final norm's output (`'final'`), so index h < L is tap h-1 and h = L is `'final'`.
 */
import type { TapLayer } from '../../engine/index.js';
import { InvalidInputError } from '../../util/errors.js';

/**
 * How the feature of the last hidden-state index L is read: 'final' (after the final norm, as Hugging Face's
 * `hidden_states[L]` and so LYNX), or 'residual' (the last block's output before the norm: what datasets and probes
 * written before this distinction hold; they say nothing, and read this way).
 */
export type LastLayerTap = 'final' | 'residual';

/** What datasets and probes that do not name their last-layer tap were built with. */
export const LEGACY_LAST_LAYER: LastLayerTap = 'residual';

export function checkLastLayerTap(v: unknown, where: string): LastLayerTap {
  if (v === undefined) return LEGACY_LAST_LAYER;
  if (v !== 'final' && v !== 'residual') throw new InvalidInputError(`${where}: lastLayer must be 'final' or 'residual' (got ${JSON.stringify(v)})`);
  return v;
}

/**
 * LYNX's choices for the depths its scripts name (hidden_states indices; `early_exit_eval.py` and
 * `build_dataset_vllm_hybrid.py`: 64 layers (16, 32, 48, last), 36 (12, 18, 24, last), 32 (8, 16, 24, last),
 * otherwise (9, 16, last), which is DeepSeek-R1-Distill-Qwen-1.5B's 28). LYNX matches by model id too; here only
 * the depth counts. Other depths (LYNX would clip 9 and 16 to L on a small model) get about L/4, L/2, 3L/4 and L.
 */
export function defaultHiddenStateLayers(nLayer: number): number[] {
  const known: Record<number, number[]> = {
    28: [9, 16, 28], // DeepSeek-R1-Distill-Qwen-1.5B
    32: [8, 16, 24, 32], // Nemotron / Llama 8B
    36: [12, 18, 24, 36], // Qwen3-8B
    64: [16, 32, 48, 64], // QwQ-32B
  };
  if (known[nLayer]) return known[nLayer]!;
  const picks = [Math.round(nLayer / 4), Math.round(nLayer / 2), Math.round((3 * nLayer) / 4), nLayer];
  return [...new Set(picks.filter((h) => h >= 1))];
}

/** Hidden-state indices (1..L) to engine taps: block index h-1, and for h = L the final norm's output by default. */
export function tapLayersFor(hiddenStateLayers: readonly number[], nLayer: number, lastLayer: LastLayerTap = 'final'): TapLayer[] {
  return hiddenStateLayers.map((h): TapLayer => {
    if (!Number.isInteger(h) || h < 1 || h > nLayer) {
      throw new InvalidInputError(`hidden-state layer ${h} is outside 1..${nLayer} (0, the embeddings, is not a block output)`);
    }
    return h === nLayer && lastLayer === 'final' ? 'final' : h - 1;
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
