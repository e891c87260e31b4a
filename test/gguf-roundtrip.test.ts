import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, rmSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GgufWriter } from '../src/formats/gguf/writer.js';
import { GgufFile } from '../src/formats/gguf/reader.js';
import { bf16ToFloat, floatToBf16, floatToHalf, halfToFloat, quantizeQ8_0, decodeTensor } from '../src/formats/gguf/encode.js';
import { InvalidInputError } from '../src/util/errors.js';
import { Rng } from '../src/util/rng.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'lynx-gguf-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function randn(n: number, seed: number, scale = 1): Float32Array {
  const rng = new Rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = rng.normal() * scale;
  return out;
}

describe('GGUF metadata', () => {
  it('round-trips every value type, scalars and arrays', () => {
    const w = new GgufWriter();
    w.set('u8', 250, 'u8').set('i8', -100, 'i8').set('u16', 65000, 'u16').set('i16', -32000, 'i16');
    w.set('u32', 4_000_000_000, 'u32').set('i32', -2_000_000_000, 'i32');
    w.set('u64', 2n ** 63n + 5n, 'u64').set('i64', -(2n ** 62n), 'i64');
    w.set('f32', 0.1, 'f32').set('f64', 0.1, 'f64').set('bool', true).set('bool0', false);
    w.set('string', 'héllo <｜User｜> \n\t');
    w.set('empty', '');
    w.set('strings', ['a', '', 'Ġthe', '<think>', '✓'], 'string[]');
    w.set('ints', [1, -2, 3], 'i32[]');
    w.set('floats', [0.5, -1.25, 1e-5], 'f32[]');
    w.set('bools', [true, false], 'bool[]');
    w.set('u64s', [1n, 2n ** 40n], 'u64[]');
    w.set('empty_ints', [], 'i32[]');
    w.addTensor('t', [4], new Float32Array([1, 2, 3, 4]));
    const path = join(dir, 'meta.gguf');
    w.write(path);

    const g = GgufFile.open(path);
    expect(g.version).toBe(3);
    expect(g.get('u8')).toBe(250);
    expect(g.get('i8')).toBe(-100);
    expect(g.get('u16')).toBe(65000);
    expect(g.get('i16')).toBe(-32000);
    expect(g.get('u32')).toBe(4_000_000_000);
    expect(g.get('i32')).toBe(-2_000_000_000);
    expect(g.get('u64')).toBe(2n ** 63n + 5n);
    expect(g.get('i64')).toBe(-(2n ** 62n));
    expect(g.get('f32')).toBe(Math.fround(0.1));
    expect(g.get('f64')).toBe(0.1);
    expect(g.get('bool')).toBe(true);
    expect(g.get('bool0')).toBe(false);
    expect(g.get('string')).toBe('héllo <｜User｜> \n\t');
    expect(g.get('empty')).toBe('');
    expect(g.get('strings')).toEqual(['a', '', 'Ġthe', '<think>', '✓']);
    expect(g.get('ints')).toEqual([1, -2, 3]);
    expect(g.get('floats')).toEqual([0.5, -1.25, Math.fround(1e-5)]);
    expect(g.get('bools')).toEqual([true, false]);
    expect(g.get('u64s')).toEqual([1n, 2n ** 40n]);
    expect(g.get('empty_ints')).toEqual([]);
    expect(g.metadata.get('ints')!.type).toBe('i32[]');
    expect(g.metadata.get('u16')!.type).toBe('u16');
    // Keys keep their insertion order, as llama.cpp lists them.
    expect([...g.metadata.keys()].slice(0, 3)).toEqual(['u8', 'i8', 'u16']);
    expect(g.getNumber('u64')).toBe(Number(2n ** 63n + 5n));
    expect(() => g.getNumber('string')).toThrow(InvalidInputError);
    g.close();
  });
});

