/**
 * Hugging Face folders converted to GGUF (F32): llama.cpp on the converted file must give the reference forward
 * pass's logits and hidden states (the reference reads the original safetensors directly, in Hugging Face layout).
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
  dir = mkdtempSync(join(tmpdir(), 'lynx-convert-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const CASES: [string, TinyHfOptions][] = [
  ['qwen2 (R1-Distill style: QKV bias, tied embeddings, GQA 4/2)', { arch: 'qwen2', seed: 1 }],
  ['qwen3 (QK-norm, head_dim 32 ≠ hidden/heads, GQA 4/1, untied, theta 1e6)', { arch: 'qwen3', headDim: 32, kvHeads: 1, ropeTheta: 1e6, seed: 2 }],
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
