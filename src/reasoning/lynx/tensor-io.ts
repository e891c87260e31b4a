/**
 * The one place where LYNX code reads and writes tensor files (probe weights, dataset feature shards).
 *
 * Format: safetensors (8-byte little-endian header length, JSON header with `__metadata__` and per-tensor
 * `dtype`/`shape`/`data_offsets`, then the raw little-endian data), restricted to float32. This is a small stand-in
 * with the announced signatures of `src/import/safetensors.ts` (`writeSafetensors`, `SafetensorsFile.open`); when that
 * module lands, this file should delegate to it and nothing else changes.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { endianness } from 'node:os';
import { InvalidInputError } from '../../util/errors.js';
import { writeFileAtomic } from '../../util/fs.js';

export interface F32Tensor {
  dtype: 'F32';
  shape: number[];
  data: Float32Array;
}

if (endianness() !== 'LE') throw new Error('tensor files are little-endian; this host is big-endian');

/** Write tensors (and string metadata) atomically: readers see the old file or the complete new one. */
export function writeSafetensors(path: string, tensors: Record<string, F32Tensor>, metadata?: Record<string, string>): void {
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  const names = Object.keys(tensors);
  for (const name of names) {
    const t = tensors[name]!;
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (count !== t.data.length) {
      throw new Error(`tensor ${name}: shape [${t.shape}] holds ${count} values but data has ${t.data.length}`);
    }
    header[name] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  // Pad the header with spaces so the data starts 8-byte aligned (as the reference writer does).
  const pad = (8 - ((8 + json.length) % 8)) % 8;
  if (pad) json = Buffer.concat([json, Buffer.alloc(pad, 0x20)]);
  const out = new Uint8Array(8 + json.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  let at = 8 + json.length;
  for (const name of names) {
    const d = tensors[name]!.data;
    out.set(new Uint8Array(d.buffer, d.byteOffset, d.byteLength), at);
    at += d.byteLength;
  }
  writeFileAtomic(path, out);
}

interface Entry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

/** A safetensors file opened for reading float32 tensors. */
export class SafetensorsFile {
  private constructor(
    readonly path: string,
    private readonly fd: number,
    private readonly dataStart: number,
    private readonly entries: Map<string, Entry>,
    readonly metadata: Record<string, string>,
  ) {}

  static open(path: string): SafetensorsFile {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (e) {
      throw new InvalidInputError(`cannot open tensor file ${path}: ${(e as Error).message}`);
    }
    try {
      const size = fstatSync(fd).size;
      const head = Buffer.alloc(8);
      if (size < 8 || readSync(fd, head, 0, 8, 0) !== 8) throw new InvalidInputError(`${path} is truncated: no safetensors header`);
      const n = Number(head.readBigUInt64LE(0));
      if (n <= 0 || 8 + n > size) throw new InvalidInputError(`${path} is not a safetensors file (header length ${n}, file ${size} bytes)`);
      const json = Buffer.alloc(n);
      readSync(fd, json, 0, n, 8);
      let header: Record<string, unknown>;
      try {
        header = JSON.parse(json.toString('utf8')) as Record<string, unknown>;
      } catch (e) {
        throw new InvalidInputError(`${path}: malformed safetensors header (${(e as Error).message})`);
      }
      const entries = new Map<string, Entry>();
      let metadata: Record<string, string> = {};
      for (const [name, v] of Object.entries(header)) {
        if (name === '__metadata__') metadata = (v ?? {}) as Record<string, string>;
        else entries.set(name, v as Entry);
      }
      for (const [name, e] of entries) {
        if (8 + n + e.data_offsets[1] > size) throw new InvalidInputError(`${path} is truncated: tensor ${name} extends past the end`);
      }
      return new SafetensorsFile(path, fd, 8 + n, entries, metadata);
    } catch (e) {
      closeSync(fd);
      throw e;
    }
  }

  names(): string[] {
    return [...this.entries.keys()];
  }

  shape(name: string): number[] {
    return this.entry(name).shape.slice();
  }

  /** Read a float32 tensor (a fresh, aligned copy). */
  float32(name: string): F32Tensor {
    const e = this.entry(name);
    if (e.dtype !== 'F32') throw new InvalidInputError(`${this.path}: tensor ${name} is ${e.dtype}, expected F32`);
    const [a, b] = e.data_offsets;
    const data = new Float32Array((b - a) / 4);
    const bytes = new Uint8Array(data.buffer);
    let got = 0;
    while (got < bytes.length) {
      const r = readSync(this.fd, bytes, got, bytes.length - got, this.dataStart + a + got);
      if (r <= 0) throw new InvalidInputError(`${this.path} is truncated: tensor ${name}`);
      got += r;
    }
    return { dtype: 'F32', shape: e.shape.slice(), data };
  }

  close(): void {
    closeSync(this.fd);
  }

  private entry(name: string): Entry {
    const e = this.entries.get(name);
    if (!e) throw new InvalidInputError(`${this.path} has no tensor '${name}' (has: ${this.names().join(', ')})`);
    return e;
  }
}

/** Read every tensor of a file at once. */
export function readSafetensors(path: string): { tensors: Record<string, F32Tensor>; metadata: Record<string, string> } {
  const f = SafetensorsFile.open(path);
  try {
    const tensors: Record<string, F32Tensor> = {};
    for (const name of f.names()) tensors[name] = f.float32(name);
    return { tensors, metadata: f.metadata };
  } finally {
    f.close();
  }
}
