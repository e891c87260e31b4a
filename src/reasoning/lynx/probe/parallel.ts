/**
 * Runs the first (largest) probe layer on several threads: each thread owns a contiguous range of output units, for
 * the forward pass and for the fused gradient + Adam step, over buffers in shared memory. Threads never write the same
 * element and every element is computed by the same code in the same order, so results are bit-identical to one
 * thread. The main thread takes the first range itself and blocks (Atomics.wait) until the workers finish theirs.
 *
 * Two kernel backends: 'js' (probe-kernels.ts, scalar, double accumulation) and 'wasm' (probe-wasm.ts, SIMD,
 * float32). Workers get the kernels' own source (`Function.prototype.toString`) or the module's bytes, so they need no
 * separate build step and work the same from TypeScript sources and from the compiled package.
 */
import { Worker } from 'node:worker_threads';
import { InvalidInputError } from '../../../util/errors.js';
import { denseAdamStep, denseForward } from './kernels.js';
import { instantiateKernels, probeWasmModule, wasmSimdAvailable, type WasmExports } from './wasm.js';

export type KernelChoice = 'auto' | 'js' | 'wasm';
export type KernelBackend = 'js' | 'wasm';

/** The layer-1 buffers, in shared memory. */
export interface SharedLayer {
  inDim: number;
  outDim: number;
  batch: number;
  /** Batch input [batch (+1 padding row)][inDim], output activations [batch (+1)][outDim], deltas [batch][outDim]. */
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

/** Byte offsets of the buffers inside the WebAssembly memory (per-thread scratch last). */
interface WasmLayout {
  x: number;
  out: number;
  delta: number;
  weight: number;
  bias: number;
  mW: number;
  vW: number;
  mb: number;
  vb: number;
  scratch: { acc: number; idx: number; coef: number }[];
  pages: number;
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

const WORKER_SOURCE = `
const { workerData } = require('node:worker_threads');
const { ctrl: ctrlBuf, params: paramsBuf, layer: L, index, j0, j1, backend, wasm } = workerData;
const ctrl = new Int32Array(ctrlBuf);
const params = new Float64Array(paramsBuf);
let forward, step;
if (backend === 'wasm') {
  const k = new WebAssembly.Instance(new WebAssembly.Module(wasm.bytes), { env: { mem: wasm.mem } }).exports;
  const o = wasm.layout;
  const s = o.scratch[index];
  forward = (rows, relu) => k.forward(o.x, o.weight, o.bias, rows + (rows & 1), L.inDim, L.outDim, j0, j1, o.out, relu);
  step = (rows, p) => k.step(o.x, rows, L.inDim, o.delta, L.outDim, j0, j1, o.weight, o.mW, o.vW, o.bias, o.mb, o.vb,
    s.acc, s.idx, s.coef, p[0], p[1], p[2], p[3], p[4], p[5]);
} else {
  __KERNELS__
  const fwd = new Float64Array(L.batch * L.outDim);
  const acc = new Float64Array(256);
  const idx = new Int32Array((j1 - j0) * L.batch);
  const coef = new Float64Array((j1 - j0) * L.batch);
  const cnt = new Int32Array(j1 - j0);
  forward = (rows, relu) => denseForward(L.x, rows, L.inDim, L.weight, L.bias, L.outDim, j0, j1, L.out, relu, fwd);
  step = (rows, p) => denseAdamStep(L.x, rows, L.inDim, L.delta, L.outDim, j0, j1, L.weight, L.mW, L.vW, L.bias, L.mb, L.vb,
    p[0], p[1], p[2], p[3], p[4], p[5], acc, idx, coef, cnt);
}
let seen = 0;
for (;;) {
  Atomics.wait(ctrl, ${SEQ}, seen);
  const seq = Atomics.load(ctrl, ${SEQ});
  if (seq === seen) continue;
  seen = seq;
  const cmd = ctrl[${CMD}];
  if (cmd === ${CMD_EXIT}) break;
  const rows = ctrl[${ROWS}];
  if (cmd === ${CMD_FORWARD}) forward(rows, ctrl[${RELU}]);
  else if (cmd === ${CMD_STEP}) step(rows, params);
  Atomics.store(ctrl, ${DONE} + index, seq);
  Atomics.notify(ctrl, ${DONE} + index);
}
`;

function sharedFloat32(n: number): Float32Array {
  return new Float32Array(new SharedArrayBuffer(Math.max(1, n) * 4));
}

/** Which backend `choice` resolves to for a layer of these sizes. */
export function resolveKernels(choice: KernelChoice, inDim: number, outDim: number): KernelBackend {
  const fits = inDim % 4 === 0 && outDim % 4 === 0;
  if (choice === 'js') return 'js';
  if (choice === 'wasm') {
    if (!fits) throw new InvalidInputError(`the wasm kernels need layer sizes divisible by 4 (got ${inDim} → ${outDim}); use kernels 'js'`);
    if (!wasmSimdAvailable()) throw new InvalidInputError('this runtime has no WebAssembly SIMD; use kernels \'js\'');
    return 'wasm';
  }
  return fits && wasmSimdAvailable() ? 'wasm' : 'js';
}

/** Layer-1 forward and Adam step split over `threads` threads (the caller's thread included). */
export class ParallelLayer {
  readonly layer: SharedLayer;
  private readonly workers: Worker[] = [];
  private readonly ctrl: Int32Array;
  private readonly params: Float64Array;
  private readonly ranges: [number, number][];
  private readonly forwardMine: (rows: number, relu: number) => void;
  private readonly stepMine: (rows: number, p: Float64Array) => void;
  private seq = 0;
  private disposed = false;

