/**
 * Full-gradient training through ggml's own graph (src/training/graph-trainer.ts): the graph's loss equals the
 * cross-entropy of llama.cpp's inference logits for the same file, training moves every weight (attn_k/attn_v
 * included, which llama.cpp's own training path leaves frozen), the loss falls, and the saved file reloads in the
 * engine with the trained behaviour.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LlamaContext, LlamaModel, loadLlama } from '../src/engine/index.js';
import { GraphTrainer, trainGraph } from '../src/training/graph-trainer.js';
import { windowsFromStream, type TokenRows } from '../src/training/data.js';
import type { TrainingReport } from '../src/training/options.js';
import { Rng } from '../src/util/rng.js';
import { byteLevelTokenizer, writeInitialModel } from '../src/demo/init-model.js';

const SEQ_LEN = 64;
const bytes = (s: string) => Array.from(Buffer.from(s, 'latin1'));
// Sequences whose continuation needs a token from far back: "<key>...........=<key>".
const pattern = (k: number) => `${'abcdefgh'[k % 8]}${'-'.repeat(20)}=${'abcdefgh'[k % 8]};`;

let dir: string;
let initPath: string;
let trainedPath: string;
let report: TrainingReport;
let kBefore: Float32Array;
let kAfter: Float32Array;
let initialGraphLoss: number;
let rows: TokenRows;

function rowsOf(seqs: Int32Array[]): TokenRows {
  const tokens = new Int32Array(seqs.length * SEQ_LEN);
  const labels = new Int32Array(seqs.length * SEQ_LEN);
  seqs.forEach((s, i) => {
    tokens.set(s.subarray(0, SEQ_LEN), i * SEQ_LEN);
    labels.set(s.subarray(1, SEQ_LEN + 1), i * SEQ_LEN);
  });
  return { tokens, labels };
}

/** Mean next-token cross-entropy of llama.cpp's logits over one row, decoding token by token. */
async function engineLoss(path: string, row: TokenRows, index: number): Promise<number> {
  const model = LlamaModel.load(path);
  const ctx = new LlamaContext(model, { nCtx: 256, nSeqMax: 1, threads: 1 });
  try {
    const seq = ctx.createSequence();
    let total = 0;
    for (let i = 0; i < SEQ_LEN; i++) {
      const { logits } = await seq.append([row.tokens[index * SEQ_LEN + i]]);
      let max = -Infinity;
      for (const v of logits) max = Math.max(max, v);
      let z = 0;
      for (const v of logits) z += Math.exp(v - max);
      total += -(logits[row.labels[index * SEQ_LEN + i]] - max - Math.log(z));
    }
    return total / SEQ_LEN;
  } finally {
    ctx.dispose();
    model.dispose();
  }
}

beforeAll(async () => {
  loadLlama();
  dir = mkdtempSync(join(tmpdir(), 'lynx-graph-training-'));
  initPath = join(dir, 'init.gguf');
  trainedPath = join(dir, 'trained.gguf');
  writeInitialModel(initPath, {
    shape: { nEmbd: 64, nLayer: 2, nHead: 4, nFf: 128, contextLength: 256 },
    tokenizer: byteLevelTokenizer(),
    seed: 5,
    initStd: 0.2, // large enough that the random model's logits are far from uniform (a sharp check of the graph)
  });
  const rng = new Rng(17);
  const text = Array.from({ length: 400 }, () => pattern(Math.floor(rng.next() * 8))).join('');
  rows = rowsOf(windowsFromStream(bytes(text), SEQ_LEN, 23));
  const trainer = new GraphTrainer(initPath, SEQ_LEN, { threads: 1 });
  try {
    kBefore = trainer.readTensor('blk.0.attn_k.weight');
    initialGraphLoss = trainer.evaluate(rows, [0]).loss;
    report = await trainGraph(trainer, rows, { seqLen: SEQ_LEN, lr: 3e-3, lrMin: 3e-4, warmupSteps: 10, epochs: 4, seed: 3, threads: 1 });
    kAfter = trainer.readTensor('blk.0.attn_k.weight');
    trainer.save(trainedPath, { type: 'f32', metadata: { 'lynx.test': 'graph' } });
  } finally {
    trainer.dispose();
  }
}, 120_000);

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('the ggml training graph', () => {
  it('computes the same loss as llama.cpp inference of the same file', async () => {
    const reference = await engineLoss(initPath, rows, 0);
    expect(Math.abs(initialGraphLoss - Math.log(257))).toBeGreaterThan(0.05); // not trivially uniform
    expect(initialGraphLoss).toBeCloseTo(reference, 3);
  });

  it('trains every weight, attn_k included, and the loss falls', () => {
    expect(report.steps.length).toBe(report.plannedSteps);
    let moved = 0;
    for (let i = 0; i < kBefore.length; i++) moved = Math.max(moved, Math.abs(kAfter[i] - kBefore[i]));
    expect(moved).toBeGreaterThan(1e-3);
    expect(report.frozen).toEqual([]);
    const first = report.steps.slice(0, 5).reduce((a, s) => a + s.loss, 0) / 5;
    const last = report.steps.slice(-5).reduce((a, s) => a + s.loss, 0) / 5;
    expect(last).toBeLessThan(0.3 * first);
  });

  it('learns a long-range copy (the key 21 positions back) and the reloaded model reproduces it', async () => {
    const model = LlamaModel.load(trainedPath);
    const ctx = new LlamaContext(model, { nCtx: 256, nSeqMax: 1, threads: 1 });
    try {
      let right = 0;
      for (let k = 0; k < 8; k++) {
        const seq = ctx.createSequence();
        const prompt = pattern((k + 3) % 8) + pattern(k).slice(0, 22); // a whole example, then key, dashes, '='
        const { logits } = await seq.append(bytes(prompt));
        let best = 0;
        for (let t = 1; t < logits.length; t++) if (logits[t] > logits[best]) best = t;
        if (best === bytes(pattern(k))[0]) right++;
        seq.dispose();
      }
      expect(right).toBe(8);
    } finally {
      ctx.dispose();
      model.dispose();
    }
  });

  it('flushes denormals only inside the native step: JavaScript keeps IEEE denormals', () => {
    const trainer = new GraphTrainer(initPath, SEQ_LEN, { threads: 1 });
    try {
      if (process.platform === 'linux' && process.arch === 'x64') expect(trainer.flushesDenormals).toBe(true);
      trainer.step(rows, 0, 1e-3, { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 });
      const tiny = Number(process.env.LYNX_TEST_TINY ?? '1e-310'); // a denormal double, not a constant V8 could fold
      expect(tiny * 0.5).toBeGreaterThan(0);
    } finally {
      trainer.dispose();
    }
  });

  it('saves a file the engine loads, with the loss the trainer measured', async () => {
    const trainer = new GraphTrainer(trainedPath, SEQ_LEN, { threads: 1 });
    try {
      const graph = trainer.evaluate(rows, [1]).loss;
      expect(await engineLoss(trainedPath, rows, 1)).toBeCloseTo(graph, 3);
    } finally {
      trainer.dispose();
    }
  });
});
