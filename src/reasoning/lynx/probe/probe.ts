/**
 * LYNX's probe: standardisation, then an MLP with ReLU hidden layers (256, 64) and a sigmoid output, trained with
 * Adam on class-balanced sample weights, with early stopping on a validation split.
 *
 * LYNX trains `Pipeline([StandardScaler(), MLPClassifier(hidden_layer_sizes=(256, 64), activation='relu',
 * solver='adam', random_state=seed, max_iter=500, early_stopping=True, n_iter_no_change=10,
 * validation_fraction=max(0.1, val_split))])` with `sample_weight = n / (2 n_class)`, after holding out a stratified
 * `val_split` = 0.2 of the events for its reported metrics (`train_probe.py`). This file reproduces scikit-learn's
 * algorithm (≥ 1.7, which honours sample weights): Glorot-uniform initialisation with factor 6 for every layer,
 * mini-batches of min(200, n), L2 penalty alpha = 1e-4 scaled by the batch weight sum, Adam (lr 1e-3, β 0.9/0.999,
 * ε 1e-8, bias-corrected step size), a stratified validation split, and the weighted validation accuracy with
 * tol 1e-4 and patience 10 deciding when to stop, restoring the best weights. Random streams differ from NumPy's, so
 * results match LYNX's in distribution, not bit for bit.
 */
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import { InvalidInputError } from '../../../util/errors.js';
import { readJson, writeJsonAtomic } from '../../../util/fs.js';
import { Rng } from '../../../util/rng.js';
import { parseFileJson } from '../../../util/validate.js';
import { availableParallelism } from 'node:os';
import { denseAdamStep, denseBackward, denseForward } from './kernels.js';
import { ParallelLayer, resolveKernels, type KernelBackend, type KernelChoice } from './parallel.js';
import { binaryMetrics, type BinaryMetrics } from '../../calibration/stats.js';
import { TensorFile, writeSafetensors, type F32Tensor } from '../tensor-io.js';
import { z } from 'zod';

/** A row-major float32 matrix: `rows` × `cols`. */
export interface FeatureMatrix {
  data: Float32Array;
  rows: number;
  cols: number;
}

export interface ProbeConfig {
  /** Hidden layer sizes. LYNX: [256, 64]. */
  hidden: number[];
  /** L2 penalty (scikit-learn's `alpha`). */
  alpha: number;
  learningRate: number;
  beta1: number;
  beta2: number;
  epsilon: number;
  /** Mini-batch size; 'auto' = min(200, n). */
  batchSize: number | 'auto';
  /** Maximum epochs (LYNX's `--mlp-max-iter`). */
  maxEpochs: number;
  earlyStopping: boolean;
  /** Fraction of the training events held out for early stopping (LYNX: max(0.1, val_split) = 0.2). */
  validationFraction: number;
  /** Stop after this many epochs more without improvement (scikit-learn stops when the count exceeds it). */
  nIterNoChange: number;
  tol: number;
  /** Weight classes by n / (2 n_class). */
  classBalanced: boolean;
  seed: number;
}

export const DEFAULT_PROBE_CONFIG: Readonly<ProbeConfig> = Object.freeze({
  hidden: [256, 64],
  alpha: 1e-4,
  learningRate: 1e-3,
  beta1: 0.9,
  beta2: 0.999,
  epsilon: 1e-8,
  batchSize: 'auto' as const,
  maxEpochs: 500,
  earlyStopping: true,
  validationFraction: 0.2,
  nIterNoChange: 10,
  tol: 1e-4,
  classBalanced: true,
  seed: 42,
});

/** float32 machine epsilon: scikit-learn clips probabilities to [eps, 1 - eps] in the log loss. */
const F32_EPS = 1.1920928955078125e-7;

export interface ProbeLayer {
  inDim: number;
  outDim: number;
  /** [outDim][inDim] row-major (the transpose of scikit-learn's `coefs_[i]`). */
  weight: Float32Array;
  bias: Float32Array;
}

/** A trained probe: p(forced exit correct | hidden-state features). */
export class Probe {
  constructor(
    readonly nFeatures: number,
    /** Standardisation: x' = (x - mean) / scale. */
    readonly mean: Float32Array,
    readonly scale: Float32Array,
    readonly layers: ProbeLayer[],
  ) {
    if (mean.length !== nFeatures || scale.length !== nFeatures) throw new InvalidInputError('probe scaler size does not match nFeatures: the probe file is damaged');
    if (layers.length === 0 || layers[0]!.inDim !== nFeatures || layers[layers.length - 1]!.outDim !== 1) {
      throw new InvalidInputError('probe layers do not chain from nFeatures to 1 output: the probe file is damaged');
    }
  }

