/**
 * stories260K (llama2.c) re-exported as a Hugging Face LlamaForCausalLM folder, the way llama2.c's export.py does
 * it: q/k rows un-permuted from interleaved pairs to transformers' rotate_half layout, a SentencePiece
 * `tokenizer.model` and the `tokenizer.json` transformers' LlamaConverter derives from it (BPE with byte fallback,
 * merges ordered by piece score). A real trained model in Hugging Face format, SentencePiece vocabulary included.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Llama2cCheckpoint, readLlama2cTokenizer } from '../../src/import/llama2c.js';
import { writeSafetensors, type SafetensorsInput } from '../../src/formats/safetensors.js';
import { encodeSentencePieceModel, SP_TYPE, type SentencePiece } from '../../src/import/sentencepiece.js';
import { packageRoot } from '../../src/util/paths.js';

export const STORIES = resolve(packageRoot(), '..', 'shared', 'models', 'stories260K');

/** Inverse of the converter's llama permutation: interleaved-pair rows (2j + s) back to halves rows (s·d/2 + j). */
export function unpermuteRowsForLlama(data: Float32Array, nHeads: number, rowLength: number): Float32Array {
  const headDim = data.length / rowLength / nHeads;
  const half = headDim / 2;
  const out = new Float32Array(data.length);
  for (let h = 0; h < nHeads; h++) {
    for (let j = 0; j < half; j++) {
      for (let s = 0; s < 2; s++) {
        const src = (h * headDim + 2 * j + s) * rowLength;
        const dst = (h * headDim + s * half + j) * rowLength;
        out.set(data.subarray(src, src + rowLength), dst);
      }
    }
  }
  return out;
}

/** The SentencePiece pieces of tok512.bin (types as llama.cpp's llama2.c converter infers them). */
export function storiesPieces(): SentencePiece[] {
  const v = readLlama2cTokenizer(join(STORIES, 'tok512.bin'), 512);
  return v.pieces.map((bytes, id) => {
    const text = Buffer.from(bytes).toString('utf8');
    if (id === 0) return { piece: '<unk>', score: v.scores[id]!, type: SP_TYPE.UNKNOWN };
    if (id === 1) return { piece: '<s>', score: v.scores[id]!, type: SP_TYPE.CONTROL };
    if (id === 2) return { piece: '</s>', score: v.scores[id]!, type: SP_TYPE.CONTROL };
    if (/^<0x[0-9A-F]{2}>$/.test(text)) return { piece: text, score: v.scores[id]!, type: SP_TYPE.BYTE };
    return { piece: text.replaceAll(' ', '\u2581'), score: v.scores[id]!, type: SP_TYPE.NORMAL };
  });
}

/** transformers' SentencePieceExtractor: every split of a piece into two pieces, ordered by the piece's score. */
function spmMerges(pieces: SentencePiece[]): [string, string][] {
  const vocab = new Map(pieces.map((p, i) => [p.piece, i]));
  const merges: [string, string, number][] = [];
  for (const p of pieces) {
    const chars = Array.from(p.piece);
    const local: [string, string, number][] = [];
    for (let i = 1; i < chars.length; i++) {
      const l = chars.slice(0, i).join('');
      const r = chars.slice(i).join('');
      if (vocab.has(l) && vocab.has(r)) local.push([l, r, p.score]);
    }
    local.sort((a, b) => vocab.get(a[0])! - vocab.get(b[0])! || vocab.get(a[1])! - vocab.get(b[1])!);
    merges.push(...local);
  }
  merges.sort((a, b) => b[2] - a[2]); // stable, as Python's sorted(reverse=True)
  return merges.map(([l, r]) => [l, r]);
}

/** tokenizer.json as transformers' LlamaConverter writes it for a SentencePiece BPE model (legacy Llama). */
export function spmTokenizerJson(pieces: SentencePiece[]): Record<string, unknown> {
  const special = (id: number, content: string) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  const bos = { id: '<s>', type_id: 0 };
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [special(0, '<unk>'), special(1, '<s>'), special(2, '</s>')],
    normalizer: { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: '\u2581' }, { type: 'Replace', pattern: { String: ' ' }, content: '\u2581' }] },
    pre_tokenizer: null,
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: bos }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [{ SpecialToken: bos }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '<s>', type_id: 1 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
    },
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: '\u2581' }, content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
        { type: 'Strip', content: ' ', start: 1, stop: 0 },
      ],
    },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: '<unk>',
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      ignore_merges: false,
      vocab: Object.fromEntries(pieces.map((p, i) => [p.piece, i])),
      merges: spmMerges(pieces),
    },
  };
}

