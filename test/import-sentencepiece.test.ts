/**
 * A Hugging Face Llama folder with a SentencePiece tokenizer (stories260K re-exported as transformers would hold it):
 * the converter's tokenizer.model path, the llama Q/K permutation on real weights, and tokenization parity between
 * Hugging Face (BPE with byte fallback) and llama.cpp (SPM) on the converted GGUF.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LlamaContext, LlamaModel } from '../src/engine/index.js';
import { GgufFile } from '../src/formats/gguf/reader.js';
import { convertToGguf } from '../src/import/convert.js';
import { parseSentencePieceModel } from '../src/import/sentencepiece.js';
import { loadHfTokenizer } from '../src/import/tokenizer.js';
import { ReferenceModel } from '../src/reference/forward.js';
import { readJsonl } from '../src/util/jsonl.js';
import { dataDir } from '../src/util/paths.js';
import { UnsupportedError } from '../src/util/errors.js';
import { buildStoriesHfFolder, STORIES, storiesPieces } from './helpers/stories-hf.js';
import { EXACT } from './helpers/reference-compare.js';

let dir: string;
let folder: string;
let fromHf: string;
let fromLlama2c: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'lynx-spm-'));
  folder = buildStoriesHfFolder(join(dir, 'stories-hf'));
  fromHf = join(dir, 'from-hf.gguf');
  fromLlama2c = join(dir, 'from-llama2c.gguf');
  convertToGguf(folder, fromHf, { type: 'f32', progress: false });
  convertToGguf(join(STORIES, 'stories260K.bin'), fromLlama2c, { tokenizer: join(STORIES, 'tok512.bin'), type: 'f32', progress: false });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('SentencePiece Hugging Face folder', () => {
  it('tokenizer.model parses back to its pieces, scores and types', () => {
    const sp = parseSentencePieceModel(readFileSync(join(folder, 'tokenizer.model')));
    expect(sp.pieces).toEqual(storiesPieces().map((p) => ({ ...p, score: Math.fround(p.score) })));
    expect(sp.addDummyPrefix).toBe(true);
  });

  it('the reference forward pass on the Hugging Face layout (rotate_half) decodes what llama2.c does (interleaved)', () => {
    const hf = ReferenceModel.fromHf(folder).greedy([1], 64);
    expect(hf).toEqual(ReferenceModel.fromLlama2c(join(STORIES, 'stories260K.bin')).greedy([1], 64));
  });

  it('converts to the same GGUF as the llama2.c checkpoint: permuted q/k restore llama2.c rows, same vocabulary', () => {
    const a = GgufFile.open(fromHf);
    const b = GgufFile.open(fromLlama2c);
    try {
      expect(a.get('tokenizer.ggml.model')).toBe('llama');
      expect(a.get('tokenizer.ggml.pre')).toBe('default');
      for (const key of ['tokenizer.ggml.tokens', 'tokenizer.ggml.scores', 'tokenizer.ggml.token_type', 'tokenizer.ggml.bos_token_id', 'tokenizer.ggml.eos_token_id', 'tokenizer.ggml.unknown_token_id', 'tokenizer.ggml.add_bos_token']) {
        expect(a.get(key), key).toEqual(b.get(key));
      }
      for (const key of ['llama.block_count', 'llama.embedding_length', 'llama.feed_forward_length', 'llama.attention.head_count', 'llama.attention.head_count_kv', 'llama.rope.dimension_count', 'llama.attention.layer_norm_rms_epsilon', 'llama.context_length']) {
        expect(a.get(key), key).toEqual(b.get(key));
      }
      expect(a.tensors.map((t) => t.name).sort()).toEqual(b.tensors.map((t) => t.name).sort());
      for (const t of b.tensors) expect(Buffer.from(a.tensorBytes(t.name)).equals(Buffer.from(b.tensorBytes(t.name))), t.name).toBe(true);
    } finally {
      a.close();
      b.close();
    }
  });

  it('llama.cpp greedy on the converted folder gives the reference story', async () => {
    const model = LlamaModel.load(fromHf);
    try {
      const ctx = new LlamaContext(model, { ...EXACT, nCtx: 256, nSeqMax: 1 });
      const seq = ctx.createSequence();
      await seq.append([1]);
      const got: number[] = [];
      for await (const t of seq.generate({ maxTokens: 64, sampler: { temperature: 0 }, stop: { eog: false } })) got.push(t.token);
      expect(got).toEqual(ReferenceModel.fromHf(folder).greedy([1], 64));
      ctx.dispose();
    } finally {
      model.dispose();
    }
  });

  it('Hugging Face (BPE + byte fallback) and llama.cpp (SPM) tokenize alike, byte fallback included', () => {
    const hf = loadHfTokenizer(folder);
    const model = LlamaModel.load(fromHf);
    try {
      const gsm = readJsonl<{ question: string }>(join(dataDir(), 'gsm8k', 'test.jsonl')).slice(0, 60).map((r) => r.question);
      const strings = [
        ...gsm,
        'Once upon a time, there was a little girl named Lily.',
        'She said, "I can\'t find my ball!"  Then   she ran.',
        'Numbers: 1 22 333 4444, 3.14 and 1,000,000.',
        'Unicode falls back to bytes: café, 你好, 🚀.',
        'line one\nline two\n\nline four\t(tab)',
        'trailing space ',
        'x',
      ];
      const mismatches: string[] = [];
      for (const s of strings) {
        const a = hf.encode(s);
        const b = model.tokenize(s, { addSpecial: false, parseSpecial: false });
        if (a.join(',') !== b.join(',')) mismatches.push(`${JSON.stringify(s.slice(0, 60))}: hf ${a.slice(0, 12)} / llama ${b.slice(0, 12)}`);
      }
      expect(mismatches, mismatches.slice(0, 5).join('\n')).toEqual([]);
      expect(model.tokenize('Hello', { addSpecial: true, parseSpecial: false })).toEqual(hf.encode('Hello', { addSpecialTokens: true }));
      const ids = hf.encode('Once upon a time, café');
      expect(model.detokenize(ids)).toBe(hf.decode(ids));
    } finally {
      model.dispose();
    }
  });

  it('without tokenizer.model, a byte-fallback tokenizer.json is refused rather than converted approximately', () => {
    const bare = buildStoriesHfFolder(join(dir, 'no-spm'), { withTokenizerModel: false });
    expect(() => convertToGguf(bare, join(dir, 'x.gguf'))).toThrow(UnsupportedError);
    expect(() => convertToGguf(bare, join(dir, 'x.gguf'))).toThrow(/download tokenizer\.model too/);
  });
});
