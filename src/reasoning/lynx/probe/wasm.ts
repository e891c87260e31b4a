/**
 * WebAssembly SIMD versions of the probe's two first-layer kernels (`denseForward` and `denseAdamStep` in
 * probe-kernels.ts), five to six times faster than scalar JavaScript because each instruction does four float32
 * multiply-adds. The module is emitted here, byte by byte, from the small assembler below: no toolchain, no
 * dependency, no binary blob. It only runs training; `Probe.predict` keeps the scalar double-precision kernels, so
 * predictions do not depend on the machine.
 *
 * Differences from the scalar kernels: sums are float32 in four lanes, added lane 0 + 1 + 2 + 3 at the end (as BLAS
 * does); Adam runs in float32. Each output still has one fixed order of operations, so results do not depend on how
 * units are split over threads. Requirements (else the caller falls back to the scalar kernels): inDim and outDim
 * multiples of 4, unit ranges on multiples of 4, rows padded to an even count (the extra row is zero).
 *
 * Memory: one shared WebAssembly.Memory holds every buffer; threads instantiate the same module on it.
 */

// ---------------------------------------------------------------------------------------------------------------
// A minimal WebAssembly assembler (just what the two kernels need)

const leb = (n: number): number[] => {
  const out: number[] = [];
  n >>>= 0;
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n) b |= 0x80;
    out.push(b);
  } while (n);
  return out;
};
const sleb = (n: number): number[] => {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && !(b & 0x40)) || (n === -1 && b & 0x40)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
};
const name = (s: string) => [...leb(s.length), ...Buffer.from(s, 'utf8')];
const vec = (items: number[][]) => [...leb(items.length), ...items.flat()];
const section = (id: number, bytes: number[]) => [id, ...leb(bytes.length), ...bytes];

