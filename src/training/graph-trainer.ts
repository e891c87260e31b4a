/**
 * Full-gradient training of a qwen2/llama-shaped GGUF model through the ggml graph built in TypeScript
 * (src/graph/decoder.ts) and ggml's own optimizer (`ggml-opt`, src/graph/optimizer.ts), called through koffi.
 *
 * Why this path and not llama.cpp's `llama_opt_*` (llama-opt.ts): in llama.cpp's training graph K and V are read back
 * from the KV cache, so `attn_k`/`attn_v` get no gradient and — worse — no gradient flows from a position's loss back
 * into the residual stream of the earlier positions it attends to. Each position is trained only by its own
 * next-token loss; a model trained that way learns to copy but not to compute from what it copied (the demo model
 * trained on that path added 13 + 8 wrongly). Here the forward pass has no cache, so ggml's automatic
 * differentiation reaches every weight and every position. ggml's CPU kernels do the work, so it runs at about the
 * speed of llama.cpp's own path.
 *
 * The graph is checked against llama.cpp's inference of the same file (test/graph-training.test.ts): the loss this
 * graph computes equals the cross-entropy of llama.cpp's logits.
 */
import { totalmem } from 'node:os';
import { GgufFile } from '../formats/gguf/reader.js';
import { GgufWriter } from '../formats/gguf/writer.js';
import { FILE_TYPE, type TensorType } from '../formats/gguf/encode.js';
import { InvalidInputError } from '../util/errors.js';
import { loadLlama } from '../native/library.js';
import { GgmlType } from '../native/ggml.js';
import { CpuBackend } from '../graph/backend.js';
import { GraphBuilder } from '../graph/builder.js';
import { buildDecoderLayers, buildHead, modelHead } from '../graph/decoder.js';
import { decoderTensors, readDecoderShape, type DecoderShape } from '../graph/decoder-shape.js';
import { GraphOptimizer, type OptimizerStep } from '../graph/optimizer.js';
import { TensorStore } from '../graph/tensors.js';
import { checkTrainingData, rowCount, type TokenRows, type TrainingData } from './data.js';
import { TrainingError } from './errors.js';
import { runTrainingLoop } from './loop.js';
import { checkOptions, type TrainOptions, type TrainingReport } from './options.js';

/** Graph metadata of the forward, backward and optimizer graphs (a few thousand tensors; no data). */
const COMPUTE_CONTEXT_BYTES = 64 * 1024 * 1024;

/** What a GGUF must hold to be trained by the graph trainer; throws InvalidInputError naming what is missing. */
export function inspectGraphTrainable(path: string): DecoderShape {
  const shape = readDecoderShape(path);
  // GQA and a tied head are built by the graph (src/graph/) but not trained here: nothing has needed them, so their
  // gradients are untested.
  if (shape.nHeadKv !== shape.nHead) throw new InvalidInputError(`${path}: the graph trainer needs as many KV heads as heads (got ${shape.nHeadKv} and ${shape.nHead})`);
  if (shape.tiedOutput) throw new InvalidInputError(`${path}: tensor output.weight is missing (the graph trainer needs an untied output.weight)`);
  return shape;
}

/** Bytes the training graph needs, roughly: weights x 4 (value, gradient, AdamW m and v) plus activations and their gradients. */
export function estimateGraphTrainingBytes(s: DecoderShape, seqLen: number): number {
  const perLayer = seqLen * (s.nEmbd * 12 + s.nFf * 4) + 3 * s.nHead * seqLen * seqLen;
  return 4 * (4 * s.nParams + 3 * (s.nLayer * perLayer + 3 * seqLen * s.nVocab));
}

export interface GraphSaveOptions {
  /** Keys set on the written file (after the source's metadata is copied). */
  metadata?: Record<string, string | number | boolean>;
  /** Encoding of the matrices; 1-D tensors (norms, biases) stay F32. Default 'f32'. */
  type?: TensorType;
}

/**
 * A GGUF model held as ggml parameters with its training graph built: `step` runs one AdamW step, `evaluate` the loss,
 * `save` writes a GGUF with the source file's metadata and the trained weights. Call `dispose` when done.
 */
