/**
 * Small statistics used by the probe metrics, the conformal rules and the simulated evaluation: binomial tails,
 * the Hoeffding–Bentkus p-value, a seeded cluster bootstrap, and binary classification metrics.
 */
import { quantile } from '../../util/stats.js';
import { Rng } from '../../util/rng.js';

// Lanczos approximation (g = 7, n = 9); relative error below 1e-14 for x > 0.
const LANCZOS = [
  0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
  12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
];

/** log Γ(x) for x > 0. */
export function logGamma(x: number): number {
  if (x < 0.5) return Math.log(Math.PI / Math.abs(Math.sin(Math.PI * x))) - logGamma(1 - x);
  x -= 1;
  let a = LANCZOS[0]!;
  const t = x + 7.5;
  for (let i = 1; i < 9; i++) a += LANCZOS[i]! / (x + i);
  return 0.5 * Math.log(2 * Math.PI) + (x + 0.5) * Math.log(t) - t + Math.log(a);
}

/** log of the binomial pmf P(X = k), X ~ Binom(n, p). */
export function binomLogPmf(k: number, n: number, p: number): number {
  if (k < 0 || k > n) return -Infinity;
  if (p <= 0) return k === 0 ? 0 : -Infinity;
  if (p >= 1) return k === n ? 0 : -Infinity;
  return logGamma(n + 1) - logGamma(k + 1) - logGamma(n - k + 1) + k * Math.log(p) + (n - k) * Math.log1p(-p);
}

/** P(X ≤ k) for X ~ Binom(n, p), summed in log space so large n does not underflow. */
export function binomCdf(k: number, n: number, p: number): number {
  k = Math.floor(k);
  if (k < 0) return 0;
  if (k >= n) return 1;
  let max = -Infinity;
  const logs = new Float64Array(k + 1);
  for (let i = 0; i <= k; i++) {
    logs[i] = binomLogPmf(i, n, p);
    if (logs[i]! > max) max = logs[i]!;
  }
  if (max === -Infinity) return 0;
  let s = 0;
  for (let i = 0; i <= k; i++) s += Math.exp(logs[i]! - max);
  return Math.min(1, Math.exp(max) * s);
}

/**
 * Exact binomial p-value for H0: risk > delta, from n independent binary losses with `losses` ones:
 * P(Binom(n, delta) ≤ losses). Valid (super-uniform) under H0 because Binom(n, r) dominates Binom(n, delta) for r > delta.
 */
export function binomialPValue(losses: number, n: number, delta: number): number {
  if (n <= 0) return 1;
  return binomCdf(losses, n, delta);
}

/**
 * Hoeffding–Bentkus p-value (Bates et al. 2021; used by Learn-then-Test) for H0: E[L] > delta from the mean `rhat`
 * of n independent losses in [0, 1]: min(exp(-n h(min(rhat, delta), delta)), e · P(Binom(n, delta) ≤ ⌈n rhat⌉)).
 */
export function hoeffdingBentkusPValue(rhat: number, n: number, delta: number): number {
  if (n <= 0) return 1;
  const a = Math.min(rhat, delta);
  const h = klBernoulli(a, delta);
  const hoeffding = Math.exp(-n * h);
  const bentkus = Math.E * binomCdf(Math.ceil(n * rhat - 1e-9), n, delta);
  return Math.min(1, hoeffding, bentkus);
}

/** KL divergence between Bernoulli(a) and Bernoulli(b). */
function klBernoulli(a: number, b: number): number {
  const t1 = a > 0 ? a * Math.log(a / b) : 0;
  const t2 = a < 1 ? (1 - a) * Math.log((1 - a) / (1 - b)) : 0;
  return t1 + t2;
}

/**
 * Percentile bootstrap over clusters (problems). `stat` receives the multiplicity of each cluster in one resample
 * (the identity resample is all ones) and returns the statistic; NaN results are dropped.
 */
