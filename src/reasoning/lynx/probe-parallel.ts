/**
 * Runs the first (largest) probe layer on several threads: each thread owns a contiguous range of output units, for
 * the forward pass and for the fused gradient + Adam step, over buffers in shared memory. Threads never write the same
 * element and every element is computed by the same code in the same order, so results are bit-identical to one
 * thread. The main thread takes the first range itself and blocks (Atomics.wait) until the workers finish theirs.
 *
 * Workers run the kernels' own source (`Function.prototype.toString`), so they need no separate build step and work
 * the same from TypeScript sources and from the compiled package.
 */
import { Worker } from 'node:worker_threads';
import { denseAdamStep, denseForward } from './probe-kernels.js';

/** The layer-1 buffers, allocated in shared memory. */
export interface SharedLayer {
  inDim: number;
  outDim: number;
  batch: number;
  /** Batch input [batch][inDim], output activations [batch][outDim], output deltas [batch][outDim]. */
  x: Float32Array;
  out: Float32Array;
  delta: Float32Array;
  weight: Float32Array;
  bias: Float32Array;
  mW: Float32Array;
  vW: Float32Array;
  mb: Float32Array;
  vb: Float32Array;
}

export function sharedFloat32(n: number): Float32Array {
  return new Float32Array(new SharedArrayBuffer(Math.max(1, n) * 4));
}

export function allocSharedLayer(inDim: number, outDim: number, batch: number): SharedLayer {
  return {
    inDim,
    outDim,
    batch,
    x: sharedFloat32(batch * inDim),
    out: sharedFloat32(batch * outDim),
    delta: sharedFloat32(batch * outDim),
    weight: sharedFloat32(inDim * outDim),
    bias: sharedFloat32(outDim),
    mW: sharedFloat32(inDim * outDim),
    vW: sharedFloat32(inDim * outDim),
    mb: sharedFloat32(outDim),
    vb: sharedFloat32(outDim),
  };
}

// control block layout (Int32Array)
const SEQ = 0;
const CMD = 1;
const ROWS = 2;
const RELU = 3;
const DONE = 4; // DONE + w: last sequence number worker w finished
const CMD_FORWARD = 1;
const CMD_STEP = 2;
const CMD_EXIT = 3;
// parameters (Float64Array): alpha, invSw, lrT, beta1, beta2, eps

const WORKER_SOURCE = (kernels: string) => `
const { workerData } = require('node:worker_threads');
${kernels}
const { ctrl: ctrlBuf, params: paramsBuf, layer: L, index, j0, j1 } = workerData;
const ctrl = new Int32Array(ctrlBuf);
const params = new Float64Array(paramsBuf);
const fwd = new Float64Array(L.batch * L.outDim);
const acc = new Float64Array(256);
const idx = new Int32Array((j1 - j0) * L.batch);
const coef = new Float64Array((j1 - j0) * L.batch);
const cnt = new Int32Array(j1 - j0);
let seen = 0;
for (;;) {
  Atomics.wait(ctrl, ${SEQ}, seen);
  const seq = Atomics.load(ctrl, ${SEQ});
  if (seq === seen) continue;
  seen = seq;
  const cmd = ctrl[${CMD}];
  if (cmd === ${CMD_EXIT}) break;
  const rows = ctrl[${ROWS}];
  if (cmd === ${CMD_FORWARD}) {
    denseForward(L.x, rows, L.inDim, L.weight, L.bias, L.outDim, j0, j1, L.out, ctrl[${RELU}], fwd);
  } else if (cmd === ${CMD_STEP}) {
    denseAdamStep(L.x, rows, L.inDim, L.delta, L.outDim, j0, j1, L.weight, L.mW, L.vW, L.bias, L.mb, L.vb,
      params[0], params[1], params[2], params[3], params[4], params[5], acc, idx, coef, cnt);
  }
  Atomics.store(ctrl, ${DONE} + index, seq);
  Atomics.notify(ctrl, ${DONE} + index);
}
`;

/** Layer-1 forward and Adam step split over `threads` threads (the caller's thread included). */
export class ParallelLayer {
  private readonly workers: Worker[] = [];
  private readonly ctrl: Int32Array;
  private readonly params: Float64Array;
  private readonly ranges: [number, number][];
  private readonly fwd: Float64Array;
  private readonly acc: Float64Array;
  private readonly idx: Int32Array;
  private readonly coef: Float64Array;
  private readonly cnt: Int32Array;
  private seq = 0;
  private disposed = false;