  constructor(
    inDim: number,
    outDim: number,
    batch: number,
    threads: number,
    readonly backend: KernelBackend = 'js',
  ) {
    const T = Math.max(1, Math.min(Math.floor(threads), Math.floor(outDim / 4) || 1));
    this.ranges = [];
    for (let t = 0; t < T; t++) {
      // boundaries on multiples of 4 keep the kernels in their blocked paths
      const a = Math.round((t * outDim) / T / 4) * 4;
      const b = t === T - 1 ? outDim : Math.round(((t + 1) * outDim) / T / 4) * 4;
      this.ranges.push([a, b]);
    }
    this.ctrl = new Int32Array(new SharedArrayBuffer(4 * (DONE + T)));
    this.params = new Float64Array(new SharedArrayBuffer(8 * 6));
    const [m0, m1] = this.ranges[0]!;
    let wasm: { bytes: Uint8Array; mem: WebAssembly.Memory; layout: WasmLayout } | undefined;

    if (backend === 'wasm') {
      const layout = wasmLayout(inDim, outDim, batch, T);
      const mem = new WebAssembly.Memory({ initial: layout.pages, maximum: layout.pages, shared: true });
      const bytes = probeWasmModule(layout.pages);
      const buf = mem.buffer;
      const view = (off: number, n: number) => new Float32Array(buf, off, n);
      const pad = batch + (batch & 1);
      this.layer = {
        inDim,
        outDim,
        batch,
        x: view(layout.x, pad * inDim),
        out: view(layout.out, pad * outDim),
        delta: view(layout.delta, batch * outDim),
        weight: view(layout.weight, inDim * outDim),
        bias: view(layout.bias, outDim),
        mW: view(layout.mW, inDim * outDim),
        vW: view(layout.vW, inDim * outDim),
        mb: view(layout.mb, outDim),
        vb: view(layout.vb, outDim),
      };
      const k: WasmExports = instantiateKernels(bytes, mem);
      const s = layout.scratch[0]!;
      this.forwardMine = (rows, relu) => k.forward(layout.x, layout.weight, layout.bias, rows + (rows & 1), inDim, outDim, m0, m1, layout.out, relu);
      this.stepMine = (rows, p) =>
        k.step(layout.x, rows, inDim, layout.delta, outDim, m0, m1, layout.weight, layout.mW, layout.vW, layout.bias, layout.mb, layout.vb,
          s.acc, s.idx, s.coef, p[0]!, p[1]!, p[2]!, p[3]!, p[4]!, p[5]!);
      wasm = { bytes, mem, layout };
    } else {
      const L: SharedLayer = {
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
      this.layer = L;
      const fwd = new Float64Array(batch * outDim);
      const acc = new Float64Array(256);
      const idx = new Int32Array((m1 - m0) * batch);
      const coef = new Float64Array((m1 - m0) * batch);
      const cnt = new Int32Array(m1 - m0);
      this.forwardMine = (rows, relu) => denseForward(L.x, rows, inDim, L.weight, L.bias, outDim, m0, m1, L.out, relu, fwd);
      this.stepMine = (rows, p) =>
        denseAdamStep(L.x, rows, inDim, L.delta, outDim, m0, m1, L.weight, L.mW, L.vW, L.bias, L.mb, L.vb, p[0]!, p[1]!, p[2]!, p[3]!, p[4]!, p[5]!, acc, idx, coef, cnt);
    }

    const source = WORKER_SOURCE.replace(
      '__KERNELS__',
      backend === 'js' ? `const denseForward = ${denseForward.toString()};\nconst denseAdamStep = ${denseAdamStep.toString()};` : '',
    );
    for (let t = 1; t < T; t++) {
      const w = new Worker(source, {
        eval: true,
        workerData: {
          ctrl: this.ctrl.buffer,
          params: this.params.buffer,
          layer: backend === 'js' ? this.layer : { inDim, outDim, batch },
          index: t,
          j0: this.ranges[t]![0],
          j1: this.ranges[t]![1],
          backend,
          wasm,
        },
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
    if (this.backend === 'wasm' && rows & 1) this.layer.x.fill(0, rows * this.layer.inDim, (rows + 1) * this.layer.inDim);
    this.run(CMD_FORWARD, rows, relu, () => this.forwardMine(rows, relu));
  }

  /** Gradient + Adam step from `delta` (see `denseAdamStep`). */
  step(rows: number, alpha: number, invSw: number, lrT: number, beta1: number, beta2: number, eps: number): void {
    const p = this.params;
    p[0] = alpha;
    p[1] = invSw;
    p[2] = lrT;
    p[3] = beta1;
    p[4] = beta2;
    p[5] = eps;
    this.run(CMD_STEP, rows, 0, () => this.stepMine(rows, p));
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

function wasmLayout(inDim: number, outDim: number, batch: number, threads: number): WasmLayout {
  let at = 0;
  const take = (floats: number) => {
    const off = at;
    at += Math.ceil((floats * 4) / 16) * 16;
    return off;
  };
  const pad = batch + (batch & 1);
  const layout = {
    x: take(pad * inDim),
    out: take(pad * outDim),
    delta: take(batch * outDim),
    weight: take(inDim * outDim),
    bias: take(outDim),
    mW: take(inDim * outDim),
    vW: take(inDim * outDim),
    mb: take(outDim),
    vb: take(outDim),
    scratch: Array.from({ length: threads }, () => ({ acc: take(inDim), idx: take(batch), coef: take(batch) })),
    pages: 0,
  };
  layout.pages = Math.max(1, Math.ceil(at / 65536));
  return layout;
}
