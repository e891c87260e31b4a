/**
 * safetensors: an 8-byte little-endian header length, a JSON header ({name: {dtype, shape, data_offsets}} and an
 * optional "__metadata__" string map), then the raw little-endian data. Tensors are read lazily by offset, one at a
 * time, so a 32B checkpoint is never held in memory; a sharded checkpoint is a folder with
 * `model.safetensors.index.json` ({"weight_map": {tensor: shard file}}).
 */
import { closeSync, existsSync, fstatSync, fsyncSync, mkdirSync, openSync, readdirSync, readSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { bf16sToFloats, floatToBf16, floatToHalf, halfsToFloats, u16View } from './gguf/encode.js';
import { InvalidInputError, UnsupportedError } from '../util/errors.js';
import { readJson, writeJsonAtomic } from '../util/fs.js';

export type SafetensorsDtype = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

const DTYPE_BYTES: Record<SafetensorsDtype, number> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 };

export interface SafetensorsTensorInfo {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  /** Absolute byte range in the file. */
  begin: number;
  end: number;
  /** The file holding it (for sharded checkpoints). */
  file: string;
}

/** Largest single read: readSync takes at most 2 GiB at once. */
const READ_CHUNK = 1 << 30;

/** One .safetensors file, header parsed, data read on demand. */
export class SafetensorsFile {
  private fd: number | undefined;
  private readonly byName = new Map<string, SafetensorsTensorInfo>();

  private constructor(
    readonly path: string,
    readonly tensors: SafetensorsTensorInfo[],
    readonly metadata: Record<string, string>,
    fd: number,
  ) {
    this.fd = fd;
    for (const t of tensors) this.byName.set(t.name, t);
  }

  static open(path: string): SafetensorsFile {
    if (!existsSync(path)) throw new InvalidInputError(`safetensors file not found: ${path}`);
    const fd = openSync(path, 'r');
    try {
      const size = fstatSync(fd).size;
      if (size < 8) throw new InvalidInputError(`${path} is truncated (${size} bytes, no safetensors header)`);
      const lenBytes = readExactly(fd, 0, 8, path);
      const headerLen = Number(new DataView(lenBytes.buffer).getBigUint64(0, true));
      if (headerLen > 100_000_000) throw new InvalidInputError(`${path} is not a safetensors file (header length ${headerLen})`);
      if (8 + headerLen > size) throw new InvalidInputError(`${path} is truncated inside its header (re-download it)`);
      let header: Record<string, unknown>;
      try {
        header = JSON.parse(Buffer.from(readExactly(fd, 8, headerLen, path)).toString('utf8')) as Record<string, unknown>;
      } catch {
        throw new InvalidInputError(`${path} is not a safetensors file (its header is not JSON)`);
      }
      const dataStart = 8 + headerLen;
      const tensors: SafetensorsTensorInfo[] = [];
      let metadata: Record<string, string> = {};
      for (const [name, raw] of Object.entries(header)) {
        if (name === '__metadata__') {
          metadata = (raw ?? {}) as Record<string, string>;
          continue;
        }
        const e = raw as { dtype: string; shape: number[]; data_offsets: [number, number] };
        if (!(e.dtype in DTYPE_BYTES)) throw new UnsupportedError(`${path}: tensor ${name} has dtype ${e.dtype} (supported: ${Object.keys(DTYPE_BYTES).join(', ')})`);
        const dtype = e.dtype as SafetensorsDtype;
        const count = e.shape.reduce((a, b) => a * b, 1);
        const [b0, b1] = e.data_offsets;
        if (b1 - b0 !== count * DTYPE_BYTES[dtype]) {
          throw new InvalidInputError(`${path}: tensor ${name} has ${b1 - b0} bytes for shape [${e.shape.join(', ')}] ${dtype}`);
        }
        const begin = dataStart + b0;
        const end = dataStart + b1;
        if (end > size) {
          throw new InvalidInputError(
            `${path} is truncated: tensor ${name} needs bytes ${begin}..${end} but the file has ${size} bytes (re-download it)`,
          );
        }
        tensors.push({ name, dtype, shape: e.shape.slice(), begin, end, file: path });
      }
      return new SafetensorsFile(path, tensors, metadata, fd);
    } catch (e) {
      closeSync(fd);
      throw e;
    }
  }

