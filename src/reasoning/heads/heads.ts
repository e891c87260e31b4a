/**
 * Early-exit heads of a model, on disk as a folder next to it (like the LYNX probe): `heads.json` (which blocks,
 * the model they belong to, how they were trained, their metrics) and `heads.safetensors` (one matrix per head,
 * `head.<block>.weight`, [nVocab, nEmbd] as PyTorch stores a Linear layer), plus `calibration.json` once calibrated.
 *
 * A head reads the hidden state after block K (llama.cpp's `l_out-K`, Hugging Face's hidden_states[K + 1]) and
 * applies the model's own final RMSNorm (shared by every head and frozen, so not stored) and its matrix. The model
 * is named by its shape and a checksum of that norm weight, so heads of another model are refused.
 */
import { existsSync } from 'node:fs';
import { basename, join } from 'node:path';
import { GgufFile } from '../../formats/gguf/reader.js';
import { SafetensorsFile, writeSafetensors, type SafetensorsInput } from '../../formats/safetensors.js';
import { z } from 'zod';
import { InvalidInputError } from '../../util/errors.js';
import { readJson, writeJsonAtomic } from '../../util/fs.js';
import { parseFileJson } from '../../util/validate.js';

export const HEADS_SCHEMA = 'lynx.heads/1';
export const HEADS_FILE = 'heads.json';
export const HEADS_WEIGHTS = 'heads.safetensors';

/** The model heads belong to: enough to refuse another model's heads. */
export interface ModelFingerprint {
  /** File name when trained (informative). */
  file: string;
  name?: string;
  nLayer: number;
  nEmbd: number;
  nVocab: number;
  rmsEps: number;
  /** FNV-1a of the final norm weight's float32 bytes. */
  normChecksum: string;
}

/** Per head: agreement with the full model's argmax and KL to its distribution, before and after training. */
export interface HeadMetrics {
  layer: number;
  /** Held-out tokens measured. */
  tokens: number;
  agreementBefore: number;
  agreementAfter: number;
  klBefore: number;
  klAfter: number;
}

export interface HeadsManifest {
  schema: typeof HEADS_SCHEMA;
  model: ModelFingerprint;
  /** Blocks with a head, ascending. */
  layers: number[];
  /** How they were trained (options, data, time), as the trainer recorded it. */
  training?: Record<string, unknown>;
  metrics?: HeadMetrics[];
}

const dim = z.number().int().positive();
/** heads.json, checked on load: a damaged manifest would read tensors of another shape or another model's heads. */
const HeadsManifestSchema = z.looseObject({
  schema: z.literal(HEADS_SCHEMA),
  model: z.looseObject({
    file: z.string(),
    name: z.string().optional(),
    nLayer: dim,
    nEmbd: dim,
    nVocab: dim,
    rmsEps: z.number().positive(),
    normChecksum: z.string().min(1),
  }),
  layers: z.array(z.number().int().nonnegative()).min(1),
  training: z.record(z.string(), z.unknown()).optional(),
  metrics: z.array(z.looseObject({ layer: z.number().int().nonnegative() })).optional(),
});

/** The tensor of argmax counts in heads.safetensors (optional: heads trained before it was recorded lack it). */
const COUNTS_TENSOR = 'draft_vocab.argmax_counts';

function readCounts(file: SafetensorsFile, path: string, nVocab: number): Int32Array | undefined {
  const info = file.info(COUNTS_TENSOR);
  if (!info) return undefined;
  if (info.shape.join(',') !== String(nVocab)) throw new InvalidInputError(`${path}: ${COUNTS_TENSOR} has shape [${info.shape}], expected [${nVocab}]`);
  const counts = Int32Array.from(file.tensor(COUNTS_TENSOR));
  const bad = counts.findIndex((c) => c < 0);
  if (bad >= 0) throw new InvalidInputError(`${path}: ${COUNTS_TENSOR} holds ${counts[bad]} at index ${bad}: the heads file is damaged`);
  return counts;
}

/** The index of the first NaN or infinite value, or -1 (such a head would draft garbage, silently costing speed). */
function firstNonFinite(data: Float32Array): number {
  for (let i = 0; i < data.length; i++) if (!Number.isFinite(data[i]!)) return i;
  return -1;
}

