/**
 * Full-gradient training of a qwen2/llama-shaped GGUF model with ggml's own graph and optimizer (`ggml-opt`),
 * called through koffi.
 *
 * Why a second training path next to `training.ts` (llama.cpp's `llama_opt_*`): in llama.cpp's training graph K and V
 * are read back from the KV cache, so `attn_k`/`attn_v` get no gradient and — worse — no gradient flows from a
 * position's loss back into the residual stream of the earlier positions it attends to. Each position is trained only
 * by its own next-token loss; a model trained that way learns to copy but not to compute from what it copied (the
 * demo model trained on that path added 13 + 8 wrongly). Here the forward pass is built tensor by tensor
 * (embedding, RMSNorm, Q/K/V with biases, RoPE, causal softmax attention, SwiGLU, output head) with no cache, so
 * ggml's automatic differentiation reaches every weight and every position. ggml's CPU kernels do the work, so it
 * runs at about the speed of llama.cpp's own path.
 *
 * Static graphs with one micro-batch per optimizer step (`opt_period = 1`): gradients are recomputed each step
 * instead of accumulated, so llama.cpp's gradient-zeroing defect does not arise here.
 *
 * The graph is checked against llama.cpp's inference of the same file (tests/graph-training.test.ts): the loss this
 * graph computes equals the cross-entropy of llama.cpp's logits.
 */
import koffi from 'koffi';
import { totalmem } from 'node:os';
import { GgufFile } from '../formats/gguf/reader.js';
import { GgufWriter } from '../formats/gguf/writer.js';
import type { TensorType } from '../formats/gguf/encode.js';
import { InvalidInputError } from '../util/errors.js';
import { loadLlama, type Llama } from '../native/library.js';
import type { Pointer } from '../native/declarations.js';
import {
  FILE_TYPE,
  TrainingError,
  checkOptions,
  checkTrainingData,
  cosineLr,
  epochOrder,
  lynx_get_opt_pars,
  rowCount,
  type EvalRecord,
  type TokenRows,
  type TrainOptions,
  type TrainingData,
  type TrainingReport,
  type TrainingStep,
} from './llama-opt.js';

// ---- native declarations (ggml.h, ggml-backend.h, ggml-opt.h of the pinned build) ----

const GGML_TYPE_F32 = 0;
const GGML_TYPE_I32 = 26;
const GGML_ROPE_TYPE_NORM = 0;
const GGML_ROPE_TYPE_NEOX = 2;
const GGML_BACKEND_DEVICE_TYPE_CPU = 0;
const GGML_OPT_LOSS_TYPE_CROSS_ENTROPY = 2;
const GGML_OPT_BUILD_TYPE_OPT = 30;
const GGML_OPT_OPTIMIZER_TYPE_ADAMW = 0;
const GGML_OPT_OPTIMIZER_TYPE_SGD = 1;
const GGML_DEFAULT_GRAPH_SIZE = 2048;

const ggml_init_params = koffi.struct('lynx_ggml_init_params', { mem_size: 'size_t', mem_buffer: 'void *', no_alloc: 'bool' });
const ggml_opt_params = koffi.struct('lynx_ggml_opt_params', {
  backend_sched: 'void *',
  ctx_compute: 'void *',
  inputs: 'void *',
  outputs: 'void *',
  loss_type: 'int',
  build_type: 'int',
  opt_period: 'int32_t',
  get_opt_pars: 'void *',
  get_opt_pars_ud: 'void *',
  optimizer: 'int',
});
const set_n_threads_fn = koffi.proto('void lynx_ggml_backend_set_n_threads(void *backend, int n_threads)');

type T = Pointer; // struct ggml_tensor *

