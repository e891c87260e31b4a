/**
 * GGUF reader: metadata and tensor infos are parsed at open; tensor data is read lazily, one tensor at a time, from
 * the file by offset (a multi-gigabyte model is never read whole). F32/F16/BF16/Q8_0 decode to Float32Array.
 */
import { closeSync, existsSync, fstatSync, openSync, readSync, statSync } from 'node:fs';
import { InvalidInputError, UnsupportedError } from '../../util/errors.js';
import { decodeTensor, GGML_TYPE_NAME, type TensorType } from './encode.js';
import { GGUF_ALIGNMENT, type GgufScalarType, type GgufValue, type GgufValueType } from './writer.js';

const GGUF_TYPE_NAME: Record<number, GgufScalarType | 'array'> = {
  0: 'u8', 1: 'i8', 2: 'u16', 3: 'i16', 4: 'u32', 5: 'i32', 6: 'f32', 7: 'bool', 8: 'string', 9: 'array', 10: 'u64',
  11: 'i64', 12: 'f64',
};

/** [elements per block, bytes per block] of every ggml type (ggml.c type_traits), to size tensors we cannot decode. */
const GGML_BLOCK: Record<number, [number, number]> = {
  0: [1, 4], 1: [1, 2], 2: [32, 18], 3: [32, 20], 6: [32, 22], 7: [32, 24], 8: [32, 34], 9: [32, 36],
  10: [256, 84], 11: [256, 110], 12: [256, 144], 13: [256, 176], 14: [256, 210], 15: [256, 292],
  16: [256, 66], 17: [256, 74], 18: [256, 98], 19: [256, 50], 20: [32, 18], 21: [256, 110], 22: [256, 82],
  23: [256, 136], 24: [1, 1], 25: [1, 2], 26: [1, 4], 27: [1, 8], 28: [1, 8], 29: [256, 56], 30: [1, 2],
  34: [256, 54], 35: [256, 66], 39: [32, 17], 40: [64, 36], 41: [128, 18], 42: [64, 18],
};

export interface GgufTensorInfo {
  name: string;
  /** ggml order: ne0 (the row length) first. */
  dims: number[];
  /** ggml_type id. */
  typeId: number;
  /** 'f32' | 'f16' | 'bf16' | 'q8_0', or undefined for a type this reader cannot decode. */
  type: TensorType | undefined;
  /** Absolute byte offset of the data in the file. */
  offset: number;
  /** Bytes of data. */
  bytes: number;
  count: number;
}

export interface GgufEntry {
  type: GgufValueType;
  value: GgufValue;
}

export class GgufFile {
  private fd: number | undefined;

  private constructor(
    readonly path: string,
    readonly version: number,
    readonly metadata: Map<string, GgufEntry>,
    readonly tensors: GgufTensorInfo[],
    readonly dataOffset: number,
    fd: number,
  ) {
    this.fd = fd;
  }

  /** Parse the header and tensor infos; throws InvalidInputError for a missing, foreign or truncated file. */
  static open(path: string): GgufFile {
    if (!existsSync(path)) throw new InvalidInputError(`GGUF file not found: ${path}`);
    if (statSync(path).isDirectory()) throw new InvalidInputError(`${path} is a folder, not a GGUF file`);
    const fd = openSync(path, 'r');
    try {
      const size = fstatSync(fd).size;
      const r = new HeaderReader(fd, size, path);
      const magic = r.bytes(4);
      if (Buffer.from(magic).toString('latin1') !== 'GGUF') {
        throw new InvalidInputError(`${path} is not a GGUF file (magic ${JSON.stringify(Buffer.from(magic).toString('latin1'))}, expected "GGUF")`);
      }
      const version = r.u32();
      if (version !== 2 && version !== 3) throw new UnsupportedError(`${path}: GGUF version ${version} is not supported (2 or 3)`);
      const nTensors = Number(r.u64());
      const nKv = Number(r.u64());
      const metadata = new Map<string, GgufEntry>();
      for (let i = 0; i < nKv; i++) {
        const key = r.str();
        const typeId = r.u32();
        metadata.set(key, readValue(r, typeId, key, path));
      }
      const infos: { name: string; dims: number[]; typeId: number; rel: number }[] = [];
      for (let i = 0; i < nTensors; i++) {
        const name = r.str();
        const nDims = r.u32();
        if (nDims > 4) throw new InvalidInputError(`${path}: tensor ${name} has ${nDims} dimensions (at most 4)`);
        const dims: number[] = [];
        for (let d = 0; d < nDims; d++) dims.push(Number(r.u64()));
        infos.push({ name, dims, typeId: r.u32(), rel: Number(r.u64()) });
      }
      const alignEntry = metadata.get('general.alignment');
      const alignment = alignEntry ? Number(alignEntry.value) : GGUF_ALIGNMENT;
      const dataOffset = Math.ceil(r.position / alignment) * alignment;
      const tensors = infos.map((t): GgufTensorInfo => {
        const count = t.dims.reduce((a, b) => a * b, 1);
        const block = GGML_BLOCK[t.typeId];
        if (!block) throw new UnsupportedError(`${path}: tensor ${t.name} has unknown ggml type ${t.typeId}`);
        const bytes = (count / block[0]) * block[1];
        const offset = dataOffset + t.rel;
        if (offset + bytes > size) {
          throw new InvalidInputError(
            `${path} is truncated: tensor ${t.name} needs bytes ${offset}..${offset + bytes} but the file has ${size} bytes (re-download or re-convert it)`,
          );
        }
        return { name: t.name, dims: t.dims, typeId: t.typeId, type: GGML_TYPE_NAME[t.typeId], offset, bytes, count };
      });
      return new GgufFile(path, version, metadata, tensors, dataOffset, fd);
    } catch (e) {
      closeSync(fd);
      throw e;
    }
  }

