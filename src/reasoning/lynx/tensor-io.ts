/**
 * The one place where LYNX code reads and writes tensor files (probe weights, dataset feature shards): float32
 * safetensors through the project's reader/writer in `src/import/safetensors.ts` (atomic writes, lazy reads by offset).
 */
import { InvalidInputError } from '../../util/errors.js';
import { SafetensorsFile, writeSafetensors as writeSafetensorsFile } from '../../formats/safetensors.js';

export interface F32Tensor {
  dtype: 'F32';
  shape: number[];
  data: Float32Array;
}

/** Write float32 tensors (and string metadata) atomically: readers see the old file or the complete new one. */
export function writeSafetensors(path: string, tensors: Record<string, F32Tensor>, metadata?: Record<string, string>): void {
  writeSafetensorsFile(path, tensors, metadata);
}

/** A tensor file opened for reading float32 tensors. */
export class TensorFile {
  private constructor(private readonly file: SafetensorsFile) {}

  static open(path: string): TensorFile {
    return new TensorFile(SafetensorsFile.open(path));
  }

  get path(): string {
    return this.file.path;
  }

  get metadata(): Record<string, string> {
    return this.file.metadata;
  }

  names(): string[] {
    return this.file.tensors.map((t) => t.name);
  }

  shape(name: string): number[] {
    return this.info(name).shape.slice();
  }

  /** A whole float32 tensor (a fresh, aligned copy). */
  float32(name: string): F32Tensor {
    const info = this.info(name);
    if (info.dtype !== 'F32') throw new InvalidInputError(`${this.path}: tensor ${name} is ${info.dtype}, expected F32`);
    return { dtype: 'F32', shape: info.shape.slice(), data: this.file.tensor(name) };
  }

  /** Rows [start, start + count) of a float32 tensor. */
  rows(name: string, start: number, count: number): Float32Array {
    const info = this.info(name);
    if (info.dtype !== 'F32') throw new InvalidInputError(`${this.path}: tensor ${name} is ${info.dtype}, expected F32`);
    return this.file.rows(name, start, count);
  }

  close(): void {
    this.file.close();
  }

  private info(name: string) {
    const info = this.file.info(name);
    if (!info) throw new InvalidInputError(`${this.path} has no tensor '${name}' (has: ${this.names().join(', ')})`);
    return info;
  }
}

/** Read every tensor of a file at once. */
export function readSafetensors(path: string): { tensors: Record<string, F32Tensor>; metadata: Record<string, string> } {
  const f = TensorFile.open(path);
  try {
    const tensors: Record<string, F32Tensor> = {};
    for (const name of f.names()) tensors[name] = f.float32(name);
    return { tensors, metadata: f.metadata };
  } finally {
    f.close();
  }
}
