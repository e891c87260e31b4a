/**
 * Training and calibration data for early-exit heads, read from the engine: each token row is decoded once at full
 * depth with taps on the head blocks at every position, so each position gives the hidden state of every head block
 * and the full model's logits after it (the teacher). Rows are decoded in batch-sized pieces on one sequence per
 * row; the hidden states and the teacher (dense, or its top k) are kept, the logits are not.
 *
 * As a hidden-state cache this is written to and read from a safetensors file (`hidden.<block>` [rows, nEmbd],
 * `teacher.probs` and `teacher.ids` [rows, k] or `teacher.probs` [rows, nVocab], `teacher.argmax`, `teacher.entropy`),
 * so training can run again (other options, more epochs) without decoding again.
 */
import { existsSync } from 'node:fs';
import type { LlamaContext } from '../../engine/index.js';
import { SafetensorsFile, writeSafetensors } from '../../formats/safetensors.js';
import type { HeadTrainingData, TeacherTable } from '../../training/head-trainer.js';
import { InvalidInputError } from '../../util/errors.js';

export interface CollectOptions {
  context: LlamaContext;
  /** Token rows (each a text from its start, BOS included where the model wants one). */
  rows: readonly (readonly number[])[];
  /** Blocks whose hidden states are kept. */
  layers: readonly number[];
  /** Keep the teacher's top k tokens (renormalised) instead of the whole distribution. */
  topK?: number;
  /** Stop after this many positions. */
  maxPositions?: number;
  signal?: AbortSignal;
  onProgress?: (positions: number) => void;
}

/** Decode `rows` and keep, per position, the hidden states of `layers` and the full model's distribution. */
export async function collectHeadData(o: CollectOptions): Promise<HeadTrainingData> {
  const model = o.context.model;
  const { nEmbd: E, nVocab: V } = model.info;
  const k = o.topK && o.topK < V ? o.topK : V;
  const max = o.maxPositions ?? Infinity;
  const hidden = new Map<number, Float32Array[]>(o.layers.map((l) => [l, []]));
  const teacher: { probs: Float32Array[]; ids: Int32Array[]; argmax: number[]; entropy: number[] } = { probs: [], ids: [], argmax: [], entropy: [] };
  let positions = 0;
  const piece = o.context.nBatch;
  for (const row of o.rows) {
    if (positions >= max) break;
    const seq = o.context.createSequence();
    try {
      for (let begin = 0; begin < row.length && positions < max; begin += piece) {
        const part = row.slice(begin, Math.min(begin + piece, begin + (max - positions)));
        if (part.length === 0) break;
        if (o.signal?.aborted) throw o.signal.reason ?? new Error('aborted');
        const r = await seq.extend(part, { taps: { layers: [...o.layers], positions: part.map((_, i) => i) }, signal: o.signal });
        for (const l of o.layers) hidden.get(l)!.push(r.hidden!.get(l)!.slice());
        for (let i = 0; i < part.length; i++) {
          const t = teacherRow(r.rows.subarray(i * V, (i + 1) * V), k);
          teacher.probs.push(t.probs);
          if (t.ids) teacher.ids.push(t.ids);
          teacher.argmax.push(t.argmax);
          teacher.entropy.push(t.entropy);
        }
        positions += part.length;
        o.onProgress?.(positions);
      }
    } finally {
      seq.dispose();
    }
  }
  if (positions === 0) throw new InvalidInputError('no token positions to collect head data from (the rows are empty)');
  return {
    rows: positions,
    hidden: new Map([...hidden].map(([l, parts]) => [l, concat(parts)])),
    teacher: {
      k,
      ids: k < V ? concatInt(teacher.ids) : undefined,
      probs: concat(teacher.probs),
      argmax: Int32Array.from(teacher.argmax),
      entropy: Float32Array.from(teacher.entropy),
    },
  };
}

