/**
 * The forward pass of llama.cpp's qwen2/llama graph, built tensor by tensor without a KV cache (every position of a
 * row attends causally to the ones before it), in two parts that can be used apart:
 *
 * - `buildDecoderLayers`: token embedding and blocks 0..K-1 (RMSNorm, Q/K/V with optional biases, RoPE, causal
 *   softmax attention with grouped KV heads, output projection, RMSNorm, SwiGLU). Its result is the residual stream
 *   after block K-1, the tensor llama.cpp names `l_out-(K-1)` (what the engine's taps read).
 * - `buildHead`: RMSNorm with a norm weight and a hidden -> vocab matrix, on any hidden state: the model's own head
 *   (`modelHead`) or another one (an early-exit head trained on an intermediate layer).
 *
 * The operations and their order are those of llama.cpp's graph, so the results agree with its inference to float
 * rounding (test/graph-decoder.test.ts), and ggml's automatic differentiation reaches every weight and position.
 */
import { GgmlRopeType } from '../native/ggml.js';
import type { Pointer } from '../native/pointer.js';
import type { GraphBuilder } from './builder.js';
import { checkLayerCount, type DecoderShape } from './decoder-shape.js';

type T = Pointer; // struct ggml_tensor *

/** Weights by GGUF name (a TensorStore's `get`). */
export type WeightLookup = (name: string) => T;

export interface DecoderInputs {
  /** I32 [n]: token ids. */
  tokens: T;
  /** I32 [n]: their positions (0..n-1 for a row from the start). */
  positions: T;
  n: number;
}

/** The hidden state [nEmbd, n] after block `layers - 1` (the embeddings for `layers` = 0). */
export function buildDecoderLayers(b: GraphBuilder, s: DecoderShape, w: WeightLookup, input: DecoderInputs, layers: number): T {
  checkLayerCount(s, layers);
  const { g, ctx: c } = b;
  const n = input.n;
  const hd = s.nEmbd / s.nHead;
  const rope = s.arch === 'qwen2' ? GgmlRopeType.NEOX : GgmlRopeType.NORM;
  const norm = (x: T, weight: string) => g.ggml_mul(c, g.ggml_rms_norm(c, x, s.rmsEps), w(weight));
  const linear = (x: T, weight: string, bias?: string) => {
    const y = g.ggml_mul_mat(c, w(weight), x);
    return bias ? g.ggml_add(c, y, w(bias)) : y;
  };
  let x = g.ggml_get_rows(c, w('token_embd.weight'), input.tokens); // [E, n]
  for (let l = 0; l < layers; l++) {
    const p = `blk.${l}.`;
    const h = norm(x, p + 'attn_norm.weight');
    const bias = (m: string) => (s.qkvBias ? `${p}attn_${m}.bias` : undefined);
    const heads = (t: T, count: number) => g.ggml_reshape_4d(c, t, hd, count, n, 1); // [hd, heads, n, 1]
    const ropeOf = (t: T) => g.ggml_rope_ext(c, t, input.positions, null, hd, rope, s.contextLength, s.ropeBase, s.ropeScale, 0, 1, 32, 1);
    const q = ropeOf(heads(linear(h, p + 'attn_q.weight', bias('q')), s.nHead));
    const k = ropeOf(heads(linear(h, p + 'attn_k.weight', bias('k')), s.nHeadKv));
    const v = heads(linear(h, p + 'attn_v.weight', bias('v')), s.nHeadKv);
    const qh = g.ggml_cont(c, g.ggml_permute(c, q, 0, 2, 1, 3)); // [hd, n, H]
    const kh = g.ggml_cont(c, g.ggml_permute(c, k, 0, 2, 1, 3)); // [hd, n, H_kv]
    const vt = g.ggml_cont(c, g.ggml_permute(c, v, 1, 2, 0, 3)); // [n, hd, H_kv]
    // With fewer KV heads, mul_mat broadcasts head j of K/V over query heads j*g .. j*g+g-1 (llama.cpp's GQA).
    let kq = g.ggml_mul_mat(c, kh, qh); // [n_k, n_q, H]
    kq = g.ggml_soft_max_ext(c, g.ggml_diag_mask_inf(c, kq, 0), null, 1 / Math.sqrt(hd), 0);
    const kqv = g.ggml_mul_mat(c, vt, kq); // [hd, n_q, H]
    const merged = g.ggml_reshape_2d(c, g.ggml_cont(c, g.ggml_permute(c, kqv, 0, 2, 1, 3)), s.nEmbd, n);
    x = g.ggml_add(c, x, linear(merged, p + 'attn_output.weight', s.outputBias ? p + 'attn_output.bias' : undefined));
    const h2 = norm(x, p + 'ffn_norm.weight');
    const act = g.ggml_mul(c, g.ggml_silu(c, linear(h2, p + 'ffn_gate.weight')), linear(h2, p + 'ffn_up.weight'));
    x = g.ggml_add(c, x, linear(act, p + 'ffn_down.weight'));
  }
  return x;
}

/** A head: RMSNorm weight [nEmbd] and matrix [nEmbd, nVocab] (ggml dims). */
export interface HeadWeights {
  norm: T;
  matrix: T;
}

/** The model's own head: output_norm.weight and output.weight (token_embd.weight when the output is tied). */
export function modelHead(s: Pick<DecoderShape, 'tiedOutput'>, w: WeightLookup): HeadWeights {
  return { norm: w('output_norm.weight'), matrix: w(s.tiedOutput ? 'token_embd.weight' : 'output.weight') };
}

/** Logits [nVocab, n] of hidden states [nEmbd, n]. */
export function buildHead(b: GraphBuilder, s: Pick<DecoderShape, 'rmsEps'>, hidden: T, head: HeadWeights): T {
  const { g, ctx: c } = b;
  return g.ggml_mul_mat(c, head.matrix, g.ggml_mul(c, g.ggml_rms_norm(c, hidden, s.rmsEps), head.norm));
}
