/**
 * The on-disk event dataset: feature rows (float32 [events, features]) in safetensors chunks, one JSONL line of
 * metadata per row, and a manifest.
 *
 *   <dir>/manifest.json            DatasetManifest: the chunks and every finished work unit (rollout)
 *   <dir>/chunk-00000.safetensors  tensor `features` [rows, nFeatures] F32
 *   <dir>/chunk-00000.jsonl        one EventMeta per row, same order
 *
 * A build adds whole work units (one rollout: all its events). Buffered units are written as a chunk — features file,
 * metadata file, then the manifest, each atomically — so after a kill -9 the manifest names only complete chunks and
 * the units in them; reopening the folder resumes: finished units are skipped and the rest are redone (seeded, so
 * identically). A chunk file written but not yet in the manifest is simply overwritten. `finish` compacts the data
 * into canonical order (problem index, problem id, rollout, event index), so the finished folder is byte-identical
 * however often the build was interrupted and in whatever order units completed. Shards of a build (`--shard i/N`)
 * are separate folders; `readDataset` loads several as one, `mergeDatasets` writes the merge.
 */
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { InvalidInputError } from '../../../util/errors.js';
import { readJson, writeFileAtomic, writeJsonAtomic } from '../../../util/fs.js';
import type { SimEvent, SimRollout } from '../simulate.js';
import type { TokenCounts } from '../../token-counts.js';
import { TensorFile, writeSafetensors } from '../tensor-io.js';

export const DATASET_SCHEMA = 'lynx.dataset/1';
export const MANIFEST_FILE = 'manifest.json';
const FEATURES = 'features';

/** Metadata of one event row. */
export interface EventMeta {
  problemId: string;
  /** Position of the problem in its benchmark list (canonical order). */
  problemIndex: number;
  rollout: number;
  /** Ordinal of the event among the rollout's kept events. */
  eventIndex: number;
  /** 0-based index of the event token among the generated tokens = generated tokens before it (LYNX pos_rel - 1). */
  position: number;
  /** Generated tokens up to and including the event token (position + 1). */
  tokensSoFar: number;
  /** The cue word (`wait`, `hmm`, ...) or `synthetic`. */
  cue: string;
  /** LYNX's 70% event of a rollout without cues. */
  synthetic: boolean;
  /** 1 if the forced exit at this event answered correctly. */
  label: 0 | 1;
  exitAnswer: string | null;
  /** Answer tokens decoded after the exit cue. */
  exitAnswerTokens: number;
  exitCueTokens: number;
  fullAnswer: string | null;
  fullCorrect: boolean;
  /** Generated tokens of the full rollout (reasoning + exit cue + answer). */
  fullTokens: number;
  /** Reasoning tokens of the full rollout (the exit cue and answer tokens come on top), when known. */
  fullReasoningTokens?: number;
  /** The full rollout's token counts with its work (decoded, prefilled with the prompt), when recorded. */
  fullTokenCounts?: TokenCounts;
  /** Prompt tokens of the rollout, when recorded. */
  promptTokens?: number;
  /** Tokens of the trace sampled when online LYNX decides at this event (the cue's confirming token included), when recorded. */
  decidedAt?: number;
  /** The problem's gold answer, when recorded. */
  gold?: string;
  /** Character offset of the cue word in the generated text, when known. */
  charOffset?: number;
  /** The work unit (rollout) the row belongs to; set by the writer. */
  unit?: string;
  [key: string]: unknown;
}

export interface DatasetRow {
  features: Float32Array;
  meta: EventMeta;
}

interface ChunkEntry {
  features: string;
  meta: string;
  rows: number;
}

export interface DatasetManifest {
  schema: typeof DATASET_SCHEMA;
  nFeatures: number;
  /** Free-form build description (model, layers, split, seed, shard, ...); a resume must pass the same. */
  info: Record<string, unknown>;
  chunks: ChunkEntry[];
  /** Every finished work unit, in the order they were written. */
  units: string[];
  rows: number;
  complete: boolean;
}

export interface WriterOptions {
  nFeatures: number;
  info?: Record<string, unknown>;
  /** Write a chunk after this many units or rows are buffered. Defaults 16 units, 2048 rows. */
  chunkUnits?: number;
  chunkRows?: number;
  /** Rows per chunk of the compacted, finished dataset. Default 4096. */
  compactRows?: number;
}