  get hidden(): number[] {
    return this.layers.slice(0, -1).map((l) => l.outDim);
  }

  /** Probabilities (float32) of label 1 for `rows` feature rows. */
  predict(X: Float32Array, rows = Math.floor(X.length / this.nFeatures)): Float32Array {
    if (X.length < rows * this.nFeatures) {
      throw new InvalidInputError(`probe expects ${this.nFeatures} features per row; got ${X.length} values for ${rows} rows`);
    }
    const out = new Float32Array(rows);
    const ws = new Workspace(this.layers, Math.min(64, Math.max(1, rows)));
    for (let r0 = 0; r0 < rows; r0 += ws.capacity) {
      const n = Math.min(ws.capacity, rows - r0);
      standardizeRows(X, r0, n, this.nFeatures, this.mean, this.scale, ws.input);
      forward(this.layers, ws, n);
      out.set(ws.prob.subarray(0, n), r0);
    }
    return out;
  }

  /** Probability of label 1 for one feature vector (the same arithmetic as `predict`). */
  predictOne(x: Float32Array): number {
    return this.predict(x, 1)[0]!;
  }
}

/** Scratch buffers for a forward pass of up to `capacity` rows. */
class Workspace {
  readonly input: Float32Array;
  readonly acts: Float32Array[];
  readonly prob: Float32Array;
  readonly acc: Float64Array;
  constructor(
    layers: ProbeLayer[],
    readonly capacity: number,
  ) {
    this.input = new Float32Array(capacity * layers[0]!.inDim);
    this.acts = layers.map((l) => new Float32Array(capacity * l.outDim));
    this.prob = new Float32Array(capacity);
    this.acc = new Float64Array(capacity * Math.max(...layers.map((l) => l.outDim)));
  }
}

function standardizeRows(
  X: Float32Array,
  r0: number,
  n: number,
  d: number,
  mean: Float32Array,
  scale: Float32Array,
  out: Float32Array,
): void {
  for (let i = 0; i < n; i++) {
    const src = (r0 + i) * d;
    const dst = i * d;
    for (let k = 0; k < d; k++) out[dst + k] = (X[src + k]! - mean[k]!) / scale[k]!;
  }
}

function forward(layers: ProbeLayer[], ws: Workspace, n: number): void {
  let input = ws.input;
  for (let l = 0; l < layers.length; l++) {
    const L = layers[l]!;
    const last = l === layers.length - 1;
    denseForward(input, n, L.inDim, L.weight, L.bias, L.outDim, 0, L.outDim, ws.acts[l]!, last ? 0 : 1, ws.acc);
    input = ws.acts[l]!;
  }
  const z = ws.acts[layers.length - 1]!;
  for (let i = 0; i < n; i++) ws.prob[i] = sigmoid(z[i]!);
}

function sigmoid(z: number): number {
  return z >= 0 ? 1 / (1 + Math.exp(-z)) : Math.exp(z) / (1 + Math.exp(z));
}

// ---------------------------------------------------------------------------------------------------------------
// Splits and standardisation

/**
 * Stratified split (scikit-learn's `train_test_split(..., stratify=y)` allocation): ceil(fraction · n) test rows,
 * per class floor(n_c · n_test / n) plus the remainder to the classes with the largest fractional parts.
 */
export function stratifiedSplit(
  y: ArrayLike<number>,
  testFraction: number,
  rng: Rng,
  indices?: ArrayLike<number>,
): { train: Int32Array; test: Int32Array } {
  const ids = indices ? Array.from(indices) : Array.from({ length: y.length }, (_, i) => i);
  const n = ids.length;
  const nTest = Math.ceil(testFraction * n);
  if (nTest <= 0 || nTest >= n) throw new InvalidInputError(`cannot split ${n} events with test fraction ${testFraction}`);
  const byClass: number[][] = [[], []];
  for (const i of ids) byClass[y[i] ? 1 : 0]!.push(i);
  const want = byClass.map((c) => (c.length * nTest) / n);
  const take = want.map(Math.floor);
  let rest = nTest - take[0]! - take[1]!;
  const order = [0, 1].sort((a, b) => want[b]! - take[b]! - (want[a]! - take[a]!));
  for (const c of order) {
    if (rest > 0 && take[c]! < byClass[c]!.length) {
      take[c]!++;
      rest--;
    }
  }
  const train: number[] = [];
  const test: number[] = [];
  byClass.forEach((members, c) => {
    const shuffled = rng.shuffle(members.slice());
    test.push(...shuffled.slice(0, take[c]!));
    train.push(...shuffled.slice(take[c]!));
  });
  return { train: Int32Array.from(train.sort((a, b) => a - b)), test: Int32Array.from(test.sort((a, b) => a - b)) };
}

