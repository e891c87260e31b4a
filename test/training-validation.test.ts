/**
 * Bad input to the trainer is refused in TypeScript with a message that says what to change; a failed GGML_ASSERT
 * would abort the whole process (this worker), so every case here also proves the process survives.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InvalidInputError } from '../src/util/errors.js';
import { loadLlama } from '../src/engine/index.js';
import { TrainableModel, inspectTrainableGguf, train, trainModel } from '../src/training/llama-opt.js';
import { TrainingError } from '../src/training/errors.js';
import { checkTrainingData, windowsFromStream } from '../src/training/data.js';
import { cosineLr } from '../src/training/schedule.js';
import { byteLevelTokenizer, countParams, randomOrthogonal, validateShape, writeInitialModel } from '../src/demo/init-model.js';
import { GgufFile } from '../src/formats/gguf/reader.js';
import { GgufWriter } from '../src/formats/gguf/writer.js';
import { Rng } from '../src/util/rng.js';
import { buildTinyGguf } from './helpers/engine-models.js';

const SEQ_LEN = 256;
const SHAPE = { nEmbd: 32, nLayer: 1, nHead: 2, nFf: 64, contextLength: SEQ_LEN };
let dir: string;
let initPath: string;
let seqs: Int32Array[];

beforeAll(() => {
  loadLlama();
  dir = mkdtempSync(join(tmpdir(), 'lynx-training-validation-'));
  initPath = join(dir, 'init.gguf');
  writeInitialModel(initPath, { shape: SHAPE, tokenizer: byteLevelTokenizer(), seed: 3 });
  seqs = windowsFromStream(Array.from(Buffer.from('abcdefghij'.repeat(200))), SEQ_LEN, 50);
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Copy a GGUF with some tensors dropped or metadata changed. */
function variant(name: string, change: { dropTensor?: string; set?: Record<string, number> }): string {
  const src = GgufFile.open(initPath);
  const w = new GgufWriter();
  for (const [k, e] of src.metadata) w.set(k, e.value, e.type);
  for (const [k, v] of Object.entries(change.set ?? {})) w.set(k, v, 'u32');
  for (const t of src.tensors) if (t.name !== change.dropTensor) w.addTensor(t.name, t.dims, src.tensor(t.name), 'f32');
  const out = join(dir, name);
  w.write(out);
  src.close();
  return out;
}

describe('the initial model', () => {
  it('has the layout the training path needs', () => {
    const shape = inspectTrainableGguf(initPath);
    expect(shape).toMatchObject({ architecture: 'qwen2', nVocab: 257, nEmbd: 32, nLayer: 1, nHead: 2, nHeadKv: 2 });
    const counts = countParams(SHAPE, 257);
    expect(shape.nParams).toBe(counts.total);
    expect(shape.nTrainable).toBe(counts.trainable);
    const f = GgufFile.open(initPath);
    try {
      expect(f.getString('general.description')).toMatch(/attn_k\/attn_v .* frozen/);
      // GPT-2 scales: ordinary weights 0.02, residual projections 0.02/sqrt(2 nLayer), norms 1, biases 0.
      const std = (a: Float32Array) => Math.sqrt(a.reduce((s, v) => s + v * v, 0) / a.length);
      expect(std(f.tensor('blk.0.attn_q.weight'))).toBeCloseTo(0.02, 2);
      expect(std(f.tensor('blk.0.ffn_down.weight'))).toBeCloseTo(0.02 / Math.sqrt(2), 2);
      expect(f.tensor('blk.0.attn_norm.weight').every((v) => v === 1)).toBe(true);
      expect(f.tensor('blk.0.attn_k.bias').every((v) => v === 0)).toBe(true);
      // The frozen K projection is orthogonal: K Kᵀ = I.
      const k = f.tensor('blk.0.attn_k.weight');
      for (const [i, j] of [[0, 0], [0, 1], [5, 5], [3, 17]] as const) {
        let dot = 0;
        for (let c = 0; c < 32; c++) dot += k[i * 32 + c]! * k[j * 32 + c]!;
        expect(dot).toBeCloseTo(i === j ? 1 : 0, 5);
      }
    } finally {
      f.close();
    }
  });

  it('is reproducible from its seed', () => {
    const again = join(dir, 'again.gguf');
    writeInitialModel(again, { shape: SHAPE, tokenizer: byteLevelTokenizer(), seed: 3 });
    const a = GgufFile.open(initPath);
    const b = GgufFile.open(again);
    expect(Array.from(b.tensor('token_embd.weight'))).toEqual(Array.from(a.tensor('token_embd.weight')));
    a.close();
    b.close();
    expect(randomOrthogonal(8, new Rng(1))).toEqual(randomOrthogonal(8, new Rng(1)));
  });

  it('refuses impossible shapes', () => {
    expect(() => validateShape({ ...SHAPE, nHead: 3 }, 100)).toThrow(/multiple of nHead/);
    expect(() => validateShape({ ...SHAPE, nEmbd: 30, nHead: 10 }, 100)).toThrow(/even/);
    expect(() => validateShape({ ...SHAPE, nLayer: 0 }, 100)).toThrow(InvalidInputError);
    expect(() => writeInitialModel(join(dir, 'x.gguf'), { shape: SHAPE, tokenizer: byteLevelTokenizer(), seed: 1.5 })).toThrow(/seed/);
  });
});

