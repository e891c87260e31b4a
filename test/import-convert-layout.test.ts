/**
 * What the converter writes: metadata llama.cpp needs, tensor names, types and layouts (the llama Q/K permutation),
 * rope scaling, quantised types, sharded checkpoints.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LlamaContext, LlamaModel } from '../src/engine/index.js';
import { GgufFile } from '../src/formats/gguf/reader.js';
import { permuteRowsForLlama } from '../src/import/convert.js';
import { SafetensorsModel } from '../src/formats/safetensors.js';
import { ReferenceModel } from '../src/reference/forward.js';
import { buildTinyHfModel, R1, tinyHfToGguf } from './helpers/tiny-models.js';
import { chatPromptTokens, EXACT, maxAbs, maxAbsDiff, sameFloats } from './helpers/reference-compare.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'lynx-convert-layout-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('GGUF metadata and layout', () => {
  it('writes what llama.cpp needs: hyper-parameters, BPE vocab with token types, specials, pre-tokenizer, chat template', () => {
    const folder = buildTinyHfModel(join(dir, 'meta-qwen3'), { arch: 'qwen3', headDim: 32, seed: 11 });
    const out = tinyHfToGguf(folder, join(dir, 'meta-qwen3.gguf'), 'bf16');
    const g = GgufFile.open(out);
    try {
      expect(g.get('general.architecture')).toBe('qwen3');
      expect(g.get('general.file_type')).toBe(32);
      expect(g.get('qwen3.block_count')).toBe(2);
      expect(g.get('qwen3.embedding_length')).toBe(64);
      expect(g.get('qwen3.attention.key_length')).toBe(32);
      expect(g.get('qwen3.attention.head_count_kv')).toBe(2);
      expect(g.get('qwen3.rope.freq_base')).toBe(10000);
      expect(g.get('qwen3.attention.layer_norm_rms_epsilon')).toBe(Math.fround(1e-6));
      expect(g.get('tokenizer.ggml.model')).toBe('gpt2');
      // The fingerprint of the R1-swapped Qwen tokenizer is DeepSeek-R1-Distill-Qwen's in llama.cpp's table.
      expect(g.get('tokenizer.ggml.pre')).toBe('deepseek-r1-qwen');
      const tokens = g.get('tokenizer.ggml.tokens') as string[];
      const types = g.get('tokenizer.ggml.token_type') as number[];
      expect(tokens.length).toBe(R1.vocabSize);
      expect(tokens[R1.ids.bos]).toBe(R1.bos);
      expect(types[R1.ids.bos]).toBe(3); // CONTROL
      expect(types[R1.ids.user]).toBe(3); // not flagged special, but looks special (<｜…｜>)
      expect(types[R1.ids.thinkStart]).toBe(4); // USER_DEFINED
      expect(types[0]).toBe(1);
      expect(tokens[151700]).toBe('[PAD151700]');
      expect(types[151700]).toBe(5);
      expect((g.get('tokenizer.ggml.merges') as string[]).length).toBe(151387);
      expect((g.get('tokenizer.ggml.merges') as string[])[0]).toBe('Ġ Ġ');
      expect(g.get('tokenizer.ggml.bos_token_id')).toBe(R1.ids.bos);
      expect(g.get('tokenizer.ggml.eos_token_id')).toBe(R1.ids.eos);
      expect(g.get('tokenizer.ggml.padding_token_id')).toBe(R1.ids.eos);
      expect(g.get('tokenizer.ggml.add_bos_token')).toBe(true);
      expect(g.get('tokenizer.chat_template')).toBe(R1.chatTemplate);
      // generation_config.json's sampling defaults (R1-Distill recommends temperature 0.6, top-p 0.95).
      expect(g.get('general.sampling.temp')).toBe(Math.fround(0.6));
      expect(g.get('general.sampling.top_p')).toBe(Math.fround(0.95));
      // Norms stay F32, matrices take the requested type; an untied model keeps output.weight.
      expect(g.tensorInfo('blk.0.attn_q_norm.weight')!.type).toBe('f32');
      expect(g.tensorInfo('blk.0.attn_q_norm.weight')!.dims).toEqual([32]);
      expect(g.tensorInfo('blk.0.attn_q.weight')!.type).toBe('bf16');
      expect(g.tensorInfo('blk.0.attn_q.weight')!.dims).toEqual([64, 128]);
      expect(g.tensorInfo('output.weight')).toBeDefined();
    } finally {
      g.close();
    }
  });

  it('permutes llama q/k rows per head into interleaved pairs; other tensors keep their bytes', () => {
    const folder = buildTinyHfModel(join(dir, 'perm-llama'), { arch: 'llama', seed: 12 });
    const out = tinyHfToGguf(folder, join(dir, 'perm-llama.gguf'), 'f32');
    const st = SafetensorsModel.open(folder);
    const g = GgufFile.open(out);
    try {
      const q = st.tensor('model.layers.0.self_attn.q_proj.weight');
      const k = st.tensor('model.layers.0.self_attn.k_proj.weight');
      const gq = g.tensor('blk.0.attn_q.weight');
      expect(sameFloats(gq, permuteRowsForLlama(q, 4, 64))).toBe(true);
      expect(sameFloats(g.tensor('blk.0.attn_k.weight'), permuteRowsForLlama(k, 2, 64))).toBe(true);
      // GGUF row 1 of head 0 is HF row headDim/2 = 8 (row 0's partner under rotate_half); row 2 is HF row 1.
      expect(sameFloats(gq.subarray(64, 128), q.subarray(8 * 64, 9 * 64))).toBe(true);
      expect(sameFloats(gq.subarray(128, 192), q.subarray(64, 128))).toBe(true);
      expect(sameFloats(gq, q)).toBe(false);
      expect(sameFloats(g.tensor('blk.0.attn_v.weight'), st.tensor('model.layers.0.self_attn.v_proj.weight'))).toBe(true);
      expect(sameFloats(g.tensor('token_embd.weight'), st.tensor('model.embed_tokens.weight'))).toBe(true);
      expect(g.get('llama.rope.dimension_count')).toBe(16);
      expect(g.get('llama.vocab_size')).toBe(R1.vocabSize);
    } finally {
      g.close();
      st.close();
    }
  });

  it('llama3 rope scaling becomes rope_freqs.weight; linear becomes rope.scaling metadata', () => {
    const l3 = buildTinyHfModel(join(dir, 'rope-l3'), {
      arch: 'llama',
      layers: 1,
      ropeTheta: 500000,
      ropeScaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 },
    });
    const g3 = GgufFile.open(tinyHfToGguf(l3, join(dir, 'rope-l3.gguf'), 'f16'));
    const f = g3.tensor('rope_freqs.weight');
    expect(f.length).toBe(8);
    expect(f[0]).toBe(1); // highest frequency untouched
    expect(f[7]).toBe(8); // lowest frequency divided by the factor
    g3.close();
    const lin = buildTinyHfModel(join(dir, 'rope-lin'), { arch: 'qwen2', layers: 1, ropeScaling: { type: 'linear', factor: 4 } });
    const gl = GgufFile.open(tinyHfToGguf(lin, join(dir, 'rope-lin.gguf'), 'f16'));
    expect(gl.get('qwen2.rope.scaling.type')).toBe('linear');
    expect(gl.get('qwen2.rope.scaling.factor')).toBe(4);
    gl.close();
  });

  it('F16, BF16 and Q8_0 conversions load and stay close to F32; a sharded checkpoint converts identically', async () => {
    // intermediate 80: ffn_down rows of 80 are not whole Q8_0 blocks and fall back to F16, as llama.cpp's converter does.
    const folder = buildTinyHfModel(join(dir, 'types-qwen2'), { arch: 'qwen2', seed: 13, dtype: 'F32', intermediate: 80 });
    const sharded = buildTinyHfModel(join(dir, 'types-qwen2-sharded'), { arch: 'qwen2', seed: 13, dtype: 'F32', intermediate: 80, shardBytes: 8 << 20 });
    const tokens = chatPromptTokens(folder);
    const ref = ReferenceModel.fromHf(folder).forward(tokens);
    const last = ref[ref.length - 1]!.logits;
    const tol = { f16: 0.02, bf16: 0.1, q8_0: 0.1 } as const;
    for (const type of ['f16', 'bf16', 'q8_0'] as const) {
      const model = LlamaModel.load(tinyHfToGguf(folder, join(dir, `types-${type}.gguf`), type));
      try {
        const ctx = new LlamaContext(model, { ...EXACT, nCtx: 256, nSeqMax: 1 });
        const r = await ctx.createSequence().append(tokens);
        expect(maxAbsDiff(r.logits, last) / maxAbs(last)).toBeLessThan(tol[type]);
        ctx.dispose();
      } finally {
        model.dispose();
      }
    }
    const a = GgufFile.open(tinyHfToGguf(folder, join(dir, 'whole.gguf'), 'q8_0'));
    const b = GgufFile.open(tinyHfToGguf(sharded, join(dir, 'sharded.gguf'), 'q8_0'));
    try {
      expect(b.tensors.map((t) => t.name)).toEqual(a.tensors.map((t) => t.name));
      for (const t of a.tensors) expect(Buffer.from(b.tensorBytes(t.name)).equals(Buffer.from(a.tensorBytes(t.name)))).toBe(true);
      expect(a.tensorInfo('blk.0.attn_norm.weight')!.type).toBe('f32');
      expect(a.tensorInfo('blk.0.attn_q.bias')!.type).toBe('f32');
      expect(a.tensorInfo('blk.0.ffn_down.weight')!.type).toBe('f16'); // rows of 80
      expect(a.tensorInfo('blk.0.ffn_up.weight')!.type).toBe('q8_0');
    } finally {
      a.close();
      b.close();
    }
  });
});
