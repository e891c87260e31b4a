import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  initLayers,
  loadProbe,
  Probe,
  saveProbe,
  stratifiedSplit,
  fitProbe,
  trainProbe,
  type FeatureMatrix,
  type ProbeLayer,
} from '../src/reasoning/lynx/probe/probe.js';
import { binaryMetrics, rocAuc } from '../src/reasoning/calibration/stats.js';
import { Rng } from '../src/util/rng.js';

const tmp = mkdtempSync(join(tmpdir(), 'lynx-probe-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Gaussian features with an offset and scale per column; label from a hidden direction (separable up to `noise`). */
function synth(n: number, d: number, seed: number, noise = 0, sampleSeed = seed): { X: FeatureMatrix; y: Uint8Array } {
  const dist = new Rng(seed);
  const dir = Array.from({ length: d }, () => dist.normal());
  const offset = Array.from({ length: d }, () => 5 * dist.normal());
  const scale = Array.from({ length: d }, () => 0.1 + 3 * dist.next());
  const rng = Rng.derive(sampleSeed, 'samples');
  const data = new Float32Array(n * d);
  const y = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let k = 0; k < d; k++) {
      const v = rng.normal();
      data[i * d + k] = offset[k]! + scale[k]! * v;
      s += v * dir[k]!;
    }
    y[i] = s + noise * rng.normal() > 0.3 ? 1 : 0;
  }
  return { X: { data, rows: n, cols: d }, y };
}