describe('models the training path cannot train are refused before llama.cpp sees them', () => {
  it('missing file, not a GGUF', () => {
    expect(() => TrainableModel.load(join(dir, 'absent.gguf'))).toThrow(TrainingError);
    const junk = join(dir, 'junk.gguf');
    writeFileSync(junk, Buffer.alloc(512, 1));
    expect(() => TrainableModel.load(junk)).toThrow(/not a GGUF/);
  });

  it('fewer KV heads than heads (frozen K/V would not be square)', () => {
    const p = buildTinyGguf(join(dir, 'gqa.gguf'), { arch: 'qwen2', type: 'f32', nHeadKv: 2, nHead: 4 });
    expect(() => TrainableModel.load(p)).toThrow(/as many KV heads as heads/);
  });

  it('non-F32 weights', () => {
    const p = buildTinyGguf(join(dir, 'f16.gguf'), { arch: 'qwen2', type: 'f16', nHeadKv: 4, nHead: 4 });
    expect(() => TrainableModel.load(p)).toThrow(/not F32/);
  });

  it('tied output (no output.weight)', () => {
    expect(() => TrainableModel.load(variant('tied.gguf', { dropTensor: 'output.weight' }))).toThrow(/own output.weight/);
  });
});

describe('bad training data and options are refused before llama.cpp is called', () => {
  it('sequence lengths, token ids, targets', () => {
    expect(() => checkTrainingData('d', [new Int32Array(SEQ_LEN)], SEQ_LEN, 257)).toThrow(/seqLen \+ 1 = 257/);
    const bad = new Int32Array(SEQ_LEN + 1);
    bad[7] = 257;
    expect(() => checkTrainingData('d', [bad], SEQ_LEN, 257)).toThrow(/position 7: input 257 is not a token id/);
    const rows = { tokens: new Int32Array(SEQ_LEN), labels: new Int32Array(SEQ_LEN).fill(-1) };
    expect(() => checkTrainingData('d', rows, SEQ_LEN, 257)).toThrow(/replace ignored targets/);
    expect(() => checkTrainingData('d', { tokens: new Int32Array(300), labels: new Int32Array(300) }, SEQ_LEN, 257)).toThrow(/whole number of rows/);
  });

  it('options', async () => {
    const model = TrainableModel.load(initPath);
    try {
      const ok = { seqLen: SEQ_LEN, lr: 1e-3, threads: 1 };
      await expect(train(model, seqs, { ...ok, seqLen: 300 })).rejects.toThrow(/multiple of 256/);
      await expect(train(model, seqs, { ...ok, lr: 0 })).rejects.toThrow(/lr must be in \(0/);
      await expect(train(model, seqs, { ...ok, lrMin: 1 })).rejects.toThrow(/must not exceed lr/);
      await expect(train(model, seqs, { ...ok, beta2: 1 })).rejects.toThrow(/beta2/);
      await expect(train(model, seqs, { ...ok, weightDecay: 2 })).rejects.toThrow(/weightDecay/);
      await expect(train(model, seqs, { ...ok, epochs: 0 })).rejects.toThrow(/epochs/);
      await expect(train(model, [], ok)).rejects.toThrow(/no training data/);
      await expect(train(model, seqs, { ...ok, validation: [new Int32Array(3)] })).rejects.toThrow(/validation data/);
      // A step that cannot fit in memory would crash inside ggml: refused from an estimate.
      const huge = { tokens: new Int32Array(65536), labels: new Int32Array(65536) };
      await expect(train(model, huge, { ...ok, seqLen: 65536 })).rejects.toThrow(/GiB .* use shorter rows/);
      // None of these reached llama.cpp: the same model still trains.
      const r = await train(model, seqs.slice(0, 2), ok);
      expect(r.steps).toHaveLength(2);
      await expect(train(model, seqs.slice(0, 2), ok)).rejects.toThrow(/already trained/);
    } finally {
      model.dispose();
    }
  });

  it('trainModel checks options before loading anything', async () => {
    await expect(trainModel({ model: join(dir, 'absent.gguf'), data: seqs, seqLen: 100, lr: 1e-3 })).rejects.toThrow(/multiple of 256/);
  });
});

describe('control while training', () => {
  it('an exception in onStep stops training and is rethrown; the process lives on', async () => {
    const model = TrainableModel.load(initPath);
    try {
      const p = train(model, seqs.slice(0, 12), {
        seqLen: SEQ_LEN, lr: 1e-3, threads: 1, chunkSize: 4,
        onStep: (s) => {
          if (s.step === 2) throw new Error('progress sink broke');
        },
      });
      await expect(p).rejects.toThrow('progress sink broke');
    } finally {
      model.dispose();
    }
  });

  it('an abort signal stops at the next chunk boundary', async () => {
    const model = TrainableModel.load(initPath);
    try {
      const ac = new AbortController();
      const r = await train(model, seqs.slice(0, 12), {
        seqLen: SEQ_LEN, lr: 1e-3, threads: 1, chunkSize: 4,
        onStep: (s) => s.step === 5 && ac.abort(),
        signal: ac.signal,
      });
      expect(r.stopped).toBe(true);
      expect(r.steps).toHaveLength(8);
      expect(r.plannedSteps).toBe(12);
    } finally {
      model.dispose();
    }
  });
});

describe('cosine schedule', () => {
  it('warms up linearly and decays to lrMin', () => {
    expect(cosineLr(1, 100, 1, 0.1, 10)).toBeCloseTo(0.1);
    expect(cosineLr(10, 100, 1, 0.1, 10)).toBeCloseTo(1);
    expect(cosineLr(55, 100, 1, 0.1, 10)).toBeCloseTo(0.55);
    expect(cosineLr(100, 100, 1, 0.1, 10)).toBeCloseTo(0.1);
    expect(cosineLr(1, 1, 1, 0.1, 0)).toBeCloseTo(0.1);
  });
});