interface GgmlApi {
  ggml_init(p: { mem_size: number; mem_buffer: null; no_alloc: boolean }): Pointer;
  ggml_free(ctx: Pointer): void;
  ggml_tensor_overhead(): number;
  ggml_new_tensor_1d(ctx: Pointer, type: number, ne0: number): T;
  ggml_new_tensor_2d(ctx: Pointer, type: number, ne0: number, ne1: number): T;
  ggml_set_param(t: T): void;
  ggml_set_name(t: T, name: string): T;
  ggml_get_rows(ctx: Pointer, a: T, b: T): T;
  ggml_rms_norm(ctx: Pointer, a: T, eps: number): T;
  ggml_mul(ctx: Pointer, a: T, b: T): T;
  ggml_add(ctx: Pointer, a: T, b: T): T;
  ggml_mul_mat(ctx: Pointer, a: T, b: T): T;
  ggml_reshape_1d(ctx: Pointer, a: T, ne0: number): T;
  ggml_reshape_2d(ctx: Pointer, a: T, ne0: number, ne1: number): T;
  ggml_reshape_4d(ctx: Pointer, a: T, ne0: number, ne1: number, ne2: number, ne3: number): T;
  ggml_permute(ctx: Pointer, a: T, ax0: number, ax1: number, ax2: number, ax3: number): T;
  ggml_cont(ctx: Pointer, a: T): T;
  ggml_rope_ext(ctx: Pointer, a: T, pos: T, freq: T | null, nDims: number, mode: number, nCtxOrig: number, base: number, scale: number, extFactor: number, attnFactor: number, betaFast: number, betaSlow: number): T;
  ggml_diag_mask_inf(ctx: Pointer, a: T, nPast: number): T;
  ggml_soft_max_ext(ctx: Pointer, a: T, mask: T | null, scale: number, maxBias: number): T;
  ggml_silu(ctx: Pointer, a: T): T;
  ggml_backend_alloc_ctx_tensors(ctx: Pointer, backend: Pointer): Pointer;
  ggml_backend_buffer_free(buf: Pointer): void;
  ggml_backend_tensor_set(t: T, data: ArrayBufferView, offset: number, size: number): void;
  ggml_backend_tensor_get(t: T, data: ArrayBufferView, offset: number, size: number): void;
  ggml_backend_init_by_type(type: number, params: string | null): Pointer | null;
  ggml_backend_free(backend: Pointer): void;
  ggml_backend_get_device(backend: Pointer): Pointer;
  ggml_backend_dev_backend_reg(dev: Pointer): Pointer;
  ggml_backend_reg_get_proc_address(reg: Pointer, name: string): Pointer | null;
  ggml_backend_sched_new(backends: Pointer[], bufts: null, n: number, graphSize: number, parallel: boolean, opOffload: boolean): Pointer;
  ggml_backend_sched_free(sched: Pointer): void;
  ggml_opt_default_params(sched: Pointer, lossType: number): Record<string, unknown>;
  ggml_opt_init(params: Record<string, unknown>): Pointer;
  ggml_opt_free(opt: Pointer): void;
  ggml_opt_alloc(opt: Pointer, backward: boolean): void;
  ggml_opt_eval(opt: Pointer, result: Pointer | null): void;
  ggml_opt_labels(opt: Pointer): T;
  ggml_opt_result_init(): Pointer;
  ggml_opt_result_free(r: Pointer): void;
  ggml_opt_result_reset(r: Pointer): void;
  ggml_opt_result_loss(r: Pointer, loss: Float64Array, unc: Float64Array | null): void;
  ggml_opt_result_accuracy(r: Pointer, acc: Float64Array, unc: Float64Array | null): void;
}

let ggmlApi: GgmlApi | undefined;