  info(name: string): SafetensorsTensorInfo | undefined {
    return this.byName.get(name);
  }

  /** Raw little-endian bytes of a tensor (a fresh, aligned buffer). */
  bytes(name: string): Uint8Array {
    const t = this.byName.get(name);
    if (!t) throw new InvalidInputError(`${this.path}: no tensor named ${name}`);
    if (this.fd === undefined) throw new Error(`${this.path} is closed`);
    return readExactly(this.fd, t.begin, t.end - t.begin, this.path, name);
  }

  /** A tensor as f32, row-major in its shape (the last dimension varies fastest). */
  tensor(name: string): Float32Array {
    const t = this.byName.get(name);
    if (!t) throw new InvalidInputError(`${this.path}: no tensor named ${name}`);
    return bytesToFloats(this.bytes(name), t.dtype);
  }

  /** Rows [start, start + count) of a tensor (a row: everything after the first dimension), as f32. */
  rows(name: string, start: number, count: number): Float32Array {
    const t = this.byName.get(name);
    if (!t) throw new InvalidInputError(`${this.path}: no tensor named ${name}`);
    if (this.fd === undefined) throw new Error(`${this.path} is closed`);
    const rowBytes = ((t.end - t.begin) / (t.shape[0] ?? 1)) | 0;
    if (start < 0 || count < 0 || start + count > (t.shape[0] ?? 1)) throw new RangeError(`${name}: rows ${start}..${start + count} out of range`);
    return bytesToFloats(readExactly(this.fd, t.begin + start * rowBytes, count * rowBytes, this.path, name), t.dtype);
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}

/** Convert raw little-endian bytes of a dtype to f32. */
export function bytesToFloats(bytes: Uint8Array, dtype: SafetensorsDtype): Float32Array {
  const n = bytes.byteLength / DTYPE_BYTES[dtype];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  switch (dtype) {
    case 'F32':
      return bytes.byteOffset % 4 === 0 ? new Float32Array(bytes.buffer, bytes.byteOffset, n) : new Float32Array(bytes.slice().buffer);
    case 'F16':
      return halfsToFloats(u16View(bytes));
    case 'BF16':
      return bf16sToFloats(u16View(bytes));
    default: {
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) {
        out[i] =
          dtype === 'F64' ? view.getFloat64(i * 8, true)
          : dtype === 'I64' ? Number(view.getBigInt64(i * 8, true))
          : dtype === 'I32' ? view.getInt32(i * 4, true)
          : dtype === 'I16' ? view.getInt16(i * 2, true)
          : dtype === 'I8' ? view.getInt8(i)
          : view.getUint8(i); // U8, BOOL
      }
      return out;
    }
  }
}

function readExactly(fd: number, position: number, length: number, path: string, what?: string): Uint8Array {
  const out = new Uint8Array(length);
  let got = 0;
  while (got < length) {
    const n = readSync(fd, out, got, Math.min(length - got, READ_CHUNK), position + got);
    if (n === 0) throw new InvalidInputError(`${path} is truncated${what ? ` inside tensor ${what}` : ''} (re-download it)`);
    got += n;
  }
  return out;
}

/**
 * All tensors of a checkpoint: one file, a sharded folder with `model.safetensors.index.json`, or a folder of
 * `*.safetensors` files. Tensor names are unique across shards.
 */
export class SafetensorsModel {
  private readonly where = new Map<string, SafetensorsFile>();

  private constructor(readonly files: SafetensorsFile[]) {
    for (const f of files) {
      for (const t of f.tensors) {
        if (this.where.has(t.name)) throw new InvalidInputError(`tensor ${t.name} appears in both ${this.where.get(t.name)!.path} and ${f.path}`);
        this.where.set(t.name, f);
      }
    }
  }