/** Column mean and population standard deviation (StandardScaler; zero std becomes 1). */
function fitScaler(X: FeatureMatrix, rows: Int32Array): { mean: Float32Array; scale: Float32Array } {
  const d = X.cols;
  const sum = new Float64Array(d);
  for (const r of rows) {
    const o = r * d;
    for (let k = 0; k < d; k++) sum[k] += X.data[o + k]!;
  }
  const mean64 = new Float64Array(d);
  for (let k = 0; k < d; k++) mean64[k] = sum[k]! / rows.length;
  const ss = new Float64Array(d);
  for (const r of rows) {
    const o = r * d;
    for (let k = 0; k < d; k++) {
      const t = X.data[o + k]! - mean64[k]!;
      ss[k] += t * t;
    }
  }
  const mean = new Float32Array(d);
  const scale = new Float32Array(d);
  for (let k = 0; k < d; k++) {
    mean[k] = mean64[k]!;
    const s = Math.sqrt(ss[k]! / rows.length);
    scale[k] = s < 10 * 2.220446049250313e-16 ? 1 : s;
  }
  return { mean, scale };
}

// ---------------------------------------------------------------------------------------------------------------
// Training

export interface TrainHistory {
  epochs: number;
  /** Training loss per epoch (weighted log loss + L2 term, as scikit-learn's `loss_curve_`). */
  loss: number[];
  /** Weighted validation accuracy per epoch (early stopping only). */
  validationScores: number[];
  bestEpoch: number;
  bestValidationScore: number;
  stoppedEarly: boolean;
  seconds: number;
  nTrain: number;
  nValidation: number;
  wPos: number;
  wNeg: number;
  /** The first-layer kernels and threads used. */
  kernels: KernelBackend;
  threads: number;
}

export interface TrainOptions {
  /** Rows of X (and y) to train on; default all. */
  indices?: ArrayLike<number>;
  /** Threads for the first layer (results do not depend on it). Default: min(2, available cores). */
  threads?: number;
  /**
   * First-layer training kernels: 'wasm' (SIMD, float32, 5-6x faster), 'js' (scalar, double accumulation), or 'auto'
   * (default: wasm when the runtime has WebAssembly SIMD and both sizes are multiples of 4). Results are reproducible
   * for a seed and backend; the two backends differ in rounding.
   */
  kernels?: KernelChoice;
  onEpoch?: (epoch: number, loss: number, validationScore: number | undefined) => void;
}