describe('GGUF tensors', () => {
  it('round-trips F32 exactly, F16/BF16/Q8_0 within their precision, with 32-byte aligned data', () => {
    const rows = 7;
    const cols = 64;
    const data = randn(rows * cols, 1, 0.3);
    data[3] = 0; // zeros and a block of zeros must survive
    data.fill(0, 64, 96);
    const w = new GgufWriter();
    w.set('general.architecture', 'test');
    // A 1-D tensor of odd length first, so later tensors need padding to stay aligned.
    w.addTensor('odd', [5], new Float32Array([1, 2, 3, 4, 5]), 'f32');
    for (const type of ['f32', 'f16', 'bf16', 'q8_0'] as const) w.addTensor(`m.${type}`, [cols, rows], data, type);
    // Lazy provider: called when writing.
    let calls = 0;
    w.addTensor('lazy', [cols, 2], () => (calls++, randn(cols * 2, 2)), 'f16');
    const path = join(dir, 'tensors.gguf');
    w.write(path);
    expect(calls).toBe(1);

    const g = GgufFile.open(path);
    expect(g.dataOffset % 32).toBe(0);
    for (const t of g.tensors) expect(t.offset % 32).toBe(0);
    expect(g.tensorInfo('m.q8_0')!.bytes).toBe(rows * (cols / 32) * 34);
    expect(g.tensorInfo('m.f16')!.dims).toEqual([cols, rows]);
    expect(g.tensor('odd')).toEqual(new Float32Array([1, 2, 3, 4, 5]));
    expect(g.tensor('m.f32')).toEqual(data);

    const maxErr = (a: Float32Array, rel: (x: number) => number) => {
      let worst = 0;
      for (let i = 0; i < data.length; i++) worst = Math.max(worst, Math.abs(a[i]! - data[i]!) / rel(i));
      return worst;
    };
    // F16: 11-bit significand, relative error <= 2^-11 (normal range).
    expect(maxErr(g.tensor('m.f16'), (i) => Math.max(Math.abs(data[i]!), 2 ** -14))).toBeLessThanOrEqual(2 ** -11);
    // BF16: 8-bit significand, relative error <= 2^-8.
    expect(maxErr(g.tensor('m.bf16'), (i) => Math.max(Math.abs(data[i]!), 1e-30))).toBeLessThanOrEqual(2 ** -8);
    // Q8_0: error per element <= half a step of its block (amax / 127 / 2), plus the f16 rounding of the scale.
    const q = g.tensor('m.q8_0');
    for (let b = 0; b < data.length / 32; b++) {
      let amax = 0;
      for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(data[b * 32 + j]!));
      for (let j = 0; j < 32; j++) {
        const i = b * 32 + j;
        expect(Math.abs(q[i]! - data[i]!)).toBeLessThanOrEqual((amax / 127) * 0.5 + amax * 2 ** -10 + 1e-12);
      }
    }
    // The zero block decodes to exact zeros.
    for (let i = 64; i < 96; i++) expect(q[i]).toBe(0);
    expect(g.tensor('lazy').length).toBe(cols * 2);
    g.close();
  });

  it('Q8_0 blocks are laid out as f16 scale then 32 int8 (ggml block_q8_0)', () => {
    const x = new Float32Array(32);
    for (let i = 0; i < 32; i++) x[i] = (i - 16) / 16; // amax 1 at i = 0
    const bytes = quantizeQ8_0(x, 32);
    expect(bytes.length).toBe(34);
    const view = new DataView(bytes.buffer);
    expect(halfToFloat(view.getUint16(0, true))).toBeCloseTo(1 / 127, 6);
    expect(view.getInt8(2)).toBe(-127);
    expect(view.getInt8(2 + 16)).toBe(0);
    expect(view.getInt8(2 + 24)).toBe(Math.round((8 / 16) * 127));
    expect(decodeTensor(bytes, 'q8_0', 32)[0]).toBeCloseTo(-1, 2);
  });

  it('half and bfloat16 conversions round to nearest even and keep specials', () => {
    expect(floatToHalf(1)).toBe(0x3c00);
    expect(floatToHalf(-2)).toBe(0xc000);
    expect(floatToHalf(65504)).toBe(0x7bff);
    expect(floatToHalf(1e6)).toBe(0x7c00);
    expect(floatToHalf(2 ** -24)).toBe(1);
    expect(Number.isNaN(halfToFloat(floatToHalf(NaN)))).toBe(true);
    expect(floatToHalf(1 + 2 ** -11)).toBe(0x3c00); // tie to even
    expect(floatToHalf(1 + 3 * 2 ** -11)).toBe(0x3c02);
    expect(bf16ToFloat(floatToBf16(1))).toBe(1);
    expect(floatToBf16(1 + 2 ** -8)).toBe(0x3f80); // tie to even
    expect(bf16ToFloat(floatToBf16(-3.5))).toBe(-3.5);
    for (let i = 0; i < 1000; i++) {
      const v = (i - 500) / 37;
      expect(halfToFloat(floatToHalf(halfToFloat(floatToHalf(v))))).toBe(halfToFloat(floatToHalf(v)));
    }
  });
});

describe('GGUF errors', () => {
  it('missing file, wrong magic and truncation are InvalidInputError naming the problem', () => {
    expect(() => GgufFile.open(join(dir, 'nope.gguf'))).toThrow(/not found/);
    const bad = join(dir, 'bad.gguf');
    writeFileSync(bad, 'PK\x03\x04 this is a zip');
    expect(() => GgufFile.open(bad)).toThrow(InvalidInputError);
    expect(() => GgufFile.open(bad)).toThrow(/not a GGUF file/);

    const w = new GgufWriter();
    w.set('general.architecture', 'test');
    w.set('tokenizer.ggml.tokens', Array.from({ length: 100 }, (_, i) => `tok${i}`), 'string[]');
    w.addTensor('a', [64, 4], randn(256, 3), 'f32');
    const good = join(dir, 'good.gguf');
    w.write(good);
    const bytes = readFileSync(good);
    const cutData = join(dir, 'cut-data.gguf');
    writeFileSync(cutData, bytes.subarray(0, bytes.length - 10));
    expect(() => GgufFile.open(cutData)).toThrow(/truncated.*tensor a/);
    const cutHeader = join(dir, 'cut-header.gguf');
    writeFileSync(cutHeader, bytes.subarray(0, 200));
    expect(() => GgufFile.open(cutHeader)).toThrow(InvalidInputError);
    expect(() => GgufFile.open(cutHeader)).toThrow(/truncated/);
  });
});