function api(llama: Llama): GgmlApi {
  if (ggmlApi) return ggmlApi;
  const b = llama.api.ggmlBase;
  const g = llama.api.ggml;
  const vp = 'void *';
  const f = (lib: typeof b, name: string, ret: unknown, args: unknown[]) => lib.func(name, ret as never, args as never);
  ggmlApi = {
    ggml_init: f(b, 'ggml_init', vp, [ggml_init_params]),
    ggml_free: f(b, 'ggml_free', 'void', [vp]),
    ggml_tensor_overhead: f(b, 'ggml_tensor_overhead', 'size_t', []),
    ggml_new_tensor_1d: f(b, 'ggml_new_tensor_1d', vp, [vp, 'int', 'int64_t']),
    ggml_new_tensor_2d: f(b, 'ggml_new_tensor_2d', vp, [vp, 'int', 'int64_t', 'int64_t']),
    ggml_set_param: f(b, 'ggml_set_param', 'void', [vp]),
    ggml_set_name: f(b, 'ggml_set_name', vp, [vp, 'str']),
    ggml_get_rows: f(b, 'ggml_get_rows', vp, [vp, vp, vp]),
    ggml_rms_norm: f(b, 'ggml_rms_norm', vp, [vp, vp, 'float']),
    ggml_mul: f(b, 'ggml_mul', vp, [vp, vp, vp]),
    ggml_add: f(b, 'ggml_add', vp, [vp, vp, vp]),
    ggml_mul_mat: f(b, 'ggml_mul_mat', vp, [vp, vp, vp]),
    ggml_reshape_1d: f(b, 'ggml_reshape_1d', vp, [vp, vp, 'int64_t']),
    ggml_reshape_2d: f(b, 'ggml_reshape_2d', vp, [vp, vp, 'int64_t', 'int64_t']),
    ggml_reshape_4d: f(b, 'ggml_reshape_4d', vp, [vp, vp, 'int64_t', 'int64_t', 'int64_t', 'int64_t']),
    ggml_permute: f(b, 'ggml_permute', vp, [vp, vp, 'int', 'int', 'int', 'int']),
    ggml_cont: f(b, 'ggml_cont', vp, [vp, vp]),
    ggml_rope_ext: f(b, 'ggml_rope_ext', vp, [vp, vp, vp, vp, 'int', 'int', 'int', 'float', 'float', 'float', 'float', 'float', 'float']),
    ggml_diag_mask_inf: f(b, 'ggml_diag_mask_inf', vp, [vp, vp, 'int']),
    ggml_soft_max_ext: f(b, 'ggml_soft_max_ext', vp, [vp, vp, vp, 'float', 'float']),
    ggml_silu: f(b, 'ggml_silu', vp, [vp, vp]),
    ggml_backend_alloc_ctx_tensors: f(b, 'ggml_backend_alloc_ctx_tensors', vp, [vp, vp]),
    ggml_backend_buffer_free: f(b, 'ggml_backend_buffer_free', 'void', [vp]),
    ggml_backend_tensor_set: f(b, 'ggml_backend_tensor_set', 'void', [vp, vp, 'size_t', 'size_t']),
    ggml_backend_tensor_get: f(b, 'ggml_backend_tensor_get', 'void', [vp, vp, 'size_t', 'size_t']),
    ggml_backend_init_by_type: f(g, 'ggml_backend_init_by_type', vp, ['int', 'str']),
    ggml_backend_free: f(b, 'ggml_backend_free', 'void', [vp]),
    ggml_backend_get_device: f(b, 'ggml_backend_get_device', vp, [vp]),
    ggml_backend_dev_backend_reg: f(b, 'ggml_backend_dev_backend_reg', vp, [vp]),
    ggml_backend_reg_get_proc_address: f(b, 'ggml_backend_reg_get_proc_address', vp, [vp, 'str']),
    ggml_backend_sched_new: f(b, 'ggml_backend_sched_new', vp, [koffi.pointer(vp), vp, 'int', 'size_t', 'bool', 'bool']),
    ggml_backend_sched_free: f(b, 'ggml_backend_sched_free', 'void', [vp]),
    ggml_opt_default_params: f(b, 'ggml_opt_default_params', ggml_opt_params, [vp, 'int']),
    ggml_opt_init: f(b, 'ggml_opt_init', vp, [ggml_opt_params]),
    ggml_opt_free: f(b, 'ggml_opt_free', 'void', [vp]),
    ggml_opt_alloc: f(b, 'ggml_opt_alloc', 'void', [vp, 'bool']),
    ggml_opt_eval: f(b, 'ggml_opt_eval', 'void', [vp, vp]),
    ggml_opt_labels: f(b, 'ggml_opt_labels', vp, [vp]),
    ggml_opt_result_init: f(b, 'ggml_opt_result_init', vp, []),
    ggml_opt_result_free: f(b, 'ggml_opt_result_free', 'void', [vp]),
    ggml_opt_result_reset: f(b, 'ggml_opt_result_reset', 'void', [vp]),
    ggml_opt_result_loss: f(b, 'ggml_opt_result_loss', 'void', [vp, koffi.out(koffi.pointer('double')), vp]),
    ggml_opt_result_accuracy: f(b, 'ggml_opt_result_accuracy', 'void', [vp, koffi.out(koffi.pointer('double')), vp]),
  } as unknown as GgmlApi;
  return ggmlApi;
}

// ---- denormals ----

/**
 * Flush-to-zero for the native calls of a training step. As a model trains, its attention sharpens and the softmax
 * produces probabilities below float32's normal range (exp(-88) and less); x86 CPUs handle such denormal numbers in
 * microcode, and the trained demo model trained 3x slower than a random one (725 against 2,249 tokens/s) until the
 * MXCSR flags FTZ and DAZ were set around each step. ggml's CPU threads are created per graph computation and inherit
 * the calling thread's floating-point environment, so setting it on this thread covers them; it is restored after
 * each call so JavaScript arithmetic keeps IEEE denormals. Denormals carry no information a trained model needs.
 * Linux x86-64 only (elsewhere a no-op).
 */
class FlushDenormals {
  private readonly saved = Buffer.alloc(32); // fenv_t on x86-64 glibc: 32 bytes, __mxcsr at offset 28
  private readonly flushed = Buffer.alloc(32);
  private readonly fegetenv?: (env: Buffer) => number;
  private readonly fesetenv?: (env: Buffer) => number;
  readonly active: boolean = false;

  constructor() {
    if (process.platform !== 'linux' || process.arch !== 'x64') return;
    try {
      const libm = koffi.load('libm.so.6');
      this.fegetenv = libm.func('fegetenv', 'int', ['void *']) as (env: Buffer) => number;
      this.fesetenv = libm.func('fesetenv', 'int', ['void *']) as (env: Buffer) => number;
      if (this.fegetenv(this.saved) !== 0) return;
      const mxcsr = this.saved.readUInt32LE(28);
      if ((mxcsr & 0x1f80) !== 0x1f80) return; // not the layout we expect (exception masks are set by default): leave it alone
      this.saved.copy(this.flushed);
      this.flushed.writeUInt32LE(mxcsr | 0x8040, 28); // FTZ (bit 15) and DAZ (bit 6)
      this.active = true;
    } catch {
      this.active = false;
    }
  }