const chunkName = (prefix: string, id: number) => `${prefix}-${String(id).padStart(5, '0')}`;

function canonicalCompare(a: EventMeta, b: EventMeta): number {
  return (
    a.problemIndex - b.problemIndex ||
    (a.problemId < b.problemId ? -1 : a.problemId > b.problemId ? 1 : 0) ||
    a.rollout - b.rollout ||
    a.eventIndex - b.eventIndex
  );
}

function stableJson(v: unknown): string {
  return JSON.stringify(v, (_k, x) =>
    x && typeof x === 'object' && !Array.isArray(x) ? Object.fromEntries(Object.entries(x as object).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : x,
  );
}

/** Read and check a dataset manifest: a damaged one is an InvalidInputError naming the bad field, never a crash later. */
export function readManifest(dir: string): DatasetManifest {
  const path = join(dir, MANIFEST_FILE);
  const m = readJson<DatasetManifest>(path);
  if (m === null || typeof m !== 'object' || Array.isArray(m)) throw new InvalidInputError(`${path} is not a LYNX dataset manifest (not a JSON object)`);
  if (m.schema !== DATASET_SCHEMA) throw new InvalidInputError(`${dir} is not a LYNX event dataset (schema ${String(m.schema)})`);
  const bad = (field: string, want: string) =>
    new InvalidInputError(`${path} is damaged: '${field}' should be ${want}; delete the folder and build it again`);
  const count = (x: unknown) => Number.isInteger(x) && (x as number) >= 0;
  if (!(count(m.nFeatures) && m.nFeatures > 0)) throw bad('nFeatures', 'a positive integer');
  if (m.info === null || typeof m.info !== 'object' || Array.isArray(m.info)) throw bad('info', 'an object');
  if (!Array.isArray(m.units) || !m.units.every((u) => typeof u === 'string')) throw bad('units', 'a list of strings');
  if (!Array.isArray(m.chunks)) throw bad('chunks', 'a list');
  m.chunks.forEach((c, i) => {
    const ok = c !== null && typeof c === 'object' && typeof c.features === 'string' && typeof c.meta === 'string' && count(c.rows);
    if (!ok) throw bad(`chunks[${i}]`, '{ features, meta, rows }');
  });
  if (!count(m.rows) || m.rows !== m.chunks.reduce((n, c) => n + c.rows, 0)) throw bad('rows', 'the sum of the chunks\' rows');
  if (typeof m.complete !== 'boolean') throw bad('complete', 'true or false');
  return m;
}

/** Builds (or resumes building) a dataset folder. */
export class DatasetWriter {
  private manifest: DatasetManifest;
  private readonly done: Set<string>;
  private buffer: { unit: string; rows: DatasetRow[] }[] = [];
  private bufferRows = 0;
  private readonly chunkUnits: number;
  private readonly chunkRows: number;
  private readonly compactRows: number;

  private constructor(
    readonly dir: string,
    manifest: DatasetManifest,
    opts: WriterOptions,
  ) {
    this.manifest = manifest;
    this.done = new Set(manifest.units);
    this.chunkUnits = Math.max(1, opts.chunkUnits ?? 16);
    this.chunkRows = Math.max(1, opts.chunkRows ?? 2048);
    this.compactRows = Math.max(1, opts.compactRows ?? 4096);
  }

  /** Open `dir` for writing: a new dataset, or the resumption of an interrupted (or finished) one. */
  static open(dir: string, opts: WriterOptions): DatasetWriter {
    const info = opts.info ?? {};
    if (!(Number.isInteger(opts.nFeatures) && opts.nFeatures > 0)) throw new InvalidInputError(`nFeatures must be a positive integer, got ${opts.nFeatures}`);
    if (existsSync(join(dir, MANIFEST_FILE))) {
      const m = readManifest(dir);
      if (m.nFeatures !== opts.nFeatures) {
        throw new InvalidInputError(`${dir} holds a dataset with ${m.nFeatures} features, not ${opts.nFeatures}: use another folder`);
      }
      if (stableJson(m.info) !== stableJson(info)) {
        throw new InvalidInputError(
          `${dir} holds a dataset built with other settings (${stableJson(m.info)}); resume with the same settings or use another folder`,
        );
      }
      return new DatasetWriter(dir, m, opts);
    }
    const m: DatasetManifest = { schema: DATASET_SCHEMA, nFeatures: opts.nFeatures, info, chunks: [], units: [], rows: 0, complete: false };
    writeJsonAtomic(join(dir, MANIFEST_FILE), m);
    return new DatasetWriter(dir, m, opts);
  }

  /** True when the unit is on disk (or buffered) and must not be built again. */
  isDone(unit: string): boolean {
    return this.done.has(unit);
  }

  get complete(): boolean {
    return this.manifest.complete;
  }

  /** Units on disk. */
  get unitsWritten(): number {
    return this.manifest.units.length;
  }

  /** Add one finished work unit with all its rows (possibly none). */
  add(unit: string, rows: readonly DatasetRow[]): void {
    if (this.manifest.complete) throw new InvalidInputError(`${this.dir} is a finished dataset; build new units into another folder`);
    if (this.done.has(unit)) throw new Error(`unit ${unit} was already added`);
    for (const r of rows) {
      if (r.features.length !== this.manifest.nFeatures) {
        throw new InvalidInputError(`unit ${unit}: a row has ${r.features.length} features, the dataset ${this.manifest.nFeatures}`);
      }
    }
    this.done.add(unit);
    this.buffer.push({ unit, rows: rows.map((r) => ({ features: r.features.slice(), meta: { ...r.meta, unit } })) });
    this.bufferRows += rows.length;
    if (this.buffer.length >= this.chunkUnits || this.bufferRows >= this.chunkRows) this.flush();
  }

  /** Write the buffered units as one chunk. */
  flush(): void {
    if (this.buffer.length === 0) return;
    const m = this.manifest;
    const rows = this.buffer.flatMap((b) => b.rows);
    const name = chunkName('chunk', m.chunks.length);
    if (rows.length > 0) this.writeChunk(name, rows);
    const next: DatasetManifest = {
      ...m,
      chunks: rows.length > 0 ? [...m.chunks, { features: `${name}.safetensors`, meta: `${name}.jsonl`, rows: rows.length }] : m.chunks,
      units: [...m.units, ...this.buffer.map((b) => b.unit)],
      rows: m.rows + rows.length,
    };
    writeJsonAtomic(join(this.dir, MANIFEST_FILE), next);
    this.manifest = next;
    this.buffer = [];
    this.bufferRows = 0;
  }

  private writeChunk(name: string, rows: readonly DatasetRow[]): void {
    const d = this.manifest.nFeatures;
    const data = new Float32Array(rows.length * d);
    rows.forEach((r, i) => data.set(r.features, i * d));
    writeSafetensors(join(this.dir, `${name}.safetensors`), { [FEATURES]: { dtype: 'F32', shape: [rows.length, d], data } }, { format: DATASET_SCHEMA });
    writeFileAtomic(join(this.dir, `${name}.jsonl`), rows.map((r) => JSON.stringify(r.meta)).join('\n') + (rows.length ? '\n' : ''));
  }

  /**
   * Flush, then (by default) rewrite the data in canonical order into `data-*` chunks and mark the dataset complete.
   * Interrupted, it is redone on the next `finish`: the old chunks stay named in the manifest until the new ones are.
   */
  finish(opts: { compact?: boolean } = {}): void {
    if (this.manifest.complete) {
      this.removeStrays();
      return;
    }
    this.flush();
    const m = this.manifest;
    if (opts.compact === false) {
      const next = { ...m, complete: true };
      writeJsonAtomic(join(this.dir, MANIFEST_FILE), next);
      this.manifest = next;
      return;
    }
    const ds = readDataset(this.dir, { requireComplete: false });
    const chunks: ChunkEntry[] = [];
    for (let r0 = 0, id = 0; r0 < ds.rows; r0 += this.compactRows, id++) {
      const n = Math.min(this.compactRows, ds.rows - r0);
      const name = chunkName('data', id);
      const rows: DatasetRow[] = [];
      for (let i = 0; i < n; i++) rows.push({ features: ds.features.subarray((r0 + i) * ds.nFeatures, (r0 + i + 1) * ds.nFeatures), meta: ds.meta[r0 + i]! });
      this.writeChunk(name, rows);
      chunks.push({ features: `${name}.safetensors`, meta: `${name}.jsonl`, rows: n });
    }
    const next: DatasetManifest = { ...m, chunks, units: [...m.units].sort(), rows: ds.rows, complete: true };
    writeJsonAtomic(join(this.dir, MANIFEST_FILE), next);
    this.manifest = next;
    this.removeStrays();
  }

  /** Remove chunk files the manifest does not name and temporary files of interrupted writes. */
  private removeStrays(): void {
    const keep = new Set(this.manifest.chunks.flatMap((c) => [c.features, c.meta]));
    for (const f of readdirSync(this.dir)) {
      const chunkFile = /^(chunk|data)-\d{5}\.(safetensors|jsonl)$/.test(f);
      const tmpFile = f.startsWith('.') && f.endsWith('.tmp');
      if ((chunkFile && !keep.has(f)) || tmpFile) rmSync(join(this.dir, f), { force: true });
    }
  }
}

/** A dataset loaded into memory, rows in canonical order. */
export interface Dataset {
  nFeatures: number;
  rows: number;
  /** [rows][nFeatures] row-major. */
  features: Float32Array;
  meta: EventMeta[];
  info: Record<string, unknown>;
  /** The folders it was read from. */
  sources: string[];
}

/**
 * Load one dataset folder, or several (shards of one build) as one. Rows come back in canonical order; a work unit
 * present in two folders is an error.
 */
export function readDataset(dirs: string | readonly string[], opts: { requireComplete?: boolean } = {}): Dataset {
  const list = typeof dirs === 'string' ? [dirs] : [...dirs];
  if (list.length === 0) throw new InvalidInputError('no dataset folders given');
  const manifests = list.map((dir) => {
    if (!existsSync(join(dir, MANIFEST_FILE))) throw new InvalidInputError(`${dir} has no ${MANIFEST_FILE}: not a LYNX event dataset`);
    const m = readManifest(dir);
    if ((opts.requireComplete ?? true) && !m.complete) {
      throw new InvalidInputError(`the dataset in ${dir} is unfinished (${m.units.length} units so far): run the same build again to complete it`);
    }
    return m;
  });
  const d = manifests[0]!.nFeatures;
  const seenUnits = new Map<string, string>();
  manifests.forEach((m, i) => {
    if (m.nFeatures !== d) throw new InvalidInputError(`${list[i]} has ${m.nFeatures} features but ${list[0]} has ${d}: they cannot be merged`);
    for (const u of m.units) {
      const other = seenUnits.get(u);
      if (other !== undefined) throw new InvalidInputError(`unit ${u} is in both ${other} and ${list[i]}: shards overlap`);
      seenUnits.set(u, list[i]!);
    }
  });
  // Metadata of every row, with where its features live.
  const where: { meta: EventMeta; source: number; chunk: number; row: number }[] = [];
  manifests.forEach((m, s) => {
    m.chunks.forEach((c, ci) => {
      const lines = readFileSync(join(list[s]!, c.meta), 'utf8').split('\n').filter((l) => l.trim() !== '');
      if (lines.length !== c.rows) throw new InvalidInputError(`${join(list[s]!, c.meta)} has ${lines.length} rows, the manifest says ${c.rows}`);
      lines.forEach((l, r) => {
        let meta: EventMeta;
        try {
          meta = JSON.parse(l) as EventMeta;
        } catch {
          throw new InvalidInputError(`${join(list[s]!, c.meta)}:${r + 1} is not valid JSON: the dataset is damaged`);
        }
        where.push({ meta, source: s, chunk: ci, row: r });
      });
    });
  });
  const order = where.map((_, i) => i).sort((a, b) => canonicalCompare(where[a]!.meta, where[b]!.meta) || a - b);
  const dest = new Int32Array(where.length);
  order.forEach((src, dst) => (dest[src] = dst));
  const features = new Float32Array(where.length * d);
  let base = 0;
  manifests.forEach((m, s) => {
    m.chunks.forEach((c) => {
      const f = TensorFile.open(join(list[s]!, c.features));
      try {
        const shape = f.shape(FEATURES);
        if (shape[0] !== c.rows || shape[1] !== d) throw new InvalidInputError(`${f.path}: features [${shape}] do not match ${c.rows} rows × ${d}`);
        const data = f.float32(FEATURES).data;
        for (let r = 0; r < c.rows; r++) features.set(data.subarray(r * d, (r + 1) * d), dest[base + r]! * d);
      } finally {
        f.close();
      }
      base += c.rows;
    });
  });
  return {
    nFeatures: d,
    rows: where.length,
    features,
    meta: order.map((i) => where[i]!.meta),
    info: manifests[0]!.info,
    sources: list,
  };
}

/** Write the merge of several dataset folders (e.g. `--shard i/N` outputs) as one finished dataset. */
export function mergeDatasets(inputs: readonly string[], outDir: string, opts: { info?: Record<string, unknown>; compactRows?: number } = {}): Dataset {
  const ds = readDataset(inputs);
  const info = opts.info ?? { ...ds.info, mergedFrom: inputs.length };
  if (existsSync(join(outDir, MANIFEST_FILE))) throw new InvalidInputError(`${outDir} already holds a dataset: merge into an empty folder`);
  const w = DatasetWriter.open(outDir, { nFeatures: ds.nFeatures, info, chunkRows: Number.MAX_SAFE_INTEGER, chunkUnits: Number.MAX_SAFE_INTEGER, compactRows: opts.compactRows });
  const units = new Map<string, DatasetRow[]>();
  for (const m of inputs.map(readManifest)) for (const u of m.units) units.set(u, []);
  ds.meta.forEach((meta, i) => {
    const rows = meta.unit === undefined ? undefined : units.get(meta.unit);
    if (!rows) throw new InvalidInputError(`a row of ${meta.problemId} names no finished unit of its dataset (unit ${String(meta.unit)})`);
    rows.push({ features: ds.features.subarray(i * ds.nFeatures, (i + 1) * ds.nFeatures), meta });
  });
  for (const [u, rows] of units) w.add(u, rows);
  w.finish();
  return readDataset(outDir);
}

/** The work-unit key of a rollout. */
export function unitKey(problemId: string, rollout: number): string {
  return `${problemId}#${rollout}`;
}

/** 0/1 labels of a dataset's rows. */
export function datasetLabels(ds: Pick<Dataset, 'meta'>): Uint8Array {
  return Uint8Array.from(ds.meta, (m) => m.label);
}

/**
 * Group rows into rollouts for simulation and trajectory calibration, with each event's probe score. Rollouts of
 * units without rows (no events) are not recoverable from rows alone and are left out.
 */
export function datasetRollouts(ds: Pick<Dataset, 'meta'>, scores: ArrayLike<number>): SimRollout[] {
  if (scores.length !== ds.meta.length) throw new InvalidInputError(`${scores.length} scores for ${ds.meta.length} events`);
  const out = new Map<string, SimRollout & { events: SimEvent[] }>();
  ds.meta.forEach((m, i) => {
    const key = m.unit ?? unitKey(m.problemId, m.rollout);
    let r = out.get(key);
    if (!r) {
      r = {
        problemId: m.problemId,
        rollout: m.rollout,
        index: m.problemIndex,
        fullCorrect: m.fullCorrect,
        fullAnswer: m.fullAnswer,
        fullTokens: m.fullTokenCounts ?? m.fullTokens,
        ...(typeof m.promptTokens === 'number' ? { promptTokens: m.promptTokens } : {}),
        exitCueTokens: m.exitCueTokens,
        events: [],
      };
      out.set(key, r);
    }
    r.events.push({
      score: scores[i]!,
      correct: m.label === 1,
      synthetic: m.synthetic,
      tokenIndex: m.position,
      answerTokens: m.exitAnswerTokens,
      answer: m.exitAnswer,
      cue: m.cue,
      charOffset: m.charOffset,
      ...(typeof m.decidedAt === 'number' ? { decidedAt: m.decidedAt } : {}),
    });
  });
  return [...out.values()];
}