/** Train a probe on rows of `X` with labels `y` (1 = the forced exit was correct). */
export function fitProbe(
  X: FeatureMatrix,
  y: ArrayLike<number>,
  config: Partial<ProbeConfig> = {},
  opts: TrainOptions = {},
): { probe: Probe; history: TrainHistory } {
  const cfg: ProbeConfig = { ...DEFAULT_PROBE_CONFIG, ...config, hidden: (config.hidden ?? DEFAULT_PROBE_CONFIG.hidden).slice() };
  checkConfig(cfg);
  if (y.length !== X.rows) throw new InvalidInputError(`features have ${X.rows} rows but there are ${y.length} labels`);
  if (X.data.length < X.rows * X.cols) throw new InvalidInputError('feature matrix data is shorter than rows × cols');
  const t0 = performance.now();
  const d = X.cols;
  const all = opts.indices ? Int32Array.from(opts.indices) : Int32Array.from({ length: X.rows }, (_, i) => i);
  const n = all.length;
  let nPos = 0;
  for (const i of all) nPos += y[i] ? 1 : 0;
  if (nPos === 0 || nPos === n) {
    throw new InvalidInputError(`the probe needs both labels: got ${nPos} correct and ${n - nPos} wrong forced exits`);
  }
  // LYNX: w = n / (2 n_class) over the probe's training events.
  const wPos = cfg.classBalanced ? n / (2 * Math.max(1, nPos)) : 1;
  const wNeg = cfg.classBalanced ? n / (2 * Math.max(1, n - nPos)) : 1;

  const { mean, scale } = fitScaler(X, all);
  const rngInit = Rng.derive(cfg.seed, 'init');
  const rngSplit = Rng.derive(cfg.seed, 'early-stopping-split');
  const rngShuffle = Rng.derive(cfg.seed, 'shuffle');

  // Standardised copy of the rows used: training rows first, then validation rows.
  let trainIdx: Int32Array = all;
  let valIdx: Int32Array = new Int32Array(0);
  if (cfg.earlyStopping) {
    const s = stratifiedSplit(y, cfg.validationFraction, rngSplit, all);
    trainIdx = s.train;
    valIdx = s.test;
  }
  const nTrain = trainIdx.length;
  const nVal = valIdx.length;
  const Xs = new Float32Array((nTrain + nVal) * d);
  const ys = new Uint8Array(nTrain + nVal);
  const ws = new Float32Array(nTrain + nVal);
  [...trainIdx, ...valIdx].forEach((r, i) => {
    standardizeRows(X.data, r, 1, d, mean, scale, Xs.subarray(i * d, (i + 1) * d));
    ys[i] = y[r] ? 1 : 0;
    ws[i] = ys[i] ? wPos : wNeg;
  });

  const layers = initLayers([d, ...cfg.hidden, 1], rngInit);
  const batch = Math.min(nTrain, cfg.batchSize === 'auto' ? 200 : Math.max(1, cfg.batchSize));
  const backend = resolveKernels(opts.kernels ?? 'auto', d, cfg.hidden[0] ?? 1);
  const trainer = new Trainer(layers, cfg, batch, opts.threads ?? Math.min(2, availableParallelism()), backend);
  try {
    return trainLoop();
  } finally {
    trainer.dispose();
  }

  function trainLoop(): { probe: Probe; history: TrainHistory } {
    const best = layers.map((l) => ({ weight: l.weight.slice(), bias: l.bias.slice() }));
    const history: TrainHistory = {
      epochs: 0,
      loss: [],
      validationScores: [],
      bestEpoch: -1,
      bestValidationScore: -Infinity,
      stoppedEarly: false,
      seconds: 0,
      nTrain,
      nValidation: nVal,
      wPos,
      wNeg,
      kernels: backend,
      threads: trainer.threads,
    };
    let bestLoss = Infinity;
    let noImprovement = 0;
    const order = Int32Array.from({ length: nTrain }, (_, i) => i);
    const valProb = new Float32Array(nVal);

    for (let epoch = 0; epoch < cfg.maxEpochs; epoch++) {
      shuffleInPlace(order, rngShuffle);
      let accLoss = 0;
      for (let b0 = 0; b0 < nTrain; b0 += trainer.batch) {
        const bn = Math.min(trainer.batch, nTrain - b0);
        accLoss += trainer.step(Xs, ys, ws, order, b0, bn) * bn;
      }
      const loss = accLoss / nTrain;
      history.loss.push(loss);
      history.epochs = epoch + 1;
      let score: number | undefined;
      if (cfg.earlyStopping) {
        trainer.predictInto(Xs, nTrain, nVal, valProb);
        let num = 0;
        let den = 0;
        for (let i = 0; i < nVal; i++) {
          const w = ws[nTrain + i]!;
          den += w;
          if ((valProb[i]! > 0.5 ? 1 : 0) === ys[nTrain + i]) num += w;
        }
        score = num / den;
        history.validationScores.push(score);
        if (score < history.bestValidationScore + cfg.tol) noImprovement++;
        else noImprovement = 0;
        if (score > history.bestValidationScore) {
          history.bestValidationScore = score;
          history.bestEpoch = epoch;
          layers.forEach((l, i) => {
            best[i]!.weight.set(l.weight);
            best[i]!.bias.set(l.bias);
          });
        }
      } else {
        if (loss > bestLoss - cfg.tol) noImprovement++;
        else noImprovement = 0;
        if (loss < bestLoss) {
          bestLoss = loss;
          history.bestEpoch = epoch;
        }
      }
      opts.onEpoch?.(epoch, loss, score);
      if (noImprovement > cfg.nIterNoChange) {
        history.stoppedEarly = true;
        break;
      }
    }
    if (cfg.earlyStopping) {
      layers.forEach((l, i) => {
        l.weight.set(best[i]!.weight);
        l.bias.set(best[i]!.bias);
      });
    }
    history.seconds = (performance.now() - t0) / 1000;
    const own = layers.map((l) => ({ ...l, weight: l.weight.slice(), bias: l.bias.slice() }));
    return { probe: new Probe(d, mean, scale, own), history };
  }
}

