/**
 * GGUF v3 writer: metadata of every value type, tensors in F32/F16/BF16/Q8_0, 32-byte alignment. Tensor data can be
 * given lazily (a function returning the floats), so a multi-gigabyte model is encoded and written one tensor at a
 * time and never held in memory twice.
 */
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync, mkdirSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { encodeTensor, GGML_TYPE_ID, rowBytes, type TensorType } from './encode.js';

export type GgufScalarType = 'u8' | 'i8' | 'u16' | 'i16' | 'u32' | 'i32' | 'u64' | 'i64' | 'f32' | 'f64' | 'bool' | 'string';
export type GgufValueType = GgufScalarType | `${GgufScalarType}[]`;
export type GgufValue = number | bigint | boolean | string | readonly (number | bigint | boolean | string)[];

/** gguf_type ids (gguf.h). */
export const GGUF_TYPE_ID: Record<GgufScalarType | 'array', number> = {
  u8: 0, i8: 1, u16: 2, i16: 3, u32: 4, i32: 5, f32: 6, bool: 7, string: 8, array: 9, u64: 10, i64: 11, f64: 12,
};

export const GGUF_ALIGNMENT = 32;

/**
 * Tensor values: the floats, or a function called at write time that returns them whole or as an iterable of
 * chunks of whole rows (so a 3 GB embedding matrix can be streamed from its source a few rows at a time).
 */
export type TensorData = Float32Array | (() => Float32Array | Iterable<Float32Array>);

interface PendingTensor {
  name: string;
  dims: number[];
  type: TensorType;
  data: TensorData;
  bytes: number;
}

export class GgufWriter {
  private readonly kv = new Map<string, { type: GgufValueType; value: GgufValue }>();
  private readonly tensors: PendingTensor[] = [];
  /** Called with the bytes of each chunk of tensor data written (for progress bars). */
  onProgress?: (bytes: number) => void;

  /** Set a metadata key. Without a type: strings are 'string', booleans 'bool', integers 'u32'/'i32', other numbers 'f32', arrays likewise. */
  set(key: string, value: GgufValue, type?: GgufValueType): this {
    this.kv.set(key, { type: type ?? inferType(value), value });
    return this;
  }

  /**
   * Add a tensor. `dims` are in ggml order (ne0 first: the row length), e.g. a Hugging Face [out, in] matrix is
   * [in, out]. `data` holds dims.product floats, row-major in that order, or a function producing them on demand.
   */
  addTensor(name: string, dims: number[], data: TensorData, type: TensorType = 'f32'): this {
    if (this.tensors.some((t) => t.name === name)) throw new Error(`duplicate tensor ${name}`);
    if (name.length >= 64) throw new Error(`tensor name too long for ggml (max 63 bytes): ${name}`);
    const count = dims.reduce((a, b) => a * b, 1);
    if (typeof data !== 'function' && data.length !== count) {
      throw new Error(`tensor ${name}: ${data.length} values for dims [${dims.join(', ')}] (${count})`);
    }
    const bytes = rowBytes(type, dims[0]!) * (count / dims[0]!);
    this.tensors.push({ name, dims: dims.slice(), type, data, bytes });
    return this;
  }

  get tensorCount(): number {
    return this.tensors.length;
  }

  /** Bytes of tensor data the file will hold (without alignment padding). */
  get tensorBytes(): number {
    return this.tensors.reduce((a, t) => a + t.bytes, 0);
  }

  /** Write the file atomically (temporary name, fsync, rename). */
  write(path: string): void {
    mkdirSync(dirname(path), { recursive: true });
    const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
    const fd = openSync(tmp, 'w');
    try {
      const header = new ByteSink();
      header.raw(Buffer.from('GGUF', 'latin1'));
      header.u32(3);
      header.u64(BigInt(this.tensors.length));
      header.u64(BigInt(this.kv.size));
      for (const [key, { type, value }] of this.kv) {
        header.str(key);
        writeValue(header, type, value, key);
      }
      let offset = 0;
      for (const t of this.tensors) {
        header.str(t.name);
        header.u32(t.dims.length);
        for (const d of t.dims) header.u64(BigInt(d));
        header.u32(GGML_TYPE_ID[t.type]);
        header.u64(BigInt(offset));
        offset = align(offset + t.bytes);
      }
      header.pad(GGUF_ALIGNMENT);
      writeAll(fd, header.bytes());
      for (const t of this.tensors) {
        const data = typeof t.data === 'function' ? t.data() : t.data;
        const chunks = data instanceof Float32Array ? [data] : data;
        const count = t.dims.reduce((a, b) => a * b, 1);
        let values = 0;
        let written = 0;
        for (const chunk of chunks) {
          if (chunk.length % t.dims[0]! !== 0) throw new Error(`tensor ${t.name}: a chunk of ${chunk.length} values is not whole rows of ${t.dims[0]}`);
          values += chunk.length;
          if (values > count) break;
          const bytes = encodeTensor(chunk, t.type, t.dims[0]!);
          writeAll(fd, bytes);
          written += bytes.length;
          this.onProgress?.(bytes.length);
        }
        if (values !== count) throw new Error(`tensor ${t.name}: provider gave ${values} values, expected ${count}`);
        const padding = align(written) - written;
        if (padding > 0) writeAll(fd, new Uint8Array(padding));
      }
      fsyncSync(fd);
    } catch (e) {
      closeSync(fd);
      rmSync(tmp, { force: true }); // leave no half-written temporary file behind
      throw e;
    }
    closeSync(fd);
    renameSync(tmp, path);
  }
}