/** softmax(logits) at temperature 1, whole or cut to its top k (renormalised), with its argmax and entropy. */
export function teacherRow(logits: Float32Array, k: number): { probs: Float32Array; ids?: Int32Array; argmax: number; entropy: number } {
  const V = logits.length;
  let max = -Infinity;
  let argmax = 0;
  for (let i = 0; i < V; i++) {
    if (logits[i]! > max) {
      max = logits[i]!;
      argmax = i;
    }
  }
  if (k >= V) {
    const p = new Float32Array(V);
    let z = 0;
    for (let i = 0; i < V; i++) z += p[i] = Math.exp(logits[i]! - max);
    let h = 0;
    for (let i = 0; i < V; i++) {
      p[i]! /= z;
      if (p[i]! > 0) h -= p[i]! * Math.log(p[i]!);
    }
    return { probs: p, argmax, entropy: h };
  }
  // Top k by a bounded insertion list (k is small against the vocabulary).
  const ids = new Int32Array(k).fill(-1);
  const vals = new Float64Array(k).fill(-Infinity);
  for (let i = 0; i < V; i++) {
    const v = logits[i]!;
    if (v <= vals[k - 1]!) continue;
    let j = k - 1;
    while (j > 0 && vals[j - 1]! < v) {
      vals[j] = vals[j - 1]!;
      ids[j] = ids[j - 1]!;
      j--;
    }
    vals[j] = v;
    ids[j] = i;
  }
  const p = new Float32Array(k);
  let z = 0;
  for (let j = 0; j < k; j++) z += p[j] = Math.exp(vals[j]! - max);
  let h = 0;
  for (let j = 0; j < k; j++) {
    p[j]! /= z;
    if (p[j]! > 0) h -= p[j]! * Math.log(p[j]!);
  }
  return { probs: p, ids, argmax, entropy: h };
}

/** The last `fraction` of the rows' positions as held-out data, the rest for training (split by whole rows). */
export function splitRows<T>(rows: readonly T[], fraction: number): { train: T[]; heldOut: T[] } {
  if (!(fraction > 0 && fraction < 1)) throw new InvalidInputError(`the held-out fraction must be in (0, 1) (got ${fraction})`);
  const n = Math.max(1, Math.round(rows.length * fraction));
  if (rows.length < 2) throw new InvalidInputError(`at least 2 token rows are needed to hold some out (got ${rows.length})`);
  return { train: rows.slice(0, rows.length - n), heldOut: rows.slice(rows.length - n) };
}

/** Write collected data as a hidden-state cache. */
export function writeHeadCache(path: string, d: HeadTrainingData, metadata: Record<string, string> = {}): void {
  const E = d.rows > 0 ? d.hidden.values().next().value!.length / d.rows : 0;
  const t = d.teacher;
  const tensors: Record<string, { dtype: 'F32' | 'I32'; shape: number[]; data: Float32Array | Int32Array }> = {};
  for (const [l, h] of d.hidden) tensors[`hidden.${l}`] = { dtype: 'F32', shape: [d.rows, E], data: h };
  tensors['teacher.probs'] = { dtype: 'F32', shape: [d.rows, t.k], data: t.probs };
  if (t.ids) tensors['teacher.ids'] = { dtype: 'I32', shape: [d.rows, t.k], data: t.ids };
  tensors['teacher.argmax'] = { dtype: 'I32', shape: [d.rows], data: t.argmax };
  tensors['teacher.entropy'] = { dtype: 'F32', shape: [d.rows], data: t.entropy };
  writeSafetensors(path, tensors, { format: 'lynx-heads-cache', layers: [...d.hidden.keys()].join(','), k: String(t.k), ...metadata });
}

/** Read a hidden-state cache written by writeHeadCache; `layers` must all be in it. */
export function readHeadCache(path: string, layers: readonly number[]): HeadTrainingData & { metadata: Record<string, string> } {
  if (!existsSync(path)) throw new InvalidInputError(`hidden-state cache not found: ${path}`);
  const f = SafetensorsFile.open(path);
  try {
    const need = (name: string) => {
      const info = f.info(name);
      if (!info) throw new InvalidInputError(`${path} has no tensor ${name}: build the cache with these head layers`);
      return info;
    };
    const rows = need('teacher.argmax').shape[0]!;
    const hidden = new Map(layers.map((l) => (need(`hidden.${l}`), [l, f.tensor(`hidden.${l}`)] as const)));
    const k = need('teacher.probs').shape[1]!;
    const ids = f.info('teacher.ids') ? Int32Array.from(f.tensor('teacher.ids')) : undefined;
    const teacher: TeacherTable = { k, ids, probs: f.tensor('teacher.probs'), argmax: Int32Array.from(f.tensor('teacher.argmax')), entropy: f.tensor('teacher.entropy') };
    return { rows, hidden, teacher, metadata: f.metadata };
  } finally {
    f.close();
  }
}

function concat(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function concatInt(parts: Int32Array[]): Int32Array {
  const out = new Int32Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
