/**
 * Named tensors that live for as long as a graph does (weights and graph inputs), in one ggml context allocated in
 * one buffer of a backend. Graphs built on top of them (builder.ts) hold only their metadata.
 */
import { GgufFile } from '../formats/gguf/reader.js';
import { encodeTensor, Q8_0_BLOCK, rowBytes, type TensorType } from '../formats/gguf/encode.js';
import { GgmlType, type GgmlApi } from '../native/ggml.js';
import type { Pointer } from '../native/pointer.js';
import { InvalidInputError } from '../util/errors.js';
import type { CpuBackend } from './backend.js';
import { GraphError } from './errors.js';

export interface TensorSpec {
  name: string;
  /** ggml order: dims[0] is the fastest-varying (a matrix of GGUF dims [in, out] maps in -> out). */
  dims: number[];
  /**
   * Default F32. F16 and Q8_0 hold frozen weights read by graphs run forward (an early-exit head at a quarter of the
   * memory and bandwidth): written from float32, which they store encoded; not readable back.
   */
  type?: GgmlType.F32 | GgmlType.I32 | GgmlType.F16 | GgmlType.Q8_0;
}

const ENCODED: Partial<Record<GgmlType, TensorType>> = { [GgmlType.F16]: 'f16', [GgmlType.Q8_0]: 'q8_0' };

export class TensorStore {
  private readonly g: GgmlApi;
  private ctx: Pointer | null;
  private buffer: Pointer | null = null;
  private readonly tensors = new Map<string, { t: Pointer; dims: number[]; type: GgmlType }>();

  /** Create every tensor of `specs` (no two with one name) and allocate them on `backend`. */
  constructor(backend: CpuBackend, specs: readonly TensorSpec[]) {
    const g = (this.g = backend.g);
    this.ctx = g.ggml_init({ mem_size: (specs.length + 8) * g.ggml_tensor_overhead(), mem_buffer: null, no_alloc: true });
    try {
      for (const s of specs) {
        if (this.tensors.has(s.name)) throw new GraphError(`internal: tensor ${s.name} declared twice`);
        if (s.dims.length < 1 || s.dims.length > 2) throw new GraphError(`internal: tensor ${s.name} has ${s.dims.length} dims (1 or 2 supported)`);
        const type = s.type ?? GgmlType.F32;
        if (type === GgmlType.Q8_0 && s.dims[0]! % Q8_0_BLOCK !== 0) throw new InvalidInputError(`tensor ${s.name}: Q8_0 needs rows of a multiple of ${Q8_0_BLOCK} values (got ${s.dims[0]})`);
        const t = s.dims.length === 1 ? g.ggml_new_tensor_1d(this.ctx, type, s.dims[0]!) : g.ggml_new_tensor_2d(this.ctx, type, s.dims[0]!, s.dims[1]!);
        g.ggml_set_name(t, s.name);
        this.tensors.set(s.name, { t, dims: [...s.dims], type });
      }
      this.buffer = g.ggml_backend_alloc_ctx_tensors(this.ctx, backend.backend);
      if (!this.buffer) throw new GraphError(`ggml could not allocate ${specs.length} tensors (${(this.bytes() / 2 ** 20).toFixed(1)} MiB)`);
    } catch (e) {
      this.dispose();
      throw e;
    }
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  get names(): string[] {
    return [...this.tensors.keys()];
  }

  /** The tensor called `name` (to build graphs with). */
  get(name: string): Pointer {
    return this.entry(name).t;
  }

  dims(name: string): number[] {
    return [...this.entry(name).dims];
  }

  /** Mark tensors as parameters: an optimizer built over a graph that reaches them updates them. */
  markParams(names: readonly string[]): void {
    for (const n of names) this.g.ggml_set_param(this.get(n));
  }

  write(name: string, data: Float32Array | Int32Array): void {
    const e = this.entry(name);
    const want = e.dims.reduce((a, b) => a * b, 1);
    const encoded = ENCODED[e.type];
    if (encoded) {
      if (!(data instanceof Float32Array) || data.length !== want) throw new InvalidInputError(`tensor ${name} takes ${want} float32 values to encode (got ${data.length} ${data.constructor.name})`);
      const bytes = encodeTensor(data, encoded, e.dims[0]!);
      this.g.ggml_backend_tensor_set(e.t, bytes, 0, bytes.byteLength);
      return;
    }
    const ok = e.type === GgmlType.I32 ? data instanceof Int32Array : data instanceof Float32Array;
    if (!ok || data.length !== want) throw new InvalidInputError(`tensor ${name} takes ${want} ${e.type === GgmlType.I32 ? 'int32' : 'float32'} values (got ${data.length} ${data.constructor.name})`);
    this.g.ggml_backend_tensor_set(e.t, data, 0, data.byteLength);
  }

  /** The current values of an F32 tensor (ggml order). */
  read(name: string): Float32Array {
    const e = this.entry(name);
    if (e.type !== GgmlType.F32) throw new InvalidInputError(`tensor ${name} is not float32`);
    const out = new Float32Array(e.dims.reduce((a, b) => a * b, 1));
    this.g.ggml_backend_tensor_get(e.t, out, 0, out.byteLength);
    return out;
  }

  /** Fill `names` from the GGUF at `path`, each tensor decoded to F32 (F32, F16, BF16 or Q8_0 in the file). */
  loadGguf(path: string, names: readonly string[]): void {
    const f = GgufFile.open(path);
    try {
      for (const name of names) {
        const info = f.tensorInfo(name);
        if (!info) throw new InvalidInputError(`${path}: tensor ${name} is missing`);
        const want = this.entry(name).dims;
        if (info.dims.join(',') !== want.join(',')) throw new InvalidInputError(`${path}: ${name} has shape [${info.dims}], expected [${want}]`);
        this.write(name, f.tensor(name));
      }
    } finally {
      f.close();
    }
  }

  private entry(name: string): { t: Pointer; dims: number[]; type: GgmlType } {
    if (!this.ctx) throw new GraphError('these tensors were disposed');
    const e = this.tensors.get(name);
    if (!e) throw new GraphError(`internal: no tensor ${name}`);
    return e;
  }

  private bytes(): number {
    let n = 0;
    for (const e of this.tensors.values()) {
      const encoded = ENCODED[e.type];
      n += encoded ? rowBytes(encoded, e.dims[0]!) * (e.dims[1] ?? 1) : e.dims.reduce((a, b) => a * b, 1) * 4;
    }
    return n;
  }

  dispose(): void {
    if (this.buffer) this.g.ggml_backend_buffer_free(this.buffer);
    if (this.ctx) this.g.ggml_free(this.ctx);
    this.buffer = this.ctx = null;
  }
}