describe('probe', () => {
  it('learns a separable problem (held-out AUC > 0.95) with LYNX metrics', () => {
    const { X, y } = synth(1000, 40, 1);
    const r = trainProbe(X, y, { config: { seed: 7 } });
    expect(r.metrics.val_auc).toBeGreaterThan(0.95);
    expect(r.metrics.val_acc).toBeGreaterThan(0.85);
    expect(r.metrics.n_val).toBe(200);
    expect(r.metrics.n_train).toBe(800);
    expect(r.metrics.train_pos + r.metrics.train_neg).toBe(800);
    expect(r.metrics.w_pos).toBeCloseTo(800 / (2 * r.metrics.train_pos), 12);
    const cm = r.metrics.cm;
    expect(cm[0][0] + cm[0][1] + cm[1][0] + cm[1][1]).toBe(200);
    expect(r.metrics.hidden).toEqual([256, 64]);
    expect(r.history.bestValidationScore).toBe(Math.max(...r.history.validationScores));
    expect(r.history.nTrain + r.history.nValidation).toBe(800);
    // fresh samples from the same distribution
    const t = synth(2000, 40, 1, 0, 99);
    expect(t.X.data.subarray(0, 10)).not.toEqual(X.data.subarray(0, 10));
    const p = r.probe.predict(t.X.data, 2000);
    expect(rocAuc(p, t.y)).toBeGreaterThan(0.95);
  });

  it('is reproducible for a seed, different across seeds, and independent of threads', () => {
    const { X, y } = synth(300, 24, 2, 0.5);
    const cfg = { hidden: [16, 8], maxEpochs: 30, seed: 5 };
    const a = fitProbe(X, y, cfg, { threads: 1 });
    const b = fitProbe(X, y, cfg, { threads: 1 });
    const c = fitProbe(X, y, { ...cfg, seed: 6 }, { threads: 1 });
    const d = fitProbe(X, y, cfg, { threads: 2 });
    a.probe.layers.forEach((l, i) => {
      expect(b.probe.layers[i]!.weight).toEqual(l.weight);
      expect(d.probe.layers[i]!.weight).toEqual(l.weight);
      expect(d.probe.layers[i]!.bias).toEqual(l.bias);
    });
    expect(d.history.loss).toEqual(a.history.loss);
    expect(c.probe.layers[0]!.weight).not.toEqual(a.probe.layers[0]!.weight);
  });

  it.each(['js', 'wasm'] as const)('splits work over threads without changing a single bit (%s kernels)', (kernels) => {
    const { X, y } = synth(261, 300, 3, 0.3); // odd batch sizes too
    const cfg = { hidden: [64, 8], maxEpochs: 4, seed: 1, batchSize: 51 };
    const one = fitProbe(X, y, cfg, { threads: 1, kernels });
    const two = fitProbe(X, y, cfg, { threads: 2, kernels });
    expect(one.history.kernels).toBe(kernels);
    expect(two.history.threads).toBe(2);
    expect(two.probe.layers[0]!.weight).toEqual(one.probe.layers[0]!.weight);
    expect(two.probe.predict(X.data, X.rows)).toEqual(one.probe.predict(X.data, X.rows));
  });

  it('trains alike with the js and wasm kernels', () => {
    const { X, y } = synth(400, 32, 8, 0.2);
    const cfg = { hidden: [16, 8], maxEpochs: 3, earlyStopping: false, seed: 2 };
    const a = fitProbe(X, y, cfg, { threads: 1, kernels: 'js' });
    const b = fitProbe(X, y, cfg, { threads: 1, kernels: 'wasm' });
    expect(b.history.kernels).toBe('wasm');
    // float32 vs double rounding only: the training trajectories stay together
    b.history.loss.forEach((l, i) => expect(l).toBeCloseTo(a.history.loss[i]!, 4));
    const pa = a.probe.predict(X.data, X.rows);
    const pb = b.probe.predict(X.data, X.rows);
    let maxDiff = 0;
    pa.forEach((v, i) => (maxDiff = Math.max(maxDiff, Math.abs(v - pb[i]!))));
    expect(maxDiff).toBeLessThan(1e-3);
    expect(() => fitProbe(synth(50, 6, 1).X, synth(50, 6, 1).y, { hidden: [5], maxEpochs: 1 }, { kernels: 'wasm' })).toThrow(/divisible by 4/);
  });

  it('saves and loads with identical predictions', () => {
    const { X, y } = synth(200, 20, 4);
    const { probe } = fitProbe(X, y, { hidden: [12, 6], maxEpochs: 20 }, { threads: 1 });
    const dir = join(tmp, 'probe');
    saveProbe(dir, probe, { featureLayers: [9, 16, 28] });
    const { probe: back, header } = loadProbe(dir);
    expect(header.hidden).toEqual([12, 6]);
    expect(header.info).toEqual({ featureLayers: [9, 16, 28] });
    expect(back.predict(X.data, X.rows)).toEqual(probe.predict(X.data, X.rows));
    for (let i = 0; i < 5; i++) {
      const row = X.data.subarray(i * 20, (i + 1) * 20);
      expect(back.predictOne(row)).toBe(probe.predict(X.data, X.rows)[i]);
    }
    expect(() => loadProbe(join(tmp, 'nothing'))).toThrow(/no probe/);
  });

  it('computes the forward pass like a naive reference', () => {
    const rng = new Rng(11);
    const layers = initLayers([7, 5, 3, 1], rng);
    const mean = Float32Array.from({ length: 7 }, () => rng.normal());
    const scale = Float32Array.from({ length: 7 }, () => 0.5 + rng.next());
    const probe = new Probe(7, mean, scale, layers);
    const X = Float32Array.from({ length: 7 * 9 }, () => 3 * rng.normal());
    const p = probe.predict(X, 9);
    for (let i = 0; i < 9; i++) {
      let a = Array.from({ length: 7 }, (_, k) => (X[i * 7 + k]! - mean[k]!) / scale[k]!);
      layers.forEach((l, li) => {
        const z = Array.from({ length: l.outDim }, (_, j) => l.bias[j]! + a.reduce((s, v, k) => s + v * l.weight[j * l.inDim + k]!, 0));
        a = li === layers.length - 1 ? z : z.map((v) => Math.max(0, v));
      });
      expect(p[i]).toBeCloseTo(1 / (1 + Math.exp(-a[0]!)), 5);
    }
  });

  it.each([
    ['js', 6, [5, 4]],
    ['wasm', 8, [8, 4]],
  ] as const)('takes the same Adam steps as a naive implementation of scikit-learn (%s kernels)', (kernels, D, hiddenSizes) => {
    const { X, y } = synth(41, D, 12, 1);
    const hidden = [...hiddenSizes];
    const seed = 3;
    const cfg = { hidden, seed, maxEpochs: 2, earlyStopping: false, batchSize: 41, alpha: 0.01 };
    const { probe, history } = fitProbe(X, y, cfg, { threads: 1, kernels });
    expect(history.kernels).toBe(kernels);
    // reference: same initial weights, full-batch, two steps
    const ref: ProbeLayer[] = initLayers([D, ...hidden, 1], Rng.derive(seed, 'init'));
    const W = ref.map((l) => Array.from(l.weight));
    const B = ref.map((l) => Array.from(l.bias));
    const mW = W.map((w) => w.map(() => 0));
    const vW = W.map((w) => w.map(() => 0));
    const mB = B.map((b) => b.map(() => 0));
    const vB = B.map((b) => b.map(() => 0));
    const n = 41;
    const nPos = y.reduce((s, v) => s + v, 0);
    const w = Array.from(y, (v) => (v ? n / (2 * nPos) : n / (2 * (n - nPos))));
    const sw = w.reduce((s, v) => s + v, 0);
    const xs = Array.from({ length: n }, (_, i) => Array.from({ length: D }, (_, k) => Math.fround((X.data[i * D + k]! - probe.mean[k]!) / probe.scale[k]!)));
    for (let t = 1; t <= 2; t++) {
      const acts: number[][][] = [xs];
      ref.forEach((l, li) => {
        acts.push(
          acts[li]!.map((a) =>
            Array.from({ length: l.outDim }, (_, j) => {
              const z = B[li]![j]! + a.reduce((s, v, k) => s + v * W[li]![j * l.inDim + k]!, 0);
              return li === ref.length - 1 ? z : Math.max(0, z);
            }),
          ),
        );
      });
      let delta = acts[ref.length]!.map((z, i) => [(1 / (1 + Math.exp(-z[0]!)) - y[i]!) * w[i]!]);
      const gW: number[][] = [];
      const gB: number[][] = [];
      for (let li = ref.length - 1; li >= 0; li--) {
        const l = ref[li]!;
        const below = acts[li]!;
        gW[li] = W[li]!.map((wv, e) => {
          const j = Math.floor(e / l.inDim);
          const k = e % l.inDim;
          return (delta.reduce((s, d, i) => s + d[j]! * below[i]![k]!, 0) + cfg.alpha * wv) / sw;
        });
        gB[li] = B[li]!.map((_, j) => delta.reduce((s, d) => s + d[j]!, 0) / sw);
        if (li > 0) {
          delta = below.map((a, i) => a.map((av, k) => (av > 0 ? delta[i]!.reduce((s, d, j) => s + d * W[li]![j * l.inDim + k]!, 0) : 0)));
        }
      }
      const lrT = (1e-3 * Math.sqrt(1 - 0.999 ** t)) / (1 - 0.9 ** t);
      const adam = (p: number[], m: number[], v: number[], g: number[]) =>
        p.forEach((_, e) => {
          m[e] = 0.9 * m[e]! + 0.1 * g[e]!;
          v[e] = 0.999 * v[e]! + 0.001 * g[e]! * g[e]!;
          p[e] = p[e]! - (lrT * m[e]!) / (Math.sqrt(v[e]!) + 1e-8);
        });
      ref.forEach((_, li) => {
        adam(W[li]!, mW[li]!, vW[li]!, gW[li]!);
        adam(B[li]!, mB[li]!, vB[li]!, gB[li]!);
      });
    }
    let bad = 0;
    let total = 0;
    probe.layers.forEach((l, li) => {
      l.weight.forEach((v, e) => {
        total++;
        if (Math.abs(v - W[li]![e]!) > 1e-6) bad++;
      });
      l.bias.forEach((v, e) => {
        total++;
        if (Math.abs(v - B[li]![e]!) > 1e-6) bad++;
      });
    });
    // weights whose gradient is ~0 can flip Adam's sign on rounding; nearly all must agree to float32 precision
    expect(total).toBe(D * hidden[0]! + hidden[0]! + hidden[0]! * hidden[1]! + hidden[1]! + hidden[1]! + 1);
    expect(bad / total).toBeLessThan(0.005);
    // and training moved the weights at all
    expect(probe.layers[0]!.weight).not.toEqual(ref[0]!.weight);
  });

  it('splits stratified like scikit-learn', () => {
    const y = Array.from({ length: 103 }, (_, i) => (i % 3 === 0 ? 1 : 0)); // 35 ones, 68 zeros
    const { train, test } = stratifiedSplit(y, 0.2, new Rng(1));
    expect(test.length).toBe(21); // ceil(20.6)
    expect(train.length).toBe(82);
    const ones = Array.from(test).filter((i) => y[i] === 1).length;
    expect([7, 8]).toContain(ones); // 35 * 21 / 103 = 7.14
    expect(new Set([...train, ...test]).size).toBe(103);
  });

  it('reports calibration metrics', () => {
    const m = binaryMetrics([0.9, 0.8, 0.3, 0.2, 0.6, 0.4], [1, 1, 0, 0, 0, 1]);
    expect(m.accuracy).toBeCloseTo(4 / 6, 12);
    expect(m.confusion).toEqual([
      [2, 1],
      [1, 2],
    ]);
    expect(m.brier).toBeCloseTo((0.01 + 0.04 + 0.09 + 0.04 + 0.36 + 0.36) / 6, 12);
    expect(m.auc).toBeCloseTo(8 / 9, 12); // positive-negative pairs ranked right: 3 + 3 + 2 of 9
    // bins: [0.2,0.3) {0.2:y0}, [0.3,0.4) {0.3:y0}, [0.4,0.5) {0.4:y1}, [0.6,0.7) {0.6:y0}, [0.8,0.9) {0.8:y1}, [0.9,1) {0.9:y1}
    expect(m.ece).toBeCloseTo((0.2 + 0.3 + 0.6 + 0.6 + 0.2 + 0.1) / 6, 12);
  });
});