  run<R>(fn: () => R): R {
    if (!this.active) return fn();
    this.fegetenv!(this.saved);
    this.fesetenv!(this.flushed);
    try {
      return fn();
    } finally {
      this.fesetenv!(this.saved);
    }
  }
}

// ---- the model description read from the GGUF ----

export interface GraphModelShape {
  arch: 'qwen2' | 'llama';
  nEmbd: number;
  nLayer: number;
  nHead: number;
  nHeadKv: number;
  nFf: number;
  nVocab: number;
  rmsEps: number;
  ropeBase: number;
  contextLength: number;
  /** Whether q/k/v carry biases (qwen2). */
  qkvBias: boolean;
  nParams: number;
}

/** What a GGUF must hold to be trained by the graph trainer; throws InvalidInputError naming what is missing. */
export function inspectGraphTrainable(path: string): GraphModelShape {
  const f = GgufFile.open(path);
  try {
    const arch = f.getString('general.architecture');
    if (arch !== 'qwen2' && arch !== 'llama') throw new InvalidInputError(`${path}: the graph trainer builds qwen2 and llama models; this file is '${arch}'`);
    const num = (key: string, fallback?: number) => {
      const v = f.getNumber(`${arch}.${key}`) ?? fallback;
      if (v === undefined) throw new InvalidInputError(`${path}: metadata ${arch}.${key} is missing`);
      return v;
    };
    const nEmbd = num('embedding_length');
    const nHead = num('attention.head_count');
    const shape: GraphModelShape = {
      arch,
      nEmbd,
      nLayer: num('block_count'),
      nHead,
      nHeadKv: num('attention.head_count_kv', nHead),
      nFf: num('feed_forward_length'),
      nVocab: 0,
      rmsEps: num('attention.layer_norm_rms_epsilon', 1e-6),
      ropeBase: num('rope.freq_base', 10000),
      contextLength: num('context_length'),
      qkvBias: f.tensorInfo('blk.0.attn_q.bias') !== undefined,
      nParams: 0,
    };
    if (shape.nHeadKv !== shape.nHead) throw new InvalidInputError(`${path}: the graph trainer needs as many KV heads as heads (got ${shape.nHeadKv} and ${shape.nHead})`);
    if (nEmbd % nHead !== 0) throw new InvalidInputError(`${path}: embedding_length ${nEmbd} is not a multiple of head_count ${nHead}`);
    const emb = f.tensorInfo('token_embd.weight');
    if (!emb || emb.dims.length !== 2 || emb.dims[0] !== nEmbd) throw new InvalidInputError(`${path}: token_embd.weight [${nEmbd}, n_vocab] is missing`);
    shape.nVocab = emb.dims[1];
    for (const t of expectedTensors(shape)) {
      const info = f.tensorInfo(t.name);
      if (!info) throw new InvalidInputError(`${path}: tensor ${t.name} is missing${t.name === 'output.weight' ? ' (the graph trainer needs an untied output.weight)' : ''}`);
      if (info.dims.join(',') !== t.dims.join(',')) throw new InvalidInputError(`${path}: ${t.name} has shape [${info.dims}], expected [${t.dims}]`);
      if (!info.type) throw new InvalidInputError(`${path}: ${t.name} has a ggml type the trainer cannot decode (${info.typeId})`);
      shape.nParams += t.dims.reduce((a, b) => a * b, 1);
    }
    return shape;
  } finally {
    f.close();
  }
}

function expectedTensors(s: GraphModelShape): { name: string; dims: number[] }[] {
  const e = s.nEmbd;
  const out = [
    { name: 'token_embd.weight', dims: [e, s.nVocab] },
    { name: 'output_norm.weight', dims: [e] },
    { name: 'output.weight', dims: [e, s.nVocab] },
  ];
  for (let l = 0; l < s.nLayer; l++) {
    const p = `blk.${l}.`;
    out.push({ name: p + 'attn_norm.weight', dims: [e] });
    for (const m of ['q', 'k', 'v']) {
      out.push({ name: `${p}attn_${m}.weight`, dims: [e, e] });
      if (s.qkvBias) out.push({ name: `${p}attn_${m}.bias`, dims: [e] });
    }
    out.push({ name: p + 'attn_output.weight', dims: [e, e] });
    out.push({ name: p + 'ffn_norm.weight', dims: [e] });
    out.push({ name: p + 'ffn_gate.weight', dims: [e, s.nFf] });
    out.push({ name: p + 'ffn_up.weight', dims: [e, s.nFf] });
    out.push({ name: p + 'ffn_down.weight', dims: [s.nFf, e] });
  }
  return out;
}

