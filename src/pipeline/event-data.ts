/**
 * The experiment folder and the event datasets its offline steps read:
 *
 *   EXP/datasets/<name>/                      event datasets (lynx/dataset/store.ts); manifest info names hiddenStateLayers, cues, model, ...
 *   EXP/probe/                                probe.json + probe.safetensors + metrics.json        trainProbeStep (train-probe.ts)
 *   EXP/conformal/                            one rule JSON per rule and δ + summary.json           calibrateStep (calibrate.ts)
 *   EXP/eval/<benchmark>/<method>/<setting>/  metrics.json, predictions.jsonl, config.json          simulateStep (simulate.ts), evaluateStep
 *
 * Every step checks that the datasets and the probe describe the same features (feature count, hidden-state layers,
 * cues, model) and fails with a message naming the disagreement.
 */
import { existsSync } from 'node:fs';
import { basename, join } from 'node:path';
import { InvalidInputError } from '../util/errors.js';
import { readJson } from '../util/fs.js';
import { MANIFEST_FILE, readDataset, unitKey, type EventMeta } from '../reasoning/lynx/dataset/store.js';
import { type ProbeHeader } from '../reasoning/lynx/probe/probe.js';
import { type SimRollout } from '../reasoning/lynx/simulate.js';
import { checkLastLayerTap, type LastLayerTap } from '../reasoning/lynx/features.js';

export type Log = (line: string) => void;

// ---------------------------------------------------------------------------------------------------------------
// Datasets

/** One input dataset as the probe info and calibration summaries record it (no filesystem path: outputs stay portable). */
export interface DatasetRecord {
  name: string;
  rows: number;
  rollouts: number;
  problems: number;
  /** Fraction of events whose forced exit was correct. */
  labelRate: number;
  benchmark?: unknown;
  split?: unknown;
}

/** What a probe's features are: every dataset and the probe must agree on these. */
export interface FeatureSpec {
  nFeatures: number;
  hiddenStateLayers: number[];
  /** How the last layer was read ('final' after the norm; datasets that do not say read 'residual'). */
  lastLayer: LastLayerTap;
  cues?: unknown;
  model?: unknown;
}

/** Several datasets loaded as one: rows of the first, then of the second, ... */
export interface EventData {
  spec: FeatureSpec;
  /** Exit cue(s) the labels were made with: the common value, or every distinct one. */
  exitCue?: unknown;
  /** `benchmark` of the datasets' info when they all name the same one. */
  benchmark?: string;
  rows: number;
  features: Float32Array;
  /** Metadata; with several datasets whose problem ids collide, ids (and units) are prefixed `<dataset name>:`. */
  meta: EventMeta[];
  datasets: DatasetRecord[];
  /** Work units (rollouts) in the manifests, including rollouts without events. */
  units: number;
}