export class GraphTrainer {
  readonly shape: DecoderShape;
  readonly threads: number;
  private backend: CpuBackend | null = null;
  private tensors: TensorStore | null = null;
  private builder: GraphBuilder | null = null;
  private optimizer: GraphOptimizer | null = null;
  private readonly weightNames: string[];
  private readonly labelBuf: Float32Array;

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
    const llama = loadLlama();
    const specs = decoderTensors(this.shape);
    this.weightNames = specs.map((s) => s.name);
    this.labelBuf = new Float32Array(seqLen * this.shape.nVocab);
    try {
      this.backend = new CpuBackend(llama, this.threads);
      const tensors = (this.tensors = new TensorStore(this.backend, [
        ...specs,
        { name: 'inputs', dims: [seqLen], type: GgmlType.I32 },
        { name: 'positions', dims: [seqLen], type: GgmlType.I32 },
      ]));
      tensors.markParams(this.weightNames);
      tensors.loadGguf(path, this.weightNames);
      tensors.write('positions', Int32Array.from({ length: seqLen }, (_, i) => i));
      // The whole model, one row of seqLen tokens from position 0, the model's head: logits [V, seqLen].
      const b = (this.builder = new GraphBuilder(llama.ggml, { memBytes: COMPUTE_CONTEXT_BYTES }));
      const w = (name: string) => tensors.get(name);
      const inputs = { tokens: tensors.get('inputs'), positions: tensors.get('positions'), n: seqLen };
      const hidden = buildDecoderLayers(b, this.shape, w, inputs, this.shape.nLayer);
      const logits = buildHead(b, this.shape, hidden, modelHead(this.shape, w));
      llama.ggml.ggml_set_name(logits, 'logits');
      this.optimizer = new GraphOptimizer(llama, {
        backend: this.backend,
        builder: b,
        inputs: inputs.tokens,
        outputs: logits,
        loss: 'cross-entropy',
        optimizer: opts.optimizer ?? 'adamw',
      });
    } catch (e) {
      this.dispose();
      throw e;
    }
  }

  private live(): { tensors: TensorStore; optimizer: GraphOptimizer } {
    if (!this.tensors || !this.optimizer) throw new TrainingError('this trainer was disposed');
    return { tensors: this.tensors, optimizer: this.optimizer };
  }

  /** The row's tokens as the graph's input, its targets as one-hot labels. */
  private fillRow(rows: TokenRows, row: number): void {
    const { tensors, optimizer } = this.live();
    const n = this.seqLen;
    const V = this.shape.nVocab;
    tensors.write('inputs', rows.tokens.subarray(row * n, (row + 1) * n));
    const lab = this.labelBuf;
    lab.fill(0);
    for (let i = 0; i < n; i++) lab[i * V + rows.labels[row * n + i]!] = 1;
    optimizer.setLabels(lab);
  }

  /** Whether training steps run with denormals flushed to zero (Linux x86-64; see src/native/denormals.ts). */
  get flushesDenormals(): boolean {
    return this.live().optimizer.flushesDenormals;
  }

  /** One optimizer step on one row (loss and accuracy measured by the forward pass before the update). */
  step(rows: TokenRows, row: number, lr: number, o: Omit<OptimizerStep, 'lr'>): { loss: number; accuracy: number } {
    const { optimizer } = this.live();
    return optimizer.step({ ...o, lr }, () => this.fillRow(rows, row));
  }

  /** Mean next-token loss and accuracy over rows (forward only). */
  evaluate(rows: TokenRows, which?: readonly number[]): { loss: number; accuracy: number; rows: number } {
    const { optimizer } = this.live();
    const list = which ?? Array.from({ length: rowCount(rows, this.seqLen) }, (_, i) => i);
    let loss = 0;
    let acc = 0;
    for (const r of list) {
      const m = optimizer.evaluate(() => this.fillRow(rows, r));
      loss += m.loss;
      acc += m.accuracy;
    }
    return { loss: list.length ? loss / list.length : NaN, accuracy: list.length ? acc / list.length : NaN, rows: list.length };
  }

  /** The current value of a weight tensor. */
  readTensor(name: string): Float32Array {
    const { tensors } = this.live();
    if (!this.weightNames.includes(name)) throw new InvalidInputError(`no weight tensor named ${name}`);
    return tensors.read(name);
  }

  /** Write a GGUF: the source file's metadata and tensor order, the trained weights. */
  save(path: string, opts: GraphSaveOptions = {}): void {
    this.live();
    const type = opts.type ?? 'f32';
    const src = GgufFile.open(this.path);
    try {
      const w = new GgufWriter();
      for (const [key, e] of src.metadata) if (key !== 'general.alignment') w.set(key, e.value, e.type);
      w.set('general.file_type', FILE_TYPE[type], 'u32');
      for (const [key, v] of Object.entries(opts.metadata ?? {})) w.set(key, v);
      for (const t of src.tensors) {
        if (!this.weightNames.includes(t.name)) throw new TrainingError(`${this.path}: tensor ${t.name} is not part of the trained graph`);
        const data = this.readTensor(t.name);
        w.addTensor(t.name, [...t.dims], () => data, t.dims.length > 1 ? type : 'f32');
      }
      w.write(path);
    } finally {
      src.close();
    }
  }

  dispose(): void {
    this.optimizer?.dispose();
    this.builder?.dispose();
    this.tensors?.dispose();
    this.backend?.dispose();
    this.optimizer = this.builder = this.tensors = this.backend = null;
  }
}

/**
 * Train with full gradients: one AdamW step per row of `data`, the same options, schedule (cosine with warm-up),
 * per-epoch shuffle, evaluations and callbacks as llama.cpp's path (llama-opt.ts), so recipes can use either.
 */
export async function trainGraph(trainer: GraphTrainer, data: TrainingData, opts: TrainOptions): Promise<TrainingReport> {
  if (opts.seqLen !== trainer.seqLen) throw new InvalidInputError(`seqLen ${opts.seqLen} differs from the trainer's graph (${trainer.seqLen})`);
  const o = checkOptions({ ...opts, threads: opts.threads ?? trainer.threads }, 'any');
  const rows = checkTrainingData('training data', data, trainer.seqLen, trainer.shape.nVocab);
  if (rows.tokens.length === 0) throw new InvalidInputError('no training data');
  const validation = checkTrainingData('validation data', opts.validation ?? [], trainer.seqLen, trainer.shape.nVocab);
  const loop = await runTrainingLoop(
    {
      nRows: rowCount(rows, trainer.seqLen),
      tokensPerRow: trainer.seqLen,
      step: (row, lr) => trainer.step(rows, row, lr, o),
      evaluate: validation.tokens.length > 0 ? () => trainer.evaluate(validation) : undefined,
    },
    opts,
    o,
  );
  return {
    ...loop,
    threads: trainer.threads,
    trained: decoderTensors(trainer.shape).map((t) => t.name),
    frozen: [],
    nTrainable: trainer.shape.nParams,
    gradientsZeroed: 0,
  };
}
