/**
 * Tensor encodings llama.cpp reads: F32, F16, BF16 and Q8_0 (blocks of 32 weights: one f16 scale + 32 int8).
 */

export type TensorType = 'f32' | 'f16' | 'bf16' | 'q8_0';

/** ggml_type ids (ggml.h). */
export const GGML_TYPE_ID: Record<TensorType, number> = { f32: 0, f16: 1, q8_0: 8, bf16: 30 };
export const GGML_TYPE_NAME: Record<number, TensorType> = { 0: 'f32', 1: 'f16', 8: 'q8_0', 30: 'bf16' };

/** `general.file_type` (llama.h `llama_ftype`) of a file whose matrices are all of one type (1-D tensors stay F32). */
export const FILE_TYPE: Record<TensorType, number> = { f32: 0, f16: 1, q8_0: 7, bf16: 32 };

export const Q8_0_BLOCK = 32;

/** Bytes of a row of `n` elements. */
export function rowBytes(type: TensorType, n: number): number {
  switch (type) {
    case 'f32':
      return n * 4;
    case 'f16':
    case 'bf16':
      return n * 2;
    case 'q8_0':
      if (n % Q8_0_BLOCK !== 0) throw new Error(`Q8_0 needs rows that are a multiple of 32 elements (got ${n})`);
      return (n / Q8_0_BLOCK) * 34;
  }
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE half from float, round to nearest even (as ggml's GGML_FP32_TO_FP16). */
export function floatToHalf(value: number): number {
  f32[0] = value;
  const x = u32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0); // inf / nan
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // overflow to inf
  if (e <= 0) {
    if (e < -10) return sign; // underflow to zero
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    let r = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    if (rem > half || (rem === half && (r & 1))) r++;
    return sign | r;
  }
  let r = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (r & 1))) r++;
  return sign | r;
}

export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** bfloat16 from float, round to nearest even (as ggml's GGML_FP32_TO_BF16). */
export function floatToBf16(value: number): number {
  f32[0] = value;
  const x = u32[0]!;
  if ((x & 0x7fffffff) > 0x7f800000) return ((x >>> 16) | 64) & 0xffff; // quiet nan
  return ((x + (0x7fff + ((x >>> 16) & 1))) >>> 16) & 0xffff;
}

export function bf16ToFloat(b: number): number {
  u32[0] = (b & 0xffff) << 16;
  return f32[0]!;
}

/** Encode float data into the bytes of a tensor of the given type. */
export function encodeTensor(data: Float32Array, type: TensorType, rowLength: number): Uint8Array {
  switch (type) {
    case 'f32':
      // A view, not a copy: the caller writes it out before touching `data` again.
      return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    case 'f16': {
      const out = new Uint16Array(data.length);
      for (let i = 0; i < data.length; i++) out[i] = floatToHalf(data[i]!);
      return new Uint8Array(out.buffer);
    }
    case 'bf16': {
      const out = new Uint16Array(data.length);
      for (let i = 0; i < data.length; i++) out[i] = floatToBf16(data[i]!);
      return new Uint8Array(out.buffer);
    }
    case 'q8_0':
      return quantizeQ8_0(data, rowLength);
  }
}

/** Q8_0 as ggml's quantize_row_q8_0_ref: d = max|x| / 127, q = round(x / d). */
export function quantizeQ8_0(data: Float32Array, rowLength: number): Uint8Array {
  if (rowLength % Q8_0_BLOCK !== 0) throw new Error(`Q8_0 needs rows that are a multiple of 32 elements (got ${rowLength})`);
  const nBlocks = data.length / Q8_0_BLOCK;
  const out = new Uint8Array(nBlocks * 34);
  const view = new DataView(out.buffer);
  for (let b = 0; b < nBlocks; b++) {
    const base = b * Q8_0_BLOCK;
    let amax = 0;
    for (let j = 0; j < Q8_0_BLOCK; j++) amax = Math.max(amax, Math.abs(data[base + j]!));
    // fround: ggml computes the scale and its inverse in f32; matching it keeps our bytes identical to ggml's.
    const d = Math.fround(amax / 127);
    const id = d ? Math.fround(1 / d) : 0;
    const o = b * 34;
    view.setUint16(o, floatToHalf(d), true);
    for (let j = 0; j < Q8_0_BLOCK; j++) {
      const v = Math.fround(data[base + j]! * id);
      view.setInt8(o + 2 + j, Math.sign(v) * Math.round(Math.abs(v))); // roundf: half away from zero
    }
  }
  return out;
}

let halfTable: Float32Array | undefined;

/** Every f16 bit pattern decoded once (256 KiB), so bulk decoding is a table lookup. */
function halfLookup(): Float32Array {
  if (!halfTable) {
    halfTable = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) halfTable[h] = halfToFloat(h);
  }
  return halfTable;
}

/** f16 bit patterns to floats. */
export function halfsToFloats(src: Uint16Array, out = new Float32Array(src.length)): Float32Array {
  const table = halfLookup();
  for (let i = 0; i < src.length; i++) out[i] = table[src[i]!]!;
  return out;
}

/** bf16 bit patterns to floats: the top half of an f32. */
export function bf16sToFloats(src: Uint16Array, out = new Float32Array(src.length)): Float32Array {
  const bits = new Uint32Array(out.buffer, out.byteOffset, out.length);
  for (let i = 0; i < src.length; i++) bits[i] = src[i]! << 16;
  return out;
}

/** A Uint16Array over little-endian bytes, copying only when the bytes are not 2-byte aligned. */
export function u16View(bytes: Uint8Array): Uint16Array {
  if (bytes.byteOffset % 2 === 0) return new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >>> 1);
  return new Uint16Array(bytes.slice().buffer);
}

/** Decode tensor bytes of any supported type to floats. */
export function decodeTensor(bytes: Uint8Array, type: TensorType, count: number): Float32Array {
  const out = new Float32Array(count);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  switch (type) {
    case 'f32':
      for (let i = 0; i < count; i++) out[i] = view.getFloat32(i * 4, true);
      break;
    case 'f16':
      halfsToFloats(u16View(bytes.subarray(0, count * 2)), out);
      break;
    case 'bf16':
      bf16sToFloats(u16View(bytes.subarray(0, count * 2)), out);
      break;
    case 'q8_0':
      for (let b = 0; b < count / Q8_0_BLOCK; b++) {
        const d = halfToFloat(view.getUint16(b * 34, true));
        for (let j = 0; j < Q8_0_BLOCK; j++) out[b * Q8_0_BLOCK + j] = d * view.getInt8(b * 34 + 2 + j);
      }
      break;
  }
  return out;
}
