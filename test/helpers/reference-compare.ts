/**
 * Comparing llama.cpp (through the engine) with the TypeScript reference forward pass.
 */
import { expect } from 'vitest';
import { LlamaContext, type LlamaModel, type TapLayer } from '../../src/engine/index.js';
import { ChatTemplate } from '../../src/import/chat-template.js';
import { loadHfTokenizer } from '../../src/import/tokenizer.js';
import type { StepResult } from '../../src/reference/forward.js';

/** F32 KV cache and no flash attention: llama.cpp's results then depend only on the model, to ~1e-6. */
export const EXACT = { kvType: 'f32', flashAttention: false, threads: 2 } as const;

export function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

export function maxAbs(a: Float32Array): number {
  let m = 0;
  for (const v of a) m = Math.max(m, Math.abs(v));
  return m;
}

/** Bit-identical float arrays (fast for millions of values, unlike a deep equality). */
export function sameFloats(a: Float32Array, b: Float32Array): boolean {
  return a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

export interface EngineRun {
  logits: Float32Array[];
  hidden: Map<TapLayer, Float32Array>[];
}

/** Feed `tokens` to llama.cpp one at a time, collecting every position's logits and every block's hidden state. */
export async function engineRun(model: LlamaModel, tokens: readonly number[]): Promise<EngineRun> {
  const ctx = new LlamaContext(model, { ...EXACT, nCtx: 256, nSeqMax: 1, nBatch: 64 });
  try {
    const seq = ctx.createSequence();
    const layers: TapLayer[] = [...Array.from({ length: model.info.nLayer }, (_, l) => l), 'final'];
    const logits: Float32Array[] = [];
    const hidden: Map<TapLayer, Float32Array>[] = [];
    for (const t of tokens) {
      const r = await seq.append([t], { taps: { layers } });
      logits.push(r.logits);
      hidden.push(r.hidden);
    }
    return { logits, hidden };
  } finally {
    ctx.dispose();
  }
}

/**
 * llama.cpp and the reference agree at every position on the logits, each block's output (tap N = hidden[N + 1])
 * and the final norm, relative to the scale of the values: f32 arithmetic in llama.cpp against double accumulation
 * in the reference leaves ~1e-6; a wrong layout or RoPE convention gives differences of order one.
 */
export function expectSameAsReference(ref: readonly StepResult[], eng: EngineRun, nLayer: number, tol = 2e-4): void {
  expect(eng.logits.length).toBe(ref.length);
  for (let p = 0; p < ref.length; p++) {
    const r = ref[p]!;
    expect(maxAbsDiff(eng.logits[p]!, r.logits) / maxAbs(r.logits)).toBeLessThan(tol);
    for (let l = 0; l < nLayer; l++) {
      const h = r.hidden[l + 1]!;
      expect(maxAbsDiff(eng.hidden[p]!.get(l)!, h) / maxAbs(h)).toBeLessThan(tol);
    }
    expect(maxAbsDiff(eng.hidden[p]!.get('final')!, r.final) / maxAbs(r.final)).toBeLessThan(tol);
  }
}

/** A chat prompt rendered with the folder's template and tokenized with its Hugging Face tokenizer. */
export function chatPromptTokens(folder: string, question = 'What is 12 + 30? Think step by step.'): number[] {
  const text = ChatTemplate.fromFolder(folder).render([{ role: 'user', content: question }]);
  return loadHfTokenizer(folder).encode(text);
}
