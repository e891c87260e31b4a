/**
 * Inner loops of the probe MLP. Each function is self-contained (typed arrays and Math only, no imports, no
 * closures, no module constants) so that the same source can run in a worker thread, and each processes a range of
 * output units so the work can be split across threads without changing any result: every output value is
 * accumulated in the same order (in double precision, stored as float32) whatever the split and the tiling.
 *
 * Both big loops walk the input dimension in tiles of 256 columns so the tile of the batch (and of the weights) stays
 * in cache while it is reused; running sums live in a double buffer between tiles, so tiling does not change the
 * order of the additions either.
 */

/**
 * out[i, j] = act(Σ_k X[i, k] · W[j, k] + b[j]) for rows i < rows and units j0 ≤ j < j1, with W stored as
 * [outDim][inDim]. act is ReLU when relu = 1, identity otherwise. `acc` holds rows × outDim doubles of scratch.
 * Register-blocked 2 rows × 4 units.
 */
export function denseForward(
  X: Float32Array,
  rows: number,
  inDim: number,
  W: Float32Array,
  b: Float32Array,
  outDim: number,
  j0: number,
  j1: number,
  out: Float32Array,
  relu: number,
  acc: Float64Array,
): void {
  const KT = 256;
  for (let i = 0; i < rows; i++) acc.fill(0, i * outDim + j0, i * outDim + j1);
  for (let k0 = 0; k0 < inDim; k0 += KT) {
    const k1 = k0 + KT < inDim ? k0 + KT : inDim;
    let i = 0;
    for (; i + 1 < rows; i += 2) {
      const x0 = i * inDim;
      const x1 = x0 + inDim;
      const o0 = i * outDim;
      const o1 = o0 + outDim;
      let j = j0;
      for (; j + 3 < j1; j += 4) {
        const w0 = j * inDim;
        const w1 = w0 + inDim;
        const w2 = w1 + inDim;
        const w3 = w2 + inDim;
        let a00 = acc[o0 + j]!, a01 = acc[o0 + j + 1]!, a02 = acc[o0 + j + 2]!, a03 = acc[o0 + j + 3]!;
        let a10 = acc[o1 + j]!, a11 = acc[o1 + j + 1]!, a12 = acc[o1 + j + 2]!, a13 = acc[o1 + j + 3]!;
        for (let k = k0; k < k1; k++) {
          const p = X[x0 + k]!;
          const q = X[x1 + k]!;
          const c0 = W[w0 + k]!;
          const c1 = W[w1 + k]!;
          const c2 = W[w2 + k]!;
          const c3 = W[w3 + k]!;
          a00 += p * c0; a01 += p * c1; a02 += p * c2; a03 += p * c3;
          a10 += q * c0; a11 += q * c1; a12 += q * c2; a13 += q * c3;
        }
        acc[o0 + j] = a00; acc[o0 + j + 1] = a01; acc[o0 + j + 2] = a02; acc[o0 + j + 3] = a03;
        acc[o1 + j] = a10; acc[o1 + j + 1] = a11; acc[o1 + j + 2] = a12; acc[o1 + j + 3] = a13;
      }
      for (; j < j1; j++) {
        const w0 = j * inDim;
        let a0 = acc[o0 + j]!;
        let a1 = acc[o1 + j]!;
        for (let k = k0; k < k1; k++) {
          const c = W[w0 + k]!;
          a0 += X[x0 + k]! * c;
          a1 += X[x1 + k]! * c;
        }
        acc[o0 + j] = a0;
        acc[o1 + j] = a1;
      }
    }
    for (; i < rows; i++) {
      const x0 = i * inDim;
      const o0 = i * outDim;
      for (let j = j0; j < j1; j++) {
        const w0 = j * inDim;
        let a0 = acc[o0 + j]!;
        for (let k = k0; k < k1; k++) a0 += X[x0 + k]! * W[w0 + k]!;
        acc[o0 + j] = a0;
      }
    }
  }
  for (let i = 0; i < rows; i++) {
    const o = i * outDim;
    for (let j = j0; j < j1; j++) {
      const a = acc[o + j]! + b[j]!;
      out[o + j] = relu && !(a > 0) ? 0 : a;
    }
  }
}

/**
 * Gradient and Adam step for the units j0 ≤ j < j1 of a dense layer, fused so the full gradient matrix is never
 * stored. For unit j: g = (Σ_i delta[i, j] · X[i, :] + alpha · W[j, :]) · invSw and gb = Σ_i delta[i, j] · invSw
 * (scikit-learn's MLP gradient, sample weights already folded into delta), then Adam with step size lrT:
 * m = β1 m + (1-β1) g, v = β2 v + (1-β2) g², param -= lrT · m / (√v + eps). Rows with delta = 0 (inactive ReLU) are
 * skipped. Scratch: `acc` ≥ 256 doubles, `idx`/`coef` ≥ (j1 - j0) × rows entries, `cnt` ≥ j1 - j0 entries.
 */