function checkConfig(cfg: ProbeConfig): void {
  if (cfg.hidden.some((h) => !(Number.isInteger(h) && h > 0))) throw new InvalidInputError(`hidden sizes must be positive integers: ${cfg.hidden}`);
  if (!(cfg.validationFraction > 0 && cfg.validationFraction < 1)) throw new InvalidInputError('validationFraction must be in (0, 1)');
  if (!(cfg.maxEpochs >= 1)) throw new InvalidInputError('maxEpochs must be at least 1');
}

/** Glorot-uniform weights and biases, bound sqrt(6 / (fan_in + fan_out)) (scikit-learn, ReLU); training draws them
 * from `Rng.derive(seed, 'init')`, layer by layer, weights then biases. */
export function initLayers(units: number[], rng: Rng): ProbeLayer[] {
  const layers: ProbeLayer[] = [];
  for (let l = 0; l + 1 < units.length; l++) {
    const inDim = units[l]!;
    const outDim = units[l + 1]!;
    const bound = Math.sqrt(6 / (inDim + outDim));
    const weight = new Float32Array(inDim * outDim);
    for (let i = 0; i < weight.length; i++) weight[i] = (2 * rng.next() - 1) * bound;
    const bias = new Float32Array(outDim);
    for (let i = 0; i < outDim; i++) bias[i] = (2 * rng.next() - 1) * bound;
    layers.push({ inDim, outDim, weight, bias });
  }
  return layers;
}

function shuffleInPlace(a: Int32Array, rng: Rng): void {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(rng.next() * (i + 1));
    const t = a[i]!;
    a[i] = a[j]!;
    a[j] = t;
  }
}

/**
 * Buffers and one Adam step of mini-batch training. The first layer (features × 256, nearly all the work) lives in
 * shared memory and runs on `threads` threads; the small layers run here.
 */
class Trainer {
  private readonly par: ParallelLayer;
  private readonly xb: Float32Array;
  private readonly acts: Float32Array[];
  private readonly deltas: Float32Array[];
  private readonly m: { w: Float32Array; b: Float32Array }[];
  private readonly v: { w: Float32Array; b: Float32Array }[];
  private readonly fwd: Float64Array;
  private readonly acc: Float64Array;
  private readonly idx: Int32Array;
  private readonly coef: Float64Array;
  private readonly cnt: Int32Array;
  private t = 0;

  constructor(
    private readonly layers: ProbeLayer[],
    private readonly cfg: ProbeConfig,
    readonly batch: number,
    threads: number,
    backend: KernelBackend,
  ) {
    const first = layers[0]!;
    this.par = new ParallelLayer(first.inDim, first.outDim, batch, threads, backend);
    const shared = this.par.layer;
    shared.weight.set(first.weight);
    shared.bias.set(first.bias);
    // From here on the first layer's parameters are the shared arrays.
    first.weight = shared.weight;
    first.bias = shared.bias;
    this.xb = shared.x;
    this.acts = layers.map((l, i) => (i === 0 ? shared.out : new Float32Array(batch * l.outDim)));
    this.deltas = layers.map((l, i) => (i === 0 ? shared.delta : new Float32Array(batch * l.outDim)));
    this.m = layers.map((l, i) => (i === 0 ? { w: shared.mW, b: shared.mb } : { w: new Float32Array(l.weight.length), b: new Float32Array(l.outDim) }));
    this.v = layers.map((l, i) => (i === 0 ? { w: shared.vW, b: shared.vb } : { w: new Float32Array(l.weight.length), b: new Float32Array(l.outDim) }));
    const small = layers.slice(1);
    this.fwd = new Float64Array(batch * Math.max(1, ...small.map((l) => l.outDim)));
    this.acc = new Float64Array(Math.max(256, ...small.map((l) => l.inDim)));
    this.idx = new Int32Array(batch * Math.max(1, ...small.map((l) => l.outDim)));
    this.coef = new Float64Array(batch * Math.max(1, ...small.map((l) => l.outDim)));
    this.cnt = new Int32Array(Math.max(1, ...small.map((l) => l.outDim)));
  }

