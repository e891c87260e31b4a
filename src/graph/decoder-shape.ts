/**
 * The shape of a llama/qwen2-style decoder as its GGUF describes it, and the weight tensors a graph of its first
 * layers (and its output head) needs. Read in TypeScript so that nothing reaches ggml that would fail an assertion.
 */
import { GgufFile } from '../formats/gguf/reader.js';
import { InvalidInputError } from '../util/errors.js';
import type { TensorSpec } from './tensors.js';

export interface DecoderShape {
  arch: 'qwen2' | 'llama';
  nEmbd: number;
  nLayer: number;
  nHead: number;
  nHeadKv: number;
  nFf: number;
  nVocab: number;
  rmsEps: number;
  ropeBase: number;
  /** `freq_scale` of ggml_rope_ext: 1 / the linear rope scaling factor (1 without scaling). */
  ropeScale: number;
  contextLength: number;
  /** Whether q/k/v carry biases (qwen2; llama with attention_bias). */
  qkvBias: boolean;
  /** Whether the attention output projection carries a bias (llama with attention_bias). */
  outputBias: boolean;
  /** No output.weight: the head multiplies by token_embd.weight. */
  tiedOutput: boolean;
  /** Parameters of every tensor the full graph uses. */
  nParams: number;
}

export const DECODER_ARCHS = ['qwen2', 'llama'] as const;

/** Read and check the decoder shape of the GGUF at `path`; throws InvalidInputError naming what is missing or unsupported. */
export function readDecoderShape(path: string): DecoderShape {
  const f = GgufFile.open(path);
  try {
    const arch = f.getString('general.architecture');
    if (arch !== 'qwen2' && arch !== 'llama') throw new InvalidInputError(`${path}: architecture '${arch}' is not supported by the ggml graph (${DECODER_ARCHS.join(', ')})`);
    const num = (key: string, fallback?: number) => {
      const v = f.getNumber(`${arch}.${key}`) ?? fallback;
      if (v === undefined) throw new InvalidInputError(`${path}: metadata ${arch}.${key} is missing`);
      return v;
    };
    const nEmbd = num('embedding_length');
    const nHead = num('attention.head_count');
    const nHeadKv = num('attention.head_count_kv', nHead);
    if (nEmbd % nHead !== 0) throw new InvalidInputError(`${path}: embedding_length ${nEmbd} is not a multiple of head_count ${nHead}`);
    if (nHead % nHeadKv !== 0) throw new InvalidInputError(`${path}: head_count ${nHead} is not a multiple of head_count_kv ${nHeadKv}`);
    const headDim = nEmbd / nHead;
    for (const key of ['attention.key_length', 'attention.value_length', 'rope.dimension_count']) {
      const v = f.getNumber(`${arch}.${key}`);
      if (v !== undefined && v !== headDim) throw new InvalidInputError(`${path}: ${arch}.${key} is ${v}; the ggml graph needs it equal to embedding_length / head_count = ${headDim}`);
    }
    const scaling = f.getString(`${arch}.rope.scaling.type`) ?? 'none';
    const factor = f.getNumber(`${arch}.rope.scaling.factor`) ?? 0;
    if (scaling !== 'none' && scaling !== 'linear') throw new InvalidInputError(`${path}: rope scaling '${scaling}' is not supported by the ggml graph (none, linear)`);
    if (f.tensorInfo('rope_freqs.weight')) throw new InvalidInputError(`${path}: per-frequency rope factors (rope_freqs.weight, llama3 scaling) are not supported by the ggml graph`);
    const emb = f.tensorInfo('token_embd.weight');
    if (!emb || emb.dims.length !== 2 || emb.dims[0] !== nEmbd) throw new InvalidInputError(`${path}: token_embd.weight [${nEmbd}, n_vocab] is missing`);
    const shape: DecoderShape = {
      arch,
      nEmbd,
      nLayer: num('block_count'),
      nHead,
      nHeadKv,
      nFf: num('feed_forward_length'),
      nVocab: emb.dims[1]!,
      rmsEps: num('attention.layer_norm_rms_epsilon', 1e-6),
      ropeBase: num('rope.freq_base', 10000),
      ropeScale: scaling === 'linear' && factor > 0 ? 1 / factor : 1,
      contextLength: num('context_length'),
      qkvBias: f.tensorInfo('blk.0.attn_q.bias') !== undefined,
      outputBias: f.tensorInfo('blk.0.attn_output.bias') !== undefined,
      tiedOutput: f.tensorInfo('output.weight') === undefined,
      nParams: 0,
    };
    for (const t of decoderTensors(shape)) {
      const info = f.tensorInfo(t.name);
      if (!info) throw new InvalidInputError(`${path}: tensor ${t.name} is missing`);
      if (info.dims.join(',') !== t.dims.join(',')) throw new InvalidInputError(`${path}: ${t.name} has shape [${info.dims}], expected [${t.dims}]`);
      if (!info.type) throw new InvalidInputError(`${path}: ${t.name} has a ggml type the graph cannot decode (${info.typeId})`);
      shape.nParams += t.dims.reduce((a, b) => a * b, 1);
    }
    return shape;
  } finally {
    f.close();
  }
}

export interface DecoderPart {
  /** Blocks 0..layers-1 (default all). */
  layers?: number;
  /** The token embedding (default true). */
  embedding?: boolean;
  /** The output head: output_norm.weight and output.weight (token_embd.weight when tied). Default true. */
  head?: boolean;
}

/** The weight tensors (GGUF names, ggml dims) of a part of the decoder, embedding first, then head, then blocks. */
export function decoderTensors(s: DecoderShape, part: DecoderPart = {}): TensorSpec[] {
  const layers = part.layers ?? s.nLayer;
  checkLayerCount(s, layers);
  const e = s.nEmbd;
  const kv = s.nHeadKv * (s.nEmbd / s.nHead);
  const out: TensorSpec[] = [];
  const embedding = part.embedding ?? true;
  const head = part.head ?? true;
  if (embedding || (head && s.tiedOutput)) out.push({ name: 'token_embd.weight', dims: [e, s.nVocab] });
  if (head) {
    out.push({ name: 'output_norm.weight', dims: [e] });
    if (!s.tiedOutput) out.push({ name: 'output.weight', dims: [e, s.nVocab] });
  }
  for (let l = 0; l < layers; l++) {
    const p = `blk.${l}.`;
    out.push({ name: p + 'attn_norm.weight', dims: [e] });
    for (const [m, n] of [['q', e], ['k', kv], ['v', kv]] as const) {
      out.push({ name: `${p}attn_${m}.weight`, dims: [e, n] });
      if (s.qkvBias) out.push({ name: `${p}attn_${m}.bias`, dims: [n] });
    }
    out.push({ name: p + 'attn_output.weight', dims: [e, e] });
    if (s.outputBias) out.push({ name: p + 'attn_output.bias', dims: [e] });
    out.push({ name: p + 'ffn_norm.weight', dims: [e] });
    out.push({ name: p + 'ffn_gate.weight', dims: [e, s.nFf] });
    out.push({ name: p + 'ffn_up.weight', dims: [e, s.nFf] });
    out.push({ name: p + 'ffn_down.weight', dims: [s.nFf, e] });
  }
  return out;
}

export function checkLayerCount(s: DecoderShape, layers: number): void {
  if (!Number.isInteger(layers) || layers < 0 || layers > s.nLayer) throw new InvalidInputError(`layers must be an integer in [0, ${s.nLayer}] (got ${layers})`);
}