/** The final RMSNorm weight of a GGUF model and its fingerprint. */
export function modelFingerprint(modelPath: string): { fingerprint: ModelFingerprint; norm: Float32Array } {
  const f = GgufFile.open(modelPath);
  try {
    const arch = f.getString('general.architecture') ?? '';
    const num = (k: string) => f.getNumber(`${arch}.${k}`);
    const emb = f.tensorInfo('token_embd.weight');
    if (!f.tensorInfo('output_norm.weight') || !emb) throw new InvalidInputError(`${modelPath}: no output_norm.weight / token_embd.weight: not a decoder early-exit heads can be trained on`);
    const norm = f.tensor('output_norm.weight');
    const fingerprint: ModelFingerprint = {
      file: basename(modelPath),
      name: f.getString('general.name'),
      nLayer: num('block_count') ?? 0,
      nEmbd: emb.dims[0]!,
      nVocab: emb.dims[1]!,
      rmsEps: num('attention.layer_norm_rms_epsilon') ?? 1e-6,
      normChecksum: checksum(norm),
    };
    return { fingerprint, norm };
  } finally {
    f.close();
  }
}

export function checksum(data: Float32Array): string {
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  let h = 0x811c9dc5;
  for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ bytes[i]!, 16777619) >>> 0;
  return h.toString(16).padStart(8, '0');
}

/** Evenly spaced blocks for `count` heads on a model of `nLayer` blocks, the last block excluded (that is the model's own head). */
export function evenlySpacedLayers(nLayer: number, count = 3): number[] {
  if (!Number.isInteger(count) || count < 1) throw new InvalidInputError(`the number of heads must be a positive integer (got ${count})`);
  if (nLayer < 2) throw new InvalidInputError(`a model of ${nLayer} block has no intermediate block for a head`);
  const n = Math.min(count, nLayer - 1);
  const layers = new Set<number>();
  // Blocks after (i+1)/(n+1) of the depth: for 28 blocks and 3 heads, 6, 13, 20.
  for (let i = 1; i <= n; i++) layers.add(Math.min(nLayer - 2, Math.max(0, Math.round((i * nLayer) / (n + 1)) - 1)));
  return [...layers].sort((a, b) => a - b);
}

/** Check a list of head blocks against a model: integers from 0 to nLayer - 2, no repeats; returned ascending. */
export function checkHeadLayers(layers: readonly number[], nLayer: number): number[] {
  const sorted = [...new Set(layers)].sort((a, b) => a - b);
  if (sorted.length !== layers.length) throw new InvalidInputError(`head layers repeat: ${layers.join(',')}`);
  for (const l of sorted) {
    if (!Number.isInteger(l) || l < 0 || l > nLayer - 2) {
      throw new InvalidInputError(`head layer ${l} is not an intermediate block of this ${nLayer}-block model: use 0 to ${nLayer - 2} (block ${nLayer - 1} is the model's own output)`);
    }
  }
  if (sorted.length === 0) throw new InvalidInputError('give at least one head layer');
  return sorted;
}

export class EarlyExitHeads {
  private constructor(
    readonly manifest: HeadsManifest,
    /** Per block, [nVocab, nEmbd] row-major. */
    readonly matrices: Map<number, Float32Array>,
    /** How often each token was the full model's argmax in the training data (ranks a draft vocabulary), if recorded. */
    readonly argmaxCounts?: Int32Array,
  ) {}

  get layers(): number[] {
    return [...this.manifest.layers];
  }

  get model(): ModelFingerprint {
    return this.manifest.model;
  }

  static create(model: ModelFingerprint, matrices: Map<number, Float32Array>, extra: Pick<HeadsManifest, 'training' | 'metrics'> = {}, argmaxCounts?: Int32Array): EarlyExitHeads {
    if (argmaxCounts && argmaxCounts.length !== model.nVocab) throw new InvalidInputError(`argmax counts cover ${argmaxCounts.length} tokens; the vocabulary has ${model.nVocab}`);
    const layers = checkHeadLayers([...matrices.keys()], model.nLayer);
    for (const [l, m] of matrices) {
      if (m.length !== model.nVocab * model.nEmbd) throw new InvalidInputError(`head ${l} has ${m.length} values, expected ${model.nVocab} x ${model.nEmbd}`);
    }
    return new EarlyExitHeads({ schema: HEADS_SCHEMA, model, layers, ...extra }, matrices, argmaxCounts);
  }

