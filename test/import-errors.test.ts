/**
 * Mistakes a user can make with model folders and checkpoints, each a LynxError whose message says what is wrong.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, truncateSync, unlinkSync, writeFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { convertToGguf } from '../src/import/convert.js';
import { writeSafetensors } from '../src/formats/safetensors.js';
import { readHfConfig } from '../src/import/hf-config.js';
import { ReferenceModel } from '../src/reference/forward.js';
import { InvalidInputError, UnsupportedError } from '../src/util/errors.js';
import { packageRoot } from '../src/util/paths.js';
import { buildTinyHfModel, writeR1Tokenizer } from './helpers/tiny-models.js';

const STORIES = resolve(packageRoot(), '..', 'shared', 'models', 'stories260K');
const TINY = { arch: 'qwen2', hidden: 32, layers: 1, heads: 2, kvHeads: 1, intermediate: 32 } as const;

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'lynx-import-errors-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function editConfig(folder: string, edit: (c: Record<string, unknown>) => void): void {
  const path = join(folder, 'config.json');
  const c = JSON.parse(readFileSync(path, 'utf8'));
  edit(c);
  writeFileSync(path, JSON.stringify(c));
}

describe('Hugging Face folder errors', () => {
  it('a folder with no config.json', () => {
    const folder = join(dir, 'no-config');
    writeR1Tokenizer(folder);
    for (const f of [() => convertToGguf(folder, join(dir, 'x.gguf')), () => ReferenceModel.fromHf(folder), () => readHfConfig(folder)]) {
      expect(f).toThrow(InvalidInputError);
      expect(f).toThrow(/no config\.json/);
    }
  });

  it('an unsupported architecture is named, with the supported ones listed', () => {
    const folder = join(dir, 'gpt2');
    mkdirSync(folder);
    writeFileSync(join(folder, 'config.json'), JSON.stringify({ architectures: ['GPT2LMHeadModel'], model_type: 'gpt2' }));
    const f = () => convertToGguf(folder, join(dir, 'x.gguf'));
    expect(f).toThrow(UnsupportedError);
    expect(f).toThrow(/GPT2LMHeadModel is not supported; supported architectures: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM/);
  });

  it('a shard listed in the index but missing from the folder', () => {
    const folder = buildTinyHfModel(join(dir, 'sharded'), { ...TINY, shardBytes: 2 << 20 });
    const index = JSON.parse(readFileSync(join(folder, 'model.safetensors.index.json'), 'utf8')) as { weight_map: Record<string, string> };
    const shards = [...new Set(Object.values(index.weight_map))];
    expect(shards.length).toBeGreaterThan(1);
    unlinkSync(join(folder, shards[1]!));
    const f = () => convertToGguf(folder, join(dir, 'x.gguf'));
    expect(f).toThrow(InvalidInputError);
    expect(f).toThrow(new RegExp(`${shards[1]!.replaceAll('.', '\\.')} listed in model\\.safetensors\\.index\\.json is missing`));
    expect(() => ReferenceModel.fromHf(folder)).toThrow(/missing/);
  });

  it('a tokenizer that does not match the vocabulary size', () => {
    const folder = buildTinyHfModel(join(dir, 'vocab'), TINY);
    editConfig(folder, (c) => (c.vocab_size = 32000));
    const f = () => convertToGguf(folder, join(dir, 'x.gguf'));
    expect(f).toThrow(InvalidInputError);
    expect(f).toThrow(/token id 151664 but the model has only 32000 embedding rows.*does not belong to this model/);
  });

  it('a truncated tensor names the file and the tensor', () => {
    const folder = buildTinyHfModel(join(dir, 'truncated'), TINY);
    const file = join(folder, 'model.safetensors');
    truncateSync(file, statSync(file).size - 100);
    const f = () => convertToGguf(folder, join(dir, 'x.gguf'));
    expect(f).toThrow(InvalidInputError);
    expect(f).toThrow(/model\.safetensors is truncated: tensor model\.\S+ needs bytes \d+\.\.\d+ but the file has \d+ bytes/);
  });

  it('weights that disagree with config.json, a missing tensor, an unknown tensor, PyTorch-only weights', () => {
    const shape = buildTinyHfModel(join(dir, 'shape'), TINY);
    editConfig(shape, (c) => (c.intermediate_size = 48));
    // The checkpoint's MLP has 32 rows; config says 48: caught before writing (llama.cpp would refuse to load).
    expect(() => convertToGguf(shape, join(dir, 'x.gguf'))).toThrow(/tensor model\.layers\.0\.mlp\.\w+\.weight has shape \[\d+, \d+\] but config\.json implies/);

    const extra = buildTinyHfModel(join(dir, 'extra'), TINY);
    writeSafetensors(join(extra, 'extra.safetensors'), { 'model.layers.0.mlp.experts.0.w1.weight': { dtype: 'F32', shape: [2], data: [1, 2] } });
    expect(() => convertToGguf(extra, join(dir, 'x.gguf'))).toThrow(UnsupportedError);
    expect(() => convertToGguf(extra, join(dir, 'x.gguf'))).toThrow(/tensors a Qwen2ForCausalLM does not have \(model\.layers\.0\.mlp\.experts\.0\.w1\.weight\)/);

    const more = buildTinyHfModel(join(dir, 'layers'), TINY);
    editConfig(more, (c) => (c.num_hidden_layers = 2));
    expect(() => convertToGguf(more, join(dir, 'x.gguf'))).toThrow(/lacks \d+ tensor\(s\) its config\.json implies: model\.layers\.1\./);

    const pt = join(dir, 'pytorch');
    mkdirSync(pt);
    copyFileSync(join(more, 'config.json'), join(pt, 'config.json'));
    writeFileSync(join(pt, 'pytorch_model.bin'), 'not really');
    expect(() => convertToGguf(pt, join(dir, 'x.gguf'))).toThrow(/only PyTorch \.bin\/\.pt files/);
  });

  it('an unsupported --type and a GGUF given as the source', () => {
    const folder = buildTinyHfModel(join(dir, 'type'), TINY);
    expect(() => convertToGguf(folder, join(dir, 'x.gguf'), { type: 'q4_0' as never })).toThrow(UnsupportedError);
    const out = join(dir, 'ok.gguf');
    convertToGguf(folder, out, { type: 'bf16' });
    expect(() => convertToGguf(out, join(dir, 'y.gguf'))).toThrow(/already a GGUF file/);
  });
});

describe('llama2.c errors', () => {
  it('a checkpoint without --tokenizer, a truncated checkpoint, a tokenizer of another vocabulary', () => {
    const bin = join(STORIES, 'stories260K.bin');
    expect(() => convertToGguf(bin, join(dir, 's.gguf'))).toThrow(/--tokenizer tokenizer\.bin/);
    const cut = join(dir, 'cut.bin');
    writeFileSync(cut, readFileSync(bin).subarray(0, 500_000));
    expect(() => convertToGguf(cut, join(dir, 's.gguf'), { tokenizer: join(STORIES, 'tok512.bin') })).toThrow(/truncated/);
    expect(() => ReferenceModel.fromLlama2c(cut)).toThrow(InvalidInputError);
    const tok = join(dir, 'tok-short.bin');
    writeFileSync(tok, readFileSync(join(STORIES, 'tok512.bin')).subarray(0, 1000));
    expect(() => convertToGguf(bin, join(dir, 's.gguf'), { tokenizer: tok })).toThrow(/fewer tokens than the checkpoint's vocabulary of 512/);
    expect(() => convertToGguf(join(dir, 'missing.bin'), join(dir, 's.gguf'))).toThrow(/not found/);
  });
});