/** Bytes the training graph needs, roughly: weights x 4 (value, gradient, AdamW m and v) plus activations and their gradients. */
export function estimateGraphTrainingBytes(s: GraphModelShape, seqLen: number): number {
  const perLayer = seqLen * (s.nEmbd * 12 + s.nFf * 4) + 3 * s.nHead * seqLen * seqLen;
  return 4 * (4 * s.nParams + 3 * (s.nLayer * perLayer + 3 * seqLen * s.nVocab));
}

// ---- the trainer ----

export interface GraphSaveOptions {
  /** Keys set on the written file (after the source's metadata is copied). */
  metadata?: Record<string, string | number | boolean>;
  /** Encoding of the matrices; 1-D tensors (norms, biases) stay F32. Default 'f32'. */
  type?: TensorType;
}

/**
 * A GGUF model held as ggml parameters with its training graph built: `train` runs AdamW steps, `evaluate` the loss,
 * `save` writes a GGUF with the source file's metadata and the trained weights. Call `dispose` when done.
 */
export class GraphTrainer {
  readonly shape: GraphModelShape;
  readonly threads: number;
  private readonly g: GgmlApi;
  private backend: Pointer | null = null;
  private sched: Pointer | null = null;
  private ctxStatic: Pointer | null = null;
  private ctxCompute: Pointer | null = null;
  private buffer: Pointer | null = null;
  private opt: Pointer | null = null;
  private result: Pointer | null = null;
  private readonly params = new Map<string, { t: T; dims: number[] }>();
  private inputs!: T;
  private labels!: T;
  private readonly registered: unknown[] = [];
  private optPars = { adamw: { alpha: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, wd: 0 }, sgd: { alpha: 1e-3, wd: 0 } };
  private readonly labelBuf: Float32Array;
  private readonly f64 = new Float64Array(1);
  private readonly denormals = new FlushDenormals();

  /**
   * Load `path` (F32, F16, BF16 or Q8_0 tensors; decoded to F32) and build the graph for rows of `seqLen` tokens.
   * `optimizer` is fixed per trainer (ggml allocates AdamW's moments with the graph).
   */
  constructor(
    readonly path: string,
    readonly seqLen: number,
    opts: { threads?: number; optimizer?: 'adamw' | 'sgd' } = {},
  ) {
    this.shape = inspectGraphTrainable(path);
    if (!Number.isInteger(seqLen) || seqLen < 2) throw new InvalidInputError(`seqLen must be an integer >= 2 (got ${seqLen})`);
    if (seqLen > this.shape.contextLength) throw new InvalidInputError(`seqLen ${seqLen} exceeds the model's context_length ${this.shape.contextLength}`);
    const need = estimateGraphTrainingBytes(this.shape, seqLen);
    if (need > 0.75 * totalmem()) {
      throw new TrainingError(`training needs about ${(need / 2 ** 30).toFixed(1)} GiB for ${seqLen}-token rows; this machine has ${(totalmem() / 2 ** 30).toFixed(1)} GiB: use shorter rows`);
    }
    this.threads = opts.threads ?? 1;
    if (!Number.isInteger(this.threads) || this.threads < 1) throw new InvalidInputError(`threads must be a positive integer (got ${this.threads})`);
    this.g = api(loadLlama());
    this.labelBuf = new Float32Array(seqLen * this.shape.nVocab);
    try {
      this.createBackend();
      this.loadParams();
      this.buildGraph(opts.optimizer ?? 'adamw');
    } catch (e) {
      this.dispose();
      throw e;
    }
  }

  private createBackend(): void {
    const g = this.g;
    this.backend = g.ggml_backend_init_by_type(GGML_BACKEND_DEVICE_TYPE_CPU, null);
    if (!this.backend) throw new TrainingError('ggml could not create a CPU backend');
    const reg = g.ggml_backend_dev_backend_reg(g.ggml_backend_get_device(this.backend));
    const setThreads = g.ggml_backend_reg_get_proc_address(reg, 'ggml_backend_set_n_threads');
    if (!setThreads) throw new TrainingError('the CPU backend does not export ggml_backend_set_n_threads');
    koffi.call(setThreads, set_n_threads_fn, this.backend, this.threads);
    this.sched = g.ggml_backend_sched_new([this.backend], null, 1, GGML_DEFAULT_GRAPH_SIZE * 4, false, false);
  }

