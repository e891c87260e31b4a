/**
 * The defects of the pinned llama.cpp build's training path, shown by turning each workaround off (see
 * src/training/llama-opt.ts): without gradient zeroing training stalls, without the manual ggml_set_param the token
 * embedding never moves, and attn_k/attn_v receive no gradient even when marked trainable.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadLlama } from '../src/engine/index.js';
import { TrainableModel, train, type LlamaOptTrainOptions } from '../src/training/llama-opt.js';
import { windowsFromStream } from '../src/training/data.js';
import type { TrainingReport } from '../src/training/options.js';
import { byteLevelTokenizer, writeInitialModel } from '../src/demo/init-model.js';

const SEQ_LEN = 256;
let dir: string;
let initPath: string;
let sequences: Int32Array[];

const WATCH = ['token_embd.weight', 'output.weight', 'blk.0.attn_q.weight', 'blk.0.attn_k.weight', 'blk.0.attn_v.weight', 'blk.1.attn_k.bias', 'blk.1.ffn_down.weight'];

beforeAll(() => {
  loadLlama();
  dir = mkdtempSync(join(tmpdir(), 'lynx-training-defects-'));
  initPath = join(dir, 'init.gguf');
  writeInitialModel(initPath, { shape: { nEmbd: 64, nLayer: 2, nHead: 4, nFf: 128, contextLength: SEQ_LEN }, tokenizer: byteLevelTokenizer(), seed: 5 });
  const text = 'pack my box with five dozen liquor jugs; sphinx of black quartz, judge my vow. '.repeat(80);
  sequences = windowsFromStream(Array.from(Buffer.from(text, 'latin1')), SEQ_LEN, 29);
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Train a fresh copy of the initial model; return the report and how much each watched tensor moved. */
async function run(opts: Partial<LlamaOptTrainOptions>, rows = 40): Promise<{ report: TrainingReport; moved: Map<string, number> }> {
  const model = TrainableModel.load(initPath);
  try {
    const before = new Map(WATCH.map((n) => [n, model.readTensor(n)]));
    const report = await train(model, sequences.slice(0, rows), { seqLen: SEQ_LEN, lr: 3e-3, lrMin: 3e-3, threads: 1, shuffle: false, ...opts });
    const moved = new Map<string, number>();
    for (const n of WATCH) {
      const a = before.get(n)!;
      const b = model.readTensor(n);
      let d = 0;
      for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
      moved.set(n, d);
    }
    return { report, moved };
  } finally {
    model.dispose();
  }
}

const tail = (r: TrainingReport, n = 5) => r.steps.slice(-n).reduce((a, s) => a + s.loss, 0) / n;

describe('defect workarounds of the llama.cpp training path', () => {
  it('1. gradients must be zeroed between optimizer steps, or training stalls', async () => {
    const fixed = await run({});
    const broken = await run({ workarounds: { zeroGradients: false } });
    // Same first step (the accumulators start at zero), then the accumulated gradients drift apart.
    expect(fixed.report.steps[0]!.loss).toBe(broken.report.steps[0]!.loss);
    expect(fixed.report.steps[1]!.loss).toBe(broken.report.steps[1]!.loss);
    expect(tail(fixed.report)).toBeLessThan(0.8 * tail(broken.report));
  });

  it('1b. the first step needs no zeroing: knowing the optimizer context from a prior evaluation changes nothing', async () => {
    const plain = await run({}, 8);
    const withEval = await run({ validation: sequences.slice(40, 42) }, 8);
    expect(withEval.report.evals[0]!.step).toBe(0);
    expect(plain.report.gradientsZeroed).toBe(7);
    expect(withEval.report.gradientsZeroed).toBe(8);
    expect(withEval.report.steps.map((s) => s.loss)).toEqual(plain.report.steps.map((s) => s.loss));
  });

  it('3. token_embd.weight only trains when marked by hand', async () => {
    const fixed = await run({}, 10);
    const broken = await run({ workarounds: { trainTokenEmbedding: false } }, 10);
    expect(fixed.moved.get('token_embd.weight')).toBeGreaterThan(1e-3);
    expect(broken.moved.get('token_embd.weight')).toBe(0);
    expect(broken.report.trained).not.toContain('token_embd.weight');
    expect(broken.moved.get('output.weight')).toBeGreaterThan(1e-3);
  });

  it('2. attn_k/attn_v receive no gradient, even when marked trainable', async () => {
    // Without weight decay AdamW moves a parameter only through its gradient.
    const { report, moved } = await run({ workarounds: { freezeKv: false }, weightDecay: 0 }, 10);
    expect(report.trained).toContain('blk.0.attn_k.weight');
    expect(report.frozen).toEqual([]);
    expect(moved.get('blk.0.attn_q.weight')).toBeGreaterThan(1e-3);
    expect(moved.get('blk.1.ffn_down.weight')).toBeGreaterThan(1e-3);
    expect(moved.get('blk.0.attn_k.weight')).toBe(0);
    expect(moved.get('blk.0.attn_v.weight')).toBe(0);
    expect(moved.get('blk.1.attn_k.bias')).toBe(0);
  });
});