  get threads(): number {
    return this.par.threads;
  }

  dispose(): void {
    this.par.dispose();
  }

  /** Forward pass of the `bn` rows already in `xb`; leaves activations in `acts`. */
  private forwardBatch(bn: number): void {
    const { layers } = this;
    this.par.forward(bn, layers.length > 1 ? 1 : 0);
    for (let l = 1; l < layers.length; l++) {
      const L = layers[l]!;
      denseForward(this.acts[l - 1]!, bn, L.inDim, L.weight, L.bias, L.outDim, 0, L.outDim, this.acts[l]!, l === layers.length - 1 ? 0 : 1, this.fwd);
    }
  }

  /** One mini-batch (rows order[b0 .. b0+bn) of Xs); returns the batch loss. */
  step(Xs: Float32Array, ys: Uint8Array, ws: Float32Array, order: Int32Array, b0: number, bn: number): number {
    const { layers, cfg } = this;
    const d = layers[0]!.inDim;
    for (let i = 0; i < bn; i++) {
      const r = order[b0 + i]!;
      this.xb.set(Xs.subarray(r * d, (r + 1) * d), i * d);
    }
    this.forwardBatch(bn);
    const last = layers.length - 1;
    const z = this.acts[last]!;
    const dOut = this.deltas[last]!;
    let sw = 0;
    let lossSum = 0;
    for (let i = 0; i < bn; i++) {
      const r = order[b0 + i]!;
      const p = Math.fround(sigmoid(z[i]!));
      const yi = ys[r]!;
      const wi = ws[r]!;
      sw += wi;
      const pc = Math.min(1 - F32_EPS, Math.max(F32_EPS, p));
      lossSum -= wi * (yi ? Math.log(pc) : Math.log(1 - pc));
      dOut[i] = (p - yi) * wi;
    }
    let sq = 0;
    for (const L of layers) for (let k = 0; k < L.weight.length; k++) sq += L.weight[k]! * L.weight[k]!;
    const loss = lossSum / sw + (0.5 * cfg.alpha * sq) / sw;

    // Backward and Adam: each layer's delta below is computed before that layer's weights change.
    this.t++;
    const lrT = (cfg.learningRate * Math.sqrt(1 - cfg.beta2 ** this.t)) / (1 - cfg.beta1 ** this.t);
    const invSw = 1 / sw;
    for (let l = last; l >= 1; l--) {
      const L = layers[l]!;
      const below = this.acts[l - 1]!;
      denseBackward(this.deltas[l]!, bn, L.outDim, L.weight, L.inDim, below, this.deltas[l - 1]!, this.acc);
      denseAdamStep(
        below, bn, L.inDim, this.deltas[l]!, L.outDim, 0, L.outDim,
        L.weight, this.m[l]!.w, this.v[l]!.w, L.bias, this.m[l]!.b, this.v[l]!.b,
        cfg.alpha, invSw, lrT, cfg.beta1, cfg.beta2, cfg.epsilon, this.acc, this.idx, this.coef, this.cnt,
      );
    }
    this.par.step(bn, cfg.alpha, invSw, lrT, cfg.beta1, cfg.beta2, cfg.epsilon);
    return loss;
  }