  private loadParams(): void {
    const g = this.g;
    const specs = expectedTensors(this.shape);
    this.ctxStatic = g.ggml_init({ mem_size: (specs.length + 8) * g.ggml_tensor_overhead(), mem_buffer: null, no_alloc: true });
    for (const s of specs) {
      const t = s.dims.length === 1 ? g.ggml_new_tensor_1d(this.ctxStatic, GGML_TYPE_F32, s.dims[0]) : g.ggml_new_tensor_2d(this.ctxStatic, GGML_TYPE_F32, s.dims[0], s.dims[1]);
      g.ggml_set_name(t, s.name);
      g.ggml_set_param(t);
      this.params.set(s.name, { t, dims: s.dims });
    }
    this.inputs = g.ggml_new_tensor_1d(this.ctxStatic, GGML_TYPE_I32, this.seqLen);
    g.ggml_set_name(this.inputs, 'inputs');
    const positions = g.ggml_new_tensor_1d(this.ctxStatic, GGML_TYPE_I32, this.seqLen);
    g.ggml_set_name(positions, 'positions');
    this.params.set('positions', { t: positions, dims: [this.seqLen] });
    this.buffer = g.ggml_backend_alloc_ctx_tensors(this.ctxStatic, this.backend!);
    if (!this.buffer) throw new TrainingError('ggml could not allocate the model weights');
    const f = GgufFile.open(this.path);
    try {
      for (const s of specs) {
        const data = f.tensor(s.name);
        g.ggml_backend_tensor_set(this.params.get(s.name)!.t, data, 0, data.byteLength);
      }
    } finally {
      f.close();
    }
    const pos = Int32Array.from({ length: this.seqLen }, (_, i) => i);
    g.ggml_backend_tensor_set(positions, pos, 0, pos.byteLength);
  }

  private w(name: string): T {
    const p = this.params.get(name);
    if (!p) throw new TrainingError(`internal: no parameter ${name}`);
    return p.t;
  }

  /** The forward pass of llama.cpp's qwen2/llama graph for one row, without a KV cache. */
  private buildGraph(optimizer: 'adamw' | 'sgd'): void {
    const g = this.g;
    const s = this.shape;
    const n = this.seqLen;
    const hd = s.nEmbd / s.nHead;
    // Graph metadata only (no_alloc): forward, backward and optimizer graphs hold a few thousand tensors.
    this.ctxCompute = g.ggml_init({ mem_size: 64 * 1024 * 1024, mem_buffer: null, no_alloc: true });
    const c = this.ctxCompute;
    const pos = this.w('positions');
    const rope = s.arch === 'qwen2' ? GGML_ROPE_TYPE_NEOX : GGML_ROPE_TYPE_NORM;
    const norm = (x: T, weight: string) => g.ggml_mul(c, g.ggml_rms_norm(c, x, s.rmsEps), this.w(weight));
    const linear = (x: T, weight: string, bias?: string) => {
      const y = g.ggml_mul_mat(c, this.w(weight), x);
      return bias ? g.ggml_add(c, y, this.w(bias)) : y;
    };
    let x = g.ggml_get_rows(c, this.w('token_embd.weight'), this.inputs); // [E, n]
    for (let l = 0; l < s.nLayer; l++) {
      const p = `blk.${l}.`;
      const h = norm(x, p + 'attn_norm.weight');
      const bias = (m: string) => (s.qkvBias ? `${p}attn_${m}.bias` : undefined);
      const heads = (t: T) => g.ggml_reshape_4d(c, t, hd, s.nHead, n, 1); // [hd, H, n, 1]
      const ropeOf = (t: T) => g.ggml_rope_ext(c, t, pos, null, hd, rope, s.contextLength, s.ropeBase, 1, 0, 1, 32, 1);
      const q = ropeOf(heads(linear(h, p + 'attn_q.weight', bias('q'))));
      const k = ropeOf(heads(linear(h, p + 'attn_k.weight', bias('k'))));
      const v = heads(linear(h, p + 'attn_v.weight', bias('v')));
      const qh = g.ggml_cont(c, g.ggml_permute(c, q, 0, 2, 1, 3)); // [hd, n, H]
      const kh = g.ggml_cont(c, g.ggml_permute(c, k, 0, 2, 1, 3)); // [hd, n, H]
      const vt = g.ggml_cont(c, g.ggml_permute(c, v, 1, 2, 0, 3)); // [n, hd, H]
      let kq = g.ggml_mul_mat(c, kh, qh); // [n_k, n_q, H]
      kq = g.ggml_soft_max_ext(c, g.ggml_diag_mask_inf(c, kq, 0), null, 1 / Math.sqrt(hd), 0);
      const kqv = g.ggml_mul_mat(c, vt, kq); // [hd, n_q, H]
      const merged = g.ggml_reshape_2d(c, g.ggml_cont(c, g.ggml_permute(c, kqv, 0, 2, 1, 3)), s.nEmbd, n);
      x = g.ggml_add(c, x, linear(merged, p + 'attn_output.weight'));
      const h2 = norm(x, p + 'ffn_norm.weight');
      const act = g.ggml_mul(c, g.ggml_silu(c, linear(h2, p + 'ffn_gate.weight')), linear(h2, p + 'ffn_up.weight'));
      x = g.ggml_add(c, x, linear(act, p + 'ffn_down.weight'));
    }
    const logits = linear(norm(x, 'output_norm.weight'), 'output.weight'); // [V, n]
    g.ggml_set_name(logits, 'logits');

    const getOptPars = koffi.register((() => this.optPars) as never, koffi.pointer(lynx_get_opt_pars as never));
    this.registered.push(getOptPars);
    const params = g.ggml_opt_default_params(this.sched!, GGML_OPT_LOSS_TYPE_CROSS_ENTROPY);
    Object.assign(params, {
      ctx_compute: c,
      inputs: this.inputs,
      outputs: logits,
      build_type: GGML_OPT_BUILD_TYPE_OPT,
      opt_period: 1,
      get_opt_pars: getOptPars,
      get_opt_pars_ud: null,
      optimizer: optimizer === 'adamw' ? GGML_OPT_OPTIMIZER_TYPE_ADAMW : GGML_OPT_OPTIMIZER_TYPE_SGD,
    });
    this.opt = g.ggml_opt_init(params);
    this.labels = g.ggml_opt_labels(this.opt);
    this.result = g.ggml_opt_result_init();
  }

