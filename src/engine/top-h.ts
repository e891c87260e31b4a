/**
 * Top-H truncation (Baghaei Potraghloo et al., 2025, "Top-H Decoding: Adapting the Creativity and Coherence with
 * Bounded Entropy in Text Generation", arXiv 2509.02510, Algorithm 1): with p the temperature-scaled next-token
 * distribution, add tokens in descending order of probability to the kept set S while the entropy of q, p
 * renormalised over S, stays at or below α·H(p); the token whose addition would exceed it is left out. H(q) grows
 * strictly with each added token (the paper's Theorem 3), so the first violation ends the search. The first token is
 * always kept (H = 0).
 *
 * Incrementally, with σ = Σ_S p_i and A = Σ_S p_i ln p_i: H(q) = ln σ − A / σ. Only the head of the distribution is
 * ever visited, so tokens are taken in chunks of growing size from a partial selection instead of a full sort of the
 * vocabulary (a histogram of −ln p finds them: headIndices).
 */

export interface TopHSelection {
  /** Token ids kept, most likely first. */
  ids: Int32Array;
  /** Their probabilities under q (renormalised over the kept set), in the same order. */
  q: Float64Array;
  /** H(p) and the bound α·H(p), in nats. */
  entropy: number;
  bound: number;
}

/** Softmax of logits / temperature, in float64 (entropy sums over 152k tokens need the precision). */
export function softmax(logits: ArrayLike<number>, temperature = 1): Float64Array {
  const n = logits.length;
  const out = new Float64Array(n);
  let max = -Infinity;
  for (let i = 0; i < n; i++) if (logits[i]! > max) max = logits[i]!;
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const e = Math.exp((logits[i]! - max) / temperature);
    out[i] = e;
    sum += e;
  }
  for (let i = 0; i < n; i++) out[i]! /= sum;
  return out;
}

export function entropy(p: ArrayLike<number>): number {
  let h = 0;
  for (let i = 0; i < p.length; i++) {
    const x = p[i]!;
    if (x > 0) h -= x * Math.log(x);
  }
  return h;
}

/** Width of a histogram bin of −ln p (nats): candidates are found by counting, not by sorting the vocabulary. */
const BIN = 0.125;
const BINS = 512; // −ln p up to 64 nats; anything less likely is never kept

/**
 * The tokens of `p` in descending order of probability, at least the `k` likeliest (more when ties of a histogram bin
 * come along): one pass counts −ln p into bins, a second collects the tokens of the bins that hold the first k, and
 * only those are sorted.
 */
function headIndices(p: Float64Array, k: number): Int32Array {
  const n = p.length;
  const bins = new Uint16Array(n);
  const counts = new Int32Array(BINS + 1);
  for (let i = 0; i < n; i++) {
    const x = p[i]!;
    const b = x > 0 ? Math.min(BINS - 1, Math.floor(-Math.log(x) / BIN)) : BINS;
    bins[i] = b;
    counts[b]!++;
  }
  let cut = 0;
  for (let total = 0; cut <= BINS; cut++) {
    total += counts[cut]!;
    if (total >= k) break;
  }
  const picked: number[] = [];
  for (let i = 0; i < n; i++) if (bins[i]! <= cut) picked.push(i);
  const out = Int32Array.from(picked);
  out.sort((x, y) => p[y]! - p[x]! || x - y);
  return out;
}

/** Indices of the `k` largest values of `p`, largest first (a bounded insertion list: cheap while k is small). */
function topIndices(p: Float64Array, k: number): Int32Array {
  const idx: number[] = [];
  let floor = -Infinity;
  for (let i = 0; i < p.length; i++) {
    const v = p[i]!;
    if (idx.length === k && v <= floor) continue;
    let j = idx.length;
    idx.push(i);
    while (j > 0 && p[idx[j - 1]!]! < v) {
      idx[j] = idx[j - 1]!;
      j--;
    }
    idx[j] = i;
    if (idx.length > k) idx.pop();
    floor = p[idx[idx.length - 1]!]!;
  }
  return Int32Array.from(idx);
}

/** The kept set of Top-H at coefficient `alpha` (0 < α < 1) over the distribution `p`. */
export function topHSelect(p: Float64Array, alpha: number, h = entropy(p)): TopHSelection {
  const bound = alpha * h;
  // Most steps keep a few tokens: the 64 likeliest by insertion first, then the histogram for longer heads.
  let chunk = 64;
  for (;;) {
    const order = chunk === 64 ? topIndices(p, Math.min(chunk, p.length)) : headIndices(p, Math.min(chunk, p.length));
    let sigma = 0;
    let a = 0;
    let kept = 0;
    let stopped = false;
    for (const i of order) {
      const pi = p[i]!;
      const s = sigma + pi;
      const an = pi > 0 ? a + pi * Math.log(pi) : a;
      const hq = Math.log(s) - an / s;
      if (kept > 0 && hq > bound) {
        stopped = true;
        break;
      }
      sigma = s;
      a = an;
      kept++;
    }
    if (stopped || order.length === p.length) {
      const ids = order.slice(0, kept);
      const q = Float64Array.from(ids, (i) => p[i]! / sigma);
      return { ids, q, entropy: h, bound };
    }
    chunk *= 8; // the bound was not reached within these tokens: look further down the distribution
  }
}

/**
 * Top-H on raw logits at a temperature: the softmax and its entropy in one pass
 * (H = ln S − Σ eˣ·x / S with x = (l − max)/T, S = Σ eˣ: no logarithm per token), then the selection.
 */
export function topHFromLogits(logits: ArrayLike<number>, temperature: number, alpha: number): TopHSelection {
  const n = logits.length;
  let max = -Infinity;
  for (let i = 0; i < n; i++) if (logits[i]! > max) max = logits[i]!;
  const p = new Float64Array(n);
  let sum = 0;
  let weighted = 0;
  for (let i = 0; i < n; i++) {
    const x = (logits[i]! - max) / temperature;
    const e = Math.exp(x);
    p[i] = e;
    sum += e;
    weighted += e * x;
  }
  for (let i = 0; i < n; i++) p[i]! /= sum;
  return topHSelect(p, alpha, Math.log(sum) - weighted / sum);
}