  /** Probabilities for rows [r0, r0 + n) of the standardised matrix. */
  predictInto(Xs: Float32Array, r0: number, n: number, out: Float32Array): void {
    const d = this.layers[0]!.inDim;
    const z = this.acts[this.layers.length - 1]!;
    for (let s = 0; s < n; s += this.batch) {
      const bn = Math.min(this.batch, n - s);
      this.xb.set(Xs.subarray((r0 + s) * d, (r0 + s + bn) * d));
      this.forwardBatch(bn);
      for (let i = 0; i < bn; i++) out[s + i] = sigmoid(z[i]!);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// LYNX's train_probe.py: hold out a stratified validation split, train, report metrics

/** The fields of LYNX's `probe_metrics.json`, plus calibration metrics and training details. */
export interface ProbeMetrics {
  val_split: number;
  hidden: number[];
  max_iter: number;
  val_acc: number;
  val_auc: number;
  /** [[tn, fp], [fn, tp]] at p ≥ 0.5. */
  cm: [[number, number], [number, number]];
  train_seconds: number;
  n_train: number;
  n_val: number;
  train_pos: number;
  train_neg: number;
  w_pos: number;
  w_neg: number;
  // beyond LYNX
  val_ece: number;
  val_brier: number;
  val_log_loss: number;
  epochs: number;
  best_epoch: number;
  seed: number;
  n_features: number;
  /** First-layer training backend ('wasm' or 'js'): training is reproducible for a seed and backend. */
  kernels: KernelBackend;
}

/**
 * LYNX's probe training: stratified `valSplit` hold-out (seeded), probe trained on the rest (with its own
 * early-stopping split inside), metrics on the hold-out.
 */
export function trainProbe(
  X: FeatureMatrix,
  y: ArrayLike<number>,
  opts: { valSplit?: number; config?: Partial<ProbeConfig> } & Pick<TrainOptions, 'onEpoch' | 'threads' | 'kernels'> = {},
): { probe: Probe; metrics: ProbeMetrics; history: TrainHistory; validation: BinaryMetrics } {
  const valSplit = opts.valSplit ?? 0.2;
  const seed = opts.config?.seed ?? DEFAULT_PROBE_CONFIG.seed;
  const validationFraction = opts.config?.validationFraction ?? Math.max(0.1, valSplit);
  const { train, test } = stratifiedSplit(y, valSplit, Rng.derive(seed, 'holdout'));
  const { probe, history } = fitProbe(X, y, { ...opts.config, validationFraction }, { indices: train, onEpoch: opts.onEpoch, threads: opts.threads, kernels: opts.kernels });
  const Xval = new Float32Array(test.length * X.cols);
  const yval = new Uint8Array(test.length);
  test.forEach((r, i) => {
    Xval.set(X.data.subarray(r * X.cols, (r + 1) * X.cols), i * X.cols);
    yval[i] = y[r] ? 1 : 0;
  });
  const p = probe.predict(Xval, test.length);
  const m = binaryMetrics(p, yval);
  let trainPos = 0;
  for (const r of train) trainPos += y[r] ? 1 : 0;
  const metrics: ProbeMetrics = {
    val_split: valSplit,
    hidden: probe.hidden,
    max_iter: opts.config?.maxEpochs ?? DEFAULT_PROBE_CONFIG.maxEpochs,
    val_acc: m.accuracy,
    val_auc: m.auc,
    cm: m.confusion,
    train_seconds: history.seconds,
    n_train: train.length,
    n_val: test.length,
    train_pos: trainPos,
    train_neg: train.length - trainPos,
    w_pos: history.wPos,
    w_neg: history.wNeg,
    val_ece: m.ece,
    val_brier: m.brier,
    val_log_loss: m.logLoss,
    epochs: history.epochs,
    best_epoch: history.bestEpoch,
    seed,
    n_features: X.cols,
    kernels: history.kernels,
  };
  return { probe, metrics, history, validation: m };
}

// ---------------------------------------------------------------------------------------------------------------
// Saving and loading: probe.json (header) + probe.safetensors (weights)

export const PROBE_SCHEMA = 'lynx.probe/1';
export const PROBE_JSON = 'probe.json';
export const PROBE_WEIGHTS = 'probe.safetensors';

export interface ProbeHeader {
  schema: typeof PROBE_SCHEMA;
  nFeatures: number;
  hidden: number[];
  activation: 'relu';
  output: 'sigmoid';
  /** Tensor names in the weights file. */
  tensors: { mean: string; scale: string; layers: { weight: string; bias: string; shape: [number, number] }[] };
  weights: string;
  /** Free-form: feature layers, model, training config, metrics. */
  info?: Record<string, unknown>;
}

/** Write `probe.json` and `probe.safetensors` into `dir` (atomically each; weights first). */
export function saveProbe(dir: string, probe: Probe, info?: Record<string, unknown>): void {
  const tensors: Record<string, F32Tensor> = {
    'scaler.mean': { dtype: 'F32', shape: [probe.nFeatures], data: probe.mean },
    'scaler.scale': { dtype: 'F32', shape: [probe.nFeatures], data: probe.scale },
  };
  const layerNames: ProbeHeader['tensors']['layers'] = [];
  probe.layers.forEach((l, i) => {
    tensors[`layers.${i}.weight`] = { dtype: 'F32', shape: [l.outDim, l.inDim], data: l.weight };
    tensors[`layers.${i}.bias`] = { dtype: 'F32', shape: [l.outDim], data: l.bias };
    layerNames.push({ weight: `layers.${i}.weight`, bias: `layers.${i}.bias`, shape: [l.outDim, l.inDim] });
  });
  writeSafetensors(join(dir, PROBE_WEIGHTS), tensors, { format: PROBE_SCHEMA });
  const header: ProbeHeader = {
    schema: PROBE_SCHEMA,
    nFeatures: probe.nFeatures,
    hidden: probe.hidden,
    activation: 'relu',
    output: 'sigmoid',
    tensors: { mean: 'scaler.mean', scale: 'scaler.scale', layers: layerNames },
    weights: PROBE_WEIGHTS,
    info,
  };
  writeJsonAtomic(join(dir, PROBE_JSON), header);
}

/** probe.json, checked field by field on load (a damaged header would read tensors of another shape). */
const dim = z.number().int().positive();
const ProbeHeaderSchema = z.looseObject({
  schema: z.literal(PROBE_SCHEMA),
  nFeatures: dim,
  hidden: z.array(dim),
  tensors: z.object({
    mean: z.string(),
    scale: z.string(),
    layers: z.array(z.object({ weight: z.string(), bias: z.string(), shape: z.tuple([dim, dim]) })).min(1),
  }),
  weights: z.string().min(1),
  info: z.record(z.string(), z.unknown()).optional(),
});

/** Every value finite (NaN or Infinity weights would score every event NaN: the rule then never exits, silently). */
function checkFinite(file: string, name: string, data: Float32Array): void {
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i]!)) throw new InvalidInputError(`${file}: tensor '${name}' holds ${data[i]} at index ${i}: the probe file is damaged; train it again with 'lynx train-probe'`);
  }
}