  /** A metadata value, or undefined. 64-bit integers come back as bigint. */
  get(key: string): GgufValue | undefined {
    return this.metadata.get(key)?.value;
  }

  /** A numeric metadata value as a number (64-bit integers converted). */
  getNumber(key: string): number | undefined {
    const v = this.get(key);
    if (v === undefined) return undefined;
    if (typeof v !== 'number' && typeof v !== 'bigint') throw new InvalidInputError(`${this.path}: metadata ${key} is not a number`);
    return Number(v);
  }

  getString(key: string): string | undefined {
    const v = this.get(key);
    if (v === undefined) return undefined;
    if (typeof v !== 'string') throw new InvalidInputError(`${this.path}: metadata ${key} is not a string`);
    return v;
  }

  tensorInfo(name: string): GgufTensorInfo | undefined {
    return this.tensors.find((t) => t.name === name);
  }

  /** Raw bytes of a tensor, read from the file now. */
  tensorBytes(name: string): Uint8Array {
    const t = this.tensorInfo(name);
    if (!t) throw new InvalidInputError(`${this.path}: no tensor named ${name}`);
    if (this.fd === undefined) throw new Error(`GGUF file ${this.path} is closed`);
    const out = new Uint8Array(t.bytes);
    let got = 0;
    while (got < t.bytes) {
      const n = readSync(this.fd, out, got, t.bytes - got, t.offset + got);
      if (n === 0) throw new InvalidInputError(`${this.path} is truncated inside tensor ${name}`);
      got += n;
    }
    return out;
  }

  /** A tensor's values decoded to f32 (ggml order: ne0 varies fastest). */
  tensor(name: string): Float32Array {
    const t = this.tensorInfo(name);
    if (!t) throw new InvalidInputError(`${this.path}: no tensor named ${name}`);
    if (!t.type) throw new UnsupportedError(`${this.path}: tensor ${name} has ggml type ${t.typeId}; only F32, F16, BF16 and Q8_0 can be decoded`);
    return decodeTensor(this.tensorBytes(name), t.type, t.count);
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}

function readValue(r: HeaderReader, typeId: number, key: string, path: string): GgufEntry {
  const type = GGUF_TYPE_NAME[typeId];
  if (!type) throw new InvalidInputError(`${path}: metadata ${key} has unknown value type ${typeId}`);
  if (type !== 'array') return { type, value: readScalar(r, type) };
  const elemId = r.u32();
  const elem = GGUF_TYPE_NAME[elemId];
  if (!elem || elem === 'array') throw new UnsupportedError(`${path}: metadata ${key} is an array of type ${elemId}`);
  const n = Number(r.u64());
  const values: (number | bigint | boolean | string)[] = new Array(n);
  for (let i = 0; i < n; i++) values[i] = readScalar(r, elem);
  return { type: `${elem}[]`, value: values };
}

function readScalar(r: HeaderReader, type: GgufScalarType): number | bigint | boolean | string {
  switch (type) {
    case 'u8': return r.view(1).getUint8(0);
    case 'i8': return r.view(1).getInt8(0);
    case 'u16': return r.view(2).getUint16(0, true);
    case 'i16': return r.view(2).getInt16(0, true);
    case 'u32': return r.u32();
    case 'i32': return r.view(4).getInt32(0, true);
    case 'u64': return r.u64();
    case 'i64': return r.view(8).getBigInt64(0, true);
    case 'f32': return r.view(4).getFloat32(0, true);
    case 'f64': return r.view(8).getFloat64(0, true);
    case 'bool': return r.view(1).getUint8(0) !== 0;
    case 'string': return r.str();
  }
}

/** Sequential reader over the header, refilled from the file in chunks (a Qwen vocabulary alone is several MB). */
class HeaderReader {
  private buf = Buffer.alloc(0);
  private start = 0; // file offset of buf[0]
  private pos = 0; // file offset of the next byte

  constructor(private readonly fd: number, private readonly size: number, private readonly path: string) {}

  get position(): number {
    return this.pos;
  }

  private need(n: number): void {
    if (this.pos + n > this.size) {
      throw new InvalidInputError(`${this.path} is truncated: its header ends at byte ${this.size}, inside the metadata or tensor list`);
    }
    if (this.pos + n <= this.start + this.buf.length) return;
    const len = Math.min(this.size - this.pos, Math.max(n, 1 << 20));
    const next = Buffer.alloc(len);
    let got = 0;
    while (got < len) {
      const k = readSync(this.fd, next, got, len - got, this.pos + got);
      if (k === 0) break;
      got += k;
    }
    if (got < n) throw new InvalidInputError(`${this.path} is truncated`);
    this.buf = next.subarray(0, got);
    this.start = this.pos;
  }

  bytes(n: number): Uint8Array {
    this.need(n);
    const o = this.pos - this.start;
    this.pos += n;
    return this.buf.subarray(o, o + n);
  }

  view(n: number): DataView {
    const b = this.bytes(n);
    return new DataView(b.buffer, b.byteOffset, n);
  }

  u32(): number {
    return this.view(4).getUint32(0, true);
  }

  u64(): bigint {
    return this.view(8).getBigUint64(0, true);
  }

  str(): string {
    const n = Number(this.u64());
    if (n > this.size) throw new InvalidInputError(`${this.path} is corrupt or truncated (a string of ${n} bytes in the header)`);
    return Buffer.from(this.bytes(n)).toString('utf8');
  }
}
