import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, rmSync, readFileSync, writeFileSync, mkdirSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SafetensorsFile, SafetensorsModel, writeSafetensors, writeSafetensorsSharded } from '../src/formats/safetensors.js';
import { InvalidInputError } from '../src/util/errors.js';
import { Rng } from '../src/util/rng.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'lynx-st-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function randn(n: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: n }, () => rng.normal());
}

describe('safetensors', () => {
  it('round-trips F32 exactly, F16/BF16 rounded, integer dtypes, metadata and an 8-byte aligned header', () => {
    const a = randn(6 * 5, 1);
    const path = join(dir, 'one.safetensors');
    writeSafetensors(
      path,
      {
        'w.f32': { dtype: 'F32', shape: [6, 5], data: a },
        'w.f16': { dtype: 'F16', shape: [6, 5], data: a },
        'w.bf16': { dtype: 'BF16', shape: [30], data: a },
        'i.i32': { dtype: 'I32', shape: [3], data: [1, -2, 3] },
        'i.i64': { dtype: 'I64', shape: [2], data: [5, -7] },
        'i.u8': { dtype: 'U8', shape: [2, 2], data: new Uint8Array([0, 1, 254, 255]) },
        scalar: { dtype: 'F32', shape: [], data: [2.5] },
      },
      { format: 'pt', note: 'hello' },
    );
    const bytes = readFileSync(path);
    const headerLen = Number(bytes.readBigUInt64LE(0));
    expect(headerLen % 8).toBe(0);
    const header = JSON.parse(bytes.subarray(8, 8 + headerLen).toString('utf8'));
    expect(header.__metadata__).toEqual({ format: 'pt', note: 'hello' });
    expect(header['w.f16']).toEqual({ dtype: 'F16', shape: [6, 5], data_offsets: [120, 180] });

    const f = SafetensorsFile.open(path);
    expect(f.metadata.note).toBe('hello');
    expect(f.tensor('w.f32')).toEqual(a);
    const h = f.tensor('w.f16');
    const b = f.tensor('w.bf16');
    for (let i = 0; i < a.length; i++) {
      expect(Math.abs(h[i]! - a[i]!)).toBeLessThanOrEqual(Math.abs(a[i]!) * 2 ** -11 + 1e-7);
      expect(Math.abs(b[i]! - a[i]!)).toBeLessThanOrEqual(Math.abs(a[i]!) * 2 ** -8);
    }
    expect(Array.from(f.tensor('i.i32'))).toEqual([1, -2, 3]);
    expect(Array.from(f.tensor('i.i64'))).toEqual([5, -7]);
    expect(Array.from(f.tensor('i.u8'))).toEqual([0, 1, 254, 255]);
    expect(Array.from(f.tensor('scalar'))).toEqual([2.5]);
    expect(f.info('w.bf16')!.shape).toEqual([30]);
    f.close();
  });

  it('reads a sharded checkpoint through its index, and names a missing shard', () => {
    const folder = join(dir, 'sharded');
    mkdirSync(folder);
    const tensors: Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }> = {};
    for (let i = 0; i < 5; i++) tensors[`layer.${i}.weight`] = { dtype: 'F32', shape: [16, 16], data: randn(256, 10 + i) };
    const files = writeSafetensorsSharded(folder, tensors, 2048);
    expect(files.length).toBe(3);
    expect(files[0]).toBe('model-00001-of-00003.safetensors');
    const m = SafetensorsModel.open(folder);
    expect(m.names.sort()).toEqual(Object.keys(tensors).sort());
    for (const [name, t] of Object.entries(tensors)) expect(m.tensor(name)).toEqual(t.data);
    expect(m.totalBytes).toBe(5 * 1024);
    m.close();

    unlinkSync(join(folder, files[1]!));
    expect(() => SafetensorsModel.open(folder)).toThrow(InvalidInputError);
    expect(() => SafetensorsModel.open(folder)).toThrow(/model-00002-of-00003\.safetensors.*missing/);
  });

  it('a truncated file names the tensor that is cut; a foreign file is rejected', () => {
    const path = join(dir, 'full.safetensors');
    writeSafetensors(path, {
      first: { dtype: 'F32', shape: [8], data: randn(8, 3) },
      second: { dtype: 'BF16', shape: [64], data: randn(64, 4) },
    });
    const bytes = readFileSync(path);
    const cut = join(dir, 'cut.safetensors');
    writeFileSync(cut, bytes.subarray(0, bytes.length - 3));
    expect(() => SafetensorsFile.open(cut)).toThrow(InvalidInputError);
    expect(() => SafetensorsFile.open(cut)).toThrow(/truncated: tensor second/);
    const foreign = join(dir, 'foreign.safetensors');
    writeFileSync(foreign, 'GGUF\x03\x00\x00\x00 definitely not safetensors');
    expect(() => SafetensorsFile.open(foreign)).toThrow(InvalidInputError);
    expect(() => SafetensorsFile.open(join(dir, 'missing.safetensors'))).toThrow(/not found/);
  });
});
