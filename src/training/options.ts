/** The options, per-step records and report every trainer shares, and the checks of the options. */
import { availableParallelism } from 'node:os';
import { InvalidInputError } from '../util/errors.js';
import type { TrainingData } from './data.js';

export interface TrainOptions {
  /** Tokens per training row (llama.cpp's path: the context size, a multiple of 256). */
  seqLen: number;
  /** Passes over the training sequences. Default 1. */
  epochs?: number;
  /** Peak learning rate (after warm-up). */
  lr: number;
  /** Learning rate at the end of the cosine decay. Must be > 0 (ggml asserts it). Default lr/30. */
  lrMin?: number;
  /** Linear warm-up steps from lr/warmupSteps to lr. Default 0. */
  warmupSteps?: number;
  optimizer?: 'adamw' | 'sgd';
  beta1?: number;
  beta2?: number;
  eps?: number;
  /** Decoupled weight decay, applied by ggml to every trainable tensor (norms included). Default 0. */
  weightDecay?: number;
  /** CPU threads. Default: all available cores. */
  threads?: number;
  /** Seed of the per-epoch shuffle of the training sequences. */
  seed?: number;
  /** Shuffle the training sequences each epoch. Default true. */
  shuffle?: boolean;
  /** Held-out data (same rules) evaluated before training, every `evalEvery` steps (0: never), and at the end. */
  validation?: TrainingData;
  evalEvery?: number;
  /** Sequences per native call; between calls the event loop runs and `signal` is checked. Default 8. */
  chunkSize?: number;
  /** Called after every optimizer step. Exceptions stop training at the next chunk boundary and are rethrown. */
  onStep?: (step: TrainingStep) => void;
  onEval?: (evaluation: EvalRecord) => void;
  /**
   * Called between chunks, outside native code (the weights are consistent: for example to save a checkpoint with
   * `save`). Awaited; an exception stops training and is rethrown.
   */
  betweenChunks?: (step: number) => void | Promise<void>;
  /** Stops training at the next chunk boundary; the report says `stopped: true`. */
  signal?: AbortSignal;
}

export interface TrainingStep {
  /** 1-based optimizer step. */
  step: number;
  epoch: number;
  /** Mean next-token cross-entropy (nats) of this step's sequence, measured before the update. */
  loss: number;
  /** Next-token argmax accuracy of this step's sequence. */
  accuracy: number;
  lr: number;
  tokens: number;
  elapsedSeconds: number;
  /** Training tokens per second so far (validation time excluded). */
  tokensPerSecond: number;
}

export interface EvalRecord {
  /** Optimizer steps done when evaluated (0 = before training). */
  step: number;
  loss: number;
  accuracy: number;
  rows: number;
}

export interface TrainingReport {
  steps: TrainingStep[];
  evals: EvalRecord[];
  plannedSteps: number;
  tokens: number;
  /** Training time (validation excluded). */
  seconds: number;
  tokensPerSecond: number;
  stopped: boolean;
  threads: number;
  /** Names of the tensors that were trained, and of those left frozen. */
  trained: string[];
  frozen: string[];
  nTrainable: number;
  /**
   * llama.cpp's path: optimizer steps whose gradient accumulators were zeroed before they ran (defect 1 in
   * llama-opt.ts): every step but the first, which starts from freshly zeroed accumulators (all steps when a
   * validation pass came first). 0 on the graph path, which recomputes gradients each step.
   */
  gradientsZeroed: number;
}

/** The options with every default filled in. */
export type CheckedTrainOptions = Required<
  Pick<TrainOptions, 'epochs' | 'lrMin' | 'warmupSteps' | 'optimizer' | 'beta1' | 'beta2' | 'eps' | 'weightDecay' | 'threads' | 'seed' | 'shuffle' | 'evalEvery' | 'chunkSize'>
>;

/**
 * Defaults filled in and every option checked. `seqLenRule` 'llama-context': llama.cpp's training path, whose
 * sequences are its context (a multiple of 256); 'any': a graph built here (any length from 2).
 */
export function checkOptions(o: TrainOptions, seqLenRule: 'llama-context' | 'any'): CheckedTrainOptions {
  const r = {
    epochs: o.epochs ?? 1,
    lrMin: o.lrMin ?? o.lr / 30,
    warmupSteps: o.warmupSteps ?? 0,
    optimizer: o.optimizer ?? 'adamw',
    beta1: o.beta1 ?? 0.9,
    beta2: o.beta2 ?? 0.999,
    eps: o.eps ?? 1e-8,
    weightDecay: o.weightDecay ?? 0,
    threads: o.threads ?? availableParallelism(),
    seed: o.seed ?? 0,
    shuffle: o.shuffle ?? true,
    evalEvery: o.evalEvery ?? 0,
    chunkSize: o.chunkSize ?? 8,
  };
  const problems: string[] = [];
  const int = (name: string, v: number, min: number, max = Number.MAX_SAFE_INTEGER) => {
    if (!Number.isInteger(v) || v < min || v > max) problems.push(`${name} must be an integer in [${min}, ${max}] (got ${v})`);
  };
  int('seqLen', o.seqLen, seqLenRule === 'any' ? 2 : 256, 1 << 20);
  if (seqLenRule === 'llama-context' && Number.isInteger(o.seqLen) && o.seqLen % 256 !== 0) {
    problems.push(`seqLen must be a multiple of 256 (llama.cpp rounds the context up to one, and the dataset's sequence length must equal it); got ${o.seqLen}`);
  }
  int('epochs', r.epochs, 1, 1_000_000);
  int('warmupSteps', r.warmupSteps, 0);
  int('threads', r.threads, 1, 1024);
  int('seed', r.seed, -(2 ** 31), 2 ** 32 - 1);
  int('evalEvery', r.evalEvery, 0);
  int('chunkSize', r.chunkSize, 1, 4096);
  const finite = (name: string, v: number, lo: number, hi: number, loOpen: boolean, hiOpen = false) => {
    if (typeof v !== 'number' || !Number.isFinite(v) || (loOpen ? v <= lo : v < lo) || (hiOpen ? v >= hi : v > hi)) {
      problems.push(`${name} must be in ${loOpen ? '(' : '['}${lo}, ${hi}${hiOpen ? ')' : ']'} (got ${v})`);
    }
  };
  finite('lr', o.lr, 0, 10, true);
  finite('lrMin', r.lrMin, 0, 10, true);
  if (r.lrMin > o.lr) problems.push(`lrMin (${r.lrMin}) must not exceed lr (${o.lr})`);
  finite('beta1', r.beta1, 0, 1, false, true);
  finite('beta2', r.beta2, 0, 1, false, true);
  finite('eps', r.eps, 0, 1, false);
  finite('weightDecay', r.weightDecay, 0, 1, false);
  if (r.optimizer !== 'adamw' && r.optimizer !== 'sgd') problems.push(`optimizer must be 'adamw' or 'sgd' (got ${String(r.optimizer)})`);
  if (problems.length > 0) throw new InvalidInputError(`invalid training options: ${problems.join('; ')}`);
  return r;
}
