/**
 * Llama and Mistral folders converted to GGUF (F32): the Q/K permutation and rope scaling must leave llama.cpp with
 * the reference forward pass's logits and hidden states. (Qwen in import-convert.test.ts.)
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LlamaModel } from '../src/engine/index.js';
import { ReferenceModel } from '../src/reference/forward.js';
import { buildTinyHfModel, R1, tinyHfToGguf, type TinyHfOptions } from './helpers/tiny-models.js';
import { chatPromptTokens, engineRun, expectSameAsReference } from './helpers/reference-compare.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'lynx-convert-llama-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const CASES: [string, TinyHfOptions][] = [
  ['llama (Q/K permutation, GQA 4/2, untied, linear rope scaling)', { arch: 'llama', ropeTheta: 50000, ropeScaling: { rope_type: 'linear', factor: 2 }, seed: 3 }],
  [
    'llama (llama3 rope scaling, q/k/v/o biases, tied, no GQA)',
    {
      arch: 'llama',
      tied: true,
      attentionBias: true,
      heads: 2,
      kvHeads: 2,
      ropeTheta: 500000,
      // A short original context so that the scaled band covers the frequencies this tiny head uses.
      ropeScaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 64 },
      seed: 4,
    },
  ],
  ['mistral (as llama, 3 layers, F32 weights)', { arch: 'mistral', layers: 3, dtype: 'F32', seed: 5 }],
];

describe('Hugging Face folder → GGUF (F32): llama.cpp matches the reference forward pass', () => {
  for (const [label, opts] of CASES) {
    it(label, async () => {
      const folder = buildTinyHfModel(join(dir, `hf-${opts.arch}-${opts.seed}`), opts);
      const gguf = tinyHfToGguf(folder, join(dir, `${opts.arch}-${opts.seed}.gguf`), 'f32');
      const tokens = chatPromptTokens(folder);
      expect(tokens[0]).toBe(R1.ids.bos);
      expect(tokens.slice(-3)).toEqual([R1.ids.assistant, R1.ids.thinkStart, 198]); // "<｜Assistant｜><think>\n"
      const ref = ReferenceModel.fromHf(folder).forward(tokens);
      const model = LlamaModel.load(gguf);
      try {
        expect(model.info.nLayer).toBe(opts.layers ?? 2);
        expectSameAsReference(ref, await engineRun(model, tokens), model.info.nLayer);
      } finally {
        model.dispose();
      }
    });
  }
});
