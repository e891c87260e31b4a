/**
 * The demo tokenizer written into a GGUF tokenizes in llama.cpp exactly as in TypeScript, and a fresh demo model
 * (tiny random weights) loads, renders the zst prompt through its own chat template and generates.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LlamaContext, LlamaModel } from '../src/engine/index.js';
import { buildDemoTokenizer, exampleText, tokenizeExample } from '../src/demo/corpus.js';
import { countParams, writeInitialModel } from '../src/demo/init-model.js';
import { SPECIAL, writeTokenizerToGguf } from '../src/demo/tokenizer.js';
import { generateTraces } from '../src/demo/traces.js';
import { problemPromptTokens } from '../src/reasoning/prompt-tokens.js';
import { EXIT_CUES } from '../src/reasoning/forced-exit.js';

const tok = buildDemoTokenizer();
const traces = generateTraces(120, { seed: 41, split: 'any' });
let dir: string;
let model: LlamaModel;
const shape = { nEmbd: 32, nLayer: 2, nHead: 2, nFf: 64, contextLength: 256 };

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'lynx-demo-gguf-'));
  const path = join(dir, 'demo-init.gguf');
  writeInitialModel(path, { shape, seed: 3, tokenizer: { nVocab: tok.vocabSize, writeTo: (w) => writeTokenizerToGguf(w, tok) } });
  model = LlamaModel.load(path, { gpuLayers: 0 });
});

afterAll(() => {
  model?.dispose();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('demo tokenizer in llama.cpp', () => {
  it('is read from the GGUF with its special tokens and chat template', () => {
    expect(model.info.architecture).toBe('qwen2');
    expect(model.info.vocabType).toBe('bpe');
    expect(model.info.nVocab).toBe(tok.vocabSize);
    expect(model.info.nParams).toBe(countParams(shape, tok.vocabSize).total);
    expect(model.info.special.bos).toBe(tok.bos);
    expect(model.info.special.eos).toBe(tok.eos);
    expect(model.info.special.thinkStart).toBe(tok.thinkStart);
    expect(model.info.special.thinkEnd).toBe(tok.thinkEnd);
    expect(model.meta('tokenizer.ggml.pre')).toBe('qwen2');
    expect(model.info.chatTemplate).toContain('<｜Assistant｜><think>');
    expect(model.isEog(tok.eos)).toBe(true);
  });

  it('tokenizes training examples, exit cues and arbitrary text exactly like the TypeScript tokenizer', () => {
    const texts = [
      ...traces.map((t) => {
        const { prompt, completion } = exampleText(t);
        return prompt + completion;
      }),
      ...Object.values(EXIT_CUES),
      "It's 3.14159 — isn't it? I'll say we've 10,000 cats.",
      'naïve café, straße, Ελληνικά, русский, 日本語のテキスト 🦊🇫🇷',
      'tabs\tand  double  spaces   \n  indented\r\nwindows\n\n\n',
      `${SPECIAL.user}x${SPECIAL.assistant}<think>\ny</think> z${SPECIAL.eos}`,
    ];
    for (const text of texts) {
      expect(model.tokenize(text, { addSpecial: false, parseSpecial: true }), text).toEqual(tok.encode(text));
      expect(model.tokenize(text, { addSpecial: true, parseSpecial: true })).toEqual(tok.encode(text, { addBos: true }));
      expect(model.tokenize(text, { addSpecial: false, parseSpecial: false })).toEqual(tok.encode(text, { parseSpecial: false }));
    }
    for (const t of traces.slice(0, 30)) {
      const ids = tokenizeExample(tok, t).ids;
      expect(model.detokenize(ids)).toBe(tok.decode(ids));
      for (const id of ids.slice(0, 80)) expect(Buffer.from(model.tokenBytes(id))).toEqual(Buffer.from(tok.tokenBytes(id)));
    }
  });

  it('gives the engine the same prompt tokens as the training data (chat template, zst prompt)', () => {
    for (const t of traces.slice(0, 40)) {
      const engine = problemPromptTokens(model, { problem: t.problem.text }, 'zst');
      const ex = tokenizeExample(tok, t);
      expect(engine).toEqual(ex.ids.slice(0, ex.promptTokens));
    }
  });

  it('generates from the fresh model', async () => {
    const ctx = new LlamaContext(model, { nCtx: 256, nSeqMax: 1, threads: 2 });
    try {
      const seq = ctx.createSequence();
      await seq.append(problemPromptTokens(model, { problem: traces[0]!.problem.text }, 'zst'));
      let n = 0;
      for await (const g of seq.generate({ maxTokens: 8, sampler: { temperature: 0 } })) {
        expect(g.token).toBeGreaterThanOrEqual(0);
        expect(g.token).toBeLessThan(tok.vocabSize);
        n++;
      }
      expect(n).toBeGreaterThan(0);
    } finally {
      ctx.dispose();
    }
  });
});