  /** Read a heads folder; throws InvalidInputError naming what is missing or wrong. */
  static load(dir: string): EarlyExitHeads {
    const manifestPath = join(dir, HEADS_FILE);
    const weightsPath = join(dir, HEADS_WEIGHTS);
    if (!existsSync(manifestPath)) throw new InvalidInputError(`${dir} holds no early-exit heads (no ${HEADS_FILE}): train them with 'lynx heads train -m MODEL -o ${dir}'`);
    const raw = readJson<unknown>(manifestPath);
    const schema = (raw as { schema?: unknown } | null)?.schema;
    if (schema !== HEADS_SCHEMA) throw new InvalidInputError(`${manifestPath}: schema ${JSON.stringify(schema)} is not ${HEADS_SCHEMA}`);
    const manifest = parseFileJson(HeadsManifestSchema, raw, { source: manifestPath, kind: 'heads manifest', remedy: `the heads file is damaged; train them again with 'lynx heads train'` }) as HeadsManifest;
    checkHeadLayers(manifest.layers, manifest.model.nLayer);
    const m = manifest.model;
    const file = SafetensorsFile.open(weightsPath);
    try {
      const matrices = new Map<number, Float32Array>();
      for (const layer of manifest.layers) {
        const name = `head.${layer}.weight`;
        const info = file.info(name);
        if (!info) throw new InvalidInputError(`${weightsPath} has no tensor ${name} (heads.json lists block ${layer})`);
        if (info.shape.join(',') !== `${m.nVocab},${m.nEmbd}`) throw new InvalidInputError(`${weightsPath}: ${name} has shape [${info.shape}], expected [${m.nVocab}, ${m.nEmbd}]`);
        const data = file.tensor(name);
        const bad = firstNonFinite(data);
        if (bad >= 0) throw new InvalidInputError(`${weightsPath}: ${name} holds ${data[bad]} at index ${bad}: the heads file is damaged; train them again with 'lynx heads train'`);
        matrices.set(layer, data);
      }
      return new EarlyExitHeads(manifest, matrices, readCounts(file, weightsPath, m.nVocab));
    } finally {
      file.close();
    }
  }

  /** Write heads.json and heads.safetensors (each atomically); `dtype` F16 halves the file. */
  save(dir: string, dtype: 'F32' | 'F16' = 'F32'): void {
    const tensors: Record<string, SafetensorsInput> = Object.fromEntries(
      this.manifest.layers.map((l) => [`head.${l}.weight`, { dtype, shape: [this.model.nVocab, this.model.nEmbd], data: this.matrices.get(l)! }]),
    );
    if (this.argmaxCounts) tensors[COUNTS_TENSOR] = { dtype: 'I32', shape: [this.model.nVocab], data: this.argmaxCounts };
    writeSafetensors(join(dir, HEADS_WEIGHTS), tensors, { format: 'lynx-heads', schema: HEADS_SCHEMA });
    writeJsonAtomic(join(dir, HEADS_FILE), this.manifest);
  }

  /** Refuse a model these heads were not trained for (shape or final norm differ). */
  checkModel(model: ModelFingerprint, dir = 'these heads'): void {
    const m = this.model;
    const same = m.nLayer === model.nLayer && m.nEmbd === model.nEmbd && m.nVocab === model.nVocab && m.normChecksum === model.normChecksum;
    if (!same) {
      throw new InvalidInputError(
        `${dir} were trained for ${m.file} (${m.nLayer} blocks, hidden ${m.nEmbd}, vocabulary ${m.nVocab}, norm ${m.normChecksum}), ` +
          `not for ${model.file} (${model.nLayer}, ${model.nEmbd}, ${model.nVocab}, ${model.normChecksum}): train heads for this model with 'lynx heads train'`,
      );
    }
  }
}
