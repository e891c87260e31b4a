/**
 * Early-exit heads trained by distillation (src/graph/ + ggml-opt): each head, the model's final RMSNorm (frozen)
 * and a hidden -> vocab matrix (trained), is fitted to the full model's next-token distribution at temperature 1 on
 * hidden states of its block. ggml-opt's cross-entropy against soft labels is KL(teacher || head) plus the teacher's
 * entropy, so minimising it is KL distillation; the teacher may be cut to its top k tokens (renormalised), which is
 * what fits a 152k vocabulary in memory. The metric is agreement: the head's argmax equals the full model's.
 *
 * All heads train on the same batches, one optimizer (AdamW by default) and graph per head, with the shared cosine
 * schedule (schedule.ts). Batches are whole: the rows left over after the last full batch of an epoch (of a chunk,
 * when the data streams in) are not used that epoch, and the per-epoch shuffle moves different rows there.
 */
import { loadLlama } from '../native/library.js';
import { CpuBackend } from '../graph/backend.js';
import { GraphBuilder } from '../graph/builder.js';
import { buildHead } from '../graph/decoder.js';
import { GraphOptimizer } from '../graph/optimizer.js';
import { TensorStore } from '../graph/tensors.js';
import { InvalidInputError } from '../util/errors.js';
import { Rng } from '../util/rng.js';
import { cosineLr } from './schedule.js';

/** The teacher's distribution per row: dense (k = nVocab, no ids) or its top k tokens renormalised. */
export interface TeacherTable {
  k: number;
  /** rows x k token ids, when k < nVocab. */
  ids?: Int32Array;
  /** rows x k probabilities. */
  probs: Float32Array;
  /** The full model's argmax per row. */
  argmax: Int32Array;
  /** Entropy (nats) of the (kept) distribution per row: cross-entropy minus it is the KL. */
  entropy: Float32Array;
}

/** Rows of hidden states (per head block, rows x nEmbd) and the teacher's distribution after each. */
export interface HeadTrainingData {
  rows: number;
  hidden: ReadonlyMap<number, Float32Array>;
  teacher: TeacherTable;
}

/**
 * Training data produced while training (online distillation): chunks decoded by the engine on demand, each used
 * for one epoch's batches and then dropped, so memory holds one chunk, not the data set. `positions` (the rows of
 * one epoch, at most) sizes the learning-rate schedule.
 */
export interface HeadDataStream {
  positions: number;
  chunks(epoch: number): AsyncIterable<HeadTrainingData>;
}

export interface HeadTrainOptions {
  nEmbd: number;
  nVocab: number;
  rmsEps: number;
  /** The model's final RMSNorm weight, shared and frozen. */
  norm: Float32Array;
  /** Per block, the matrix to start from ([nVocab, nEmbd] row-major): the model's output matrix, or zeros. */
  init: ReadonlyMap<number, Float32Array>;
  /** Rows per optimizer step. Default 32. */
  batch?: number;
  /** Passes over the data. Default 3. */
  epochs?: number;
  /** Peak learning rate (AdamW). Default 3e-3. */
  lr?: number;
  /** Final learning rate of the cosine decay. Default lr / 10. */
  lrMin?: number;
  warmupSteps?: number;
  weightDecay?: number;
  threads?: number;
  seed?: number;
  /** Evaluate on the validation data every this many steps (0: before and after only). */
  evalEvery?: number;
  onStep?: (s: { step: number; total: number; layer: number; loss: number; agreement: number; lr: number }) => void;
  onEval?: (e: HeadEval) => void;
  signal?: AbortSignal;
}

export interface HeadEval {
  step: number;
  layer: number;
  /** Mean KL(teacher || head) in nats, and the agreement of the head's argmax with the teacher's. */
  kl: number;
  agreement: number;
  rows: number;
}

export interface HeadTrainingReport {
  steps: number;
  epochs: number;
  batch: number;
  rows: number;
  seconds: number;
  evals: HeadEval[];
  stopped: boolean;
}

/** Graph metadata of one head's forward, backward and optimizer graphs. */
const COMPUTE_BYTES = 16 * 1024 * 1024;