/** Load a probe saved by `saveProbe` (a folder, or the path of its probe.json); every field and weight checked. */
export function loadProbe(path: string): { probe: Probe; header: ProbeHeader } {
  const jsonPath = path.endsWith('.json') ? path : join(path, PROBE_JSON);
  if (!existsSync(jsonPath)) throw new InvalidInputError(`no probe at ${path}: ${jsonPath} is missing (train one with 'lynx train-probe')`);
  const raw = readJson<unknown>(jsonPath);
  const schema = (raw as { schema?: unknown } | null)?.schema;
  if (schema !== PROBE_SCHEMA) throw new InvalidInputError(`${jsonPath} is not a ${PROBE_SCHEMA} file (schema ${JSON.stringify(schema)})`);
  parseFileJson(ProbeHeaderSchema, raw, { source: jsonPath, kind: 'probe header', remedy: "the probe file is damaged; train it again with 'lynx train-probe'" });
  const header = raw as ProbeHeader;
  const weightsPath = join(jsonPath, '..', header.weights);
  if (!existsSync(weightsPath)) throw new InvalidInputError(`${jsonPath} names weights ${header.weights}, but ${weightsPath} is missing`);
  const f = TensorFile.open(weightsPath);
  try {
    const read = (name: string) => {
      const t = f.float32(name);
      checkFinite(f.path, name, t.data);
      return t;
    };
    const mean = read(header.tensors.mean).data;
    const scale = read(header.tensors.scale).data;
    const zero = scale.findIndex((x) => x === 0);
    if (zero >= 0) throw new InvalidInputError(`${f.path}: tensor '${header.tensors.scale}' is 0 at index ${zero} (features are divided by it): the probe file is damaged`);
    const layers = header.tensors.layers.map((t) => {
      const w = read(t.weight);
      const b = read(t.bias);
      if (w.shape.length !== 2) throw new InvalidInputError(`${f.path}: tensor '${t.weight}' has shape [${w.shape.join(', ')}], expected 2 dimensions`);
      const [outDim, inDim] = w.shape as [number, number];
      if (outDim !== t.shape[0] || inDim !== t.shape[1]) throw new InvalidInputError(`${f.path}: tensor '${t.weight}' has shape [${w.shape.join(', ')}], ${jsonPath} says [${t.shape.join(', ')}]`);
      if (b.data.length !== outDim) throw new InvalidInputError(`${f.path}: bias ${t.bias} does not match ${t.weight}`);
      return { inDim, outDim, weight: w.data, bias: b.data };
    });
    try {
      return { probe: new Probe(header.nFeatures, mean, scale, layers), header };
    } catch (e) {
      throw new InvalidInputError(`${jsonPath}: ${(e as Error).message}`, { cause: e });
    }
  } finally {
    f.close();
  }
}
