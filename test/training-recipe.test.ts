/**
 * The demo training recipe end to end at toy size: tokenizer, random initial model, packed trace corpus, training
 * through llama.cpp, the saved GGUF (metadata restored, F16) and its loss curve. CI runs only a few steps of it.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LlamaModel, loadLlama } from '../src/engine/index.js';
import { GgufFile } from '../src/formats/gguf/reader.js';
import { DEMO_RECIPES, recipeWith, trainDemoModel, validateRecipe, type DemoTrainResult, type LossCurveFile } from '../src/demo/train.js';

let dir: string;
let result: DemoTrainResult;
const recipe = recipeWith(DEMO_RECIPES.small, {
  name: 'toy-demo',
  shape: { nEmbd: 32, nLayer: 1, nHead: 2, nFf: 64, contextLength: 512 },
  data: { sequences: 6, validationSequences: 2 },
  optim: { warmupSteps: 2 },
});

beforeAll(async () => {
  loadLlama();
  dir = mkdtempSync(join(tmpdir(), 'lynx-recipe-'));
  result = await trainDemoModel({ recipe, outDir: dir, threads: 1, evalEvery: 3 });
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('the demo training recipe', () => {
  it('writes the model and its loss curve, nothing else', () => {
    expect(result.modelPath).toBe(join(dir, 'toy-demo.gguf'));
    expect(readdirSync(dir).sort()).toEqual(['toy-demo.gguf', 'toy-demo.loss.json']);
    const curve = JSON.parse(readFileSync(result.lossCurvePath, 'utf8')) as LossCurveFile;
    expect(curve.complete).toBe(true);
    expect(curve.steps).toHaveLength(6);
    expect(curve.steps[0]![0]).toBe(1);
    expect(curve.evals.map((e) => e.step)).toEqual([0, 3, 6]);
    expect(curve.evals[2]!.loss).toBeLessThan(curve.evals[0]!.loss);
    expect(curve.recipe.name).toBe('toy-demo');
    expect(curve.tokens).toBe(6 * 512);
  });

  it('saves a model llama.cpp loads, with the tokenizer, chat template and provenance that save_to_file drops', () => {
    const f = GgufFile.open(result.modelPath);
    try {
      expect(f.getString('tokenizer.chat_template')).toContain('<｜Assistant｜><think>');
      // Trained on the full-gradient graph path: nothing is frozen, and the description does not say so.
      expect(JSON.parse(f.getString('lynx.demo.recipe')!).trainer).toBe('graph');
      expect(f.getString('general.description')).not.toMatch(/frozen/);
      expect(JSON.parse(f.getString('lynx.demo.recipe')!).name).toBe('toy-demo');
      expect(f.getNumber('general.file_type')).toBe(1);
      expect(f.tensorInfo('blk.0.ffn_up.weight')!.type).toBe('f16');
      expect(f.tensorInfo('blk.0.attn_norm.weight')!.type).toBe('f32');
    } finally {
      f.close();
    }
    const model = LlamaModel.load(result.modelPath);
    try {
      expect(model.info.special.thinkEnd).toBeDefined();
      expect(model.info.chatTemplate).toBeDefined();
      expect(model.info.nHeadKv).toBe(model.info.nHead);
    } finally {
      model.dispose();
    }
  });

  it("on llama.cpp's own path (trainer llama-opt) the file says K/V were frozen, and they were", async () => {
    const out = mkdtempSync(join(tmpdir(), 'lynx-recipe-llama-opt-'));
    try {
      const r = await trainDemoModel({ recipe: recipeWith(recipe, { trainer: 'llama-opt', data: { sequences: 2 } }), outDir: out, threads: 1 });
      expect(r.report.frozen.some((n) => /attn_k\.weight$/.test(n))).toBe(true);
      const f = GgufFile.open(r.modelPath);
      expect(f.getString('general.description')).toMatch(/frozen/);
      f.close();
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
    expect(result.report.frozen).toEqual([]);
  });

  it('refuses a bad recipe before doing anything slow', async () => {
    expect(() => validateRecipe(recipeWith(recipe, { seqLen: 500 }))).toThrow(/multiple of 256/);
    expect(() => validateRecipe(recipeWith(recipe, { name: '../x' }))).toThrow(/file name/);
    const out = join(dir, 'nothing');
    await expect(trainDemoModel({ recipe: recipeWith(recipe, { shape: { nHead: 3 } }), outDir: out })).rejects.toThrow(/multiple of nHead/);
    expect(existsSync(out)).toBe(false);
  });
});