function stableJson(v: unknown): string {
  return JSON.stringify(v, (_k, x) =>
    x && typeof x === 'object' && !Array.isArray(x) ? Object.fromEntries(Object.entries(x as object).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : x,
  ) ?? 'undefined';
}

const show = (v: unknown) => (v === undefined ? '(not recorded)' : stableJson(v));

function layersOf(info: Record<string, unknown> | undefined, where: string, hint: string): number[] {
  const hs = info?.hiddenStateLayers;
  if (!Array.isArray(hs) || hs.length === 0 || !hs.every((x) => Number.isInteger(x))) {
    throw new InvalidInputError(`${where} does not say which hidden-state layers its features come from (info.hiddenStateLayers); ${hint}`);
  }
  return hs as number[];
}

/**
 * Load one or more finished event datasets as one. They must agree on the feature count, the hidden-state layers,
 * the cues and the model, else a probe trained or calibrated on them would mix different features.
 */
export function loadEventDatasets(dirs: readonly string[]): EventData {
  if (dirs.length === 0) throw new InvalidInputError('give at least one event dataset folder (written by lynx build-dataset)');
  const loaded = dirs.map((dir) => {
    const ds = readDataset(dir);
    if (ds.rows === 0) throw new InvalidInputError(`the dataset in ${dir} has no events`);
    const hs = layersOf(ds.info, `the dataset in ${dir}`, 'rebuild it with lynx build-dataset');
    const lastLayer = checkLastLayerTap(ds.info.lastLayer, `the dataset in ${dir}`);
    return { dir, ds, spec: { nFeatures: ds.nFeatures, hiddenStateLayers: hs, lastLayer, cues: ds.info.cues, model: ds.info.model } as FeatureSpec };
  });
  const first = loaded[0]!;
  for (const l of loaded.slice(1)) {
    for (const key of ['nFeatures', 'hiddenStateLayers', 'lastLayer', 'cues', 'model'] as const) {
      if (stableJson(l.spec[key]) !== stableJson(first.spec[key])) {
        throw new InvalidInputError(
          `the datasets disagree on ${key}: ${first.dir} has ${show(first.spec[key])}, ${l.dir} has ${show(l.spec[key])}; ` +
            'a probe reads one kind of feature, so use datasets built with the same model, layers and cues',
        );
      }
    }
  }
  // Problem ids of different datasets may collide (two benchmarks, or two builds of one): prefix them then.
  const owner = new Map<string, number>();
  let collide = false;
  loaded.forEach((l, i) => {
    for (const m of l.ds.meta) {
      const o = owner.get(m.problemId);
      if (o !== undefined && o !== i) collide = true;
      owner.set(m.problemId, i);
    }
  });
  const names = loaded.map((l) => basename(l.dir.replace(/[\\/]+$/, '')) || l.dir);
  const uniqueNames = new Set(names).size === names.length;
  const prefix = (i: number) => (uniqueNames ? names[i]! : `${i}.${names[i]!}`) + ':';
  const d = first.spec.nFeatures;
  const rows = loaded.reduce((s, l) => s + l.ds.rows, 0);
  // One dataset: use its matrix as is (real feature matrices run to gigabytes); several: one copy.
  const features = loaded.length === 1 ? first.ds.features.subarray(0, rows * d) : new Float32Array(rows * d);
  const meta: EventMeta[] = [];
  let units = 0;
  const datasets: DatasetRecord[] = [];
  loaded.forEach((l, i) => {
    if (loaded.length > 1) features.set(l.ds.features.subarray(0, l.ds.rows * d), meta.length * d);
    for (const m of l.ds.meta) {
      if (!collide) meta.push(m);
      else {
        const problemId = prefix(i) + m.problemId;
        meta.push({ ...m, problemId, unit: unitKey(problemId, m.rollout) });
      }
    }
    const manifest = readJson<{ units?: unknown[] }>(join(l.dir, MANIFEST_FILE));
    units += Array.isArray(manifest.units) ? manifest.units.length : 0;
    const pos = l.ds.meta.reduce((s, m) => s + (m.label ? 1 : 0), 0);
    datasets.push({
      name: names[i]!,
      rows: l.ds.rows,
      rollouts: new Set(l.ds.meta.map((m) => m.unit ?? unitKey(m.problemId, m.rollout))).size,
      problems: new Set(l.ds.meta.map((m) => m.problemId)).size,
      labelRate: pos / l.ds.rows,
      ...(l.ds.info.benchmark !== undefined ? { benchmark: l.ds.info.benchmark } : {}),
      ...(l.ds.info.split !== undefined ? { split: l.ds.info.split } : {}),
    });
  });
  const exitCues = [...new Map(loaded.map((l) => [stableJson(l.ds.info.exitCue), l.ds.info.exitCue])).values()].filter((x) => x !== undefined);
  const benchmarks = new Set(loaded.map((l) => l.ds.info.benchmark));
  const benchmark = benchmarks.size === 1 ? [...benchmarks][0] : undefined;
  return {
    spec: first.spec,
    exitCue: exitCues.length <= 1 ? exitCues[0] : exitCues,
    benchmark: typeof benchmark === 'string' ? benchmark : undefined,
    rows,
    features,
    meta,
    datasets,
    units,
  };
}

/** Check that a probe reads the features these datasets hold. */
export function checkProbeMatches(header: ProbeHeader, probeDir: string, data: EventData): void {
  const info = header.info ?? {};
  if (header.nFeatures !== data.spec.nFeatures) {
    throw new InvalidInputError(`the probe in ${probeDir} reads ${header.nFeatures} features but the datasets have ${data.spec.nFeatures}`);
  }
  const hs = layersOf(info, `the probe in ${probeDir}`, "train it with 'lynx train-probe'");
  if (stableJson(hs) !== stableJson(data.spec.hiddenStateLayers)) {
    throw new InvalidInputError(
      `the probe in ${probeDir} reads hidden-state layers ${show(hs)} but the datasets hold layers ${show(data.spec.hiddenStateLayers)}`,
    );
  }
  const lastLayer = checkLastLayerTap(info.lastLayer, `the probe in ${probeDir}`);
  if (lastLayer !== data.spec.lastLayer) {
    throw new InvalidInputError(
      `the probe in ${probeDir} reads the last layer ${lastLayer === 'final' ? 'after' : 'before'} the final norm, the datasets hold it ${data.spec.lastLayer === 'final' ? 'after' : 'before'}: ` +
        'train the probe on these datasets, or rebuild them',
    );
  }
  for (const key of ['cues', 'model'] as const) {
    if (info[key] !== undefined && data.spec[key] !== undefined && stableJson(info[key]) !== stableJson(data.spec[key])) {
      throw new InvalidInputError(`the probe in ${probeDir} was trained with ${key} ${show(info[key])} but the datasets have ${show(data.spec[key])}`);
    }
  }
}

export function labelsOf(meta: readonly EventMeta[]): Uint8Array {
  return Uint8Array.from(meta, (m) => (m.label ? 1 : 0));
}


export function fullTotal(r: SimRollout): number {
  return typeof r.fullTokens === 'number' ? r.fullTokens : r.fullTokens.total;
}

/** Fill in each rollout's gold answer from its events' metadata when the dataset recorded one. */
export function withGold(rollouts: SimRollout[], meta: readonly EventMeta[]): SimRollout[] {
  const gold = new Map<string, string>();
  for (const m of meta) if (typeof m.gold === 'string' && !gold.has(m.problemId)) gold.set(m.problemId, m.gold);
  return rollouts.map((r) => (r.gold === undefined && gold.has(r.problemId) ? { ...r, gold: gold.get(r.problemId) } : r));
}


export function resolveProbeDir(dir: string): string {
  return existsSync(join(dir, 'probe', 'probe.json')) && !existsSync(join(dir, 'probe.json')) ? join(dir, 'probe') : dir;
}