  private check(): void {
    if (!this.opt) throw new TrainingError('this trainer was disposed');
  }

  private setRow(rows: TokenRows, row: number): void {
    const n = this.seqLen;
    const V = this.shape.nVocab;
    const tokens = rows.tokens.subarray(row * n, (row + 1) * n);
    this.g.ggml_backend_tensor_set(this.inputs, tokens, 0, tokens.byteLength);
    const lab = this.labelBuf;
    lab.fill(0);
    for (let i = 0; i < n; i++) lab[i * V + rows.labels[row * n + i]] = 1;
    this.g.ggml_backend_tensor_set(this.labels, lab, 0, lab.byteLength);
  }

  private readResult(): { loss: number; accuracy: number } {
    this.g.ggml_opt_result_loss(this.result!, this.f64, null);
    const loss = this.f64[0];
    this.g.ggml_opt_result_accuracy(this.result!, this.f64, null);
    return { loss, accuracy: this.f64[0] };
  }

  /** Whether training steps run with denormals flushed to zero (Linux x86-64; see FlushDenormals). */
  get flushesDenormals(): boolean {
    return this.denormals.active;
  }

  /** One optimizer step on one row (loss and accuracy measured by the forward pass before the update). */
  step(rows: TokenRows, row: number, lr: number, o: { beta1: number; beta2: number; eps: number; weightDecay: number }): { loss: number; accuracy: number } {
    this.check();
    this.optPars = { adamw: { alpha: lr, beta1: o.beta1, beta2: o.beta2, eps: o.eps, wd: o.weightDecay }, sgd: { alpha: lr, wd: o.weightDecay } };
    this.g.ggml_opt_result_reset(this.result!);
    this.g.ggml_opt_alloc(this.opt!, true);
    this.setRow(rows, row);
    this.denormals.run(() => this.g.ggml_opt_eval(this.opt!, this.result!));
    return this.readResult();
  }

  /** Mean next-token loss and accuracy over rows (forward only). */
  evaluate(rows: TokenRows, which?: readonly number[]): { loss: number; accuracy: number; rows: number } {
    this.check();
    const list = which ?? Array.from({ length: rowCount(rows, this.seqLen) }, (_, i) => i);
    let loss = 0;
    let acc = 0;
    for (const r of list) {
      this.g.ggml_opt_result_reset(this.result!);
      this.g.ggml_opt_alloc(this.opt!, false);
      this.setRow(rows, r);
      this.denormals.run(() => this.g.ggml_opt_eval(this.opt!, this.result!));
      const m = this.readResult();
      loss += m.loss;
      acc += m.accuracy;
    }
    return { loss: list.length ? loss / list.length : NaN, accuracy: list.length ? acc / list.length : NaN, rows: list.length };
  }

  /** The current value of a weight tensor. */
  readTensor(name: string): Float32Array {
    this.check();
    const p = this.params.get(name);
    if (!p || name === 'positions') throw new InvalidInputError(`no weight tensor named ${name}`);
    const out = new Float32Array(p.dims.reduce((a, b) => a * b, 1));
    this.g.ggml_backend_tensor_get(p.t, out, 0, out.byteLength);
    return out;
  }

  /** Write a GGUF: the source file's metadata and tensor order, the trained weights. */
  save(path: string, opts: GraphSaveOptions = {}): void {
    this.check();
    const type = opts.type ?? 'f32';
    const src = GgufFile.open(this.path);
    try {
      const w = new GgufWriter();
      for (const [key, e] of src.metadata) if (key !== 'general.alignment') w.set(key, e.value, e.type);
      w.set('general.file_type', FILE_TYPE[type], 'u32');
      for (const [key, v] of Object.entries(opts.metadata ?? {})) w.set(key, v);
      for (const t of src.tensors) {
        if (!this.params.has(t.name)) throw new TrainingError(`${this.path}: tensor ${t.name} is not part of the trained graph`);
        const data = this.readTensor(t.name);
        w.addTensor(t.name, [...t.dims], () => data, t.dims.length > 1 ? type : 'f32');
      }
      w.write(path);
    } finally {
      src.close();
    }
  }