export function denseAdamStep(
  X: Float32Array,
  rows: number,
  inDim: number,
  delta: Float32Array,
  outDim: number,
  j0: number,
  j1: number,
  W: Float32Array,
  mW: Float32Array,
  vW: Float32Array,
  b: Float32Array,
  mb: Float32Array,
  vb: Float32Array,
  alpha: number,
  invSw: number,
  lrT: number,
  beta1: number,
  beta2: number,
  eps: number,
  acc: Float64Array,
  idx: Int32Array,
  coef: Float64Array,
  cnt: Int32Array,
): void {
  const KT = 256;
  const c1 = 1 - beta1;
  const c2 = 1 - beta2;
  // Non-zero deltas of each unit (row offsets into X and values), and the bias steps.
  for (let j = j0; j < j1; j++) {
    const base = (j - j0) * rows;
    let n = 0;
    let gb = 0;
    for (let i = 0; i < rows; i++) {
      const d = delta[i * outDim + j]!;
      if (d !== 0) {
        idx[base + n] = i * inDim;
        coef[base + n] = d;
        n++;
        gb += d;
      }
    }
    cnt[j - j0] = n;
    const g = gb * invSw;
    const m = beta1 * mb[j]! + c1 * g;
    const v = beta2 * vb[j]! + c2 * g * g;
    mb[j] = m;
    vb[j] = v;
    b[j] = b[j]! - (lrT * m) / (Math.sqrt(v) + eps);
  }
  for (let k0 = 0; k0 < inDim; k0 += KT) {
    const k1 = k0 + KT < inDim ? k0 + KT : inDim;
    const len = k1 - k0;
    for (let j = j0; j < j1; j++) {
      const base = (j - j0) * rows;
      const n = cnt[j - j0]!;
      acc.fill(0, 0, len);
      let c = 0;
      for (; c + 7 < n; c += 8) {
        const r0 = idx[base + c]! + k0, r1 = idx[base + c + 1]! + k0, r2 = idx[base + c + 2]! + k0, r3 = idx[base + c + 3]! + k0;
        const r4 = idx[base + c + 4]! + k0, r5 = idx[base + c + 5]! + k0, r6 = idx[base + c + 6]! + k0, r7 = idx[base + c + 7]! + k0;
        const d0 = coef[base + c]!, d1 = coef[base + c + 1]!, d2 = coef[base + c + 2]!, d3 = coef[base + c + 3]!;
        const d4 = coef[base + c + 4]!, d5 = coef[base + c + 5]!, d6 = coef[base + c + 6]!, d7 = coef[base + c + 7]!;
        for (let k = 0; k < len; k++) {
          acc[k] +=
            d0 * X[r0 + k]! + d1 * X[r1 + k]! + d2 * X[r2 + k]! + d3 * X[r3 + k]! +
            d4 * X[r4 + k]! + d5 * X[r5 + k]! + d6 * X[r6 + k]! + d7 * X[r7 + k]!;
        }
      }
      for (; c < n; c++) {
        const r0 = idx[base + c]! + k0;
        const d0 = coef[base + c]!;
        for (let k = 0; k < len; k++) acc[k] += d0 * X[r0 + k]!;
      }
      const o = j * inDim + k0;
      for (let k = 0; k < len; k++) {
        const w = W[o + k]!;
        const g = (acc[k]! + alpha * w) * invSw;
        const m = beta1 * mW[o + k]! + c1 * g;
        const v = beta2 * vW[o + k]! + c2 * g * g;
        mW[o + k] = m;
        vW[o + k] = v;
        W[o + k] = w - (lrT * m) / (Math.sqrt(v) + eps);
      }
    }
  }
}

/**
 * Back-propagate through a dense layer into the ReLU layer below it: dIn[i, k] = Σ_j dOut[i, j] · W[j, k] where the
 * input activation A[i, k] > 0, else 0 (scikit-learn's ReLU derivative). W is [outDim][inDim]; `acc` ≥ inDim doubles.
 */
export function denseBackward(
  dOut: Float32Array,
  rows: number,
  outDim: number,
  W: Float32Array,
  inDim: number,
  A: Float32Array,
  dIn: Float32Array,
  acc: Float64Array,
): void {
  for (let i = 0; i < rows; i++) {
    acc.fill(0, 0, inDim);
    const r = i * outDim;
    for (let j = 0; j < outDim; j++) {
      const d = dOut[r + j]!;
      if (d === 0) continue;
      const o = j * inDim;
      for (let k = 0; k < inDim; k++) acc[k] += d * W[o + k]!;
    }
    const a = i * inDim;
    for (let k = 0; k < inDim; k++) dIn[a + k] = A[a + k]! > 0 ? acc[k]! : 0;
  }
}
