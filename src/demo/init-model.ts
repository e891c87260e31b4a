/**
 * A randomly initialised qwen2-architecture GGUF, the starting point of the demo model's training
 * (`src/training/llama-opt.ts`). The layout is shaped by what llama.cpp's training path of the pinned build can train:
 *
 * - all tensors F32 (llama_opt_init only marks F32 tensors as trainable);
 * - an untied `output.weight` (llama_opt_init never trains `token_embd.weight`; the trainer marks it itself, and a
 *   tied output would be trained through one path only);
 * - as many KV heads as heads: `attn_k`/`attn_v` never receive gradients in this build (K and V are read back from
 *   the KV cache), so they stay at their initial values. They are square and orthogonal, so the frozen projections
 *   lose no information: the trainable query, output projection and residual stream adapt around them. Their
 *   biases are zero (and stay zero).
 *
 * Initialisation follows GPT-2: N(0, 0.02) for weights, N(0, 0.02/sqrt(2·nLayer)) for the projections that write into
 * the residual stream (`attn_output`, `ffn_down`), ones for norms, zeros for biases.
 */
import { GgufWriter } from '../formats/gguf/writer.js';
import { GgufFile } from '../formats/gguf/reader.js';
import { InvalidInputError } from '../util/errors.js';
import { Rng } from '../util/rng.js';

/** The size of the network (the vocabulary size comes from the tokenizer). */
export interface ModelShape {
  nEmbd: number;
  nLayer: number;
  nHead: number;
  /** Feed-forward (SwiGLU) width. */
  nFf: number;
  /** Written as `qwen2.context_length`: the longest sequence the model is meant for. */
  contextLength: number;
  ropeFreqBase?: number;
  rmsEps?: number;
}

/** Whatever writes the tokenizer keys (`tokenizer.*`) into the GGUF; `nVocab` is the number of tokens it writes. */
export interface TokenizerSpec {
  nVocab: number;
  writeTo(writer: GgufWriter): void;
}

export interface InitModelOptions {
  shape: ModelShape;
  tokenizer: TokenizerSpec;
  /** Seed of the initialisation (the same seed gives the same file). */
  seed: number;
  name?: string;
  /** Free text stored as `general.description` (the model card's short form). */
  description?: string;
  /** Extra metadata keys (for example a chat template, or provenance of the training recipe). */
  metadata?: Record<string, string | number | boolean>;
  /** Standard deviation of ordinary weights. Default 0.02 (GPT-2). */
  initStd?: number;
  /** The model will be trained with attn_k/attn_v frozen (llama_opt): say so in general.description. Default true. */
  frozenKv?: boolean;
}

export interface InitModelSummary {
  path: string;
  nVocab: number;
  /** All parameters in the file. */
  nParams: number;
  /** Parameters that llama.cpp's training path can update (all but attn_k/attn_v weights and biases). */
  nTrainable: number;
  tensors: { name: string; dims: number[] }[];
}

export const FROZEN_KV_NOTE =
  'attn_k/attn_v (weights and biases) are frozen at a random orthogonal initialisation with zero bias: the llama.cpp ' +
  'training path used to train this model gives them no gradient, so the model has as many KV heads as heads ' +
  '(square, lossless projections) and learns around them.';

/** Check a shape and say what is wrong, before anything is written or handed to llama.cpp. */
export function validateShape(shape: ModelShape, nVocab: number): void {
  const problems: string[] = [];
  const positiveInt = (name: string, v: number) => {
    if (!Number.isInteger(v) || v <= 0) problems.push(`${name} must be a positive integer (got ${v})`);
  };
  positiveInt('nEmbd', shape.nEmbd);
  positiveInt('nLayer', shape.nLayer);
  positiveInt('nHead', shape.nHead);
  positiveInt('nFf', shape.nFf);
  positiveInt('contextLength', shape.contextLength);
  positiveInt('nVocab', nVocab);
  if (problems.length === 0) {
    if (shape.nEmbd % shape.nHead !== 0) problems.push(`nEmbd (${shape.nEmbd}) must be a multiple of nHead (${shape.nHead})`);
    else if ((shape.nEmbd / shape.nHead) % 2 !== 0) problems.push(`the head size nEmbd/nHead (${shape.nEmbd / shape.nHead}) must be even for RoPE`);
  }
  if (shape.ropeFreqBase !== undefined && !(shape.ropeFreqBase > 0)) problems.push(`ropeFreqBase must be > 0 (got ${shape.ropeFreqBase})`);
  if (shape.rmsEps !== undefined && !(shape.rmsEps > 0 && shape.rmsEps < 1)) problems.push(`rmsEps must be in (0, 1) (got ${shape.rmsEps})`);
  if (problems.length > 0) throw new InvalidInputError(`invalid model shape: ${problems.join('; ')}`);
}

