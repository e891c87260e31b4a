/**
 * Early-exit heads for tests without training: "logit-lens" heads whose matrix is the model's own output matrix (a
 * fair draft on a small model's later blocks), saved as a heads folder, and greedy runs with their step margins.
 */
import { GgufFile } from '../../src/formats/gguf/reader.js';
import { LlamaContext, type DecodingMode, type LlamaModel } from '../../src/engine/index.js';
import { EarlyExitHeads, modelFingerprint } from '../../src/reasoning/heads/heads.js';
import { saveCalibration, CALIBRATION_SCHEMA, type HeadsCalibration } from '../../src/reasoning/heads/calibrate.js';

export const EXACT = { kvType: 'f32', flashAttention: false } as const;

/** Heads on `layers` that start from (are) the model's output matrix, written to `dir`; with `thresholds`, a calibration at level 0.9. */
export function writeLensHeads(modelPath: string, layers: number[], dir: string, thresholds?: Record<number, number | null>): EarlyExitHeads {
  const f = GgufFile.open(modelPath);
  const w = f.tensor(f.tensorInfo('output.weight') ? 'output.weight' : 'token_embd.weight');
  f.close();
  const heads = EarlyExitHeads.create(modelFingerprint(modelPath).fingerprint, new Map(layers.map((l) => [l, w.slice()])));
  heads.save(dir);
  if (thresholds) {
    const c: HeadsCalibration = {
      schema: CALIBRATION_SCHEMA,
      rule: 'max-coverage',
      positions: 0,
      heads: layers.map((layer) => ({ layer, agreement: 0.9, meanEntropy: 1, levels: [{ level: 0.9, threshold: thresholds[layer] ?? null, coverage: 0.5, agreement: 0.9 }] })),
    };
    saveCalibration(dir, c);
  }
  return heads;
}

export interface GreedyRun {
  tokens: number[];
  /** Per step, the gap between the two largest log-probabilities (plain runs only). */
  margins: number[];
}

/** Greedy tokens of `prompt` in a fresh exact-numerics context, with a decoding mode or plain (then with margins). */
export async function greedy(model: LlamaModel, prompt: number[], maxTokens: number, decoding?: DecodingMode): Promise<GreedyRun> {
  const ctx = new LlamaContext(model, { ...EXACT, nCtx: prompt.length + maxTokens + 64, nSeqMax: 1, threads: 1 });
  try {
    const seq = ctx.createSequence();
    await seq.append(prompt);
    const tokens: number[] = [];
    const margins: number[] = [];
    for await (const t of seq.generate({ maxTokens, decoding, topLogprobs: decoding ? undefined : 2 })) {
      if (t.stopped) break;
      tokens.push(t.token);
      if (t.topLogprobs) margins.push(t.topLogprobs[0]!.logprob - t.topLogprobs[1]!.logprob);
    }
    return { tokens, margins };
  } finally {
    ctx.dispose();
  }
}

/** Index of the first difference of two token lists (their common length when one is a prefix of the other). */
export function firstDifference(a: readonly number[], b: readonly number[]): number {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
}