export function bootstrapCi(
  nClusters: number,
  stat: (counts: Float64Array) => number,
  opts: { resamples?: number; seed?: number; level?: number } = {},
): [number, number] {
  const B = opts.resamples ?? 2000;
  const level = opts.level ?? 0.95;
  if (nClusters === 0) return [NaN, NaN];
  const rng = new Rng(opts.seed ?? 12345);
  const counts = new Float64Array(nClusters);
  const values: number[] = [];
  for (let b = 0; b < B; b++) {
    counts.fill(0);
    for (let i = 0; i < nClusters; i++) counts[Math.floor(rng.next() * nClusters)]! += 1;
    const v = stat(counts);
    if (Number.isFinite(v)) values.push(v);
  }
  if (values.length === 0) return [NaN, NaN];
  values.sort((x, y) => x - y);
  const lo = quantile(values, (1 - level) / 2);
  const hi = quantile(values, 1 - (1 - level) / 2);
  return [lo, hi];
}

export interface BinaryMetrics {
  n: number;
  nPos: number;
  nNeg: number;
  /** Accuracy of `p >= 0.5` (LYNX's `yhat`). */
  accuracy: number;
  /** ROC AUC (ties count one half); NaN when one class is absent. */
  auc: number;
  /** [[tn, fp], [fn, tp]] with labels [0, 1] (scikit-learn's layout). */
  confusion: [[number, number], [number, number]];
  /** Expected calibration error over `bins` equal-width bins of p. */
  ece: number;
  /** Mean squared error of p against the label. */
  brier: number;
  /** Mean log loss with p clipped to [1e-7, 1 - 1e-7]. */
  logLoss: number;
}

/** Metrics of probabilities `p` of label 1 against 0/1 labels. */
export function binaryMetrics(p: ArrayLike<number>, y: ArrayLike<number>, bins = 10): BinaryMetrics {
  const n = p.length;
  let nPos = 0;
  let tn = 0;
  let fp = 0;
  let fn = 0;
  let tp = 0;
  let brier = 0;
  let logLoss = 0;
  const binCount = new Float64Array(bins);
  const binConf = new Float64Array(bins);
  const binAcc = new Float64Array(bins);
  for (let i = 0; i < n; i++) {
    const pi = p[i]!;
    const yi = y[i]! ? 1 : 0;
    nPos += yi;
    const yhat = pi >= 0.5 ? 1 : 0;
    if (yi === 1) yhat === 1 ? tp++ : fn++;
    else yhat === 1 ? fp++ : tn++;
    brier += (pi - yi) * (pi - yi);
    const pc = Math.min(1 - 1e-7, Math.max(1e-7, pi));
    logLoss -= yi ? Math.log(pc) : Math.log(1 - pc);
    const b = Math.min(bins - 1, Math.max(0, Math.floor(pi * bins)));
    binCount[b]! += 1;
    binConf[b]! += pi;
    binAcc[b]! += yi;
  }
  let ece = 0;
  for (let b = 0; b < bins; b++) if (binCount[b]! > 0) ece += Math.abs(binAcc[b]! - binConf[b]!) / Math.max(1, n);
  return {
    n,
    nPos,
    nNeg: n - nPos,
    accuracy: n > 0 ? (tp + tn) / n : NaN,
    auc: rocAuc(p, y),
    confusion: [
      [tn, fp],
      [fn, tp],
    ],
    ece,
    brier: n > 0 ? brier / n : NaN,
    logLoss: n > 0 ? logLoss / n : NaN,
  };
}

/** ROC AUC by the rank-sum (Mann–Whitney) formula with average ranks for ties. */
export function rocAuc(p: ArrayLike<number>, y: ArrayLike<number>): number {
  const n = p.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => p[a]! - p[b]!);
  let nPos = 0;
  let rankSum = 0;
  let i = 0;
  while (i < n) {
    let j = i;
    while (j + 1 < n && p[order[j + 1]!] === p[order[i]!]) j++;
    const avgRank = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) {
      if (y[order[k]!]) {
        nPos++;
        rankSum += avgRank;
      }
    }
    i = j + 1;
  }
  const nNeg = n - nPos;
  if (nPos === 0 || nNeg === 0) return NaN;
  return (rankSum - (nPos * (nPos + 1)) / 2) / (nPos * nNeg);
}
