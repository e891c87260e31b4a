/**
 * The early-exit heads shipped with the demo reasoner (models/lynx-demo/heads): they load for the shipped model with
 * their calibration, `--draft heads` finds them with no folder given, and greedy self-speculative decoding with them
 * gives plain greedy decoding's tokens on demo prompts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { LlamaModel } from '../src/engine/index.js';
import { defaultHeadsDir, openDecoding } from '../src/pipeline/decoding.js';
import { generateStep } from '../src/pipeline/generate.js';
import { OpenHeads } from '../src/reasoning/heads/exit.js';
import { problemPromptTokens } from '../src/reasoning/prompt-tokens.js';
import { loadBenchmark } from '../src/tasks/registry.js';
import { packageRoot } from '../src/util/paths.js';
import { firstDifference, greedy } from './helpers/heads.js';

const DEMO = resolve(packageRoot(), 'models', 'lynx-demo', 'model.gguf');
const SHIPPED = resolve(packageRoot(), 'models', 'lynx-demo', 'heads');
/** A near tie: plain decoding's two best tokens closer than this in log-probability (test/speculative.test.ts). */
const NEAR_TIE = 1e-3;

let model: LlamaModel;

beforeAll(() => {
  model = LlamaModel.load(DEMO);
});

afterAll(() => {
  model?.dispose();
});

describe('the heads shipped with the demo reasoner', () => {
  it('are the default heads folder of the shipped model, and load for it with their calibration', () => {
    expect(defaultHeadsDir(DEMO)).toBe(SHIPPED);
    for (const f of ['heads.json', 'heads.safetensors', 'calibration.json']) expect(existsSync(resolve(SHIPPED, f)), f).toBe(true);
    const heads = OpenHeads.open(SHIPPED, DEMO, { threads: 1 });
    try {
      expect(heads.layers.length).toBeGreaterThan(0);
      expect(heads.calibration?.heads.map((h) => h.layer)).toEqual(heads.layers);
      // Trained, not the logit lens they start from: every head agrees with the full model on most tokens.
      const metrics = heads.heads.manifest.metrics ?? [];
      expect(metrics.map((m) => m.layer)).toEqual(heads.layers);
      for (const m of metrics) expect(m.agreementAfter, `head ${m.layer}`).toBeGreaterThan(Math.max(0.6, m.agreementBefore));
      for (const l of heads.layers) expect(heads.thresholds(0.9).get(l), `head ${l} at level 0.9`).not.toBeUndefined();
    } finally {
      heads.dispose();
    }
  });

  it('draft greedily (--draft heads, no folder given) the tokens of plain greedy decoding', async () => {
    const opened = await openDecoding(model, { draft: 'heads', threads: 1 });
    expect(opened).toBeDefined();
    try {
      expect(opened!.mode.lossless).toBe(true);
      expect(opened!.fallback).toBeUndefined(); // partial-depth decodes stop early on the CPU
      const prompts = loadBenchmark('demo:test', { limit: 3 }).map((p) => problemPromptTokens(model, p));
      for (const [i, prompt] of prompts.entries()) {
        const plain = await greedy(model, prompt, 64);
        const spec = await greedy(model, prompt, 64, opened!.mode);
        const d = firstDifference(plain.tokens, spec.tokens);
        // Batched verification equals one-token decoding up to float rounding: a difference only at a near tie.
        if (d < plain.tokens.length || spec.tokens.length !== plain.tokens.length) expect(plain.margins[d], `prompt ${i}: differs at ${d}`).toBeLessThan(NEAR_TIE);
      }
      expect(opened!.mode.stats.accepted).toBeGreaterThan(20); // the drafts were used
    } finally {
      opened!.dispose();
    }
  });

  it('lynx generate --draft heads on the demo model: the same text as plain generation, with drafts accepted', async () => {
    const prompt = model.detokenize(loadBenchmark('demo:test', { limit: 1 }).map((p) => problemPromptTokens(model, p))[0]!);
    const common = { model, prompt, maxTokens: 48, sampler: { temperature: 0 }, threads: 1 };
    const plain = await generateStep(common);
    const drafted = await generateStep({ ...common, decoding: { draft: 'heads', threads: 1 } });
    expect(drafted.tokens).toEqual(plain.tokens);
    expect(drafted.decoding?.lossless).toBe(true);
    expect(drafted.decoding!.accepted).toBeGreaterThan(0);
    expect(drafted.decoding!.tokensPerFullDecode!).toBeGreaterThan(1);
    // From a draft vocabulary of 300 of the 630 tokens: the same text again; layer exit and a draft model refuse one.
    const partial = await generateStep({ ...common, decoding: { draft: 'heads', draftVocab: 300, threads: 1 } });
    expect(partial.tokens).toEqual(plain.tokens);
    expect(partial.decoding!.accepted).toBeGreaterThan(0);
    await expect(generateStep({ ...common, decoding: { layerExit: 'heads', draftVocab: 300 } })).rejects.toThrow(/--draft-vocab is for speculative decoding/);
    await expect(generateStep({ ...common, decoding: { draft: `model:${DEMO}`, draftVocab: 300 } })).rejects.toThrow(/not to a draft model/);
  });
});