type Code = number[];
const I32 = 0x7f;
const F32 = 0x7d;
const V128 = 0x7b;
const get = (i: number): Code => [0x20, ...leb(i)];
const set = (i: number): Code => [0x21, ...leb(i)];
const tee = (i: number): Code => [0x22, ...leb(i)];
const i32 = (v: number): Code => [0x41, ...sleb(v)];
const f32c = (v: number): Code => [0x43, ...new Uint8Array(new Float32Array([v]).buffer)];
const op = {
  eqz: [0x45],
  ltU: [0x49],
  add: [0x6a],
  mul: [0x6c],
  shl: [0x74],
  fNe: [0x5c],
  fGt: [0x5e],
  fSqrt: [0x91],
  fAdd: [0x92],
  fSub: [0x93],
  fMul: [0x94],
  fDiv: [0x95],
  select: [0x1b],
  end: [0x0b],
};
const i32Load: Code = [0x28, 2, 0];
const f32Load: Code = [0x2a, 2, 0];
const i32Store: Code = [0x36, 2, 0];
const f32Store: Code = [0x38, 2, 0];
const simd = (code: number): Code => [0xfd, ...leb(code)];
const v = {
  load: [...simd(0x00), 4, 0],
  store: [...simd(0x0b), 4, 0],
  zero: [...simd(0x0c), ...new Array<number>(16).fill(0)],
  splat: simd(0x13),
  lane: (l: number): Code => [...simd(0x1f), l],
  sqrt: simd(0xe3),
  add: simd(0xe4),
  sub: simd(0xe5),
  mul: simd(0xe6),
  div: simd(0xe7),
};
/** while (cond) { body } */
const whileLoop = (cond: Code, body: Code): Code => [0x02, 0x40, 0x03, 0x40, ...cond, ...op.eqz, 0x0d, 1, ...body, 0x0c, 0, 0x0b, 0x0b];
/** if (cond) { body } */
const ifThen = (cond: Code, body: Code): Code => [...cond, 0x04, 0x40, ...body, 0x0b];
/** dst += inc (i32 locals) */
const inc = (l: number, by: Code): Code => [...get(l), ...by, ...op.add, ...set(l)];
/** local-index allocator for one function */
class Locals {
  private readonly groups: { type: number; count: number }[] = [];
  private next: number;
  constructor(params: number) {
    this.next = params;
  }
  take(type: number, count = 1): number {
    const first = this.next;
    this.next += count;
    const last = this.groups[this.groups.length - 1];
    if (last && last.type === type) last.count += count;
    else this.groups.push({ type, count });
    return first;
  }
  encode(): Code {
    return vec(this.groups.map((g) => [...leb(g.count), g.type]));
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Kernel 1: forward. Params (byte pointers and counts):
// x, w, b, rows (even), inDim, outDim, j0, j1, out, relu

function forwardFunction(): { params: number[]; code: Code } {
  const [X, W, B, ROWS, IN, OUT_DIM, J0, J1, OUT, RELU] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
  const L = new Locals(10);
  const i = L.take(I32);
  const j = L.take(I32);
  const k = L.take(I32);
  const rb = L.take(I32); // row bytes
  const x0 = L.take(I32);
  const x1 = L.take(I32);
  const w0 = L.take(I32, 4);
  const o = L.take(I32);
  const s = L.take(F32);
  const acc = L.take(V128, 8);
  const xa = L.take(V128);
  const xb = L.take(V128);
  const wq = L.take(V128);

  const body: Code = [];
  const e = (...parts: Code[]) => body.push(...parts.flat());
  e(get(IN), i32(2), op.shl, set(rb));
  e(i32(0), set(i));
  const perUnitBlock: Code = [];
  const u = (...parts: Code[]) => perUnitBlock.push(...parts.flat());
  u(get(W), get(j), get(rb), op.mul, op.add, set(w0));
  for (let q = 1; q < 4; q++) u(get(w0 + q - 1), get(rb), op.add, set(w0 + q));
  for (let a = 0; a < 8; a++) u(v.zero, set(acc + a));
  u(i32(0), set(k));
  const kBody: Code = [];
  const kb = (...parts: Code[]) => kBody.push(...parts.flat());
  kb(get(x0), get(k), op.add, v.load, set(xa));
  kb(get(x1), get(k), op.add, v.load, set(xb));
  for (let q = 0; q < 4; q++) {
    kb(get(w0 + q), get(k), op.add, v.load, tee(wq));
    kb(get(xa), v.mul, get(acc + q), v.add, set(acc + q));
    kb(get(wq), get(xb), v.mul, get(acc + 4 + q), v.add, set(acc + 4 + q));
  }
  kb(inc(k, i32(16)));
  u(whileLoop([...get(k), ...get(rb), ...op.ltU], kBody));
  // out[(i + r) * outDim + j + q] = act(((l0 + l1) + l2) + l3 + b[j + q])
  for (let r = 0; r < 2; r++) {
    for (let q = 0; q < 4; q++) {
      const a = acc + r * 4 + q;
      u(get(a), v.lane(0), get(a), v.lane(1), op.fAdd, get(a), v.lane(2), op.fAdd, get(a), v.lane(3), op.fAdd);
      u(get(B), get(j), i32(q), op.add, i32(2), op.shl, op.add, f32Load, op.fAdd, set(s));
      // relu: s > 0 ? s : 0 (NaN becomes 0, as the scalar kernel)
      u(ifThen(get(RELU), [...get(s), ...f32c(0), ...get(s), ...f32c(0), ...op.fGt, ...op.select, ...set(s)]));
      u(get(OUT), get(i), i32(r), op.add, get(OUT_DIM), op.mul, get(j), op.add, i32(q), op.add, i32(2), op.shl, op.add, set(o));
      u(get(o), get(s), f32Store);
    }
  }
  u(inc(j, i32(4)));
  const perRow: Code = [
    ...get(X), ...get(i), ...get(rb), ...op.mul, ...op.add, ...set(x0),
    ...get(x0), ...get(rb), ...op.add, ...set(x1),
    ...get(J0), ...set(j),
    ...whileLoop([...get(j), ...get(J1), ...op.ltU], perUnitBlock),
    ...inc(i, i32(2)),
  ];
  e(whileLoop([...get(i), ...get(ROWS), ...op.ltU], perRow));
  e(op.end);
  return { params: [I32, I32, I32, I32, I32, I32, I32, I32, I32, I32], code: [...L.encode(), ...body] };
}

// ---------------------------------------------------------------------------------------------------------------
// Kernel 2: gradient + Adam. Params:
// x, rows, inDim, delta, outDim, j0, j1, w, mw, vw, b, mb, vb, acc, idx, coef (pointers/counts, i32),
// alpha, invSw, lrT, beta1, beta2, eps (f32)

function stepFunction(): { params: number[]; code: Code } {
  const [X, ROWS, IN, DELTA, OUT_DIM, J0, J1, W, MW, VW, B, MB, VB, ACC, IDX, COEF] = Array.from({ length: 16 }, (_, n) => n);
  const [ALPHA, INVSW, LRT, B1, B2, EPS] = [16, 17, 18, 19, 20, 21];
  const L = new Locals(22);
  const j = L.take(I32);
  const i = L.take(I32);
  const n = L.take(I32);
  const c = L.take(I32);
  const k = L.take(I32);
  const rb = L.take(I32);
  const r = L.take(I32, 4);
  const row = L.take(I32);
  const dv = L.take(F32);
  const gb = L.take(F32);
  const g = L.take(F32);
  const m = L.take(F32);
  const vv = L.take(F32);
  const sc = L.take(V128, 4);
  const a = L.take(V128);
  const gv = L.take(V128);
  const mv = L.take(V128);
  const vvv = L.take(V128);
  const wv = L.take(V128);
  const alpha4 = L.take(V128);
  const inv4 = L.take(V128);
  const lr4 = L.take(V128);
  const b14 = L.take(V128);
  const c14 = L.take(V128);
  const b24 = L.take(V128);
  const c24 = L.take(V128);
  const eps4 = L.take(V128);

  const body: Code = [];
  const e = (...parts: Code[]) => body.push(...parts.flat());
  e(get(IN), i32(2), op.shl, set(rb));
  e(get(ALPHA), v.splat, set(alpha4), get(INVSW), v.splat, set(inv4), get(LRT), v.splat, set(lr4));
  e(get(B1), v.splat, set(b14), f32c(1), get(B1), op.fSub, v.splat, set(c14));
  e(get(B2), v.splat, set(b24), f32c(1), get(B2), op.fSub, v.splat, set(c24));
  e(get(EPS), v.splat, set(eps4));

  const unit: Code = [];
  const u = (...parts: Code[]) => unit.push(...parts.flat());
  // non-zero deltas of unit j: idx[n] = byte offset of row i in x, coef[n] = delta
  u(i32(0), set(n), f32c(0), set(gb), i32(0), set(i));
  u(
    whileLoop([...get(i), ...get(ROWS), ...op.ltU], [
      ...get(DELTA), ...get(i), ...get(OUT_DIM), ...op.mul, ...get(j), ...op.add, ...i32(2), ...op.shl, ...op.add, ...f32Load, ...set(dv),
      ...ifThen([...get(dv), ...f32c(0), ...op.fNe], [
        ...get(IDX), ...get(n), ...i32(2), ...op.shl, ...op.add, ...get(X), ...get(i), ...get(rb), ...op.mul, ...op.add, ...i32Store,
        ...get(COEF), ...get(n), ...i32(2), ...op.shl, ...op.add, ...get(dv), ...f32Store,
        ...get(gb), ...get(dv), ...op.fAdd, ...set(gb),
        ...inc(n, i32(1)),
      ]),
      ...inc(i, i32(1)),
    ]),
  );
  // acc = 0
  u(i32(0), set(k), whileLoop([...get(k), ...get(rb), ...op.ltU], [...get(ACC), ...get(k), ...op.add, ...v.zero, ...v.store, ...inc(k, i32(16))]));
  // four rows at a time: acc += (s0·x0 + s1·x1) + (s2·x2 + s3·x3)
  const loadRow = (q: number): Code => [
    ...get(IDX), ...get(c), ...i32(q), ...op.add, ...i32(2), ...op.shl, ...op.add, ...i32Load, ...set(r + q),
    ...get(COEF), ...get(c), ...i32(q), ...op.add, ...i32(2), ...op.shl, ...op.add, ...f32Load, ...v.splat, ...set(sc + q),
  ];
  const term = (q: number): Code => [...get(sc + q), ...get(r + q), ...get(k), ...op.add, ...v.load, ...v.mul];
  u(i32(0), set(c));
  u(
    whileLoop([...get(c), ...i32(4), ...op.add, ...get(n), ...i32(1), ...op.add, ...op.ltU], [
      ...loadRow(0), ...loadRow(1), ...loadRow(2), ...loadRow(3),
      ...i32(0), ...set(k),
      ...whileLoop([...get(k), ...get(rb), ...op.ltU], [
        ...get(ACC), ...get(k), ...op.add,
        ...get(ACC), ...get(k), ...op.add, ...v.load,
        ...term(0), ...term(1), ...v.add, ...term(2), ...term(3), ...v.add, ...v.add,
        ...v.add, ...v.store,
        ...inc(k, i32(16)),
      ]),
      ...inc(c, i32(4)),
    ]),
  );
  u(
    whileLoop([...get(c), ...get(n), ...op.ltU], [
      ...loadRow(0),
      ...i32(0), ...set(k),
      ...whileLoop([...get(k), ...get(rb), ...op.ltU], [
        ...get(ACC), ...get(k), ...op.add,
        ...get(ACC), ...get(k), ...op.add, ...v.load, ...term(0), ...v.add,
        ...v.store,
        ...inc(k, i32(16)),
      ]),
      ...inc(c, i32(1)),
    ]),
  );
  // Adam on row j: g = (acc + alpha w) invSw; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g²; w -= lrT m / (√v + eps)
  u(get(j), get(rb), op.mul, set(row));
  const at = (base: number): Code => [...get(base), ...get(row), ...op.add, ...get(k), ...op.add];
  u(
    i32(0), set(k),
    whileLoop([...get(k), ...get(rb), ...op.ltU], [
      ...at(W), ...v.load, ...set(wv),
      ...get(ACC), ...get(k), ...op.add, ...v.load, ...get(alpha4), ...get(wv), ...v.mul, ...v.add, ...get(inv4), ...v.mul, ...set(gv),
      ...get(b14), ...at(MW), ...v.load, ...v.mul, ...get(c14), ...get(gv), ...v.mul, ...v.add, ...set(mv),
      ...get(b24), ...at(VW), ...v.load, ...v.mul, ...get(c24), ...get(gv), ...v.mul, ...get(gv), ...v.mul, ...v.add, ...set(vvv),
      ...at(MW), ...get(mv), ...v.store,
      ...at(VW), ...get(vvv), ...v.store,
      ...at(W), ...get(wv), ...get(lr4), ...get(mv), ...v.mul, ...get(vvv), ...v.sqrt, ...get(eps4), ...v.add, ...v.div, ...v.sub, ...v.store,
      ...inc(k, i32(16)),
    ]),
  );
  // bias
  const bAt = (base: number): Code => [...get(base), ...get(j), ...i32(2), ...op.shl, ...op.add];
  u(get(gb), get(INVSW), op.fMul, set(g));
  u(get(B1), bAt(MB), f32Load, op.fMul, f32c(1), get(B1), op.fSub, get(g), op.fMul, op.fAdd, set(m));
  u(get(B2), bAt(VB), f32Load, op.fMul, f32c(1), get(B2), op.fSub, get(g), op.fMul, get(g), op.fMul, op.fAdd, set(vv));
  u(bAt(MB), get(m), f32Store, bAt(VB), get(vv), f32Store);
  u(bAt(B), bAt(B), f32Load, get(LRT), get(m), op.fMul, get(vv), op.fSqrt, get(EPS), op.fAdd, op.fDiv, op.fSub, f32Store);
  u(inc(j, i32(1)));

  e(get(J0), set(j), whileLoop([...get(j), ...get(J1), ...op.ltU], unit));
  e(op.end);
  return { params: [...new Array<number>(16).fill(I32), ...new Array<number>(6).fill(F32)], code: [...L.encode(), ...body] };
}

/** The module's bytes: imports shared memory `env.mem` (pages `pages`), exports `forward` and `step`. */
export function probeWasmModule(pages: number): Uint8Array {
  const fns = [forwardFunction(), stepFunction()];
  const types = fns.map((f) => [0x60, ...vec(f.params.map((p) => [p])), 0]);
  const bytes = [
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vec(types)),
    // memory import: flags 3 = shared with maximum
    ...section(2, vec([[...name('env'), ...name('mem'), 0x02, 0x03, ...leb(pages), ...leb(pages)]])),
    ...section(3, vec(fns.map((_, i) => leb(i)))),
    ...section(7, vec([[...name('forward'), 0x00, 0], [...name('step'), 0x00, 1]])),
    ...section(10, vec(fns.map((f) => [...leb(f.code.length), ...f.code]))),
  ];
  return new Uint8Array(bytes);
}

/** Can this runtime run the kernels (WebAssembly with SIMD and shared memory)? */
export function wasmSimdAvailable(): boolean {
  try {
    const mem = new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });
    new WebAssembly.Instance(new WebAssembly.Module(probeWasmModule(1) as BufferSource), { env: { mem } });
    return true;
  } catch {
    return false;
  }
}

export interface WasmExports {
  forward(x: number, w: number, b: number, rows: number, inDim: number, outDim: number, j0: number, j1: number, out: number, relu: number): void;
  step(
    x: number, rows: number, inDim: number, delta: number, outDim: number, j0: number, j1: number,
    w: number, mw: number, vw: number, b: number, mb: number, vb: number, acc: number, idx: number, coef: number,
    alpha: number, invSw: number, lrT: number, beta1: number, beta2: number, eps: number,
  ): void;
}

export function instantiateKernels(bytes: Uint8Array, mem: WebAssembly.Memory): WasmExports {
  return new WebAssembly.Instance(new WebAssembly.Module(bytes as BufferSource), { env: { mem } }).exports as unknown as WasmExports;
}