interface HeadGraph {
  layer: number;
  tensors: TensorStore;
  builder: GraphBuilder;
  optimizer: GraphOptimizer;
}

/** Train every head of `init` on `train`; returns the trained matrices ([nVocab, nEmbd] row-major) and a report. */
export async function trainHeads(
  train: HeadTrainingData | HeadDataStream,
  validation: HeadTrainingData | undefined,
  o: HeadTrainOptions,
): Promise<{ matrices: Map<number, Float32Array>; report: HeadTrainingReport }> {
  const layers = [...o.init.keys()].sort((a, b) => a - b);
  const { nEmbd: E, nVocab: V } = o;
  const stream: HeadDataStream = 'chunks' in train ? train : { positions: train.rows, chunks: async function* () { yield train; } };
  if (!('chunks' in train)) checkData('training data', train, layers, E, V);
  if (validation) checkData('validation data', validation, layers, E, V);
  const batch = Math.min(o.batch ?? 32, stream.positions, validation && validation.rows > 0 ? validation.rows : Infinity);
  if (!Number.isInteger(batch) || batch < 1) throw new InvalidInputError(`the head batch must be a positive integer and the data must have rows (batch ${o.batch}, ${stream.positions} rows)`);
  const epochs = o.epochs ?? 3;
  const lr = o.lr ?? 3e-3;
  const lrMin = o.lrMin ?? lr / 10;
  if (!(lr > 0) || !(lrMin > 0) || lrMin > lr) throw new InvalidInputError(`learning rates must satisfy 0 < lrMin <= lr (got lr ${lr}, lrMin ${lrMin})`);
  if (!Number.isInteger(epochs) || epochs < 1) throw new InvalidInputError(`epochs must be a positive integer (got ${epochs})`);
  const total = Math.max(1, Math.floor(stream.positions / batch) * epochs);
  const llama = loadLlama();
  // One backend (and so one ggml scheduler) per head: ggml-opt contexts sharing a scheduler disturb each other's steps
  // (a head trained beside another learned a quarter of what it learned alone).
  const backends: CpuBackend[] = [];
  const graphs: HeadGraph[] = [];
  const labels = new Float32Array(batch * V);
  const hiddenBuf = new Float32Array(batch * E);
  const evals: HeadEval[] = [];
  let step = 0;
  let stopped = false;
  const t0 = performance.now();
  let evalMs = 0;
  try {
    for (const layer of layers) {
      const backend = new CpuBackend(llama, o.threads ?? 1);
      backends.push(backend);
      const tensors = new TensorStore(backend, [
        { name: 'hidden', dims: [E, batch] },
        { name: 'norm', dims: [E] },
        { name: 'matrix', dims: [E, V] },
      ]);
      tensors.write('norm', o.norm);
      tensors.write('matrix', o.init.get(layer)!);
      tensors.markParams(['matrix']);
      const builder = new GraphBuilder(llama.ggml, { memBytes: COMPUTE_BYTES });
      const logits = buildHead(builder, { rmsEps: o.rmsEps }, tensors.get('hidden'), { norm: tensors.get('norm'), matrix: tensors.get('matrix') });
      const optimizer = new GraphOptimizer(llama, { backend, builder, inputs: tensors.get('hidden'), outputs: logits, loss: 'cross-entropy' });
      graphs.push({ layer, tensors, builder, optimizer });
    }
    const fill = (data: HeadTrainingData, rows: ArrayLike<number>, layer: number) => {
      const src = data.hidden.get(layer)!;
      for (let i = 0; i < batch; i++) hiddenBuf.set(src.subarray(rows[i]! * E, (rows[i]! + 1) * E), i * E);
      denseLabels(data.teacher, rows, batch, V, labels);
    };
    // Inputs and labels are written once ggml-opt has allocated the step's graph (as the graph trainer does).
    const load = (h: HeadGraph) => {
      h.tensors.write('hidden', hiddenBuf);
      h.optimizer.setLabels(labels);
    };
    const evaluate = () => {
      if (!validation || validation.rows < batch) return;
      const e0 = performance.now();
      const n = Math.floor(validation.rows / batch);
      for (const h of graphs) {
        let ce = 0;
        let agree = 0;
        let ent = 0;
        for (let b = 0; b < n; b++) {
          const rows = Array.from({ length: batch }, (_, i) => b * batch + i);
          fill(validation, rows, h.layer);
          const r = h.optimizer.evaluate(() => load(h));
          ce += r.loss;
          agree += r.accuracy;
          for (const row of rows) ent += validation.teacher.entropy[row]!;
        }
        const e: HeadEval = { step, layer: h.layer, kl: ce / n - ent / (n * batch), agreement: agree / n, rows: n * batch };
        evals.push(e);
        o.onEval?.(e);
      }
      evalMs += performance.now() - e0;
    };
    evaluate();
    let rows = 0;
    outer: for (let epoch = 1; epoch <= epochs; epoch++) {
      let part = 0;
      for await (const chunk of stream.chunks(epoch)) {
        if (chunk !== train) checkData('training data', chunk, layers, E, V);
        if (epoch === 1) rows += chunk.rows;
        const order = Int32Array.from({ length: chunk.rows }, (_, i) => i);
        Rng.derive(o.seed ?? 0, `heads-epoch-${epoch}-${part++}`).shuffle(order as unknown as number[]);
        for (let b = 0; b + batch <= chunk.rows; b += batch) {
          if (o.signal?.aborted) {
            stopped = true;
            break outer;
          }
          const picked = order.subarray(b, b + batch);
          const rate = cosineLr(Math.min(step, total), total, lr, lrMin, o.warmupSteps ?? 0);
          step++;
          for (const h of graphs) {
            fill(chunk, picked, h.layer);
            const r = h.optimizer.step({ lr: rate, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: o.weightDecay ?? 0 }, () => load(h));
            o.onStep?.({ step, total, layer: h.layer, loss: r.loss, agreement: r.accuracy, lr: rate });
          }
          if (o.evalEvery && step % o.evalEvery === 0 && step < total) evaluate();
          // Let the event loop run (signals, progress) between steps.
          if (step % 8 === 0) await new Promise((r) => setImmediate(r));
        }
      }
    }
    const seconds = (performance.now() - t0 - evalMs) / 1000;
    evaluate();
    const matrices = new Map(graphs.map((h) => [h.layer, h.tensors.read('matrix')]));
    return { matrices, report: { steps: step, epochs, batch, rows, seconds, evals, stopped } };
  } finally {
    for (const h of graphs) {
      h.optimizer.dispose();
      h.builder.dispose();
      h.tensors.dispose();
    }
    for (const b of backends) b.dispose();
  }
}