/** Write stories260K as a Hugging Face folder (F32 safetensors, tied embeddings) and return it. */
export function buildStoriesHfFolder(dir: string, opts: { withTokenizerModel?: boolean } = {}): string {
  mkdirSync(dir, { recursive: true });
  const ck = Llama2cCheckpoint.open(join(STORIES, 'stories260K.bin'));
  try {
    const c = ck.config;
    writeFileSync(
      join(dir, 'config.json'),
      JSON.stringify({
        architectures: ['LlamaForCausalLM'],
        model_type: 'llama',
        hidden_size: c.dim,
        intermediate_size: c.hiddenDim,
        num_hidden_layers: c.nLayers,
        num_attention_heads: c.nHeads,
        num_key_value_heads: c.nKvHeads,
        vocab_size: c.vocabSize,
        max_position_embeddings: c.seqLen,
        rms_norm_eps: 1e-5,
        rope_theta: 10000,
        tie_word_embeddings: true,
        bos_token_id: 1,
        eos_token_id: 2,
        hidden_act: 'silu',
        torch_dtype: 'float32',
      }),
    );
    const kvDim = c.nKvHeads * c.headSize;
    const t: Record<string, SafetensorsInput> = { 'model.embed_tokens.weight': { dtype: 'F32', shape: [c.vocabSize, c.dim], data: ck.tensor('token_embedding') } };
    for (let l = 0; l < c.nLayers; l++) {
      const p = `model.layers.${l}.`;
      t[p + 'input_layernorm.weight'] = { dtype: 'F32', shape: [c.dim], data: ck.layer('rms_att', l) };
      t[p + 'self_attn.q_proj.weight'] = { dtype: 'F32', shape: [c.dim, c.dim], data: unpermuteRowsForLlama(ck.layer('wq', l), c.nHeads, c.dim) };
      t[p + 'self_attn.k_proj.weight'] = { dtype: 'F32', shape: [kvDim, c.dim], data: unpermuteRowsForLlama(ck.layer('wk', l), c.nKvHeads, c.dim) };
      t[p + 'self_attn.v_proj.weight'] = { dtype: 'F32', shape: [kvDim, c.dim], data: ck.layer('wv', l) };
      t[p + 'self_attn.o_proj.weight'] = { dtype: 'F32', shape: [c.dim, c.dim], data: ck.layer('wo', l) };
      t[p + 'post_attention_layernorm.weight'] = { dtype: 'F32', shape: [c.dim], data: ck.layer('rms_ffn', l) };
      t[p + 'mlp.gate_proj.weight'] = { dtype: 'F32', shape: [c.hiddenDim, c.dim], data: ck.layer('w1', l) };
      t[p + 'mlp.down_proj.weight'] = { dtype: 'F32', shape: [c.dim, c.hiddenDim], data: ck.layer('w2', l) };
      t[p + 'mlp.up_proj.weight'] = { dtype: 'F32', shape: [c.hiddenDim, c.dim], data: ck.layer('w3', l) };
    }
    t['model.norm.weight'] = { dtype: 'F32', shape: [c.dim], data: ck.tensor('rms_final') };
    writeSafetensors(join(dir, 'model.safetensors'), t, { format: 'pt' });
  } finally {
    ck.close();
  }
  const pieces = storiesPieces();
  if (opts.withTokenizerModel ?? true) writeFileSync(join(dir, 'tokenizer.model'), encodeSentencePieceModel(pieces));
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(spmTokenizerJson(pieces)));
  writeFileSync(
    join(dir, 'tokenizer_config.json'),
    JSON.stringify({ add_bos_token: true, add_eos_token: false, bos_token: '<s>', eos_token: '</s>', unk_token: '<unk>', legacy: true, tokenizer_class: 'LlamaTokenizer' }),
  );
  return dir;
}