  /** Open a .safetensors file or a checkpoint folder. */
  static open(pathOrFolder: string): SafetensorsModel {
    if (!existsSync(pathOrFolder)) throw new InvalidInputError(`not found: ${pathOrFolder}`);
    if (!statSync(pathOrFolder).isDirectory()) return new SafetensorsModel([SafetensorsFile.open(pathOrFolder)]);
    const folder = pathOrFolder;
    const indexPath = join(folder, 'model.safetensors.index.json');
    if (existsSync(indexPath)) {
      const index = readJson<{ weight_map?: Record<string, string> }>(indexPath);
      if (!index.weight_map) throw new InvalidInputError(`${indexPath} has no "weight_map"`);
      const shards = [...new Set(Object.values(index.weight_map))];
      const missing = shards.filter((s) => !existsSync(join(folder, s)));
      if (missing.length) {
        throw new InvalidInputError(
          `${folder}: shard${missing.length > 1 ? 's' : ''} ${missing.join(', ')} listed in model.safetensors.index.json ${missing.length > 1 ? 'are' : 'is'} missing (download ${missing.length > 1 ? 'them' : 'it'} too)`,
        );
      }
      const files: SafetensorsFile[] = [];
      try {
        for (const s of shards) files.push(SafetensorsFile.open(join(folder, s)));
      } catch (e) {
        files.forEach((f) => f.close());
        throw e;
      }
      const model = new SafetensorsModel(files);
      for (const [name, shard] of Object.entries(index.weight_map)) {
        const f = model.where.get(name);
        if (!f) throw new InvalidInputError(`${folder}: tensor ${name} is listed in the index under ${shard} but that shard does not hold it`);
      }
      return model;
    }
    const names = readdirSync(folder).filter((n) => n.endsWith('.safetensors')).sort();
    if (names.length === 0) throw new InvalidInputError(`${folder} holds no .safetensors files (nor model.safetensors.index.json)`);
    return new SafetensorsModel(names.map((n) => SafetensorsFile.open(join(folder, n))));
  }

  get names(): string[] {
    return [...this.where.keys()];
  }

  has(name: string): boolean {
    return this.where.has(name);
  }

  info(name: string): SafetensorsTensorInfo {
    const f = this.where.get(name);
    if (!f) throw new InvalidInputError(`the checkpoint has no tensor named ${name}`);
    return f.info(name)!;
  }

  tensor(name: string): Float32Array {
    const f = this.where.get(name);
    if (!f) throw new InvalidInputError(`the checkpoint has no tensor named ${name}`);
    return f.tensor(name);
  }

  bytes(name: string): Uint8Array {
    const f = this.where.get(name);
    if (!f) throw new InvalidInputError(`the checkpoint has no tensor named ${name}`);
    return f.bytes(name);
  }

  rows(name: string, start: number, count: number): Float32Array {
    const f = this.where.get(name);
    if (!f) throw new InvalidInputError(`the checkpoint has no tensor named ${name}`);
    return f.rows(name, start, count);
  }

  /** A tensor in chunks of whole rows of at most ~`maxBytes` of f32 each (for streaming big matrices). */
  *chunks(name: string, maxBytes = 64 << 20): Generator<Float32Array> {
    const t = this.info(name);
    const nRows = t.shape[0] ?? 1;
    const rowFloats = t.shape.slice(1).reduce((a, b) => a * b, 1);
    const step = Math.max(1, Math.floor(maxBytes / (rowFloats * 4)));
    for (let r = 0; r < nRows; r += step) yield this.rows(name, r, Math.min(step, nRows - r));
  }

  /** Bytes of all tensor data. */
  get totalBytes(): number {
    let n = 0;
    for (const f of this.files) for (const t of f.tensors) n += t.end - t.begin;
    return n;
  }

  close(): void {
    for (const f of this.files) f.close();
  }
}

export type SafetensorsData = Float32Array | Float64Array | Int32Array | BigInt64Array | Int16Array | Int8Array | Uint8Array | Uint16Array;

export interface SafetensorsInput {
  dtype: SafetensorsDtype;
  shape: number[];
  /**
   * Values. For F16/BF16 a Float32Array is rounded (nearest even); a Uint16Array is taken as the raw bits. Other
   * dtypes take the matching typed array, or a Float32Array/number array converted.
   */
  data: SafetensorsData | readonly number[];
}