/** The teacher rows `rows` as dense distributions (batch x nVocab) in `out`. */
export function denseLabels(t: TeacherTable, rows: ArrayLike<number>, batch: number, nVocab: number, out: Float32Array): void {
  if (!t.ids) {
    for (let i = 0; i < batch; i++) out.set(t.probs.subarray(rows[i]! * nVocab, (rows[i]! + 1) * nVocab), i * nVocab);
    return;
  }
  out.fill(0);
  for (let i = 0; i < batch; i++) {
    const r = rows[i]!;
    for (let j = 0; j < t.k; j++) out[i * nVocab + t.ids[r * t.k + j]!] = t.probs[r * t.k + j]!;
  }
}

function checkData(what: string, d: HeadTrainingData, layers: number[], E: number, V: number): void {
  for (const l of layers) {
    const h = d.hidden.get(l);
    if (!h || h.length !== d.rows * E) throw new InvalidInputError(`${what}: hidden states of block ${l} must be ${d.rows} rows of ${E} (got ${h?.length ?? 'none'})`);
  }
  const t = d.teacher;
  if (t.probs.length !== d.rows * t.k || (t.ids ? t.ids.length !== d.rows * t.k : t.k !== V)) {
    throw new InvalidInputError(`${what}: the teacher table must hold ${d.rows} rows of ${t.ids ? t.k : V} probabilities`);
  }
}
