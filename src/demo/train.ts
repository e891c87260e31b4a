/**
 * The recipe that trains the project's own small reasoning model (`lynx demo train`): tokenizer, random initial
 * model, packed trace corpus, AdamW with a cosine schedule through the ggml graph trainer
 * (`src/training/graph-trainer.ts`; llama.cpp's own path, `src/training/llama-opt.ts`, for recipes that ask for it),
 * and the saved GGUF with its loss curve (`<name>.loss.json`) next to it.
 *
 * Everything is derived from the recipe's seeds, so the same recipe gives the same model (up to floating-point
 * summation order across threads). `DEMO_RECIPES.small` is the second, smaller model for big/small composition;
 * `recipeWith` derives variants.
 */
import { mkdtempSync, rmSync, renameSync, existsSync, unlinkSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { InvalidInputError } from '../util/errors.js';
import { writeJsonAtomic } from '../util/fs.js';
import type { TokenRows } from '../training/data.js';
import type { EvalRecord, TrainingReport, TrainingStep, TrainOptions } from '../training/options.js';
import { GraphTrainer, trainGraph } from '../training/graph-trainer.js';
// The one importer of llama.cpp's training path: the recipe's `trainer: 'llama-opt'` switch (openTrainer below).
import { TrainableModel, train } from '../training/llama-opt.js';
import type { TensorType } from '../formats/gguf/encode.js';
import { countParams, validateShape, writeF32Copy, writeInitialModel, type ModelShape, type TokenizerSpec } from './init-model.js';
import { GgufFile } from '../formats/gguf/reader.js';
import { modelShapeOf, writeDeeperCopy } from './grow-model.js';
// ---- adapter point: the demo tokenizer and corpus (src/demo/tokenizer.ts, src/demo/corpus.ts) ----
import { writeTokenizerToGguf, type DemoTokenizer } from './tokenizer.js';
import { buildCorpus, buildDemoTokenizer, labelsEverywhere } from './corpus.js';
import type { TraceOptions } from './traces.js';

export interface DemoRecipe {
  /** File name stem and `general.name`. */
  name: string;
  /** One line for `general.description` (the frozen K/V note is appended). */
  description: string;
  shape: ModelShape;
  /** Tokens per training window = llama.cpp context while training; a multiple of 256. */
  seqLen: number;
  initSeed: number;
  tokenizer: { seed?: number; traces?: number; vocabSize?: number };
  data: {
    seed: number;
    /** Training windows of seqLen tokens (one optimizer step each, per epoch). */
    sequences: number;
    validationSeed: number;
    validationSequences: number;
    /**
     * Which positions carry loss in the corpus. llama.cpp trains every position; positions the corpus leaves
     * unlabelled get the pad token as target. 'all' (prompt text too) avoids teaching "pad" inside prompts.
     */
    loss: 'all' | 'completion';
    levels?: readonly number[];
    /** Trace generator options (src/demo/traces.ts) that differ from its defaults. */
    trace?: Partial<TraceOptions>;
  };
  optim: {
    lr: number;
    lrMin: number;
    warmupSteps: number;
    epochs: number;
    beta1: number;
    beta2: number;
    weightDecay: number;
    shuffleSeed: number;
  };
  /** Encoding of the matrices in the shipped file. */
  saveType: TensorType;
  /**
   * Which training path: 'graph' (full gradients through a ggml graph built by src/training/graph-trainer.ts; the
   * default) or 'llama-opt' (llama.cpp's own llama_opt_*, which leaves attn_k/attn_v frozen and cuts the gradient to
   * earlier positions; kept for comparison and for models of other shapes). Recipes written before this field read
   * as 'llama-opt'.
   */
  trainer?: 'graph' | 'llama-opt';
  /** A stage that grew the model it started from: the layers new identity blocks were inserted after (old numbering). */
  addLayersAfter?: readonly number[];
}

/** The training path of a recipe (older recipes, written before the field existed, used llama_opt). */
export function recipeTrainer(r: Pick<DemoRecipe, 'trainer'>): 'graph' | 'llama-opt' {
  return r.trainer ?? 'llama-opt';
}

/**
 * The shipped model and the small one. Sizes and token budgets follow the measured speed on this 2-core machine
 * (docs/demo-training.md): the default is 6.1M tokens through a 1.0M-parameter model (about 30-50 minutes on one core),
 * the small one 4.1M tokens through 0.4M parameters. The shipped file is F16: about 2 MB for the default.
 */
export const DEMO_RECIPES: Record<'default' | 'small' | 'small-split', DemoRecipe> = {
  default: {
    name: 'lynx-demo',
    description: 'Lynx demo reasoning model: R1-style traces for multi-step arithmetic word problems, trained from random initialisation by Lynx.',
    shape: { nEmbd: 128, nLayer: 4, nHead: 4, nFf: 384, contextLength: 512 },
    seqLen: 512,
    initSeed: 1,
    tokenizer: {},
    data: { seed: 101, sequences: 12_000, validationSeed: 202, validationSequences: 32, loss: 'all' },
    optim: { lr: 3e-3, lrMin: 1e-4, warmupSteps: 150, epochs: 1, beta1: 0.9, beta2: 0.99, weightDecay: 0, shuffleSeed: 7 },
    saveType: 'f16',
    trainer: 'graph',
  },
  small: {
    name: 'lynx-demo-small',
    description: 'Lynx demo reasoning model (small): R1-style traces for multi-step arithmetic word problems, trained from random initialisation by Lynx.',
    shape: { nEmbd: 96, nLayer: 3, nHead: 4, nFf: 256, contextLength: 512 },
    seqLen: 512,
    initSeed: 2,
    tokenizer: {},
    data: { seed: 303, sequences: 8_000, validationSeed: 202, validationSequences: 32, loss: 'all' },
    optim: { lr: 3e-3, lrMin: 1e-4, warmupSteps: 100, epochs: 1, beta1: 0.9, beta2: 0.99, weightDecay: 0, shuffleSeed: 7 },
    saveType: 'f16',
    trainer: 'graph',
  },
  /**
   * The shipped small model (issue 17): the small recipe on traces that hand every line working out an operation to the
   * big model with SplitReason's tags. `lynx demo step-errors` on the plain `small` model found it gets every kind of
   * step wrong most of the time (operands and carried values miscopied, results wrong: 76-92% of steps), so all four
   * kinds go to the big model, a run of consecutive lines per span; the small model writes the rest (the start, the
   * round openers, spot checks, candidate answers, the final answer). Same tokenizer as the default model, so the pair
   * passes token ids.
   */
  'small-split': {
    name: 'lynx-demo-small',
    description:
      'Lynx demo reasoning model (small, offloading): R1-style traces for multi-step arithmetic word problems that hand the arithmetic lines to a big model with <bigmodel>...</bigmodel>, trained from random initialisation by Lynx.',
    shape: { nEmbd: 96, nLayer: 3, nHead: 4, nFf: 256, contextLength: 512 },
    seqLen: 512,
    initSeed: 2,
    tokenizer: {},
    data: { seed: 303, sequences: 8_000, validationSeed: 202, validationSequences: 32, loss: 'all', trace: { offload: ['add', 'sub', 'mul', 'div'] } },
    optim: { lr: 3e-3, lrMin: 1e-4, warmupSteps: 100, epochs: 1, beta1: 0.9, beta2: 0.99, weightDecay: 0, shuffleSeed: 7 },
    saveType: 'f16',
    trainer: 'graph',
  },
};

type DeepPartial<T> = { [K in keyof T]?: T[K] extends object ? (T[K] extends readonly unknown[] ? T[K] : DeepPartial<T[K]>) : T[K] };

/** A recipe with some fields replaced (nested objects are merged). */
export function recipeWith(base: DemoRecipe, changes: DeepPartial<DemoRecipe>): DemoRecipe {
  return {
    ...base,
    ...changes,
    shape: { ...base.shape, ...changes.shape },
    tokenizer: { ...base.tokenizer, ...changes.tokenizer },
    data: { ...base.data, ...changes.data } as DemoRecipe['data'],
    optim: { ...base.optim, ...changes.optim },
  } as DemoRecipe;
}

/** Check a recipe completely before anything slow starts. */
export function validateRecipe(r: DemoRecipe): void {
  const problems: string[] = [];
  if (!/^[A-Za-z0-9._-]+$/.test(r.name)) problems.push(`name '${r.name}' must be a plain file name stem (letters, digits, . _ -)`);
  if (!Number.isInteger(r.seqLen) || r.seqLen < 256 || r.seqLen % 256 !== 0) problems.push(`seqLen must be a multiple of 256 (got ${r.seqLen})`);
  if (r.shape.contextLength < r.seqLen) problems.push(`shape.contextLength (${r.shape.contextLength}) must be at least seqLen (${r.seqLen})`);
  const posInt = (name: string, v: number, min = 1) => {
    if (!Number.isInteger(v) || v < min) problems.push(`${name} must be an integer >= ${min} (got ${v})`);
  };
  posInt('data.sequences', r.data.sequences);
  posInt('data.validationSequences', r.data.validationSequences, 0);
  posInt('optim.epochs', r.optim.epochs);
  posInt('optim.warmupSteps', r.optim.warmupSteps, 0);
  if (r.data.loss !== 'all' && r.data.loss !== 'completion') problems.push(`data.loss must be 'all' or 'completion'`);
  if (!['f32', 'f16', 'q8_0'].includes(r.saveType)) problems.push(`saveType must be f32, f16 or q8_0 (got ${r.saveType})`);
  if (r.trainer !== undefined && r.trainer !== 'graph' && r.trainer !== 'llama-opt') problems.push(`trainer must be 'graph' or 'llama-opt' (got ${String(r.trainer)})`);
  if (problems.length > 0) throw new InvalidInputError(`invalid demo recipe: ${problems.join('; ')}`);
  validateShape(r.shape, 256 + 1);
}

export interface DemoTrainOptions {
  recipe?: DemoRecipe;
  /** Folder for `<name>.gguf` and `<name>.loss.json`. */
  outDir: string;
  threads?: number;
  /**
   * Start from this trained demo model instead of a random initialisation (a second training stage: the recipe's data
   * and schedule run again from these weights; AdamW moments start at zero, as this path cannot save them).
   */
  initFrom?: string;
  /**
   * With `initFrom`: insert one new identity block (zero output projections, so the model computes exactly what it did)
   * after each of these layers before training, growing the model deeper (src/demo/grow-model.ts).
   */
  addLayersAfter?: readonly number[];
  /** Evaluate the validation windows every this many steps (default: about 20 times per run). */
  evalEvery?: number;
  /** Save `<name>.checkpoint.gguf` every this many steps (0: never). */
  checkpointEvery?: number;
  /** Rewrite the loss curve file at most this often while training (default 30 s). */
  curveEverySeconds?: number;
  onStep?: (s: TrainingStep) => void;
  onEval?: (e: EvalRecord) => void;
  /** Progress lines (phases, evaluations). */
  log?: (line: string) => void;
  signal?: AbortSignal;
}

export interface DemoTrainResult {
  modelPath: string;
  lossCurvePath: string;
  report: TrainingReport;
  corpus: { traces: number; droppedTooLong: number; fill: number; tokens: number };
}

/** The loss curve file written next to the model. */
export interface LossCurveFile {
  complete: boolean;
  recipe: DemoRecipe;
  model: { path: string; nParams: number; nTrainable: number; nVocab: number };
  corpus: DemoTrainResult['corpus'];
  threads: number;
  tokens: number;
  seconds: number;
  tokensPerSecond: number;
  /** One row per optimizer step: [step, loss, accuracy, lr]. */
  steps: [number, number, number, number][];
  evals: EvalRecord[];
}

// ---- adapter point: everything the recipe needs from the demo tokenizer and corpus modules ----

/** The demo tokenizer for a recipe, and the writer that puts it into the GGUF. */
export function recipeTokenizer(r: DemoRecipe): { tok: DemoTokenizer; spec: TokenizerSpec; pad: number } {
  const tok = buildDemoTokenizer(r.tokenizer);
  return { tok, spec: { nVocab: tok.vocabSize, writeTo: (w) => writeTokenizerToGguf(w, tok) }, pad: tok.pad };
}

/** Packed windows of traces as training rows (inputs and next-token targets; unlabelled targets = pad). */
export function recipeRows(tok: DemoTokenizer, r: DemoRecipe, which: 'train' | 'validation'): { rows: TokenRows; stats: DemoTrainResult['corpus'] } {
  const corpus = buildCorpus(tok, {
    seed: which === 'train' ? r.data.seed : r.data.validationSeed,
    nCtx: r.seqLen,
    nSequences: which === 'train' ? r.data.sequences : r.data.validationSequences,
    levels: r.data.levels,
    loss: r.data.loss,
    trace: r.data.trace,
  });
  return {
    rows: { tokens: corpus.tokens, labels: labelsEverywhere(corpus, tok.pad) },
    stats: { traces: corpus.stats.traces, droppedTooLong: corpus.stats.droppedTooLong, fill: corpus.stats.fill, tokens: corpus.tokens.length },
  };
}

// ---- the run ----

/** Train the demo model from scratch and write `<outDir>/<name>.gguf` and `<outDir>/<name>.loss.json`. */
export async function trainDemoModel(opts: DemoTrainOptions): Promise<DemoTrainResult> {
  let r = opts.recipe ?? DEMO_RECIPES.default;
  validateRecipe(r);
  if (opts.addLayersAfter && !opts.initFrom) throw new InvalidInputError('addLayersAfter grows a trained model: give initFrom too');
  if (opts.initFrom) {
    // A later stage trains the model it is given: its recipe records that model's shape (grown, if asked).
    const shape = modelShapeOf(opts.initFrom);
    // A recipe read back from an earlier stage may carry that stage's addLayersAfter: this stage records only its own.
    const grow = opts.addLayersAfter ? [...opts.addLayersAfter] : undefined;
    r = { ...r, shape: { ...shape, nLayer: shape.nLayer + (grow?.length ?? 0) }, addLayersAfter: grow };
    validateRecipe(r);
  }
  const log = opts.log ?? (() => {});
  const outDir = resolve(opts.outDir);
  const modelPath = join(outDir, `${r.name}.gguf`);
  const lossCurvePath = join(outDir, `${r.name}.loss.json`);
  const checkpointPath = join(outDir, `${r.name}.checkpoint.gguf`);
  const work = mkdtempSync(join(tmpdir(), 'lynx-demo-train-'));
  try {
    log(`tokenizer: training BPE on demo traces`);
    const { tok, spec } = recipeTokenizer(r);
    const initPath = join(work, 'init.gguf');
    const counts = countParams(r.shape, spec.nVocab);
    const trainable = recipeTrainer(r) === 'graph' ? counts.total : counts.trainable;
    log(`model: ${(counts.total / 1e6).toFixed(2)}M parameters (${(trainable / 1e6).toFixed(2)}M trainable, ${recipeTrainer(r)} trainer), vocabulary ${spec.nVocab}`);
    if (opts.initFrom) {
      log(`init: continuing from ${opts.initFrom}`);
      const before = GgufFile.open(opts.initFrom);
      const earlier = before.getString('lynx.demo.recipe');
      const stages = before.getString('lynx.demo.stages');
      before.close();
      const metadata = {
        'lynx.demo.recipe': JSON.stringify(r),
        // Every stage's recipe, oldest first, so the shipped file says how it was made.
        'lynx.demo.stages': JSON.stringify([...(stages ? (JSON.parse(stages) as unknown[]) : earlier ? [JSON.parse(earlier)] : []), r]),
      };
      if (opts.addLayersAfter) {
        log(`init: inserting new identity blocks after layer(s) ${opts.addLayersAfter.join(', ')} (${r.shape.nLayer} layers)`);
        writeDeeperCopy(opts.initFrom, initPath, { addLayersAfter: opts.addLayersAfter, seed: r.initSeed, metadata });
      } else {
        writeF32Copy(opts.initFrom, initPath, metadata);
      }
    } else {
      writeInitialModel(initPath, {
        shape: r.shape,
        tokenizer: spec,
        seed: r.initSeed,
        name: r.name,
        description: r.description,
        frozenKv: recipeTrainer(r) === 'llama-opt',
        metadata: { 'lynx.demo.recipe': JSON.stringify(r) },
      });
    }
    log(`corpus: ${r.data.sequences} windows of ${r.seqLen} tokens`);
    const trainData = recipeRows(tok, r, 'train');
    const validation = r.data.validationSequences > 0 ? recipeRows(tok, r, 'validation').rows : undefined;
    log(`corpus: ${trainData.stats.traces} traces, ${(trainData.stats.fill * 100).toFixed(1)}% of positions filled`);

    const model = openTrainer(r, initPath, opts.threads);
    const curve: LossCurveFile = {
      complete: false,
      recipe: r,
      model: { path: modelPath, nParams: model.nParams, nTrainable: model.nTrainable, nVocab: model.nVocab },
      corpus: trainData.stats,
      threads: 0,
      tokens: 0,
      seconds: 0,
      tokensPerSecond: 0,
      steps: [],
      evals: [],
    };
    let lastCurveWrite = 0;
    const writeCurve = (force: boolean) => {
      const now = Date.now();
      if (!force && now - lastCurveWrite < (opts.curveEverySeconds ?? 30) * 1000) return;
      lastCurveWrite = now;
      writeJsonAtomic(lossCurvePath, curve);
    };
    const planned = r.optim.epochs * r.data.sequences;
    let lastCheckpoint = 0;
    try {
      const report = await model.train(trainData.rows, {
        seqLen: r.seqLen,
        epochs: r.optim.epochs,
        lr: r.optim.lr,
        lrMin: r.optim.lrMin,
        warmupSteps: r.optim.warmupSteps,
        beta1: r.optim.beta1,
        beta2: r.optim.beta2,
        weightDecay: r.optim.weightDecay,
        seed: r.optim.shuffleSeed,
        threads: opts.threads,
        validation,
        evalEvery: opts.evalEvery ?? Math.max(50, Math.round(planned / 20)),
        signal: opts.signal,
        onStep: (s) => {
          curve.steps.push([s.step, round(s.loss), round(s.accuracy), s.lr]);
          curve.tokens = s.tokens;
          curve.seconds = s.elapsedSeconds;
          curve.tokensPerSecond = s.tokensPerSecond;
          opts.onStep?.(s);
        },
        onEval: (e) => {
          curve.evals.push(e);
          log(`step ${e.step}/${planned}: validation loss ${e.loss.toFixed(4)}, next-token accuracy ${(e.accuracy * 100).toFixed(1)}%`);
          opts.onEval?.(e);
        },
        betweenChunks: (step) => {
          writeCurve(false);
          if (opts.checkpointEvery && step - lastCheckpoint >= opts.checkpointEvery) {
            lastCheckpoint = step;
            model.save(checkpointPath, { type: r.saveType, metadata: { 'lynx.demo.checkpoint_step': step } });
          }
        },
      });
      curve.threads = report.threads;
      curve.tokens = report.tokens;
      curve.seconds = report.seconds;
      curve.tokensPerSecond = report.tokensPerSecond;
      curve.complete = !report.stopped;
      // Save to a temporary name first, so an existing model is replaced only by a complete file.
      const tmp = join(outDir, `.${r.name}.${process.pid}.gguf`);
      model.save(tmp, { type: r.saveType, metadata: { 'lynx.demo.steps': report.steps.length } });
      renameSync(tmp, modelPath);
      writeCurve(true);
      if (existsSync(checkpointPath)) unlinkSync(checkpointPath);
      log(`saved ${modelPath} (${report.steps.length} steps, ${Math.round(report.tokensPerSecond)} tokens/s)`);
      return { modelPath, lossCurvePath, report, corpus: trainData.stats };
    } finally {
      model.dispose();
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** The two training paths behind one face: train, save (metadata of the initial file kept), dispose. */
interface RecipeTrainer {
  nParams: number;
  nTrainable: number;
  nVocab: number;
  train(rows: TokenRows, o: TrainOptions): Promise<TrainingReport>;
  save(path: string, o: { type: TensorType; metadata: Record<string, string | number | boolean> }): void;
  dispose(): void;
}

function openTrainer(r: DemoRecipe, initPath: string, threads: number | undefined): RecipeTrainer {
  if (recipeTrainer(r) === 'graph') {
    const t = new GraphTrainer(initPath, r.seqLen, { threads: threads ?? availableParallelism() });
    return {
      nParams: t.shape.nParams,
      nTrainable: t.shape.nParams,
      nVocab: t.shape.nVocab,
      train: (rows, o) => trainGraph(t, rows, o),
      save: (path, o) => t.save(path, o),
      dispose: () => t.dispose(),
    };
  }
  const m = TrainableModel.load(initPath);
  return {
    nParams: m.shape.nParams,
    nTrainable: m.shape.nTrainable,
    nVocab: m.shape.nVocab,
    train: (rows, o) => train(m, rows, o),
    save: (path, o) => m.save(path, { metadataFrom: initPath, ...o }),
    dispose: () => m.dispose(),
  };
}

function round(x: number): number {
  return Math.round(x * 1e5) / 1e5;
}

// ---- speed measurement (docs/demo-training.md) ----

export interface SpeedSample {
  shape: ModelShape;
  nVocab: number;
  nParams: number;
  seqLen: number;
  threads: number;
  steps: number;
  tokensPerSecond: number;
}

/**
 * Measure training speed for a shape: a fresh random model, `steps` optimizer steps on random tokens (speed does not
 * depend on the data), the first step (graph set-up) excluded.
 */
export async function measureTrainingSpeed(
  shape: ModelShape,
  opts: { nVocab?: number; seqLen?: number; threads?: number; steps?: number; trainer?: 'graph' | 'llama-opt' } = {},
): Promise<SpeedSample> {
  const nVocab = opts.nVocab ?? 640;
  const seqLen = opts.seqLen ?? 512;
  const steps = opts.steps ?? 12;
  const work = mkdtempSync(join(tmpdir(), 'lynx-demo-speed-'));
  try {
    const path = join(work, 'speed.gguf');
    const tokenizer: TokenizerSpec = {
      nVocab,
      writeTo: (w) => {
        const tokens = Array.from({ length: nVocab }, (_, i) => `<t${i}>`);
        w.set('tokenizer.ggml.model', 'gpt2');
        w.set('tokenizer.ggml.pre', 'qwen2');
        w.set('tokenizer.ggml.tokens', tokens, 'string[]');
        w.set('tokenizer.ggml.token_type', tokens.map(() => 1), 'i32[]');
        w.set('tokenizer.ggml.merges', [], 'string[]');
        w.set('tokenizer.ggml.eos_token_id', 0, 'u32');
      },
    };
    writeInitialModel(path, { shape: { ...shape, contextLength: Math.max(shape.contextLength, seqLen) }, tokenizer, seed: 1 });
    const trainer = opts.trainer ?? 'graph';
    const model = openTrainer({ ...DEMO_RECIPES.default, seqLen, trainer }, path, opts.threads);
    try {
      const n = steps + 1;
      const tokens = new Int32Array(n * seqLen).map((_, i) => (i * 7919) % nVocab);
      const labels = tokens.map((t) => (t + 1) % nVocab);
      // The graph path times each chunk as a whole: one step per chunk so the first (set-up) step can be left out.
      const chunkSize = trainer === 'graph' ? 1 : n;
      const report = await model.train({ tokens, labels }, { seqLen, lr: 1e-3, threads: opts.threads, shuffle: false, chunkSize });
      const first = report.steps[0]!.elapsedSeconds;
      const last = report.steps.at(-1)!.elapsedSeconds;
      return {
        shape,
        nVocab,
        nParams: model.nParams,
        seqLen,
        threads: report.threads,
        steps,
        tokensPerSecond: (steps * seqLen) / Math.max(1e-9, last - first),
      };
    } finally {
      model.dispose();
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
