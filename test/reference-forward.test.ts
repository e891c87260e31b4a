/**
 * The reference forward pass on a real trained model (stories260K, llama2.c format), and llama.cpp on its GGUF
 * conversion: a coherent story, the same greedy tokens, the same logits and hidden states.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { LlamaContext, LlamaModel } from '../src/engine/index.js';
import { convertToGguf } from '../src/import/convert.js';
import { decodeLlama2c, readLlama2cTokenizer } from '../src/import/llama2c.js';
import { ReferenceModel } from '../src/reference/forward.js';
import { packageRoot } from '../src/util/paths.js';
import { EXACT, engineRun, expectSameAsReference } from './helpers/reference-compare.js';

const STORIES = resolve(packageRoot(), '..', 'shared', 'models', 'stories260K');

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'lynx-reference-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('stories260K (llama2.c)', () => {
  it('the reference writes a coherent story from BOS, and llama.cpp greedy on the converted GGUF gives the same 64 tokens', async () => {
    const out = join(dir, 'stories260K.gguf');
    convertToGguf(join(STORIES, 'stories260K.bin'), out, { tokenizer: join(STORIES, 'tok512.bin'), progress: false });
    const vocab = readLlama2cTokenizer(join(STORIES, 'tok512.bin'), 512);
    const ref = ReferenceModel.fromLlama2c(join(STORIES, 'stories260K.bin')).greedy([1], 64);
    const story = decodeLlama2c(vocab, ref);
    expect(story.startsWith('Once upon a time')).toBe(true);
    expect(story).toMatch(/little girl named Lily/);

    const model = LlamaModel.load(out);
    try {
      expect(model.info.vocabType).toBe('spm');
      expect(model.info.special.bos).toBe(1);
      expect(model.tokenize('Once upon a time', { addSpecial: false, parseSpecial: true })).toEqual(ref.slice(0, 4));
      const ctx = new LlamaContext(model, { ...EXACT, nCtx: 256, nSeqMax: 1 });
      const seq = ctx.createSequence();
      await seq.append([1]);
      const got: number[] = [];
      for await (const t of seq.generate({ maxTokens: 64, sampler: { temperature: 0 }, stop: { eog: false } })) got.push(t.token);
      expect(got).toEqual(ref);
      expect(model.detokenize(got)).toBe(story);
      ctx.dispose();
    } finally {
      model.dispose();
    }
  });

  it('`lynx generate --bos` on the converted GGUF gives the reference\'s 64 greedy tokens', () => {
    const ref = ReferenceModel.fromLlama2c(join(STORIES, 'stories260K.bin')).greedy([1], 64);
    const out = join(dir, 'stories-cli.gguf');
    convertToGguf(join(STORIES, 'stories260K.bin'), out, { tokenizer: join(STORIES, 'tok512.bin'), progress: false });
    const cli = join(packageRoot(), 'src', 'cli', 'main.ts');
    const r = spawnSync(process.execPath, ['--import', 'tsx', cli, 'generate', '--model', out, '--bos', '--prompt', '', '--max-tokens', '64', '--json'], {
      encoding: 'utf8',
      cwd: packageRoot(),
    });
    expect(r.status, r.stderr).toBe(0);
    const json = JSON.parse(r.stdout.trim()) as { promptTokens: number[]; tokens: number[]; text: string };
    expect(json.promptTokens).toEqual([1]);
    expect(json.tokens).toEqual(ref);
    // The CLI prints each token's piece; SentencePiece's first piece keeps its leading space.
    expect(json.text.trimStart().startsWith('Once upon a time')).toBe(true);
  });

  it('the reference forward pass matches llama.cpp logits and hidden states on stories260K', async () => {
    const out = join(dir, 'stories260K-f32.gguf');
    convertToGguf(join(STORIES, 'stories260K.bin'), out, { tokenizer: join(STORIES, 'tok512.bin'), type: 'f32', progress: false });
    const tokens = [1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298];
    const ref = ReferenceModel.fromLlama2c(join(STORIES, 'stories260K.bin')).forward(tokens);
    const model = LlamaModel.load(out);
    try {
      expectSameAsReference(ref, await engineRun(model, tokens), 5);
    } finally {
      model.dispose();
    }
  });
});