/** Write a safetensors file atomically (temporary name, fsync, rename), streaming tensor by tensor. */
export function writeSafetensors(path: string, tensors: Record<string, SafetensorsInput>, metadata?: Record<string, string>): void {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  const entries = Object.entries(tensors);
  for (const [name, t] of entries) {
    if (!(t.dtype in DTYPE_BYTES)) throw new UnsupportedError(`safetensors dtype ${t.dtype} (supported: ${Object.keys(DTYPE_BYTES).join(', ')})`);
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (t.data.length !== count) throw new InvalidInputError(`tensor ${name}: ${t.data.length} values for shape [${t.shape.join(', ')}]`);
    const bytes = count * DTYPE_BYTES[t.dtype];
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  // The header is padded with spaces to a multiple of 8 so that the data is 8-byte aligned (as the reference writer does).
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const headerBytes = Buffer.from(json, 'utf8');
  const lenBytes = Buffer.alloc(8);
  lenBytes.writeBigUInt64LE(BigInt(headerBytes.length));

  mkdirSync(dirname(path), { recursive: true });
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  const fd = openSync(tmp, 'w');
  try {
    writeAll(fd, lenBytes);
    writeAll(fd, headerBytes);
    for (const [, t] of entries) writeAll(fd, encode(t));
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
  closeSync(fd);
  renameSync(tmp, path);
}

/**
 * Write a sharded checkpoint: `model-0000i-of-0000n.safetensors` files of at most `maxShardBytes` of data each and
 * `model.safetensors.index.json`, as `save_pretrained` does.
 */
export function writeSafetensorsSharded(folder: string, tensors: Record<string, SafetensorsInput>, maxShardBytes: number): string[] {
  const shards: Record<string, SafetensorsInput>[] = [{}];
  let current = 0;
  let total = 0;
  for (const [name, t] of Object.entries(tensors)) {
    const bytes = t.data.length * DTYPE_BYTES[t.dtype];
    if (current > 0 && current + bytes > maxShardBytes) {
      shards.push({});
      current = 0;
    }
    shards[shards.length - 1]![name] = t;
    current += bytes;
    total += bytes;
  }
  const n = shards.length;
  const pad = (i: number) => String(i).padStart(5, '0');
  const files = shards.map((_, i) => `model-${pad(i + 1)}-of-${pad(n)}.safetensors`);
  const weightMap: Record<string, string> = {};
  shards.forEach((s, i) => {
    writeSafetensors(join(folder, files[i]!), s, { format: 'pt' });
    for (const name of Object.keys(s)) weightMap[name] = files[i]!;
  });
  writeJsonAtomic(join(folder, 'model.safetensors.index.json'), { metadata: { total_size: total }, weight_map: weightMap });
  return files;
}

function encode(t: SafetensorsInput): Uint8Array {
  const d = t.data;
  const asBytes = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  switch (t.dtype) {
    case 'F32':
      return asBytes(d instanceof Float32Array ? d : Float32Array.from(d as ArrayLike<number>));
    case 'F64':
      return asBytes(d instanceof Float64Array ? d : Float64Array.from(d as ArrayLike<number>));
    case 'F16':
    case 'BF16': {
      if (d instanceof Uint16Array) return asBytes(d);
      const out = new Uint16Array(d.length);
      const f = t.dtype === 'F16' ? floatToHalf : floatToBf16;
      for (let i = 0; i < d.length; i++) out[i] = f(Number(d[i]!));
      return asBytes(out);
    }
    case 'I64':
      return asBytes(d instanceof BigInt64Array ? d : BigInt64Array.from(Array.from(d as ArrayLike<number>, (v) => BigInt(v))));
    case 'I32':
      return asBytes(d instanceof Int32Array ? d : Int32Array.from(d as ArrayLike<number>));
    case 'I16':
      return asBytes(d instanceof Int16Array ? d : Int16Array.from(d as ArrayLike<number>));
    case 'I8':
      return asBytes(d instanceof Int8Array ? d : Int8Array.from(d as ArrayLike<number>));
    case 'U8':
    case 'BOOL':
      return asBytes(d instanceof Uint8Array ? d : Uint8Array.from(d as ArrayLike<number>));
  }
}

function writeAll(fd: number, bytes: Uint8Array): void {
  let off = 0;
  while (off < bytes.length) off += writeSync(fd, bytes, off, Math.min(bytes.length - off, READ_CHUNK));
}