/** Parameter counts of a shape (total, and trainable through llama.cpp: without attn_k/attn_v). */
export function countParams(shape: ModelShape, nVocab: number): { total: number; trainable: number } {
  const e = shape.nEmbd;
  const perLayer = 2 * e /* norms */ + 4 * e * e + 3 * e /* q,k,v,o + biases */ + 3 * e * shape.nFf;
  const total = 2 * e * nVocab + e + shape.nLayer * perLayer;
  const frozen = shape.nLayer * (2 * e * e + 2 * e);
  return { total, trainable: total - frozen };
}

/** Write the randomly initialised model. The file is written atomically. */
export function writeInitialModel(path: string, opts: InitModelOptions): InitModelSummary {
  const { shape, tokenizer } = opts;
  const nVocab = tokenizer.nVocab;
  validateShape(shape, nVocab);
  if (!Number.isInteger(opts.seed)) throw new InvalidInputError(`seed must be an integer (got ${opts.seed})`);
  const std = opts.initStd ?? 0.02;
  if (!(std > 0 && std < 1)) throw new InvalidInputError(`initStd must be in (0, 1) (got ${std})`);

  const a = 'qwen2';
  const e = shape.nEmbd;
  const w = new GgufWriter();
  w.set('general.architecture', a);
  w.set('general.name', opts.name ?? 'lynx-demo');
  const note = opts.frozenKv === false ? '' : FROZEN_KV_NOTE;
  w.set('general.description', [opts.description, note].filter(Boolean).join(' ') || 'Lynx demo model');
  w.set('general.file_type', 0, 'u32'); // all F32
  w.set(`${a}.block_count`, shape.nLayer, 'u32');
  w.set(`${a}.context_length`, shape.contextLength, 'u32');
  w.set(`${a}.embedding_length`, e, 'u32');
  w.set(`${a}.feed_forward_length`, shape.nFf, 'u32');
  w.set(`${a}.attention.head_count`, shape.nHead, 'u32');
  w.set(`${a}.attention.head_count_kv`, shape.nHead, 'u32');
  w.set(`${a}.attention.layer_norm_rms_epsilon`, shape.rmsEps ?? 1e-6, 'f32');
  w.set(`${a}.rope.freq_base`, shape.ropeFreqBase ?? 10000, 'f32');
  tokenizer.writeTo(w);
  for (const [k, v] of Object.entries(opts.metadata ?? {})) w.set(k, v);

  // One generator per tensor (derived from the seed and the name), so a tensor's values do not depend on the order
  // or the presence of other tensors.
  const tensors: { name: string; dims: number[] }[] = [];
  const add = (name: string, dims: number[], make: (rng: Rng, n: number) => Float32Array) => {
    const n = dims.reduce((x, y) => x * y, 1);
    tensors.push({ name, dims });
    w.addTensor(name, dims, () => make(Rng.derive(opts.seed, name), n), 'f32');
  };
  const normal = (scale: number) => (rng: Rng, n: number) => {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = rng.normal() * scale;
    return out;
  };
  const constant = (value: number) => (_rng: Rng, n: number) => new Float32Array(n).fill(value);
  const orthogonal = (rng: Rng) => randomOrthogonal(e, rng);
  const residualStd = std / Math.sqrt(2 * shape.nLayer);

  add('token_embd.weight', [e, nVocab], normal(std));
  add('output_norm.weight', [e], constant(1));
  add('output.weight', [e, nVocab], normal(std));
  for (let l = 0; l < shape.nLayer; l++) {
    const p = `blk.${l}.`;
    add(p + 'attn_norm.weight', [e], constant(1));
    add(p + 'attn_q.weight', [e, e], normal(std));
    add(p + 'attn_q.bias', [e], constant(0));
    add(p + 'attn_k.weight', [e, e], orthogonal);
    add(p + 'attn_k.bias', [e], constant(0));
    add(p + 'attn_v.weight', [e, e], orthogonal);
    add(p + 'attn_v.bias', [e], constant(0));
    add(p + 'attn_output.weight', [e, e], normal(residualStd));
    add(p + 'ffn_norm.weight', [e], constant(1));
    add(p + 'ffn_gate.weight', [e, shape.nFf], normal(std));
    add(p + 'ffn_up.weight', [e, shape.nFf], normal(std));
    add(p + 'ffn_down.weight', [shape.nFf, e], normal(residualStd));
  }
  w.write(path);
  const counts = countParams(shape, nVocab);
  return { path, nVocab, nParams: counts.total, nTrainable: counts.trainable, tensors };
}

