/**
 * Training a GGUF model in place with llama.cpp's own training path (`llama_opt_init` / `llama_opt_epoch`,
 * `ggml_opt_dataset_*`, `llama_model_save_to_file`), called through koffi.
 *
 * The pinned build (@node-llama-cpp/linux-x64@3.22.1) has four defects on this path; each is handled here:
 *
 * 1. Gradients are never zeroed between optimizer steps. With the dynamic graphs llama.cpp uses, `ggml_opt_eval`
 *    clears `gb_grad`/`gb_opt` after each step, so the `ggml_graph_reset` that `ggml_opt_alloc` would do is a no-op
 *    and the static gradient accumulators keep summing every step's gradient. We zero them ourselves, from the
 *    `get_opt_pars` callback: ggml calls it inside each optimizer step *before* the graph runs, while `gb_opt` is
 *    alive, so `ggml_opt_grad_acc` can find each parameter's accumulator (after the step it would dereference a
 *    NULL graph). With one micro-batch per optimizer step (n_batch = n_ubatch = n_ctx, which we enforce), zeroing
 *    just before the step's backward pass is exactly "zero after the previous step". The AdamW moments are separate
 *    tensors and are left alone. The very first step needs nothing: ggml zeroes the accumulators when it allocates
 *    them.
 * 2. `attn_k`/`attn_v` get no gradient (K and V are read back from the KV cache). The parameter filter leaves them
 *    out (so they are not touched by weight decay either); the model must have as many KV heads as heads so the
 *    frozen projections are square (checked here, written so by `src/demo/init-model.ts`).
 * 3. `llama_opt_init` never marks `token_embd.weight` as trainable (a FIXME). We find the tensor through the library's
 *    exported `llama_model::get_tensor`, check its name, type, shape and op, and call `ggml_set_param` on it. The
 *    model must have its own `output.weight` (checked).
 * 4. The training path never sets the CPU thread count, so ggml runs with its default of 4 threads regardless of the
 *    machine (50x slower on 2 cores). One `llama_decode` of one token on the training context sets it first.
 *
 * Also: `n_ctx` is rounded up to a multiple of 256 and the dataset's sequence length must equal it, and a failed
 * GGML_ASSERT aborts the whole process, so every size, type and token id is validated in TypeScript first.
 */
