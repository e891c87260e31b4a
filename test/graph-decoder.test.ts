/**
 * The decoder graph built in TypeScript (src/graph/) against llama.cpp's inference of the same file: the forward
 * pass over the first K blocks gives the hidden state the engine taps as `l_out-(K-1)`, and the head (final RMSNorm +
 * output matrix) applied to the last block's hidden state gives the model's logits. Tiny random models with grouped
 * KV heads (4 query heads, 2 KV heads), in both rope styles (llama: adjacent pairs, qwen2: halves, with q/k/v biases).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LlamaContext, LlamaModel, loadLlama } from '../src/engine/index.js';
import { DecoderForward } from '../src/graph/decoder-forward.js';
import { decoderTensors, readDecoderShape } from '../src/graph/decoder-shape.js';
import { InvalidInputError } from '../src/util/errors.js';
import { buildTinyGguf } from './helpers/engine-models.js';

// F32 KV cache and no flash attention: llama.cpp computes attention the way the graph does (see engine-taps.test.ts).
const EXACT = { kvType: 'f32', flashAttention: false } as const;
const N_LAYER = 4;

let dir: string;
beforeAll(() => {
  loadLlama();
  dir = mkdtempSync(join(tmpdir(), 'lynx-graph-decoder-'));
});
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Largest absolute difference, relative to the largest magnitude of the reference. */
function relativeError(got: Float32Array, want: Float32Array): number {
  expect(got.length).toBe(want.length);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < want.length; i++) {
    diff = Math.max(diff, Math.abs(got[i]! - want[i]!));
    scale = Math.max(scale, Math.abs(want[i]!));
  }
  expect(scale).toBeGreaterThan(0.1); // not a trivially small quantity
  return diff / scale;
}

describe.each(['llama', 'qwen2'] as const)('the %s decoder graph', (arch) => {
  let path: string;
  let ids: number[];
  const positions = [0, 4, 11];
  let taps: Map<number | 'final', Float32Array>;
  let engineLogits: Float32Array;

  beforeAll(async () => {
    path = buildTinyGguf(join(dir, `tiny-${arch}.gguf`), { arch, type: 'f32', nLayer: N_LAYER, nHead: 4, nHeadKv: 2, seed: arch === 'llama' ? 11 : 12 });
    const model = LlamaModel.load(path);
    const ctx = new LlamaContext(model, { ...EXACT, nCtx: 256, nSeqMax: 1, threads: 1 });
    try {
      ids = model.tokenize('The graph must agree with llama.cpp.');
      expect(ids.length).toBeGreaterThan(positions.at(-1)!);
      positions.push(ids.length - 1);
      const r = await ctx.createSequence().append(ids, { taps: { layers: Array.from({ length: N_LAYER }, (_, l) => l), positions } });
      taps = r.hidden;
      engineLogits = Float32Array.from(r.logits);
    } finally {
      ctx.dispose();
      model.dispose();
    }
  });

  it('reads the shape, grouped KV heads included', () => {
    const s = readDecoderShape(path);
    expect(s).toMatchObject({ arch, nLayer: N_LAYER, nHead: 4, nHeadKv: 2, qkvBias: arch === 'qwen2', tiedOutput: false });
    expect(decoderTensors(s, { layers: 1, head: false }).map((t) => t.name)).not.toContain('blk.1.attn_q.weight');
    expect(decoderTensors(s).find((t) => t.name === 'blk.0.attn_k.weight')!.dims).toEqual([64, 32]);
  });

  it("the first K blocks give llama.cpp's l_out-(K-1), for every K", () => {
    const e = 64;
    for (let k = 1; k <= N_LAYER; k++) {
      const fwd = new DecoderForward(path, { layers: k, head: false });
      try {
        const hidden = fwd.hidden(ids);
        expect(hidden.length).toBe(ids.length * e);
        const rows = new Float32Array(positions.length * e);
        positions.forEach((p, i) => rows.set(hidden.subarray(p * e, (p + 1) * e), i * e));
        expect(relativeError(rows, taps.get(k - 1)!)).toBeLessThan(1e-5);
        // A different depth gives a different state: the check could fail.
        if (k < N_LAYER) expect(relativeError(rows, taps.get(k)!)).toBeGreaterThan(1e-2);
      } finally {
        fwd.dispose();
      }
    }
  });

  it("the head on the last block's hidden state gives the model's logits", () => {
    const fwd = new DecoderForward(path);
    try {
      const last = taps.get(N_LAYER - 1)!;
      const lastRow = last.subarray((positions.length - 1) * 64);
      expect(relativeError(fwd.head(lastRow), engineLogits)).toBeLessThan(1e-5);
      // The head applies to several rows at once, and after the full forward pass.
      const all = fwd.head(last);
      expect(all.length).toBe(positions.length * engineLogits.length);
      expect(relativeError(all.subarray(all.length - engineLogits.length), engineLogits)).toBeLessThan(1e-5);
      const logits = fwd.logits(ids);
      expect(relativeError(logits.subarray(logits.length - engineLogits.length), engineLogits)).toBeLessThan(1e-5);
    } finally {
      fwd.dispose();
    }
  });
});

describe('refusals', () => {
  it('a partial graph without a head, bad depths and bad tokens', () => {
    const path = buildTinyGguf(join(dir, 'tiny-refusals.gguf'), { arch: 'llama', type: 'f32', nLayer: 2 });
    expect(() => new DecoderForward(path, { layers: 3 })).toThrow(/layers must be an integer in \[0, 2\]/);
    const fwd = new DecoderForward(path, { layers: 1, head: false });
    try {
      expect(() => fwd.head(new Float32Array(64))).toThrow(InvalidInputError);
      expect(() => fwd.hidden([1, 99999])).toThrow(/not a token id/);
      expect(() => fwd.hidden([])).toThrow(InvalidInputError);
      expect(fwd.hidden([1, 2]).length).toBe(2 * 64); // the process survived: the same graph still runs
    } finally {
      fwd.dispose();
    }
  });
});