/**
 * An n×n matrix with orthonormal rows (Gram-Schmidt on Gaussian rows, repeated once for numerical orthogonality).
 * Row-major, which is ggml's layout for a [n, n] weight: each row maps the input to one output component.
 */
export function randomOrthogonal(n: number, rng: Rng): Float32Array {
  const m = new Float64Array(n * n);
  for (let i = 0; i < m.length; i++) m[i] = rng.normal();
  for (let i = 0; i < n; i++) {
    const ri = i * n;
    for (let pass = 0; pass < 2; pass++) {
      for (let j = 0; j < i; j++) {
        const rj = j * n;
        let dot = 0;
        for (let k = 0; k < n; k++) dot += m[ri + k]! * m[rj + k]!;
        for (let k = 0; k < n; k++) m[ri + k] -= dot * m[rj + k]!;
      }
    }
    let norm = 0;
    for (let k = 0; k < n; k++) norm += m[ri + k]! * m[ri + k]!;
    norm = Math.sqrt(norm);
    for (let k = 0; k < n; k++) m[ri + k] /= norm;
  }
  return Float32Array.from(m);
}

/** GPT-2's byte-to-unicode table: printable stand-ins for every byte, as byte-level BPE vocabularies store them. */
function byteToUnicode(): string[] {
  const bs: number[] = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const cs = bs.slice();
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n++);
    }
  }
  const table: string[] = new Array(256);
  bs.forEach((b, i) => (table[b] = String.fromCodePoint(cs[i]!)));
  return table;
}

/**
 * A byte-level vocabulary without merges (token id = byte value, then the special tokens), for tests and as the
 * fallback when no trained tokenizer is given. The first special token is end-of-sequence.
 */
export function byteLevelTokenizer(specials: readonly string[] = ['<|endoftext|>']): TokenizerSpec & { specials: Map<string, number> } {
  if (specials.length === 0) throw new InvalidInputError('byteLevelTokenizer needs at least one special token (end of sequence)');
  const tokens = [...byteToUnicode(), ...specials];
  if (new Set(tokens).size !== tokens.length) throw new InvalidInputError('special tokens must be distinct and differ from byte tokens');
  const ids = new Map(specials.map((s, i) => [s, 256 + i]));
  return {
    nVocab: tokens.length,
    specials: ids,
    writeTo(w: GgufWriter) {
      w.set('tokenizer.ggml.model', 'gpt2');
      w.set('tokenizer.ggml.pre', 'qwen2');
      w.set('tokenizer.ggml.tokens', tokens, 'string[]');
      w.set('tokenizer.ggml.token_type', tokens.map((_, i) => (i < 256 ? 1 : 3)), 'i32[]');
      w.set('tokenizer.ggml.merges', [], 'string[]');
      w.set('tokenizer.ggml.eos_token_id', 256, 'u32');
      w.set('tokenizer.ggml.bos_token_id', 256, 'u32');
      w.set('tokenizer.ggml.add_bos_token', false, 'bool');
    },
  };
}

/**
 * A trained model as the starting point of more training: every tensor decoded to F32 (the training path needs F32
 * weights), metadata kept except the keys in `metadata`, which replace or add. Written atomically.
 */
export function writeF32Copy(src: string, dst: string, metadata: Record<string, string | number | boolean> = {}): void {
  const f = GgufFile.open(src);
  try {
    const w = f32CopyWriter(f, metadata);
    for (const t of f.tensors) {
      const name = t.name;
      w.addTensor(name, [...t.dims], () => f.tensor(name), 'f32');
    }
    w.write(dst);
  } finally {
    f.close();
  }
}

/** A writer holding `f`'s metadata, marked all-F32, with the keys in `metadata` replaced or added (no tensors yet). */
export function f32CopyWriter(f: GgufFile, metadata: Record<string, string | number | boolean> = {}): GgufWriter {
  const w = new GgufWriter();
  for (const [k, e] of f.metadata) w.set(k, e.value, e.type);
  w.set('general.file_type', 0, 'u32');
  for (const [k, v] of Object.entries(metadata)) w.set(k, v);
  return w;
}