  constructor(
    readonly layer: SharedLayer,
    threads: number,
  ) {
    const T = Math.max(1, Math.min(threads, Math.floor(layer.outDim / 4) || 1));
    this.ranges = [];
    for (let t = 0; t < T; t++) {
      // boundaries on multiples of 4 keep the kernel in its blocked path
      const a = Math.round((t * layer.outDim) / T / 4) * 4;
      const b = t === T - 1 ? layer.outDim : Math.round(((t + 1) * layer.outDim) / T / 4) * 4;
      this.ranges.push([a, b]);
    }
    this.ctrl = new Int32Array(new SharedArrayBuffer(4 * (DONE + T)));
    this.params = new Float64Array(new SharedArrayBuffer(8 * 6));
    const [m0, m1] = this.ranges[0]!;
    this.fwd = new Float64Array(layer.batch * layer.outDim);
    this.acc = new Float64Array(256);
    this.idx = new Int32Array((m1 - m0) * layer.batch);
    this.coef = new Float64Array((m1 - m0) * layer.batch);
    this.cnt = new Int32Array(m1 - m0);
    const source = WORKER_SOURCE(`const denseForward = ${denseForward.toString()};\nconst denseAdamStep = ${denseAdamStep.toString()};`);
    for (let t = 1; t < T; t++) {
      const w = new Worker(source, {
        eval: true,
        workerData: { ctrl: this.ctrl.buffer, params: this.params.buffer, layer, index: t, j0: this.ranges[t]![0], j1: this.ranges[t]![1] },
      });
      w.unref();
      this.workers.push(w);
    }
  }

  get threads(): number {
    return this.ranges.length;
  }

  /** out = act(x W^T + b) for the first `rows` rows of the shared batch. */
  forward(rows: number, relu: number): void {
    const L = this.layer;
    this.run(CMD_FORWARD, rows, relu, () => denseForward(L.x, rows, L.inDim, L.weight, L.bias, L.outDim, this.ranges[0]![0], this.ranges[0]![1], L.out, relu, this.fwd));
  }

  /** Gradient + Adam step from `delta` (see `denseAdamStep`). */
  step(rows: number, alpha: number, invSw: number, lrT: number, beta1: number, beta2: number, eps: number): void {
    const L = this.layer;
    const p = this.params;
    p[0] = alpha;
    p[1] = invSw;
    p[2] = lrT;
    p[3] = beta1;
    p[4] = beta2;
    p[5] = eps;
    const [j0, j1] = this.ranges[0]!;
    this.run(CMD_STEP, rows, 0, () =>
      denseAdamStep(L.x, rows, L.inDim, L.delta, L.outDim, j0, j1, L.weight, L.mW, L.vW, L.bias, L.mb, L.vb, alpha, invSw, lrT, beta1, beta2, eps, this.acc, this.idx, this.coef, this.cnt),
    );
  }

  private run(cmd: number, rows: number, relu: number, mine: () => void): void {
    if (this.disposed) throw new Error('ParallelLayer used after dispose');
    const c = this.ctrl;
    if (this.workers.length > 0) {
      c[CMD] = cmd;
      c[ROWS] = rows;
      c[RELU] = relu;
      const seq = ++this.seq;
      Atomics.store(c, SEQ, seq);
      Atomics.notify(c, SEQ);
      mine();
      for (let w = 1; w <= this.workers.length; w++) {
        for (;;) {
          const done = Atomics.load(c, DONE + w);
          if (done === seq) break;
          // A batch takes well under a second; silence this long means the worker died.
          if (Atomics.wait(c, DONE + w, done, 300_000) === 'timed-out') throw new Error('probe worker thread stopped responding');
        }
      }
    } else {
      mine();
    }
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    if (this.workers.length > 0) {
      this.ctrl[CMD] = CMD_EXIT;
      Atomics.store(this.ctrl, SEQ, ++this.seq);
      Atomics.notify(this.ctrl, SEQ);
      for (const w of this.workers) void w.terminate();
    }
  }
}
