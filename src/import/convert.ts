/**
 * `lynx convert`: a Hugging Face folder (Llama, Mistral, Qwen2, Qwen3 causal LMs in safetensors) or a llama2.c
 * checkpoint to a GGUF file llama.cpp loads, with the same tensor names, layouts and metadata llama.cpp's own
 * converters write.
 *
 * Layout: a Hugging Face Linear weight [out, in] (row-major) is the ggml tensor ne = [in, out] with the same bytes.
 * The one reordering: llama.cpp's `llama` architecture rotates interleaved pairs (2i, 2i+1) while transformers'
 * Llama rotates halves (i, i + d/2), so q_proj/k_proj rows (and biases) are permuted within each head; qwen2/qwen3
 * use llama.cpp's NeoX rotation, which is the halves convention, and are written as they are.
 */
import { existsSync, statSync, readdirSync, openSync, readSync, closeSync, readFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import cliProgress from 'cli-progress';
import { GgufWriter, type TensorData } from '../formats/gguf/writer.js';
import { FILE_TYPE, type TensorType } from '../formats/gguf/encode.js';
import { InvalidInputError, UnsupportedError } from '../util/errors.js';
import { llama3RopeFactors, readHfConfig, SUPPORTED_ARCHITECTURES, type HfConfig } from './hf-config.js';
import { hfVocabToGguf, type GgufVocab } from './hf-vocab.js';
import { Llama2cCheckpoint, llama2cVocabToGguf, readLlama2cTokenizer } from './llama2c.js';
import { SafetensorsModel } from '../formats/safetensors.js';

/** Tensor encoding of the 2-D weights; 'auto' keeps a BF16 checkpoint in BF16 and writes F16 otherwise (as llama.cpp's converter). */
export type ConvertType = TensorType | 'auto';

export interface ConvertOptions {
  /** Default 'auto' for Hugging Face folders, 'f32' for llama2.c checkpoints. */
  type?: ConvertType;
  /** llama2.c `tokenizer.bin`; required when the source is a llama2.c checkpoint. */
  tokenizer?: string;
  /** Show a progress bar on stderr: 'auto' (default) when stderr is a terminal and the model is over 100 MB. */
  progress?: boolean | 'auto';
  /** general.name; default the folder or file name. */
  name?: string;
  /** Called as tensor data is written (bytes written so far, total bytes). */
  onProgress?: (done: number, total: number) => void;
}

export interface ConvertResult {
  path: string;
  source: 'hf' | 'llama2c';
  architecture: string;
  type: TensorType;
  tensors: number;
  bytes: number;
}


/** What kind of model a path is: a Hugging Face folder, a llama2.c checkpoint or a GGUF file. */
export function detectSource(src: string): 'hf' | 'llama2c' | 'gguf' {
  if (!existsSync(src)) throw new InvalidInputError(`not found: ${src}`);
  if (statSync(src).isDirectory()) return 'hf';
  const fd = openSync(src, 'r');
  const magic = Buffer.alloc(4);
  try {
    readSync(fd, magic, 0, 4, 0);
  } finally {
    closeSync(fd);
  }
  if (magic.toString('latin1') === 'GGUF') return 'gguf';
  if (src.endsWith('.bin')) return 'llama2c';
  throw new InvalidInputError(`${src} is neither a Hugging Face model folder, a llama2.c .bin checkpoint nor a GGUF file`);
}

/** Convert `src` (a Hugging Face folder or a llama2.c .bin) to the GGUF file `out`. */
export function convertToGguf(src: string, out: string, opts: ConvertOptions = {}): ConvertResult {
  const kind = detectSource(src);
  if (kind === 'gguf') throw new InvalidInputError(`${src} is already a GGUF file; nothing to convert`);
  return kind === 'hf' ? convertHf(src, out, opts) : convertLlama2c(src, out, opts);
}

// ---------------------------------------------------------------------------------------------- Hugging Face

function convertHf(folder: string, out: string, opts: ConvertOptions): ConvertResult {
  const cfg = readHfConfig(folder);
  if (!readdirSync(folder).some((f) => f.endsWith('.safetensors') || f === 'model.safetensors.index.json')) {
    const hasBin = readdirSync(folder).some((f) => f.endsWith('.bin') || f.endsWith('.pt'));
    throw new InvalidInputError(
      `${folder} has no .safetensors weights${hasBin ? ' (only PyTorch .bin/.pt files, which are not supported: download the safetensors files)' : ''}`,
    );
  }
  const vocab = hfVocabToGguf(folder, cfg.nVocab, cfg.raw);
  const st = SafetensorsModel.open(folder);
  try {
    const type = resolveType(opts.type ?? 'auto', st);
    const w = new GgufWriter();
    const a = cfg.arch;
    w.set('general.architecture', a);
    w.set('general.type', 'model');
    w.set('general.name', opts.name ?? basename(resolve(folder)));
    w.set('general.file_type', FILE_TYPE[type], 'u32');
    w.set('general.quantization_version', 2, 'u32');
    writeSamplingDefaults(w, folder);
    writeHyperParameters(w, cfg);
    writeVocab(w, vocab);
    addHfTensors(w, st, cfg, type);
    return finish(w, out, opts, { path: out, source: 'hf', architecture: a, type });
  } finally {
    st.close();
  }
}

function resolveType(type: ConvertType, st: SafetensorsModel): TensorType {
  if (type !== 'auto') {
    if (!['f32', 'f16', 'bf16', 'q8_0'].includes(type)) throw new UnsupportedError(`--type ${type} (supported: f32, f16, bf16, q8_0)`);
    return type;
  }
  const first = st.names.map((n) => st.info(n)).find((t) => t.shape.length === 2);
  return first?.dtype === 'BF16' ? 'bf16' : 'f16';
}

/** generation_config.json's sampling defaults as `general.sampling.*` (as llama.cpp's converter writes them). */
function writeSamplingDefaults(w: GgufWriter, folder: string): void {
  const path = join(folder, 'generation_config.json');
  if (!existsSync(path)) return;
  let g: Record<string, unknown>;
  try {
    g = JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    return; // as llama.cpp: an unreadable generation_config.json is ignored
  }
  const keys: [string, string, 'f32' | 'i32'][] = [
    ['temperature', 'temp', 'f32'],
    ['top_p', 'top_p', 'f32'],
    ['top_k', 'top_k', 'i32'],
    ['min_p', 'min_p', 'f32'],
    ['repetition_penalty', 'penalty_repeat', 'f32'],
  ];
  for (const [hf, gguf, type] of keys) if (typeof g[hf] === 'number') w.set(`general.sampling.${gguf}`, g[hf] as number, type);
}

function writeHyperParameters(w: GgufWriter, c: HfConfig): void {
  const a = c.arch;
  if (a === 'llama') w.set(`${a}.vocab_size`, c.nVocab, 'u32');
  w.set(`${a}.block_count`, c.nLayer, 'u32');
  w.set(`${a}.context_length`, c.nCtxTrain, 'u32');
  w.set(`${a}.embedding_length`, c.nEmbd, 'u32');
  w.set(`${a}.feed_forward_length`, c.nFf, 'u32');
  w.set(`${a}.attention.head_count`, c.nHead, 'u32');
  w.set(`${a}.attention.head_count_kv`, c.nHeadKv, 'u32');
  w.set(`${a}.rope.freq_base`, c.ropeTheta, 'f32');
  w.set(`${a}.attention.layer_norm_rms_epsilon`, c.rmsEps, 'f32');
  if (c.headDim !== c.nEmbd / c.nHead || typeof c.raw.head_dim === 'number') {
    // As llama.cpp's converter: written whenever config.json names head_dim (Qwen3 does).
    w.set(`${a}.attention.key_length`, c.headDim, 'u32');
    w.set(`${a}.attention.value_length`, c.headDim, 'u32');
  }
  if (a === 'llama') w.set(`${a}.rope.dimension_count`, c.headDim, 'u32');
  const s = c.ropeScaling;
  if (s.type === 'linear') {
    w.set(`${a}.rope.scaling.type`, 'linear');
    w.set(`${a}.rope.scaling.factor`, s.factor, 'f32');
  } else if (s.type === 'yarn') {
    w.set(`${a}.rope.scaling.type`, 'yarn');
    w.set(`${a}.rope.scaling.factor`, s.factor, 'f32');
    w.set(`${a}.rope.scaling.original_context_length`, s.originalContext, 'u32');
    if (s.attentionFactor !== undefined) w.set(`${a}.rope.scaling.yarn_attn_factor`, s.attentionFactor, 'f32');
    if (s.betaFast !== undefined) w.set(`${a}.rope.scaling.yarn_beta_fast`, s.betaFast, 'f32');
    if (s.betaSlow !== undefined) w.set(`${a}.rope.scaling.yarn_beta_slow`, s.betaSlow, 'f32');
  }
  // llama3 scaling is the rope_freqs tensor (see addHfTensors); 'dynamic' NTK has no llama.cpp equivalent and only
  // matters past the training context, which llama.cpp's converter also ignores.
}

function writeVocab(w: GgufWriter, v: GgufVocab): void {
  w.set('tokenizer.ggml.model', v.model);
  if (v.pre) w.set('tokenizer.ggml.pre', v.pre);
  w.set('tokenizer.ggml.tokens', v.tokens, 'string[]');
  if (v.scores) w.set('tokenizer.ggml.scores', v.scores, 'f32[]');
  w.set('tokenizer.ggml.token_type', v.types, 'i32[]');
  if (v.merges) w.set('tokenizer.ggml.merges', v.merges, 'string[]');
  const keys = { bos: 'bos_token_id', eos: 'eos_token_id', unk: 'unknown_token_id', sep: 'seperator_token_id', pad: 'padding_token_id', cls: 'cls_token_id', mask: 'mask_token_id', eot: 'eot_token_id' } as const;
  for (const [typ, id] of Object.entries(v.special)) {
    if (id !== undefined) w.set(`tokenizer.ggml.${keys[typ as keyof typeof keys]}`, id, 'u32');
  }
  // Written explicitly so llama.cpp's defaults never decide whether BOS is added.
  w.set('tokenizer.ggml.add_bos_token', v.addBos ?? false, 'bool');
  w.set('tokenizer.ggml.add_eos_token', v.addEos ?? false, 'bool');
  if (v.addSpacePrefix !== undefined) w.set('tokenizer.ggml.add_space_prefix', v.addSpacePrefix, 'bool');
  if (v.chatTemplate !== undefined) w.set('tokenizer.chat_template', v.chatTemplate);
}

/** Hugging Face tensor name (after `model.layers.N.`) → GGUF name (after `blk.N.`). */
const LAYER_TENSORS: Record<string, string> = {
  'input_layernorm.weight': 'attn_norm.weight',
  'self_attn.q_proj.weight': 'attn_q.weight',
  'self_attn.q_proj.bias': 'attn_q.bias',
  'self_attn.k_proj.weight': 'attn_k.weight',
  'self_attn.k_proj.bias': 'attn_k.bias',
  'self_attn.v_proj.weight': 'attn_v.weight',
  'self_attn.v_proj.bias': 'attn_v.bias',
  'self_attn.o_proj.weight': 'attn_output.weight',
  'self_attn.o_proj.bias': 'attn_output.bias',
  'self_attn.q_norm.weight': 'attn_q_norm.weight',
  'self_attn.k_norm.weight': 'attn_k_norm.weight',
  'post_attention_layernorm.weight': 'ffn_norm.weight',
  'mlp.gate_proj.weight': 'ffn_gate.weight',
  'mlp.gate_proj.bias': 'ffn_gate.bias',
  'mlp.up_proj.weight': 'ffn_up.weight',
  'mlp.up_proj.bias': 'ffn_up.bias',
  'mlp.down_proj.weight': 'ffn_down.weight',
  'mlp.down_proj.bias': 'ffn_down.bias',
};

/** The GGUF name of a Hugging Face tensor, or undefined for tensors with no place in the model. */
export function ggufTensorName(hfName: string): string | undefined {
  if (hfName === 'model.embed_tokens.weight') return 'token_embd.weight';
  if (hfName === 'model.norm.weight') return 'output_norm.weight';
  if (hfName === 'lm_head.weight') return 'output.weight';
  const m = /^model\.layers\.(\d+)\.(.+)$/.exec(hfName);
  if (m && LAYER_TENSORS[m[2]!]) return `blk.${m[1]}.${LAYER_TENSORS[m[2]!]}`;
  return undefined;
}

/** Rows of q/k for llama.cpp's interleaved rotation: within each head, row 2j+s comes from row s·d/2 + j. */
export function permuteRowsForLlama(data: Float32Array, nHeads: number, rowLength: number): Float32Array {
  const rows = data.length / rowLength;
  const headDim = rows / nHeads;
  const half = headDim / 2;
  const out = new Float32Array(data.length);
  for (let h = 0; h < nHeads; h++) {
    for (let j = 0; j < half; j++) {
      for (let s = 0; s < 2; s++) {
        const src = (h * headDim + s * half + j) * rowLength;
        const dst = (h * headDim + 2 * j + s) * rowLength;
        out.set(data.subarray(src, src + rowLength), dst);
      }
    }
  }
  return out;
}

function addHfTensors(w: GgufWriter, st: SafetensorsModel, c: HfConfig, type: TensorType): void {
  const names = st.names;
  const unknown = names.filter((n) => !ggufTensorName(n) && !n.endsWith('.rotary_emb.inv_freq'));
  if (unknown.length) {
    throw new UnsupportedError(
      `the checkpoint has tensors a ${c.hfArchitecture} does not have (${unknown.slice(0, 5).join(', ')}${unknown.length > 5 ? ', …' : ''}); ` +
        `it is not a plain ${Object.keys(SUPPORTED_ARCHITECTURES).join('/')} checkpoint`,
    );
  }
  const required = ['model.embed_tokens.weight', 'model.norm.weight'];
  if (!c.tiedEmbeddings) required.push('lm_head.weight');
  for (let l = 0; l < c.nLayer; l++) {
    const p = `model.layers.${l}.`;
    for (const n of ['input_layernorm', 'post_attention_layernorm']) required.push(`${p}${n}.weight`);
    for (const n of ['q_proj', 'k_proj', 'v_proj', 'o_proj']) required.push(`${p}self_attn.${n}.weight`);
    for (const n of ['gate_proj', 'up_proj', 'down_proj']) required.push(`${p}mlp.${n}.weight`);
    if (c.qkvBias) for (const n of ['q_proj', 'k_proj', 'v_proj']) required.push(`${p}self_attn.${n}.bias`);
    if (c.qkNorm) for (const n of ['q_norm', 'k_norm']) required.push(`${p}self_attn.${n}.weight`);
  }
  const missing = required.filter((n) => !st.has(n));
  if (missing.length) {
    throw new InvalidInputError(`the checkpoint lacks ${missing.length} tensor(s) its config.json implies: ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', …' : ''}`);
  }

  // Every tensor must have the shape config.json implies, or llama.cpp would refuse the file (or worse, misread it).
  const expected = expectedShapes(c);
  for (const n of names) {
    const want = expected.get(n);
    const got = st.info(n).shape;
    if (want && got.join(',') !== want.join(',')) {
      throw new InvalidInputError(`tensor ${n} has shape [${got.join(', ')}] but config.json implies [${want.join(', ')}]`);
    }
  }

  // llama.cpp order: embeddings, output norm and head, then blocks; llama3 rope factors first as its converter does.
  if (c.ropeScaling.type === 'llama3') w.addTensor('rope_freqs.weight', [c.headDim / 2], llama3RopeFactors(c.ropeScaling, c.ropeTheta, c.headDim), 'f32');
  const ordered = [...names].sort((x, y) => tensorOrder(x) - tensorOrder(y) || x.localeCompare(y, 'en', { numeric: true }));
  for (const hf of ordered) {
    const name = ggufTensorName(hf);
    if (!name) continue;
    const info = st.info(hf);
    const dims = info.shape.slice().reverse();
    const rowLength = dims[0]!;
    // 1-D tensors and norms stay F32 (llama.cpp only handles them in F32); Q8_0 needs rows of whole 32-blocks.
    let t: TensorType = dims.length <= 1 || name.endsWith('_norm.weight') ? 'f32' : type;
    if (t === 'q8_0' && rowLength % 32 !== 0) t = 'f16';
    const permuteHeads = c.arch === 'llama' ? (hf.endsWith('q_proj.weight') || hf.endsWith('q_proj.bias') ? c.nHead : hf.endsWith('k_proj.weight') || hf.endsWith('k_proj.bias') ? c.nHeadKv : 0) : 0;
    let data: TensorData;
    if (permuteHeads) data = () => permuteRowsForLlama(st.tensor(hf), permuteHeads, info.shape.length === 1 ? 1 : rowLength);
    else if (info.shape.length === 2 && info.end - info.begin > 64 << 20) data = () => st.chunks(hf);
    else data = () => st.tensor(hf);
    w.addTensor(name, dims, data, t);
  }
}

/** The shape ([out, in] for matrices) of every tensor a checkpoint with this config has. */
function expectedShapes(c: HfConfig): Map<string, number[]> {
  const m = new Map<string, number[]>();
  const q = c.nHead * c.headDim;
  const kv = c.nHeadKv * c.headDim;
  m.set('model.embed_tokens.weight', [c.nVocab, c.nEmbd]);
  m.set('lm_head.weight', [c.nVocab, c.nEmbd]);
  m.set('model.norm.weight', [c.nEmbd]);
  for (let l = 0; l < c.nLayer; l++) {
    const p = `model.layers.${l}.`;
    const shapes: [string, number[]][] = [
      ['input_layernorm.weight', [c.nEmbd]],
      ['post_attention_layernorm.weight', [c.nEmbd]],
      ['self_attn.q_proj.weight', [q, c.nEmbd]],
      ['self_attn.k_proj.weight', [kv, c.nEmbd]],
      ['self_attn.v_proj.weight', [kv, c.nEmbd]],
      ['self_attn.o_proj.weight', [c.nEmbd, q]],
      ['self_attn.q_proj.bias', [q]],
      ['self_attn.k_proj.bias', [kv]],
      ['self_attn.v_proj.bias', [kv]],
      ['self_attn.o_proj.bias', [c.nEmbd]],
      ['self_attn.q_norm.weight', [c.headDim]],
      ['self_attn.k_norm.weight', [c.headDim]],
      ['mlp.gate_proj.weight', [c.nFf, c.nEmbd]],
      ['mlp.up_proj.weight', [c.nFf, c.nEmbd]],
      ['mlp.down_proj.weight', [c.nEmbd, c.nFf]],
      ['mlp.gate_proj.bias', [c.nFf]],
      ['mlp.up_proj.bias', [c.nFf]],
      ['mlp.down_proj.bias', [c.nEmbd]],
    ];
    for (const [n, shape] of shapes) m.set(p + n, shape);
  }
  return m;
}

function tensorOrder(hf: string): number {
  if (hf === 'model.embed_tokens.weight') return -3;
  if (hf === 'model.norm.weight') return -2;
  if (hf === 'lm_head.weight') return -1;
  const m = /^model\.layers\.(\d+)\./.exec(hf);
  return m ? Number(m[1]) : 1e9;
}

// ---------------------------------------------------------------------------------------------- llama2.c

function convertLlama2c(src: string, out: string, opts: ConvertOptions): ConvertResult {
  if (!opts.tokenizer) throw new InvalidInputError(`${src} is a llama2.c checkpoint: give its tokenizer too (--tokenizer tokenizer.bin)`);
  const ck = Llama2cCheckpoint.open(src);
  try {
    const c = ck.config;
    const vocab = llama2cVocabToGguf(readLlama2cTokenizer(opts.tokenizer, c.vocabSize));
    const type = opts.type === undefined || opts.type === 'auto' ? 'f32' : opts.type;
    if (!['f32', 'f16', 'bf16', 'q8_0'].includes(type)) throw new UnsupportedError(`--type ${type} (supported: f32, f16, bf16, q8_0)`);
    const w = new GgufWriter();
    const a = 'llama';
    w.set('general.architecture', a);
    w.set('general.type', 'model');
    w.set('general.name', opts.name ?? basename(src).replace(/\.bin$/, ''));
    w.set('general.file_type', FILE_TYPE[type], 'u32');
    w.set('general.quantization_version', 2, 'u32');
    w.set(`${a}.vocab_size`, c.vocabSize, 'u32');
    w.set(`${a}.context_length`, c.seqLen, 'u32');
    w.set(`${a}.embedding_length`, c.dim, 'u32');
    w.set(`${a}.feed_forward_length`, c.hiddenDim, 'u32');
    w.set(`${a}.attention.head_count`, c.nHeads, 'u32');
    w.set(`${a}.attention.head_count_kv`, c.nKvHeads, 'u32');
    w.set(`${a}.block_count`, c.nLayers, 'u32');
    w.set(`${a}.rope.dimension_count`, c.headSize, 'u32');
    w.set(`${a}.rope.freq_base`, 10000, 'f32');
    // run.c's rmsnorm uses 1e-5 (as llama.cpp's convert-llama2c-to-ggml writes).
    w.set(`${a}.attention.layer_norm_rms_epsilon`, 1e-5, 'f32');
    writeVocab(w, {
      model: 'llama',
      pre: 'default',
      tokens: vocab.tokens,
      scores: vocab.scores,
      types: vocab.types,
      special: { unk: 0, bos: 1, eos: 2 },
      addBos: true,
      addEos: false,
    });
    const kvDim = c.nKvHeads * c.headSize;
    const pick = (t: TensorType, rowLength: number): TensorType => (t === 'q8_0' && rowLength % 32 !== 0 ? 'f16' : t);
    w.addTensor('token_embd.weight', [c.dim, c.vocabSize], () => ck.tensor('token_embedding'), pick(type, c.dim));
    w.addTensor('output_norm.weight', [c.dim], () => ck.tensor('rms_final'), 'f32');
    if (!c.sharedClassifier) w.addTensor('output.weight', [c.dim, c.vocabSize], () => ck.tensor('wcls'), pick(type, c.dim));
    for (let l = 0; l < c.nLayers; l++) {
      const p = `blk.${l}.`;
      w.addTensor(p + 'attn_norm.weight', [c.dim], () => ck.layer('rms_att', l), 'f32');
      w.addTensor(p + 'attn_q.weight', [c.dim, c.dim], () => ck.layer('wq', l), pick(type, c.dim));
      w.addTensor(p + 'attn_k.weight', [c.dim, kvDim], () => ck.layer('wk', l), pick(type, c.dim));
      w.addTensor(p + 'attn_v.weight', [c.dim, kvDim], () => ck.layer('wv', l), pick(type, c.dim));
      w.addTensor(p + 'attn_output.weight', [c.dim, c.dim], () => ck.layer('wo', l), pick(type, c.dim));
      w.addTensor(p + 'ffn_norm.weight', [c.dim], () => ck.layer('rms_ffn', l), 'f32');
      w.addTensor(p + 'ffn_gate.weight', [c.dim, c.hiddenDim], () => ck.layer('w1', l), pick(type, c.dim));
      w.addTensor(p + 'ffn_down.weight', [c.hiddenDim, c.dim], () => ck.layer('w2', l), pick(type, c.hiddenDim));
      w.addTensor(p + 'ffn_up.weight', [c.dim, c.hiddenDim], () => ck.layer('w3', l), pick(type, c.dim));
    }
    return finish(w, out, opts, { path: out, source: 'llama2c', architecture: a, type });
  } finally {
    ck.close();
  }
}

// ---------------------------------------------------------------------------------------------- writing

function finish(w: GgufWriter, out: string, opts: ConvertOptions, r: Omit<ConvertResult, 'tensors' | 'bytes'>): ConvertResult {
  const total = w.tensorBytes;
  const show = opts.progress === true || ((opts.progress ?? 'auto') === 'auto' && process.stderr.isTTY === true && total > 100 << 20);
  const bar = show
    ? new cliProgress.SingleBar(
        { stream: process.stderr, format: 'converting {bar} {percentage}% | {value}/{total} MB | eta {eta_formatted}', hideCursor: true },
        cliProgress.Presets.shades_classic,
      )
    : undefined;
  let done = 0;
  bar?.start(Math.ceil(total / 2 ** 20), 0);
  w.onProgress = (bytes) => {
    done += bytes;
    bar?.update(Math.floor(done / 2 ** 20));
    opts.onProgress?.(done, total);
  };
  try {
    w.write(out);
  } finally {
    bar?.stop();
  }
  return { ...r, tensors: w.tensorCount, bytes: total };
}