function align(n: number): number {
  return Math.ceil(n / GGUF_ALIGNMENT) * GGUF_ALIGNMENT;
}

function writeAll(fd: number, bytes: Uint8Array): void {
  let off = 0;
  while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
}

function inferType(value: GgufValue): GgufValueType {
  const scalar = (v: number | bigint | boolean | string): GgufScalarType =>
    typeof v === 'string' ? 'string' : typeof v === 'boolean' ? 'bool' : typeof v === 'bigint' ? 'i64' : Number.isInteger(v) ? (v < 0 ? 'i32' : 'u32') : 'f32';
  if (Array.isArray(value)) {
    if (value.length === 0) throw new Error('give the type of an empty array');
    return `${scalar(value[0]!)}[]` as GgufValueType;
  }
  return scalar(value as number | bigint | boolean | string);
}

function writeValue(sink: ByteSink, type: GgufValueType, value: GgufValue, key: string): void {
  if (type.endsWith('[]')) {
    if (!Array.isArray(value)) throw new Error(`metadata ${key}: type ${type} needs an array`);
    const elem = type.slice(0, -2) as GgufScalarType;
    sink.u32(GGUF_TYPE_ID.array);
    sink.u32(GGUF_TYPE_ID[elem]);
    sink.u64(BigInt(value.length));
    for (const v of value) writeScalar(sink, elem, v, key);
  } else {
    sink.u32(GGUF_TYPE_ID[type as GgufScalarType]);
    writeScalar(sink, type as GgufScalarType, value as number | bigint | boolean | string, key);
  }
}

function writeScalar(sink: ByteSink, type: GgufScalarType, v: number | bigint | boolean | string, key: string): void {
  const num = () => {
    if (typeof v !== 'number' && typeof v !== 'bigint') throw new Error(`metadata ${key}: ${type} needs a number`);
    return v;
  };
  switch (type) {
    case 'string':
      if (typeof v !== 'string') throw new Error(`metadata ${key}: string expected`);
      return sink.str(v);
    case 'bool':
      return sink.u8(v ? 1 : 0);
    case 'u8':
      return sink.u8(Number(num()));
    case 'i8':
      return sink.i8(Number(num()));
    case 'u16':
      return sink.u16(Number(num()));
    case 'i16':
      return sink.i16(Number(num()));
    case 'u32':
      return sink.u32(Number(num()));
    case 'i32':
      return sink.i32(Number(num()));
    case 'u64':
      return sink.u64(BigInt(num()));
    case 'i64':
      return sink.i64(BigInt(num()));
    case 'f32':
      return sink.f32(Number(num()));
    case 'f64':
      return sink.f64(Number(num()));
  }
}

/** A growable little-endian byte buffer. */
export class ByteSink {
  private buf = Buffer.alloc(1 << 16);
  private len = 0;

  private room(n: number): void {
    if (this.len + n <= this.buf.length) return;
    const next = Buffer.alloc(Math.max(this.buf.length * 2, this.len + n));
    this.buf.copy(next, 0, 0, this.len);
    this.buf = next;
  }
  raw(b: Uint8Array): void {
    this.room(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
  }
  u8(v: number): void { this.room(1); this.buf.writeUInt8(v, this.len); this.len += 1; }
  i8(v: number): void { this.room(1); this.buf.writeInt8(v, this.len); this.len += 1; }
  u16(v: number): void { this.room(2); this.buf.writeUInt16LE(v, this.len); this.len += 2; }
  i16(v: number): void { this.room(2); this.buf.writeInt16LE(v, this.len); this.len += 2; }
  u32(v: number): void { this.room(4); this.buf.writeUInt32LE(v >>> 0, this.len); this.len += 4; }
  i32(v: number): void { this.room(4); this.buf.writeInt32LE(v, this.len); this.len += 4; }
  u64(v: bigint): void { this.room(8); this.buf.writeBigUInt64LE(v, this.len); this.len += 8; }
  i64(v: bigint): void { this.room(8); this.buf.writeBigInt64LE(v, this.len); this.len += 8; }
  f32(v: number): void { this.room(4); this.buf.writeFloatLE(v, this.len); this.len += 4; }
  f64(v: number): void { this.room(8); this.buf.writeDoubleLE(v, this.len); this.len += 8; }
  str(s: string): void {
    const b = Buffer.from(s, 'utf8');
    this.u64(BigInt(b.length));
    this.raw(b);
  }
  pad(alignment: number): void {
    const n = Math.ceil(this.len / alignment) * alignment - this.len;
    this.raw(new Uint8Array(n));
  }
  bytes(): Uint8Array {
    return this.buf.subarray(0, this.len);
  }
}
