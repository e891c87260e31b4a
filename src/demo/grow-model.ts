/**
 * Growing a trained demo model deeper without changing what it computes: new transformer blocks are inserted whose
 * output projections (`attn_output`, `ffn_down`) are zero, so each new block adds nothing to the residual stream and
 * the grown model's logits equal the old model's exactly. Training then starts from the old model's function with
 * more capacity (the new blocks' output projections get gradients at once; their other weights as soon as those
 * projections move). This is how a small model that has learned the format keeps its progress while more layers take
 * up what it could not fit (in the demo: copying the right operand out of the problem, an induction pattern that needs
 * composition across layers).
 */
import { GgufFile } from '../formats/gguf/reader.js';
import { InvalidInputError, UnsupportedError } from '../util/errors.js';
import { Rng } from '../util/rng.js';
import { f32CopyWriter, type ModelShape } from './init-model.js';

export interface GrowOptions {
  /** Insert one new block after each of these existing layers (0-based, in the old numbering; -1: before layer 0). */
  addLayersAfter: readonly number[];
  /** Seed of the new blocks' random input projections. */
  seed: number;
  /** Standard deviation of the new blocks' Q/K/V/gate/up weights (default 0.02, as a fresh model). */
  initStd?: number;
  /** Metadata keys to replace or add (values as `GgufWriter.set` takes them). */
  metadata?: Record<string, string | number | boolean>;
}

/** The network shape a demo-style (qwen2/llama) GGUF declares. */
export function modelShapeOf(path: string): ModelShape {
  const f = GgufFile.open(path);
  try {
    return shapeOf(f);
  } finally {
    f.close();
  }
}

function shapeOf(f: GgufFile): ModelShape {
  const arch = f.getString('general.architecture');
  if (!arch) throw new InvalidInputError(`${f.path}: no general.architecture`);
  const num = (key: string): number => {
    const v = f.getNumber(`${arch}.${key}`);
    if (v === undefined) throw new InvalidInputError(`${f.path}: no ${arch}.${key}`);
    return v;
  };
  return {
    nEmbd: num('embedding_length'),
    nLayer: num('block_count'),
    nHead: num('attention.head_count'),
    nFf: num('feed_forward_length'),
    contextLength: num('context_length'),
    ropeFreqBase: f.getNumber(`${arch}.rope.freq_base`),
    rmsEps: f.getNumber(`${arch}.attention.layer_norm_rms_epsilon`),
  };
}

/**
 * Write `dst`: `src` (decoded to F32, as the training paths need) with new identity blocks inserted. Returns the new
 * shape. The file is written atomically by the GGUF writer.
 */
export function writeDeeperCopy(src: string, dst: string, opts: GrowOptions): ModelShape {
  const f = GgufFile.open(src);
  try {
    return writeGrown(f, dst, opts);
  } finally {
    f.close();
  }
}

function writeGrown(f: GgufFile, dst: string, opts: GrowOptions): ModelShape {
  const src = f.path;
  const shape = shapeOf(f);
  const after = [...opts.addLayersAfter].sort((a, b) => a - b);
  for (const a of after) {
    if (!Number.isInteger(a) || a < -1 || a >= shape.nLayer) {
      throw new InvalidInputError(`addLayersAfter: ${a} is not a layer of this ${shape.nLayer}-layer model (use -1..${shape.nLayer - 1})`);
    }
  }
  if (after.length === 0) throw new InvalidInputError('addLayersAfter: name at least one layer');
  const std = opts.initStd ?? 0.02;
  if (!(std > 0 && std < 1)) throw new InvalidInputError(`initStd must be in (0, 1) (got ${std})`);

  // New layer order: each entry is an old layer index or null for a new block.
  const order: (number | null)[] = [];
  for (const a of after.filter((x) => x === -1)) order.push(null);
  for (let l = 0; l < shape.nLayer; l++) {
    order.push(l);
    for (const a of after) if (a === l) order.push(null);
  }

  const arch = f.getString('general.architecture')!;
  if (arch !== 'qwen2' && arch !== 'llama') throw new UnsupportedError(`${src}: growing supports qwen2/llama models (got ${arch})`);
  const w = f32CopyWriter(f, opts.metadata);
  w.set(`${arch}.block_count`, order.length, 'u32');

  const names = new Set(f.tensors.map((t) => t.name));
  const blockTensors = f.tensors.filter((t) => t.name.startsWith('blk.0.'));
  if (blockTensors.length === 0) throw new InvalidInputError(`${src}: no blk.0 tensors`);
  for (const t of f.tensors) if (!t.name.startsWith('blk.')) w.addTensor(t.name, [...t.dims], () => f.tensor(t.name), 'f32');
  order.forEach((old, l) => {
    for (const t of blockTensors) {
      const suffix = t.name.slice('blk.0.'.length);
      const name = `blk.${l}.${suffix}`;
      if (old !== null) {
        const from = `blk.${old}.${suffix}`;
        if (!names.has(from)) throw new InvalidInputError(`${src}: layer ${old} has no ${suffix}`);
        w.addTensor(name, [...t.dims], () => f.tensor(from), 'f32');
      } else {
        const n = t.dims.reduce((x, y) => x * y, 1);
        w.addTensor(name, [...t.dims], () => newBlockTensor(suffix, n, Rng.derive(opts.seed, name), std), 'f32');
      }
    }
  });
  w.write(dst);
  return { ...shape, nLayer: order.length };
}

/** A new block's tensor: norms 1, biases 0, output projections 0 (the identity block), input projections random. */
function newBlockTensor(suffix: string, n: number, rng: Rng, std: number): Float32Array {
  if (suffix.endsWith('_norm.weight')) return new Float32Array(n).fill(1);
  if (suffix.endsWith('.bias') || suffix === 'attn_output.weight' || suffix === 'ffn_down.weight') return new Float32Array(n);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = rng.normal() * std;
  return out;
}