  dispose(): void {
    const g = this.g;
    if (!g) return;
    if (this.result) g.ggml_opt_result_free(this.result);
    if (this.opt) g.ggml_opt_free(this.opt);
    if (this.ctxCompute) g.ggml_free(this.ctxCompute);
    if (this.buffer) g.ggml_backend_buffer_free(this.buffer);
    if (this.ctxStatic) g.ggml_free(this.ctxStatic);
    if (this.sched) g.ggml_backend_sched_free(this.sched);
    if (this.backend) g.ggml_backend_free(this.backend);
    for (const p of this.registered) koffi.unregister(p as never);
    this.registered.length = 0;
    this.result = this.opt = this.ctxCompute = this.buffer = this.ctxStatic = this.sched = this.backend = null;
  }
}

/**
 * Train with full gradients: one AdamW step per row of `data`, the same options, schedule (cosine with warm-up),
 * per-epoch shuffle, evaluations and callbacks as `train` in training.ts, so recipes can use either path.
 * `workarounds` does not apply (this path has none of llama.cpp's training defects).
 */
export async function trainGraph(trainer: GraphTrainer, data: TrainingData, opts: TrainOptions): Promise<TrainingReport> {
  if (opts.seqLen !== trainer.seqLen) throw new InvalidInputError(`seqLen ${opts.seqLen} differs from the trainer's graph (${trainer.seqLen})`);
  const o = checkOptions({ ...opts, threads: opts.threads ?? trainer.threads }, 'any');
  const rows = checkTrainingData('training data', data, trainer.seqLen, trainer.shape.nVocab);
  if (rows.tokens.length === 0) throw new InvalidInputError('no training data');
  const validation = checkTrainingData('validation data', opts.validation ?? [], trainer.seqLen, trainer.shape.nVocab);
  const nRows = rowCount(rows, trainer.seqLen);
  const planned = o.epochs * nRows;
  const steps: TrainingStep[] = [];
  const evals: EvalRecord[] = [];
  let step = 0;
  let seconds = 0;
  const evaluate = () => {
    if (validation.tokens.length === 0) return;
    const e = trainer.evaluate(validation);
    const rec: EvalRecord = { step, loss: e.loss, accuracy: e.accuracy, rows: e.rows };
    evals.push(rec);
    opts.onEval?.(rec);
  };
  evaluate();
  let stopped = false;
  let nextEval = o.evalEvery > 0 ? o.evalEvery : Infinity;
  outer: for (let epoch = 1; epoch <= o.epochs; epoch++) {
    const order = epochOrder(nRows, epoch, o);
    for (let at = 0; at < order.length; ) {
      if (opts.signal?.aborted) {
        stopped = true;
        break outer;
      }
      const size = Math.min(o.chunkSize, order.length - at, nextEval - step);
      const t0 = performance.now();
      const chunk: TrainingStep[] = [];
      for (const row of order.slice(at, at + size)) {
        const lr = cosineLr(step, planned, opts.lr, o.lrMin, o.warmupSteps);
        const m = trainer.step(rows, row, lr, o);
        step++;
        chunk.push({ step, epoch, loss: m.loss, accuracy: m.accuracy, lr, tokens: step * trainer.seqLen, elapsedSeconds: 0, tokensPerSecond: 0 });
      }
      at += size;
      // Validation time is excluded: the clock runs over training chunks only, spread evenly over a chunk's steps.
      const chunkSeconds = (performance.now() - t0) / 1000;
      chunk.forEach((s, i) => {
        s.elapsedSeconds = seconds + ((i + 1) / chunk.length) * chunkSeconds;
        s.tokensPerSecond = s.tokens / s.elapsedSeconds;
        steps.push(s);
        opts.onStep?.(s);
      });
      seconds += chunkSeconds;
      await new Promise((r) => setImmediate(r));
      if (opts.betweenChunks) await opts.betweenChunks(step);
      if (step >= nextEval) {
        nextEval += o.evalEvery;
        evaluate();
      }
    }
  }
  if (validation.tokens.length > 0 && evals[evals.length - 1]?.step !== step) evaluate();
  const last = steps[steps.length - 1];
  const names = expectedTensors(trainer.shape).map((t) => t.name);
  return {
    steps,
    evals,
    plannedSteps: planned,
    tokens: step * trainer.seqLen,
    seconds: last?.elapsedSeconds ?? 0,
    tokensPerSecond: last?.tokensPerSecond ?? 0,
    stopped,
    threads: trainer.threads,
    trained: names,
    frozen: [],
    nTrainable: trainer.shape.nParams,
    gradientsZeroed: 0,
  };
}
