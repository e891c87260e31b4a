import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LlamaContext, LlamaModel } from '../src/engine/index.js';
// F32 KV cache and no flash attention: results independent of batch composition (see ContextOptions.kvType).
const EXACT = { kvType: 'f32', flashAttention: false } as const;
import { buildTinyGguf, TINY } from './helpers/engine-models.js';

let dir: string;
let model: LlamaModel;
let outputNorm: Float32Array;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'lynx-taps-'));
  const built = buildTinyGguf(join(dir, 'tiny-llama.gguf'), { arch: 'llama', type: 'f32', returnWeights: true });
  model = LlamaModel.load(built);
  outputNorm = TINY.lastWeights!.get('output_norm.weight')!;
});

afterAll(() => {
  model?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

const close = (a: Float32Array, b: Float32Array, tol: number) => {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  expect(m).toBeLessThan(tol);
};

describe('hidden-state taps', () => {
  it('returns one nEmbd row per requested position and layer during prefill', async () => {
    const ctx = new LlamaContext(model, { ...EXACT, nCtx: 256, nSeqMax: 2, nBatch: 16 });
    const seq = ctx.createSequence();
    const ids = model.tokenize('Taps must land on the right rows even across prefill chunks of sixteen tokens.');
    expect(ids.length).toBeGreaterThan(20);
    const positions = [0, 5, 17, ids.length - 1];
    const r = await seq.append(ids, { taps: { layers: [0, 2, model.info.nLayer - 1, 'final'], positions } });
    for (const layer of [0, 2, model.info.nLayer - 1, 'final'] as const) {
      expect(r.hidden.get(layer)!.length).toBe(positions.length * model.info.nEmbd);
    }
    // The same positions decoded one token at a time in a second sequence give the same rows.
    const seq2 = ctx.createSequence();
    const rows = new Map<number | 'final', Float32Array[]>();
    for (let i = 0; i < ids.length; i++) {
      const step = await seq2.append([ids[i]!], positions.includes(i) ? { taps: { layers: [0, 2, model.info.nLayer - 1, 'final'] } } : {});
      for (const [layer, v] of step.hidden) {
        if (!rows.has(layer)) rows.set(layer, []);
        rows.get(layer)!.push(v);
      }
    }
    const n = model.info.nEmbd;
    for (const [layer, list] of rows) {
      list.forEach((row, k) => close(r.hidden.get(layer)!.subarray(k * n, (k + 1) * n), row, 1e-5));
    }
    ctx.dispose();
  });

  it("'final' is the last block's output after RMSNorm with output_norm.weight", async () => {
    const ctx = new LlamaContext(model, { ...EXACT, nCtx: 256, nSeqMax: 1, nBatch: 64 });
    const seq = ctx.createSequence();
    const last = model.info.nLayer - 1;
    const r = await seq.append(model.tokenize('a final check'), { taps: { layers: [last, 'final'] } });
    const h = r.hidden.get(last)!;
    let ss = 0;
    for (const v of h) ss += v * v;
    const scale = 1 / Math.sqrt(ss / h.length + TINY.rmsEps);
    const expected = h.map((v, i) => v * scale * outputNorm[i]!);
    close(r.hidden.get('final')!, expected, 1e-5);
    ctx.dispose();
  });

  it('taps during generation come only where tapWhen asks, for the token just decoded', async () => {
    const ctx = new LlamaContext(model, { ...EXACT, nCtx: 256, nSeqMax: 2, nBatch: 64 });
    const seq = ctx.createSequence();
    await seq.append(model.tokenize('Once upon a time'));
    const tapped: { index: number; token: number; hidden: Float32Array }[] = [];
    const generated: number[] = [];
    for await (const t of seq.generate({ maxTokens: 16, tapLayers: [1], tapWhen: (_tok, _text) => generated.length % 3 === 0 })) {
      if (t.hidden) tapped.push({ index: t.index, token: t.token, hidden: t.hidden.get(1)! });
      generated.push(t.token);
    }
    expect(tapped.map((x) => x.index)).toEqual([0, 3, 6, 9, 12, 15]);
    // Check one tapped row against a prefill of the same prefix with a tap on its last position.
    const probe = ctx.createSequence();
    const prefix = [...model.tokenize('Once upon a time'), ...generated.slice(0, 7)];
    const r = await probe.append(prefix, { taps: { layers: [1] } });
    close(r.hidden.get(1)!, tapped[2]!.hidden, 1e-5);
    ctx.dispose();
  });

  it('steps without taps do not stop the graph (no tap results, same logits)', async () => {
    const ctx = new LlamaContext(model, { ...EXACT, nCtx: 256, nSeqMax: 2, nBatch: 64 });
    const noTapCtx = new LlamaContext(model, { ...EXACT, nCtx: 256, nSeqMax: 1, nBatch: 64, taps: false });
    const ids = model.tokenize('same logits with and without the hook');
    const a = await ctx.createSequence().append(ids, { taps: { layers: [0] } });
    const b = await noTapCtx.createSequence().append(ids);
    close(a.logits, b.logits, 1e-5);
    ctx.dispose();
    noTapCtx.dispose();
  });
});
