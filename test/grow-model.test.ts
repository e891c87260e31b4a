/**
 * Growing a trained model deeper (src/demo/grow-model.ts): the inserted blocks are identities, so the grown file
 * computes the same logits in llama.cpp and the same loss in the training graph as the original; training then moves
 * the new blocks' zero output projections; bad layer lists are refused before anything is written.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LlamaContext, LlamaModel } from '../src/engine/index.js';
import { GraphTrainer } from '../src/training/graph-trainer.js';
import { byteLevelTokenizer, writeInitialModel } from '../src/demo/init-model.js';
import { modelShapeOf, writeDeeperCopy } from '../src/demo/grow-model.js';
import { trainDemoModel } from '../src/demo/train.js';
import { GgufFile } from '../src/formats/gguf/reader.js';
import { InvalidInputError } from '../src/util/errors.js';

const SEQ_LEN = 32;
const text = Array.from(Buffer.from('Sam has 20 marbles. He loses 2. Then he gives 3 to Ben. 20 - 2 = 18.', 'latin1'));
let dir: string;
let original: string;
let grown: string;

async function lastLogits(path: string): Promise<Float32Array> {
  const model = LlamaModel.load(path);
  const ctx = new LlamaContext(model, { nCtx: 256, nSeqMax: 1, threads: 1 });
  try {
    const { logits } = await ctx.createSequence().append(text);
    return Float32Array.from(logits);
  } finally {
    ctx.dispose();
    model.dispose();
  }
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'lynx-grow-'));
  original = join(dir, 'original.gguf');
  grown = join(dir, 'grown.gguf');
  // A larger init scale than a fresh model's, so every block changes the residual stream visibly.
  writeInitialModel(original, {
    shape: { nEmbd: 32, nLayer: 2, nHead: 2, nFf: 64, contextLength: 256 },
    tokenizer: byteLevelTokenizer(),
    seed: 11,
    initStd: 0.2,
    frozenKv: false,
  });
  writeDeeperCopy(original, grown, { addLayersAfter: [-1, 1], seed: 3, metadata: { 'lynx.test.grown': true } });
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('growing a model deeper', () => {
  it('inserts identity blocks where asked and keeps the old layers in order', () => {
    expect(modelShapeOf(original).nLayer).toBe(2);
    expect(modelShapeOf(grown)).toMatchObject({ nLayer: 4, nEmbd: 32, nHead: 2, nFf: 64 });
    const a = GgufFile.open(original);
    const b = GgufFile.open(grown);
    try {
      expect(b.get('lynx.test.grown')).toBe(true);
      // New order: new, old 0, old 1, new.
      expect(Array.from(b.tensor('blk.1.ffn_up.weight'))).toEqual(Array.from(a.tensor('blk.0.ffn_up.weight')));
      expect(Array.from(b.tensor('blk.2.attn_q.weight'))).toEqual(Array.from(a.tensor('blk.1.attn_q.weight')));
      for (const l of [0, 3]) {
        expect(b.tensor(`blk.${l}.attn_output.weight`).every((x) => x === 0)).toBe(true);
        expect(b.tensor(`blk.${l}.ffn_down.weight`).every((x) => x === 0)).toBe(true);
        expect(b.tensor(`blk.${l}.attn_q.weight`).some((x) => x !== 0)).toBe(true);
      }
    } finally {
      a.close();
      b.close();
    }
  });

  it('computes the same logits in llama.cpp as the original', async () => {
    const [x, y] = [await lastLogits(original), await lastLogits(grown)];
    let spread = 0;
    let diff = 0;
    for (let i = 0; i < x.length; i++) {
      spread = Math.max(spread, Math.abs(x[i]! - x[0]!));
      diff = Math.max(diff, Math.abs(x[i]! - y[i]!));
    }
    expect(spread).toBeGreaterThan(0.1); // the logits are not flat, so equality means something
    expect(diff).toBeLessThan(1e-4);
  });

  it('has the same training loss, and training moves the new blocks off identity', () => {
    const rows = { tokens: Int32Array.from(text.slice(0, SEQ_LEN)), labels: Int32Array.from(text.slice(1, SEQ_LEN + 1)) };
    const before = new GraphTrainer(original, SEQ_LEN, { threads: 1 });
    const lossBefore = before.evaluate(rows).loss;
    before.dispose();
    const t = new GraphTrainer(grown, SEQ_LEN, { threads: 1 });
    try {
      expect(t.evaluate(rows).loss).toBeCloseTo(lossBefore, 4);
      for (let i = 0; i < 3; i++) t.step(rows, 0, 1e-3, { beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0 });
      expect(t.readTensor('blk.0.attn_output.weight').some((x) => x !== 0)).toBe(true);
      expect(t.readTensor('blk.3.ffn_down.weight').some((x) => x !== 0)).toBe(true);
      expect(t.evaluate(rows).loss).toBeLessThan(lossBefore);
    } finally {
      t.dispose();
    }
  });

  it('refuses layer lists that do not fit the model, before writing anything', async () => {
    const out = join(dir, 'bad.gguf');
    expect(() => writeDeeperCopy(original, out, { addLayersAfter: [2], seed: 1 })).toThrow(InvalidInputError);
    expect(() => writeDeeperCopy(original, out, { addLayersAfter: [], seed: 1 })).toThrow(/at least one layer/);
    expect(() => writeDeeperCopy(original, out, { addLayersAfter: [0.5], seed: 1 })).toThrow(InvalidInputError);
    expect(existsSync(out)).toBe(false);
    await expect(trainDemoModel({ outDir: dir, addLayersAfter: [0] })).rejects.toThrow(/initFrom/);
  });
});