import koffi from 'koffi';
import { totalmem } from 'node:os';
import { existsSync, mkdirSync, statSync, unlinkSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { GgufFile } from '../formats/gguf/reader.js';
import { GgufWriter } from '../formats/gguf/writer.js';
import { FILE_TYPE, type TensorType } from '../formats/gguf/encode.js';
import { InvalidInputError } from '../util/errors.js';
import { loadLlama, setErrorSink, type Llama, type LoadLlamaOptions } from '../native/library.js';
import { llama_opt_param_filter, type LlamaApi } from '../native/llama.js';
import { GGML_OP_NONE, GGML_TENSOR_FLAG_PARAM, GGML_TENSOR_OFFSETS, GgmlType, type GgmlApi } from '../native/ggml.js';
import {
  GgmlOptOptimizerType,
  ggml_opt_epoch_callback,
  ggml_opt_get_optimizer_params,
  type GgmlOptApi,
  type GgmlOptOptimizerParams,
} from '../native/ggml-opt.js';
import { pointerAddress, type Pointer } from '../native/pointer.js';
import { DisposedError, ModelLoadError } from '../engine/errors.js';
import { checkTrainingData, rowCount, type TokenRows, type TrainingData } from './data.js';
import { TrainingError } from './errors.js';
import { checkOptions, type CheckedTrainOptions, type EvalRecord, type TrainOptions, type TrainingReport, type TrainingStep } from './options.js';
import { cosineLr, epochOrder } from './schedule.js';

// ---- the native calls of this path (declared in src/native/) ----

type TrainingApi = LlamaApi & GgmlApi & GgmlOptApi & { llama_model_get_tensor: NonNullable<LlamaApi['llama_model_get_tensor']> };

const apis = new WeakMap<Llama, TrainingApi>();

function trainingApi(llama: Llama): TrainingApi {
  const cached = apis.get(llama);
  if (cached) return cached;
  const getTensor = llama.api.llama_model_get_tensor;
  if (!getTensor) throw new TrainingError('this llama.cpp build does not export llama_model::get_tensor, needed to train token_embd.weight');
  const api: TrainingApi = { ...llama.api, ...llama.ggml, ...llama.ggmlOpt, llama_model_get_tensor: getTensor };
  apis.set(llama, api);
  return api;
}

// ---- tensor field access (fields at GGML_TENSOR_OFFSETS; name, type, shape and flags checked where read) ----

interface TensorView {
  ptr: Pointer;
  name: string;
  type: number;
  ne: [number, number, number, number];
  op: number;
  flags: number;
}

function viewTensor(llama: Llama, ptr: Pointer): TensorView {
  const ne = [0, 1, 2, 3].map((i) => Number(koffi.decode(ptr, GGML_TENSOR_OFFSETS.ne + 8 * i, 'int64_t'))) as TensorView['ne'];
  return {
    ptr,
    name: llama.api.ggml_get_name(ptr),
    type: koffi.decode(ptr, GGML_TENSOR_OFFSETS.type, 'int32_t') as number,
    ne,
    op: koffi.decode(ptr, GGML_TENSOR_OFFSETS.op, 'int32_t') as number,
    flags: koffi.decode(ptr, GGML_TENSOR_OFFSETS.flags, 'int32_t') as number,
  };
}

// ---- the trainable model ----

/** What a GGUF file must look like for this training path; read in TypeScript before llama.cpp sees the file. */
export interface TrainableShape {
  architecture: string;
  nVocab: number;
  nEmbd: number;
  nLayer: number;
  nHead: number;
  nHeadKv: number;
  /** Parameters in the file, and the ones this path trains (all but attn_k/attn_v). */
  nParams: number;
  nTrainable: number;
  tensors: { name: string; dims: number[] }[];
}

const SUPPORTED_ARCHS = ['qwen2', 'llama'];
/** Tensors that never receive a gradient on this path (defect 2). */
const FROZEN = /^blk\.\d+\.attn_[kv]\.(weight|bias)$/;

/** Read a GGUF header and check that this training path can train it; throws TrainingError saying what is wrong. */
export function inspectTrainableGguf(path: string): TrainableShape {
  let file: GgufFile;
  try {
    file = GgufFile.open(path);
  } catch (e) {
    throw new TrainingError(`cannot read the model to train: ${(e as Error).message}`);
  }
  try {
    const arch = file.getString('general.architecture') ?? '';
    if (!SUPPORTED_ARCHS.includes(arch)) throw new TrainingError(`${path}: architecture '${arch}' is not supported for training (${SUPPORTED_ARCHS.join(', ')})`);
    const num = (key: string) => {
      const v = file.getNumber(`${arch}.${key}`);
      if (v === undefined) throw new TrainingError(`${path}: metadata ${arch}.${key} is missing`);
      return v;
    };
    const nEmbd = num('embedding_length');
    const nLayer = num('block_count');
    const nHead = num('attention.head_count');
    const nHeadKv = file.getNumber(`${arch}.attention.head_count_kv`) ?? nHead;
    const tokens = file.get('tokenizer.ggml.tokens');
    if (!Array.isArray(tokens) || tokens.length === 0) throw new TrainingError(`${path}: the model has no tokenizer (tokenizer.ggml.tokens)`);
    const nVocab = tokens.length;
    if (nHeadKv !== nHead) {
      throw new TrainingError(
        `${path}: the model has ${nHeadKv} KV heads for ${nHead} heads. attn_k/attn_v receive no gradient on llama.cpp's training path, ` +
          'so they stay random: give the model as many KV heads as heads so the frozen projections are square (src/demo/init-model.ts does).',
      );
    }
    const problems: string[] = [];
    for (const t of file.tensors) {
      if (t.type !== 'f32') problems.push(`${t.name} is ggml type ${t.typeId}, not F32`);
    }
    const need = (name: string, dims: number[]) => {
      const t = file.tensorInfo(name);
      if (!t) problems.push(`tensor ${name} is missing`);
      else if (t.dims.length !== dims.length || t.dims.some((d, i) => d !== dims[i])) {
        problems.push(`${name} has dims [${t.dims.join(', ')}], expected [${dims.join(', ')}]`);
      }
    };
    need('token_embd.weight', [nEmbd, nVocab]);
    if (!file.tensorInfo('output.weight')) {
      problems.push('output.weight is missing: the model ties its output to token_embd.weight; give it its own output.weight');
    } else need('output.weight', [nEmbd, nVocab]);
    for (let l = 0; l < nLayer; l++) need(`blk.${l}.attn_q.weight`, [nEmbd, nEmbd]);
    if (problems.length > 0) throw new TrainingError(`${path} cannot be trained by llama.cpp's training path: ${problems.slice(0, 8).join('; ')}`);
    let nParams = 0;
    let nFrozen = 0;
    for (const t of file.tensors) {
      nParams += t.count;
      if (FROZEN.test(t.name)) nFrozen += t.count;
    }
    return {
      architecture: arch,
      nVocab,
      nEmbd,
      nLayer,
      nHead,
      nHeadKv,
      nParams,
      nTrainable: nParams - nFrozen,
      tensors: file.tensors.map((t) => ({ name: t.name, dims: t.dims })),
    };
  } finally {
    file.close();
  }
}

export interface TrainableModelOptions {
  /** Options for loading llama.cpp itself if it is not loaded yet. */
  llama?: LoadLlamaOptions;
}

export interface SaveOptions {
  /** Copy the metadata keys llama_model_save_to_file drops (chat template, description, ...) from this GGUF. */
  metadataFrom?: string;
  /** Keys to set on the written file (after the copy). Strings, booleans, integers (u32/i32) and other numbers (f32). */
  metadata?: Record<string, string | number | boolean>;
  /** Encoding of the matrices; 1-D tensors (norms, biases) stay F32. Default 'f32'. */
  type?: TensorType;
}

function rewriteGguf(raw: string, out: string, source: GgufFile | undefined, metadata: Record<string, string | number | boolean>, type: TensorType): void {
  const saved = GgufFile.open(raw);
  try {
    const w = new GgufWriter();
    // The writer aligns to GGUF_ALIGNMENT; a copied general.alignment could contradict it.
    const copy = (key: string) => key !== 'general.alignment';
    for (const [key, e] of saved.metadata) if (copy(key)) w.set(key, e.value, e.type);
    if (source) {
      for (const [key, e] of source.metadata) if (copy(key) && !saved.metadata.has(key)) w.set(key, e.value, e.type);
    }
    w.set('general.file_type', FILE_TYPE[type], 'u32');
    for (const [key, v] of Object.entries(metadata)) w.set(key, v);
    for (const t of saved.tensors) {
      if (t.type !== 'f32') throw new TrainingError(`internal: llama_model_save_to_file wrote ${t.name} as ggml type ${t.typeId}`);
      w.addTensor(t.name, t.dims, () => saved.tensor(t.name), t.dims.length > 1 ? type : 'f32');
    }
    w.write(out);
  } finally {
    saved.close();
  }
}

/**
 * A model loaded for training: F32 weights in ordinary (not memory-mapped) CPU memory so they can be written, and
 * access to individual weight tensors.
 */
export class TrainableModel {
  readonly shape: TrainableShape;
  readonly path: string;
  /** @internal */ readonly llama: Llama;
  private handle: Pointer | null;
  private trained = false;

  private constructor(llama: Llama, handle: Pointer, path: string, shape: TrainableShape) {
    this.llama = llama;
    this.handle = handle;
    this.path = path;
    this.shape = shape;
  }

  static load(path: string, opts: TrainableModelOptions = {}): TrainableModel {
    const shape = inspectTrainableGguf(path);
    const llama = loadLlama(opts.llama);
    trainingApi(llama);
    const api = llama.api;
    const params = { ...api.llama_model_default_params().p };
    params.n_gpu_layers = 0; // the backward pass of this build is exercised on CPU; weights stay in host memory
    params.load_mode = 0; // LLAMA_LOAD_MODE_NONE: weights must be writable, not a read-only mapping of the file
    params.lazy_mode = 0;
    params.use_extra_bufts = false; // no repacked weight layouts: the optimizer writes the plain F32 tensors
    const lines: string[] = [];
    const restore = setErrorSink((l) => lines.push(l.trim()));
    let handle: Pointer | null;
    try {
      handle = api.llama_model_load_from_file(path, params);
    } finally {
      restore();
    }
    if (!handle) throw new ModelLoadError(`llama.cpp could not load ${path}${lines.length ? `: ${lines.filter(Boolean).join('; ')}` : ''}`);
    const model = new TrainableModel(llama, handle, path, shape);
    try {
      if (api.llama_vocab_n_tokens(api.llama_model_get_vocab(handle)) !== shape.nVocab) {
        throw new TrainingError(`${path}: llama.cpp reports a different vocabulary size than the GGUF file`);
      }
      // Every tensor the file declares must be reachable by name, with the same shape and type.
      for (const t of shape.tensors) model.tensor(t.name, t.dims);
    } catch (e) {
      model.dispose();
      throw e;
    }
    return model;
  }

  /** @internal */ get ptr(): Pointer {
    if (!this.handle) throw new DisposedError('the model was disposed');
    return this.handle;
  }

  get disposed(): boolean {
    return this.handle === null;
  }

  /** @internal A weight tensor, checked: right name, F32, expected dims (when given). */
  tensor(name: string, dims?: number[]): TensorView {
    const ptr = trainingApi(this.llama).llama_model_get_tensor(this.ptr, name);
    if (!ptr) throw new TrainingError(`the loaded model has no tensor ${name}`);
    const t = viewTensor(this.llama, ptr);
    if (t.name !== name) throw new TrainingError(`internal: llama_model::get_tensor('${name}') returned a tensor named '${t.name}' (ABI mismatch?)`);
    if (t.type !== GgmlType.F32) throw new TrainingError(`${name} is ggml type ${t.type}, not F32`);
    if (dims) {
      const want = [...dims, 1, 1, 1, 1].slice(0, 4);
      if (want.some((d, i) => d !== t.ne[i])) throw new TrainingError(`${name} has ne [${t.ne.join(', ')}], expected [${want.join(', ')}]`);
    }
    const nbytes = Number(this.llama.api.ggml_nbytes(ptr));
    if (nbytes !== t.ne.reduce((a, b) => a * b, 1) * 4) throw new TrainingError(`${name}: ${nbytes} bytes for ne [${t.ne.join(', ')}] (ABI mismatch?)`);
    return t;
  }

  /** The current values of a weight tensor (ggml order, ne0 fastest). */
  readTensor(name: string): Float32Array {
    const t = this.tensor(name);
    const out = new Float32Array(t.ne.reduce((a, b) => a * b, 1));
    this.llama.api.ggml_backend_tensor_get(t.ptr, out, 0, out.byteLength);
    return out;
  }

  /** @internal */ markTrained(): void {
    this.trained = true;
  }

  /**
   * Write the model with `llama_model_save_to_file`. That call writes the architecture, hyper-parameters, tokenizer
   * and weights, but no chat template, description or other `general.*` keys, and (once trained) writes
   * `<arch>.context_length` = the training sequence length, which llama_opt_init sets. With `opts`, the file it
   * writes is rewritten: keys it dropped are copied from `metadataFrom`, `metadata` is set on top, and matrices can
   * be re-encoded (F16/Q8_0; 1-D tensors stay F32).
   */
  save(path: string, opts: SaveOptions = {}): void {
    const handle = this.ptr;
    if (existsSync(path) && statSync(path).isDirectory()) throw new InvalidInputError(`${path} is a folder`);
    const type = opts.type ?? 'f32';
    if (!['f32', 'f16', 'q8_0'].includes(type)) throw new InvalidInputError(`save type must be 'f32', 'f16' or 'q8_0' (got ${String(type)})`);
    if (type === 'q8_0') {
      const bad = this.shape.tensors.find((t) => t.dims.length > 1 && t.dims[0]! % 32 !== 0);
      if (bad) throw new InvalidInputError(`Q8_0 needs rows that are a multiple of 32 values; ${bad.name} has rows of ${bad.dims[0]}`);
    }
    let source: GgufFile | undefined;
    if (opts.metadataFrom) {
      try {
        source = GgufFile.open(opts.metadataFrom);
      } catch (e) {
        throw new TrainingError(`cannot read metadata to copy: ${(e as Error).message}`);
      }
    }
    const rewrite = source !== undefined || type !== 'f32' || Object.keys(opts.metadata ?? {}).length > 0;
    mkdirSync(dirname(path), { recursive: true });
    const raw = rewrite ? join(dirname(path), `.${basename(path)}.${process.pid}.raw.gguf`) : path;
    try {
      const lines: string[] = [];
      const restore = setErrorSink((l) => lines.push(l.trim()));
      try {
        this.llama.api.llama_model_save_to_file(handle, raw);
      } finally {
        restore();
      }
      if (!existsSync(raw) || statSync(raw).size < 24) {
        throw new TrainingError(`llama_model_save_to_file did not write ${raw}${lines.length ? `: ${lines.join('; ')}` : ''}`);
      }
      if (rewrite) rewriteGguf(raw, path, source, opts.metadata ?? {}, type);
    } finally {
      source?.close();
      if (rewrite && existsSync(raw)) unlinkSync(raw);
    }
  }

  get wasTrained(): boolean {
    return this.trained;
  }

  dispose(): void {
    if (this.handle) {
      this.llama.api.llama_model_free(this.handle);
      this.handle = null;
    }
  }
}

// ---- training ----

/** Options of llama.cpp's path: the shared ones and the switches that show its defects. */
export interface LlamaOptTrainOptions extends TrainOptions {
  /**
   * Turn individual defect workarounds off, to demonstrate the defects (tests and docs/demo-training.md).
   * Never set these for real training.
   */
  workarounds?: {
    /** Defect 1: zero the gradient accumulators before each optimizer step. */
    zeroGradients?: boolean;
    /** Defect 3: mark token_embd.weight as trainable. */
    trainTokenEmbedding?: boolean;
    /** Defect 4: one llama_decode first so the CPU backend uses `threads`. */
    warmupDecode?: boolean;
    /** Defect 2: leave attn_k/attn_v out of the parameters (they get no gradient; with them in, only weight decay moves them). */
    freezeKv?: boolean;
  };
}

/**
 * A generous estimate of the memory one training step takes: weights with their gradient accumulators and AdamW
 * moments, per-layer activations kept for the backward pass, attention scores (forward, softmax, gradient), and the
 * logits with their dense one-hot labels, softmax and gradient.
 */
export function estimateTrainingBytes(shape: Pick<TrainableShape, 'nParams' | 'nEmbd' | 'nLayer' | 'nHead' | 'nVocab'>, seqLen: number): number {
  const f = 4;
  const params = shape.nParams * f * 4;
  const activations = shape.nLayer * seqLen * shape.nEmbd * 24 * f * 2;
  const attention = shape.nLayer * shape.nHead * seqLen * seqLen * f * 4;
  const logits = seqLen * shape.nVocab * f * 6;
  return params + activations + attention + logits;
}

/**
 * Train `model` in place: one optimizer step per row of `data`. Runs synchronously inside llama.cpp, a chunk of
 * rows at a time, yielding to the event loop between chunks. Throws InvalidInputError / TrainingError before
 * touching llama.cpp when something does not fit.
 */
export async function train(model: TrainableModel, data: TrainingData, opts: LlamaOptTrainOptions): Promise<TrainingReport> {
  const o = checkOptions(opts, 'llama-context');
  const nVocab = model.shape.nVocab;
  const rows = checkTrainingData('training data', data, opts.seqLen, nVocab);
  if (rows.tokens.length === 0) throw new InvalidInputError('no training data');
  const validation = checkTrainingData('validation data', opts.validation ?? [], opts.seqLen, nVocab);
  if (model.wasTrained) throw new TrainingError('this model was already trained in this process; llama_opt_init works once per model: reload it');
  // ggml does not check its allocations on this path: a step that does not fit in memory crashes the process.
  const need = estimateTrainingBytes(model.shape, opts.seqLen);
  const have = totalmem();
  if (need > 0.75 * have) {
    throw new TrainingError(
      `training this model on ${opts.seqLen}-token rows needs about ${(need / 2 ** 30).toFixed(1)} GiB (weights, gradients, AdamW moments, ` +
        `activations, ${opts.seqLen}² attention scores, ${opts.seqLen} x ${nVocab} logits); this machine has ${(have / 2 ** 30).toFixed(1)} GiB: use shorter rows`,
    );
  }
  const session = new TrainingSession(model, opts.seqLen, o.threads, opts.workarounds ?? {});
  try {
    return await session.run(rows, validation, opts, o);
  } finally {
    session.dispose();
  }
}

class TrainingSession {
  private readonly api: TrainingApi;
  private readonly llama: Llama;
  private ctx: Pointer | null = null;
  private optCtx: Pointer | null = null;
  private readonly registered: unknown[] = [];
  private readonly datasets = new Map<number, Pointer>();
  private resultTrain: Pointer | null = null;
  private resultEval: Pointer | null = null;
  /** Trainable tensors: everything the filter accepted, plus token_embd.weight. */
  private readonly params: TensorView[] = [];
  private readonly frozen: string[] = [];
  private callbackError: unknown = null;
  private readonly f64a = new Float64Array(1);
  private readonly f64b = new Float64Array(1);

  // state read by the callbacks
  private step = 0;
  private plannedSteps = 1;
  private epoch = 0;
  private lastLr = 0;
  private optPars!: GgmlOptOptimizerParams;
  private lrOf: (step: number) => number = () => 0;
  private readonly steps: TrainingStep[] = [];
  private trainSeconds = 0;
  private chunkStart = 0;
  private onStep?: (s: TrainingStep) => void;
  private zeroedSteps = 0;

  constructor(
    private readonly model: TrainableModel,
    private readonly seqLen: number,
    private readonly threads: number,
    private readonly workarounds: NonNullable<LlamaOptTrainOptions['workarounds']>,
  ) {
    this.llama = model.llama;
    this.api = trainingApi(model.llama);
  }

  async run(
    rows: TokenRows,
    validation: TokenRows,
    opts: TrainOptions,
    o: CheckedTrainOptions,
  ): Promise<TrainingReport> {
    const nRows = rowCount(rows, this.seqLen);
    this.plannedSteps = o.epochs * nRows;
    this.lrOf = (s) => cosineLr(s, this.plannedSteps, opts.lr, o.lrMin, o.warmupSteps);
    this.optPars = {
      adamw: { alpha: opts.lr, beta1: o.beta1, beta2: o.beta2, eps: o.eps, wd: o.weightDecay },
      sgd: { alpha: opts.lr, wd: o.weightDecay },
    };
    this.onStep = opts.onStep;

    this.createContext();
    if (this.workarounds.warmupDecode ?? true) this.warmupDecode();
    this.initOptimizer(o.optimizer);
    this.model.markTrained();
    this.resultTrain = this.api.ggml_opt_result_init();
    this.resultEval = this.api.ggml_opt_result_init();

    const evals: EvalRecord[] = [];
    const evaluate = async () => {
      if (validation.tokens.length === 0) return;
      const e = await this.evaluate(validation, o.chunkSize);
      evals.push(e);
      this.callUser(() => opts.onEval?.(e));
      this.throwIfCallbackFailed();
    };
    await evaluate();

    let stopped = false;
    let nextEval = o.evalEvery > 0 ? o.evalEvery : Infinity;
    outer: for (let epoch = 1; epoch <= o.epochs; epoch++) {
      this.epoch = epoch;
      const order = epochOrder(nRows, epoch, o);
      for (let at = 0; at < order.length; ) {
        if (opts.signal?.aborted) {
          stopped = true;
          break outer;
        }
        // A chunk ends at the next evaluation, so evaluations fall exactly on multiples of evalEvery.
        const size = Math.min(o.chunkSize, order.length - at, nextEval - this.step);
        this.trainChunk(rows, order.slice(at, at + size));
        at += size;
        this.throwIfCallbackFailed();
        await new Promise((r) => setImmediate(r));
        if (opts.betweenChunks) await opts.betweenChunks(this.step);
        if (this.step >= nextEval) {
          nextEval += o.evalEvery;
          await evaluate();
        }
      }
    }
    if (evals.length === 0 || evals[evals.length - 1]!.step !== this.step) await evaluate();
    const tokens = this.step * this.seqLen;
    return {
      steps: this.steps,
      evals,
      plannedSteps: this.plannedSteps,
      tokens,
      seconds: this.trainSeconds,
      tokensPerSecond: this.trainSeconds > 0 ? tokens / this.trainSeconds : 0,
      stopped,
      threads: this.threads,
      trained: this.params.map((p) => p.name),
      frozen: this.frozen,
      nTrainable: this.params.reduce((n, p) => n + p.ne.reduce((a, b) => a * b, 1), 0),
      gradientsZeroed: this.zeroedSteps,
    };
  }

  private createContext(): void {
    const api = this.llama.api;
    const params = { ...api.llama_context_default_params().p };
    Object.assign(params, {
      n_ctx: this.seqLen,
      n_batch: this.seqLen, // one micro-batch per sequence and per optimizer step (opt_period = n_batch / n_ubatch = 1)
      n_ubatch: this.seqLen,
      n_seq_max: 1,
      n_outputs_max: 0,
      n_outputs_max_per_seq: 0,
      n_threads: this.threads,
      n_threads_batch: this.threads,
      flash_attn_type: 0, // FLASH_ATTN_EXT has no backward pass
      op_offload: false, // the whole step runs on the CPU backend, where this path is tested
      offload_kqv: false,
      type_k: GgmlType.F32, // OUT_PROD has no F16 support in the backward pass
      type_v: GgmlType.F32,
      no_perf: true,
    });
    const lines: string[] = [];
    const restore = setErrorSink((l) => lines.push(l.trim()));
    try {
      this.ctx = api.llama_init_from_model(this.model.ptr, params);
    } finally {
      restore();
    }
    if (!this.ctx) throw new TrainingError(`llama.cpp could not create a training context of ${this.seqLen} tokens: ${lines.filter(Boolean).join('; ')}`);
    const nCtx = api.llama_n_ctx(this.ctx);
    const nBatch = api.llama_n_batch(this.ctx);
    const nUbatch = this.api.llama_n_ubatch(this.ctx);
    if (nCtx !== this.seqLen || nBatch !== this.seqLen || nUbatch !== this.seqLen) {
      throw new TrainingError(`llama.cpp made a context of n_ctx ${nCtx}, n_batch ${nBatch}, n_ubatch ${nUbatch}; training needs all three = seqLen ${this.seqLen}`);
    }
  }

  /** Defect 4: the training path never sets the thread count; a decode does, on the context's CPU backend. */
  private warmupDecode(): void {
    const api = this.llama.api;
    const token = koffi.alloc('int32_t', 1);
    const pos = koffi.alloc('int32_t', 1);
    const nSeqId = koffi.alloc('int32_t', 1);
    const seqIds = koffi.alloc('int32_t', 1);
    const seqIdPtrs = koffi.alloc('void *', 1);
    const logits = koffi.alloc('int8_t', 1);
    try {
      new Int32Array(koffi.view(token, 4))[0] = 0;
      new Int32Array(koffi.view(pos, 4))[0] = 0;
      new Int32Array(koffi.view(nSeqId, 4))[0] = 1;
      new Int32Array(koffi.view(seqIds, 4))[0] = 0;
      new BigUint64Array(koffi.view(seqIdPtrs, 8))[0] = pointerAddress(seqIds);
      new Int8Array(koffi.view(logits, 1))[0] = 1;
      const batch = { n_tokens: 1, token, embd: null, pos, n_seq_id: nSeqId, seq_id: seqIdPtrs, logits };
      const lines: string[] = [];
      const restore = setErrorSink((l) => lines.push(l.trim()));
      let rc: number;
      try {
        rc = api.llama_decode(this.ctx!, batch);
      } finally {
        restore();
      }
      if (rc !== 0) throw new TrainingError(`the warm-up llama_decode failed with code ${rc}: ${lines.join('; ')}`);
      api.llama_memory_clear(api.llama_get_memory(this.ctx!), true);
    } finally {
      for (const p of [token, pos, nSeqId, seqIds, seqIdPtrs, logits]) koffi.free(p);
    }
  }

  private register(fn: (...args: never[]) => unknown, proto: unknown): unknown {
    const p = koffi.register(fn as never, koffi.pointer(proto as never));
    this.registered.push(p);
    return p;
  }

  private initOptimizer(optimizer: 'adamw' | 'sgd'): void {
    const accepted: TensorView[] = [];
    const filter = this.register(((t: Pointer) => {
      try {
        const v = viewTensor(this.llama, t);
        if ((this.workarounds.freezeKv ?? true) && FROZEN.test(v.name)) {
          this.frozen.push(v.name);
          return false;
        }
        accepted.push(v);
        return true;
      } catch (e) {
        this.callbackError ??= e;
        return false;
      }
    }) as never, llama_opt_param_filter);
    const getOptPars = this.register((() => this.optimizerParams()) as never, ggml_opt_get_optimizer_params);

    // Defect 3: token_embd.weight, checked before ggml_set_param (which asserts op == NONE).
    let embd: TensorView | null = null;
    if (this.workarounds.trainTokenEmbedding ?? true) {
      embd = this.model.tensor('token_embd.weight', [this.model.shape.nEmbd, this.model.shape.nVocab]);
      const output = this.model.tensor('output.weight', [this.model.shape.nEmbd, this.model.shape.nVocab]);
      if (pointerAddress(embd.ptr) === pointerAddress(output.ptr)) throw new TrainingError('output.weight is token_embd.weight (tied); the model needs its own output.weight');
      if (embd.op !== GGML_OP_NONE) throw new TrainingError(`token_embd.weight has op ${embd.op}, expected a plain weight (ABI mismatch?)`);
    }

    const lines: string[] = [];
    const restore = setErrorSink((l) => lines.push(l.trim()));
    try {
      this.api.llama_opt_init(this.ctx!, this.model.ptr, {
        n_ctx_train: 0, // = n_ctx; opt_epoch indexes its token buffer by it, so it must not differ
        param_filter: filter,
        param_filter_ud: null,
        get_opt_pars: getOptPars,
        get_opt_pars_ud: null,
        optimizer_type: optimizer === 'adamw' ? GgmlOptOptimizerType.ADAMW : GgmlOptOptimizerType.SGD,
      });
    } finally {
      restore();
    }
    this.throwIfCallbackFailed();
    if (accepted.length === 0) throw new TrainingError(`llama_opt_init marked no tensor as trainable${lines.length ? `: ${lines.join('; ')}` : ''}`);
    if (embd) {
      this.api.ggml_set_param(embd.ptr);
      accepted.push(viewTensor(this.llama, embd.ptr));
    }
    // The flags field is read at a fixed offset: confirm it on tensors we know are (not) parameters.
    for (const p of accepted) {
      const v = viewTensor(this.llama, p.ptr);
      if ((v.flags & GGML_TENSOR_FLAG_PARAM) === 0) throw new TrainingError(`internal: ${v.name} is not flagged as a parameter after llama_opt_init (ABI mismatch?)`);
      this.params.push(v);
    }
    for (const name of this.frozen) {
      if ((this.model.tensor(name).flags & GGML_TENSOR_FLAG_PARAM) !== 0) throw new TrainingError(`internal: frozen ${name} is flagged as a parameter`);
    }
  }

  /** ggml's get_opt_pars callback: runs inside each optimizer step, after the forward/backward graph is built. */
  private optimizerParams(): GgmlOptOptimizerParams {
    try {
      this.step++;
      const lr = this.lrOf(this.step);
      if (Number.isFinite(lr) && lr > 0) this.lastLr = lr; // ggml asserts alpha > 0: keep the last good value otherwise
      this.optPars.adamw.alpha = this.lastLr;
      this.optPars.sgd.alpha = this.lastLr;
      if ((this.workarounds.zeroGradients ?? true) && this.optCtx) this.zeroGradients();
    } catch (e) {
      this.callbackError ??= e;
    }
    return this.optPars;
  }

  /**
   * Defect 1: zero every parameter's gradient accumulator before this step's backward pass adds into it. Called from
   * get_opt_pars, the one moment where gb_opt exists and ggml_opt_grad_acc can look the accumulators up.
   */
  private zeroGradients(): void {
    for (const p of this.params) {
      const acc = this.api.ggml_opt_grad_acc(this.optCtx!, p.ptr);
      if (!acc) continue; // a parameter the loss does not reach has no accumulator
      const n = Number(this.api.ggml_nelements(acc));
      const nbytes = Number(this.llama.api.ggml_nbytes(acc));
      if (nbytes !== n * 4 || n !== p.ne.reduce((a, b) => a * b, 1)) {
        throw new TrainingError(`internal: gradient accumulator of ${p.name} has ${n} elements / ${nbytes} bytes`);
      }
      this.api.ggml_backend_tensor_memset(acc, 0, 0, nbytes);
    }
    this.zeroedSteps++;
  }

  private dataset(n: number): Pointer {
    let ds = this.datasets.get(n);
    if (!ds) {
      ds = this.api.ggml_opt_dataset_init(GgmlType.I32, GgmlType.I32, this.seqLen, this.seqLen, n, 1);
      this.datasets.set(n, ds);
      const expect = n * this.seqLen * 4;
      const data = this.api.ggml_opt_dataset_data(ds);
      const labels = this.api.ggml_opt_dataset_labels(ds);
      if (Number(this.llama.api.ggml_nbytes(data)) !== expect || Number(this.llama.api.ggml_nbytes(labels)) !== expect) {
        throw new TrainingError('internal: ggml_opt_dataset tensors have an unexpected size');
      }
    }
    return ds;
  }

  private fill(ds: Pointer, rows: TokenRows, which: readonly number[]): void {
    const L = this.seqLen;
    const inputs = new Int32Array(which.length * L);
    const labels = new Int32Array(which.length * L);
    which.forEach((r, i) => {
      inputs.set(rows.tokens.subarray(r * L, (r + 1) * L), i * L);
      labels.set(rows.labels.subarray(r * L, (r + 1) * L), i * L);
    });
    this.api.ggml_backend_tensor_set(this.api.ggml_opt_dataset_data(ds), inputs, 0, inputs.byteLength);
    this.api.ggml_backend_tensor_set(this.api.ggml_opt_dataset_labels(ds), labels, 0, labels.byteLength);
  }

  private trainChunk(rows: TokenRows, which: readonly number[]): void {
    const ds = this.dataset(which.length);
    this.fill(ds, rows, which);
    const cb = this.trainCallback();
    const lines: string[] = [];
    const restore = setErrorSink((l) => lines.push(l.trim()));
    const before = this.step;
    this.chunkStart = performance.now();
    const secondsBefore = this.trainSeconds;
    try {
      this.api.llama_opt_epoch(this.ctx!, ds, this.resultTrain, null, which.length, cb, null);
    } finally {
      restore();
      this.trainSeconds = secondsBefore + (performance.now() - this.chunkStart) / 1000;
    }
    if (this.step - before !== which.length && !this.callbackError) {
      throw new TrainingError(
        `llama_opt_epoch made ${this.step - before} optimizer steps for ${which.length} rows${lines.length ? `: ${lines.filter(Boolean).join('; ')}` : ''}`,
      );
    }
  }

  private trainCb: unknown = null;
  private trainCallback(): unknown {
    this.trainCb ??= this.register(((_train: boolean, optCtx: Pointer, _ds: Pointer, result: Pointer) => {
      try {
        this.optCtx ??= optCtx;
        this.api.ggml_opt_result_loss(result, this.f64a, null);
        this.api.ggml_opt_result_accuracy(result, this.f64b, null);
        this.api.ggml_opt_result_reset(result); // one result per step: the next read is the next step alone
        const seconds = this.trainSeconds + (performance.now() - this.chunkStart) / 1000;
        const tokens = this.step * this.seqLen;
        const s: TrainingStep = {
          step: this.step,
          epoch: this.epoch,
          loss: this.f64a[0]!,
          accuracy: this.f64b[0]!,
          lr: this.lastLr,
          tokens,
          elapsedSeconds: seconds,
          tokensPerSecond: seconds > 0 ? tokens / seconds : 0,
        };
        this.steps.push(s);
        if (this.onStep) this.callUser(() => this.onStep!(s));
      } catch (e) {
        this.callbackError ??= e;
      }
    }) as never, ggml_opt_epoch_callback);
    return this.trainCb;
  }

  private evalCb: unknown = null;
  private async evaluate(rows: TokenRows, chunkSize: number): Promise<EvalRecord> {
    const n = rowCount(rows, this.seqLen);
    this.evalCb ??= this.register(((_train: boolean, optCtx: Pointer) => {
      this.optCtx ??= optCtx;
    }) as never, ggml_opt_epoch_callback);
    this.api.ggml_opt_result_reset(this.resultEval!);
    const lines: string[] = [];
    for (let at = 0; at < n; at += chunkSize) {
      const which = Array.from({ length: Math.min(chunkSize, n - at) }, (_, i) => at + i);
      const ds = this.dataset(which.length);
      this.fill(ds, rows, which);
      const restore = setErrorSink((l) => lines.push(l.trim()));
      try {
        this.api.llama_opt_epoch(this.ctx!, ds, null, this.resultEval, 0, null, this.evalCb);
      } finally {
        restore();
      }
      await new Promise((r) => setImmediate(r));
    }
    const nd = new BigInt64Array(1);
    this.api.ggml_opt_result_ndata(this.resultEval!, nd);
    this.api.ggml_opt_result_loss(this.resultEval!, this.f64a, null);
    this.api.ggml_opt_result_accuracy(this.resultEval!, this.f64b, null);
    if (Number(nd[0]) !== n * this.seqLen) {
      throw new TrainingError(`evaluation covered ${nd[0]} tokens, expected ${n * this.seqLen}${lines.length ? `: ${lines.filter(Boolean).join('; ')}` : ''}`);
    }
    return { step: this.step, loss: this.f64a[0]!, accuracy: this.f64b[0]!, rows: n };
  }

  /** A user callback's exception must not unwind through C; remember it and stop at the next chunk boundary. */
  private callUser(fn: () => void): void {
    try {
      fn();
    } catch (e) {
      this.callbackError ??= e;
    }
  }

  private throwIfCallbackFailed(): void {
    if (this.callbackError) {
      const e = this.callbackError;
      this.callbackError = null;
      throw e instanceof Error ? e : new TrainingError(String(e));
    }
  }

  dispose(): void {
    const api = this.llama.api;
    // The context owns the optimizer context (freed by llama_free).
    if (this.ctx) api.llama_free(this.ctx);
    this.ctx = null;
    this.optCtx = null;
    for (const ds of this.datasets.values()) this.api.ggml_opt_dataset_free(ds);
    this.datasets.clear();
    if (this.resultTrain) this.api.ggml_opt_result_free(this.resultTrain);
    if (this.resultEval) this.api.ggml_opt_result_free(this.resultEval);
    this.resultTrain = this.resultEval = null;
    for (const p of this.registered) koffi.unregister(p as never);
    this.registered.length = 0;
  }
}

// ---- one call: load, train, save ----

export interface TrainModelOptions extends LlamaOptTrainOptions {
  /** The F32 GGUF to start from (for example from src/demo/init-model.ts). */
  model: string;
  /** Where to write the trained model (llama_model_save_to_file). Omit to not save. */
  output?: string;
  save?: SaveOptions;
  data: TrainingData;
  /** Options for loading llama.cpp itself if it is not loaded yet. */
  llama?: LoadLlamaOptions;
}

/** Load `model`, train it on `data`, save it to `output` (with `save` options). */
export async function trainModel(opts: TrainModelOptions): Promise<TrainingReport> {
  checkOptions(opts, 'llama-context');
  const model = TrainableModel.load(opts.model, { llama: opts.llama });
  try {
    const report = await train(model, opts.data, opts);
    if (opts.output) model.save(opts.output, opts.save);
    return report;
  } finally {
    model.dispose();
  }
}
