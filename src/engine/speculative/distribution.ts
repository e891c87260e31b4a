/**
 * Distributions over the vocabulary computed in TypeScript from logits: what a sampler chain draws from (for the
 * rejection rule of speculative sampling, which needs p and q explicitly), and the entropy early-exit heads are
 * judged by.
 *
 * `samplerProbs` follows llama.cpp's chain as the engine builds it (sampler.ts): temperature, then top-k, top-p
 * (the smallest prefix of the sorted distribution whose mass reaches p, the crossing token included, at least one
 * token), min-p (tokens whose probability is at least min-p times the largest), renormalised.
 */
import type { SamplerOptions } from '../sampler.js';

/** Entropy (nats) of softmax(logits). */
export function entropy(logits: Float32Array): number {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i]! > max) max = logits[i]!;
  let z = 0;
  let s = 0;
  for (let i = 0; i < logits.length; i++) {
    const d = logits[i]! - max;
    const e = Math.exp(d);
    z += e;
    s += e * d;
  }
  // H = log Z - E[d] with d = logit - max.
  return Math.log(z) - s / z;
}

/** softmax(logits / temperature) as a dense distribution. */
export function softmax(logits: Float32Array, temperature = 1): Float32Array {
  const out = new Float32Array(logits.length);
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i]! > max) max = logits[i]!;
  let z = 0;
  for (let i = 0; i < logits.length; i++) {
    const e = Math.exp((logits[i]! - max) / temperature);
    out[i] = e;
    z += e;
  }
  for (let i = 0; i < out.length; i++) out[i]! /= z;
  return out;
}

/** The distribution a (non-greedy) sampler chain with these options draws from, dense, zero outside what it keeps. */
export function samplerProbs(logits: Float32Array, o: SamplerOptions): Float32Array {
  const n = logits.length;
  const t = o.temperature ?? 0;
  if (!(t > 0)) {
    // Greedy: all mass on the argmax (the first of equal maxima, as the engine's argmax).
    const out = new Float32Array(n);
    let best = 0;
    for (let i = 1; i < n; i++) if (logits[i]! > logits[best]!) best = i;
    out[best] = 1;
    return out;
  }
  const p = softmax(logits, t);
  const topK = o.topK && o.topK > 0 ? Math.min(o.topK, n) : n;
  const topP = o.topP ?? 1;
  const minP = o.minP ?? 0;
  if (topK === n && topP >= 1 && minP <= 0) return p;
  // Candidates in descending order (ties: lower id first, as a stable sort of ids leaves them).
  const order = Uint32Array.from({ length: n }, (_, i) => i).sort((a, b) => p[b]! - p[a]! || a - b);
  let keep = topK;
  if (topP < 1) {
    let mass = 0;
    for (let i = 0; i < keep; i++) mass += p[order[i]!]!;
    // top-p renormalises over the top-k survivors first.
    let cum = 0;
    for (let i = 0; i < keep; i++) {
      cum += p[order[i]!]! / mass;
      if (cum >= topP) {
        keep = i + 1;
        break;
      }
    }
  }
  if (minP > 0) {
    const floor = p[order[0]!]! * minP;
    let k = 1;
    while (k < keep && p[order[k]!]! >= floor) k++;
    keep = k;
  }
  const out = new Float32Array(n);
  let z = 0;
  for (let i = 0; i < keep; i++) z += p[order[i]!]!;
  for (let i = 0; i < keep; i++) out[order[i]!] = p[order[i]!]! / z;
  return out;
}

/** The token at cumulative mass `u` (in [0, 1)) of a distribution that sums to `total` (default 1). */
export function drawFrom(probs: Float32Array, u: number, total = 1): number {
  const target = u * total;
  let cum = 0;
  let last = -1;
  for (let i = 0; i < probs.length; i++) {
    const v = probs[i]!;
    if (v <= 0) continue;
    cum += v;
    last = i;
    if (cum > target) return i;
  }
  return last; // rounding left `u * total` at the very end
}
