/**
 * ggml-opt over a graph other than the language model (src/graph/optimizer.ts): a head alone — a frozen RMSNorm
 * weight and a trainable hidden -> vocab matrix on given hidden states — distilled from a teacher's distribution
 * with soft labels, the way an early-exit head is trained. Only the marked tensor moves, the loss falls towards the
 * teacher's entropy (cross-entropy = KL + that entropy), and agreement with the teacher's argmax rises.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { loadLlama } from '../src/engine/index.js';
import type { Llama } from '../src/native/library.js';
import { CpuBackend } from '../src/graph/backend.js';
import { GraphBuilder } from '../src/graph/builder.js';
import { buildHead } from '../src/graph/decoder.js';
import { GraphOptimizer } from '../src/graph/optimizer.js';
import { TensorStore } from '../src/graph/tensors.js';
import { Rng } from '../src/util/rng.js';

const E = 16;
const V = 24;
const N = 64;

let llama: Llama;
let backend: CpuBackend;
beforeAll(() => {
  llama = loadLlama();
  backend = new CpuBackend(llama, 1);
});
afterAll(() => backend?.dispose());

describe('ggml-opt over a head graph', () => {
  it('distils a teacher into the marked matrix only, with soft labels', () => {
    const rng = new Rng(5);
    const gauss = (n: number, std: number) => Float32Array.from({ length: n }, () => rng.normal() * std);
    const hidden = gauss(E * N, 1);
    const norm = Float32Array.from({ length: E }, () => 0.5 + rng.next());
    const teacher = gauss(E * V, 1.5);
    // The teacher's distribution on the normed hidden states: what the head should learn to reproduce.
    const labels = new Float32Array(V * N);
    let teacherEntropy = 0;
    for (let i = 0; i < N; i++) {
      const h = hidden.subarray(i * E, (i + 1) * E);
      const rms = Math.sqrt(h.reduce((a, v) => a + v * v, 0) / E + 1e-6);
      const z = Array.from({ length: V }, (_, v) => {
        let s = 0;
        for (let e = 0; e < E; e++) s += teacher[v * E + e]! * (h[e]! / rms) * norm[e]!;
        return s;
      });
      const max = Math.max(...z);
      const p = z.map((x) => Math.exp(x - max));
      const sum = p.reduce((a, b) => a + b, 0);
      p.forEach((x, v) => {
        labels[i * V + v] = x / sum;
        if (x > 0) teacherEntropy -= (x / sum) * Math.log(x / sum);
      });
    }
    teacherEntropy /= N;

    const tensors = new TensorStore(backend, [
      { name: 'hidden', dims: [E, N] },
      { name: 'norm', dims: [E] },
      { name: 'matrix', dims: [E, V] },
    ]);
    const b = new GraphBuilder(llama.ggml, { memBytes: 16 * 1024 * 1024 });
    let opt: GraphOptimizer | undefined;
    try {
      tensors.write('hidden', hidden);
      tensors.write('norm', norm);
      tensors.write('matrix', new Float32Array(E * V)); // starts uniform
      tensors.markParams(['matrix']);
      const logits = buildHead(b, { rmsEps: 1e-6 }, tensors.get('hidden'), { norm: tensors.get('norm'), matrix: tensors.get('matrix') });
      opt = new GraphOptimizer(llama, { backend, builder: b, inputs: tensors.get('hidden'), outputs: logits, loss: 'cross-entropy' });
      const fill = () => opt!.setLabels(labels);
      const first = opt.evaluate(fill);
      expect(first.loss).toBeCloseTo(Math.log(V), 4); // a zero matrix: uniform logits
      for (let s = 0; s < 300; s++) opt.step({ lr: 0.05, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 }, fill);
      const last = opt.evaluate(fill);
      expect(last.loss - teacherEntropy).toBeLessThan(0.1 * (first.loss - teacherEntropy));
      expect(last.accuracy).toBeGreaterThan(0.8);
      expect(Array.from(tensors.read('norm'))).toEqual(Array.from(norm)); // frozen: not marked
      expect(tensors.read('matrix').some((v) => v !== 0)).toBe(true);
    } finally {
      opt?.dispose();
      b.dispose();
      tensors.dispose();
    }
  });
});
