/**
 * The experiment folder and the three offline steps that fill it after `lynx build-dataset`:
 *
 *   EXP/datasets/<name>/                      event datasets (dataset-store.ts), manifest info names hiddenStateLayers, cues, model, ...
 *   EXP/probe/                                probe.json + probe.safetensors + metrics.json        trainProbeOnDatasets
 *   EXP/conformal/                            one rule JSON per rule and δ + summary.json           calibrateExperiment
 *   EXP/eval/<benchmark>/<method>/<setting>/  metrics.json, predictions.jsonl, config.json          simulateExperiment
 *
 * Every step checks that the datasets and the probe describe the same features (feature count, hidden-state layers,
 * cues, model) and fails with a message naming the disagreement. Calibration splits its data **by problem** into a
 * calibration part and a held-out part (events of one problem never on both sides), so the empirical error rate of each
 * written rule can be reported next to its δ.
 */
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { basename, join } from 'node:path';
import { InvalidInputError } from '../util/errors.js';
import { readJson, writeJsonAtomic, writeFileAtomic } from '../util/fs.js';
import { Rng } from '../util/rng.js';
import { computeMetrics } from '../eval/metrics.js';
import { PREDICTIONS_FILE, runDir, writeConfig, writeMetrics, type PredictionRecord } from '../eval/records.js';
import {
  CONFORMAL_SCHEMA,
  DEFAULT_DELTAS,
  conformalSweep,
  parseRule,
  ruleFileName,
  writeSweep,
  type ExitRule,
  type HeldOutStats,
  type TrajectoryOptions,
} from '../reasoning/calibration/conformal.js';
import { MANIFEST_FILE, datasetRollouts, readDataset, unitKey, type EventMeta } from '../reasoning/lynx/dataset/store.js';
import { DEFAULT_PROBE_CONFIG, loadProbe, saveProbe, trainProbeLynx, type Probe, type ProbeConfig, type ProbeHeader, type ProbeMetrics } from '../reasoning/lynx/probe/probe.js';
import type { KernelChoice } from '../reasoning/lynx/probe/parallel.js';
import { lynxMetrics, simulateRollout, type LynxMetrics, type SimRollout } from '../reasoning/lynx/simulate.js';
import { rolloutEventRecords, rolloutId, simulate } from '../eval/simulated-runs.js';

export type RuleName = ExitRule['rule'];
export const RULE_NAMES: readonly RuleName[] = ['lynx', 'ltt', 'crc'];

/** Default share of the calibration problems held out to report empirical rates next to δ (see `calibrateExperiment`). */
export const DEFAULT_HELD_OUT_FRACTION = 0.3;

export const SUMMARY_SCHEMA = 'lynx.conformal-summary/1';
export const SUMMARY_FILE = 'summary.json';
export const PROBE_METRICS_FILE = 'metrics.json';

type Log = (line: string) => void;

// ---------------------------------------------------------------------------------------------------------------
// Datasets

/** One input dataset, as recorded in probe info and summaries (no filesystem path: outputs stay portable). */
export interface DatasetSummary {
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
  datasets: DatasetSummary[];
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
    return { dir, ds, spec: { nFeatures: ds.nFeatures, hiddenStateLayers: hs, cues: ds.info.cues, model: ds.info.model } as FeatureSpec };
  });
  const first = loaded[0]!;
  for (const l of loaded.slice(1)) {
    for (const key of ['nFeatures', 'hiddenStateLayers', 'cues', 'model'] as const) {
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
  const datasets: DatasetSummary[] = [];
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
  for (const key of ['cues', 'model'] as const) {
    if (info[key] !== undefined && data.spec[key] !== undefined && stableJson(info[key]) !== stableJson(data.spec[key])) {
      throw new InvalidInputError(`the probe in ${probeDir} was trained with ${key} ${show(info[key])} but the datasets have ${show(data.spec[key])}`);
    }
  }
}

function labelsOf(meta: readonly EventMeta[]): Uint8Array {
  return Uint8Array.from(meta, (m) => (m.label ? 1 : 0));
}

// ---------------------------------------------------------------------------------------------------------------
// train-probe

export interface TrainProbeOnDatasetsOptions {
  datasets: readonly string[];
  outDir: string;
  config?: Partial<ProbeConfig>;
  /** Seed of the probe (initialisation, splits, shuffling); overrides config.seed. Default 42 (LYNX's). */
  seed?: number;
  /** Stratified share of the events held out for the reported metrics (LYNX's --val-split). Default 0.2. */
  valSplit?: number;
  threads?: number;
  kernels?: KernelChoice;
  log?: Log;
}

/** metrics.json of a probe folder: LYNX's probe metrics plus the class balance and the data it saw. */
export interface ProbeTrainingMetrics extends ProbeMetrics {
  n_events: number;
  label_rate: number;
  val_pos: number;
  val_neg: number;
  threads: number;
  stopped_early: boolean;
  datasets: DatasetSummary[];
}

/** Train LYNX's probe on one or more event datasets and save it (probe.json, probe.safetensors, metrics.json). */
export function trainProbeOnDatasets(opts: TrainProbeOnDatasetsOptions): { probe: Probe; metrics: ProbeTrainingMetrics; dir: string } {
  const data = loadEventDatasets(opts.datasets);
  const y = labelsOf(data.meta);
  const pos = y.reduce((s, v) => s + v, 0);
  if (pos === 0 || pos === data.rows) {
    throw new InvalidInputError(
      `the probe needs events of both labels, but all ${data.rows} forced exits in ${opts.datasets.join(', ')} were ${pos ? 'correct' : 'wrong'}`,
    );
  }
  const config: Partial<ProbeConfig> = { ...opts.config, ...(opts.seed !== undefined ? { seed: opts.seed } : {}) };
  const seed = config.seed ?? DEFAULT_PROBE_CONFIG.seed;
  opts.log?.(`training on ${data.rows} events (${pos} correct exits, ${data.rows - pos} wrong) × ${data.spec.nFeatures} features`);
  const { probe, metrics, history, validation } = trainProbeLynx(
    { data: data.features, rows: data.rows, cols: data.spec.nFeatures },
    y,
    {
      valSplit: opts.valSplit,
      config: { ...config, seed },
      threads: opts.threads,
      kernels: opts.kernels,
      onEpoch: opts.log
        ? (epoch, loss, score) => {
            if (epoch % 10 === 0) opts.log!(`epoch ${epoch + 1}: loss ${loss.toFixed(4)}${score === undefined ? '' : `, early-stopping score ${score.toFixed(4)}`}`);
          }
        : undefined,
    },
  );
  const full: ProbeTrainingMetrics = {
    ...metrics,
    n_events: data.rows,
    label_rate: pos / data.rows,
    val_pos: validation.nPos,
    val_neg: validation.nNeg,
    threads: history.threads,
    stopped_early: history.stoppedEarly,
    datasets: data.datasets,
  };
  const resolved: ProbeConfig = { ...DEFAULT_PROBE_CONFIG, ...config, seed, hidden: probe.hidden };
  saveProbe(opts.outDir, probe, {
    hiddenStateLayers: data.spec.hiddenStateLayers,
    ...(data.spec.cues !== undefined ? { cues: data.spec.cues } : {}),
    ...(data.exitCue !== undefined ? { exitCue: data.exitCue } : {}),
    ...(data.spec.model !== undefined ? { model: data.spec.model } : {}),
    datasets: data.datasets,
    config: resolved,
    valSplit: metrics.val_split,
    valAuc: metrics.val_auc,
    trainedAt: new Date().toISOString(),
  });
  writeJsonAtomic(join(opts.outDir, PROBE_METRICS_FILE), nullForNonFinite(full));
  return { probe, metrics: full, dir: opts.outDir };
}

// ---------------------------------------------------------------------------------------------------------------
// calibrate

export interface CalibrateExperimentOptions {
  /** Probe folder (or an experiment folder holding probe/). */
  probeDir: string;
  /** Calibration datasets: disjoint from the probe's training data. */
  datasets: readonly string[];
  /** Where the rule files and summary.json go (EXP/conformal). */
  outDir: string;
  deltas?: readonly number[];
  rules?: readonly RuleName[];
  /**
   * Share of the calibration problems held out (split by problem, seeded) to report each rule's empirical error rate
   * next to δ; the rules are calibrated on the rest. 0 = calibrate on everything, report nothing. Default 0.3.
   */
  heldOutFraction?: number;
  seed?: number;
  /** LTT's α and the threshold grid of the trajectory rules. */
  trajectory?: TrajectoryOptions;
  log?: Log;
}

/** The rate a rule's guarantee bounds by δ, measured on held-out data. */
export type GuaranteedRate = 'eventErrorRate' | 'prematureExitRate';

export interface SummaryHeldOut extends HeldOutStats {
  /** Mean generated tokens of a held-out rollout without early exit. */
  baselineAvgTokens: number;
  /** avgSavings / baselineAvgTokens (null without token counts). */
  savingsRate: number | null;
  /** The held-out value of the guaranteed rate, and whether it is ≤ δ. */
  empiricalRate: number;
  withinDelta: boolean;
}

export interface SummaryEntry {
  rule: RuleName;
  delta: number;
  file: string;
  threshold: number | null;
  /** Calibration units: events (lynx) or problems (ltt, crc). */
  nCal: number;
  guarantee: string;
  /** Which held-out rate the guarantee is about: per event (lynx) or per problem (ltt, crc). */
  guaranteedRate: GuaranteedRate;
  /** lynx: the conformal quantiles and whether the guarantee's condition holds. */
  qPos?: number | null;
  qNeg?: number | null;
  valid?: boolean;
  heldOut?: SummaryHeldOut;
}

export interface CalibrationSummary {
  schema: typeof SUMMARY_SCHEMA;
  createdAt: string;
  probe: { nFeatures: number; hiddenStateLayers: number[]; model?: unknown; cues?: unknown; trainedOn?: unknown };
  data: DatasetSummary[];
  split: {
    unit: 'problem';
    heldOutFraction: number;
    seed: number;
    calibration: PartCounts;
    heldOut: PartCounts | null;
  };
  trajectory: { alpha: number; gridStep: number };
  rules: SummaryEntry[];
}

interface PartCounts {
  problems: number;
  rollouts: number;
  events: number;
  correctExits: number;
  wrongExits: number;
}

function counts(meta: readonly EventMeta[]): PartCounts {
  const pos = meta.reduce((s, m) => s + (m.label ? 1 : 0), 0);
  return {
    problems: new Set(meta.map((m) => m.problemId)).size,
    rollouts: new Set(meta.map((m) => m.unit ?? unitKey(m.problemId, m.rollout))).size,
    events: meta.length,
    correctExits: pos,
    wrongExits: meta.length - pos,
  };
}

/** Seeded split of problem ids: the held-out set, round(fraction · P) problems (at least 1, at most P − 1). */
export function splitProblems(problemIds: Iterable<string>, fraction: number, seed: number): Set<string> {
  if (!(fraction >= 0 && fraction < 1)) throw new InvalidInputError(`the held-out fraction must be in [0, 1), got ${fraction}`);
  const ids = [...new Set(problemIds)].sort();
  if (fraction === 0) return new Set();
  if (ids.length < 2) throw new InvalidInputError(`cannot hold out part of ${ids.length} problem(s): give more calibration problems or --held-out 0`);
  const n = Math.min(ids.length - 1, Math.max(1, Math.round(fraction * ids.length)));
  return new Set(Rng.derive(seed, 'calibration-split').shuffle(ids).slice(0, n));
}

function resolveProbeDir(dir: string): string {
  return existsSync(join(dir, 'probe', 'probe.json')) && !existsSync(join(dir, 'probe.json')) ? join(dir, 'probe') : dir;
}

function checkRules(rules: readonly string[]): RuleName[] {
  if (rules.length === 0) throw new InvalidInputError('give at least one rule (lynx, ltt, crc)');
  for (const r of rules) if (!RULE_NAMES.includes(r as RuleName)) throw new InvalidInputError(`unknown rule '${r}': use lynx, ltt or crc`);
  return [...new Set(rules as RuleName[])];
}

function checkDeltas(deltas: readonly number[]): number[] {
  if (deltas.length === 0) throw new InvalidInputError('give at least one delta');
  for (const d of deltas) if (!(d > 0 && d < 1)) throw new InvalidInputError(`delta must be in (0, 1), got ${d}`);
  return [...new Set(deltas)].sort((a, b) => a - b);
}

/** A rule file written by a calibration (schema checked), or null for any other file. */
function readRuleFile(path: string): ExitRule | null {
  let json: unknown;
  try {
    json = readJson(path);
  } catch {
    return null;
  }
  if (!json || typeof json !== 'object' || (json as { schema?: unknown }).schema !== CONFORMAL_SCHEMA) return null;
  return parseRule(json);
}

/**
 * Score the calibration datasets with the probe, split them by problem into a calibration and a held-out part, calibrate
 * every rule at every δ on the calibration part, write the rule files (with held-out statistics) and summary.json.
 *
 * The rules written are the ones calibrated on the calibration part, so the held-out rates describe exactly them.
 * Default held-out share 0.3: the rules, and the smallest δ that can be certified (LTT needs (1 − δ)^n ≤ α, n ≥ 230
 * problems at δ = 0.01; LYNX's quantile needs n₀ ≥ 1/δ − 1 wrong exits), depend on the calibration size, whereas the
 * held-out rates are only a check, and `lynx simulate` on a separate test dataset is the evaluation proper.
 * Rule files of an earlier calibration in `outDir` that this one does not rewrite are removed, so the folder always
 * holds one calibration.
 */
export function calibrateExperiment(opts: CalibrateExperimentOptions): { rules: ExitRule[]; summary: CalibrationSummary; files: string[] } {
  const deltas = checkDeltas(opts.deltas ?? DEFAULT_DELTAS);
  const ruleNames = checkRules(opts.rules ?? RULE_NAMES);
  const fraction = opts.heldOutFraction ?? DEFAULT_HELD_OUT_FRACTION;
  const seed = opts.seed ?? 0;
  const probeDir = resolveProbeDir(opts.probeDir);
  const { probe, header } = loadProbe(probeDir);
  const data = loadEventDatasets(opts.datasets);
  checkProbeMatches(header, probeDir, data);

  const all = labelsOf(data.meta);
  const pos = all.reduce((s, v) => s + v, 0);
  if (pos === 0 || pos === data.rows) {
    throw new InvalidInputError(
      `the calibration data has a single class: all ${data.rows} forced exits were ${pos ? 'correct' : 'wrong'}; ` +
        'the rules need events where an exit is right and events where it is wrong (more problems, or a harder benchmark)',
    );
  }
  const scores = probe.predict(data.features, data.rows);
  const held = splitProblems(
    data.meta.map((m) => m.problemId),
    fraction,
    seed,
  );
  const calRows: number[] = [];
  const heldRows: number[] = [];
  data.meta.forEach((m, i) => (held.has(m.problemId) ? heldRows : calRows).push(i));
  const calMeta = calRows.map((i) => data.meta[i]!);
  const calCounts = counts(calMeta);
  if (calCounts.correctExits === 0 || calCounts.wrongExits === 0) {
    throw new InvalidInputError(
      `after holding out ${held.size} problems, the calibration part has a single class (${calCounts.correctExits} correct, ` +
        `${calCounts.wrongExits} wrong forced exits): lower --held-out or give more calibration problems`,
    );
  }
  const rollouts = withGold(datasetRollouts(data, scores), data.meta);
  const calRollouts = rollouts.filter((r) => !held.has(r.problemId));
  const heldRollouts = rollouts.filter((r) => held.has(r.problemId));
  opts.log?.(
    `calibration: ${calCounts.problems} problems, ${calCounts.rollouts} rollouts, ${calCounts.events} events` +
      (held.size ? `; held out: ${held.size} problems, ${heldRollouts.length} rollouts, ${heldRows.length} events` : '; nothing held out'),
  );
  const trajectory: Required<Pick<TrajectoryOptions, 'alpha' | 'gridStep'>> & TrajectoryOptions = {
    ...opts.trajectory,
    alpha: opts.trajectory?.alpha ?? 0.1,
    gridStep: opts.trajectory?.gridStep ?? 0.001,
  };
  const rules = conformalSweep({
    events: { p: Float64Array.from(calRows, (i) => scores[i]!), labels: Uint8Array.from(calRows, (i) => all[i]!) },
    rollouts: calRollouts,
    heldOut: held.size ? heldRollouts : undefined,
    deltas,
    rules: ruleNames,
    trajectory,
  });
  const baselineAvgTokens = heldRollouts.length ? heldRollouts.reduce((s, r) => s + fullTotal(r), 0) / heldRollouts.length : 0;
  const entries: SummaryEntry[] = [];
  for (const r of rules) {
    const guaranteedRate: GuaranteedRate = r.rule === 'lynx' ? 'eventErrorRate' : 'prematureExitRate';
    let heldOut: SummaryHeldOut | undefined;
    if (r.heldOut) {
      const empiricalRate = r.heldOut[guaranteedRate];
      heldOut = {
        ...r.heldOut,
        baselineAvgTokens,
        savingsRate: r.heldOut.avgSavings === null || baselineAvgTokens <= 0 ? null : r.heldOut.avgSavings / baselineAvgTokens,
        empiricalRate,
        withinDelta: empiricalRate <= r.delta,
      };
      // The rule file carries the same held-out numbers (the report reads them from there).
      r.heldOut = heldOut;
    }
    entries.push({
      rule: r.rule,
      delta: r.delta,
      file: ruleFileName(r.rule, r.delta),
      threshold: r.threshold,
      nCal: r.nCal,
      guarantee: r.guarantee,
      guaranteedRate,
      ...(r.rule === 'lynx' ? { qPos: finiteOrNull(r.qPos), qNeg: finiteOrNull(r.qNeg), valid: r.valid } : {}),
      ...(heldOut ? { heldOut } : {}),
    });
  }
  const files = writeSweep(opts.outDir, rules);
  removeStaleRules(opts.outDir, new Set(files.map((f) => basename(f))));
  const info = header.info ?? {};
  const summary: CalibrationSummary = {
    schema: SUMMARY_SCHEMA,
    createdAt: new Date().toISOString(),
    probe: {
      nFeatures: header.nFeatures,
      hiddenStateLayers: data.spec.hiddenStateLayers,
      ...(info.model !== undefined ? { model: info.model } : {}),
      ...(info.cues !== undefined ? { cues: info.cues } : {}),
      ...(info.datasets !== undefined ? { trainedOn: info.datasets } : {}),
    },
    data: data.datasets,
    split: {
      unit: 'problem',
      heldOutFraction: fraction,
      seed,
      calibration: calCounts,
      heldOut: held.size ? counts(heldRows.map((i) => data.meta[i]!)) : null,
    },
    trajectory: { alpha: trajectory.alpha, gridStep: trajectory.gridStep },
    rules: entries,
  };
  writeJsonAtomic(join(opts.outDir, SUMMARY_FILE), nullForNonFinite(summary));
  return { rules, summary, files };
}

function removeStaleRules(dir: string, keep: ReadonlySet<string>): void {
  for (const f of readdirSync(dir)) {
    if (keep.has(f) || !/^(conformal_calib|ltt|crc)_.+\.json$/.test(f)) continue;
    if (readRuleFile(join(dir, f))) rmSync(join(dir, f), { force: true });
  }
}

function fullTotal(r: SimRollout): number {
  return typeof r.fullTokens === 'number' ? r.fullTokens : r.fullTokens.total;
}

const finiteOrNull = (x: number) => (Number.isFinite(x) ? x : null);

function nullForNonFinite<T>(v: T): T {
  return JSON.parse(JSON.stringify(v, (_k, x) => (typeof x === 'number' && !Number.isFinite(x) ? null : x))) as T;
}

/** Fill in each rollout's gold answer from its events' metadata when the dataset recorded one. */
function withGold(rollouts: SimRollout[], meta: readonly EventMeta[]): SimRollout[] {
  const gold = new Map<string, string>();
  for (const m of meta) if (typeof m.gold === 'string' && !gold.has(m.problemId)) gold.set(m.problemId, m.gold);
  return rollouts.map((r) => (r.gold === undefined && gold.has(r.problemId) ? { ...r, gold: gold.get(r.problemId) } : r));
}

// ---------------------------------------------------------------------------------------------------------------
// simulate

export interface SimulateExperimentOptions {
  /** The experiment folder: probe/ and conformal/ are read from it, eval/ written into it (unless given below). */
  exp: string;
  probeDir?: string;
  conformalDir?: string;
  /** Test datasets: disjoint from the probe's training and the calibration data. */
  datasets: readonly string[];
  /** Benchmark name of the run folders; default the datasets' info.benchmark. */
  benchmark?: string;
  /** Only these rules / δs (default every rule file in the conformal folder). */
  rules?: readonly RuleName[];
  deltas?: readonly number[];
  /** Bootstrap seed and resamples of the intervals. */
  seed?: number;
  resamples?: number;
  log?: Log;
}

export interface SimulatedRun {
  method: string;
  setting: string;
  dir: string;
  lynx: LynxMetrics;
}

/** Rule files in a conformal folder, filtered, in order lynx, ltt, crc and increasing δ. */
export function readRules(conformalDir: string, filter: { rules?: readonly RuleName[]; deltas?: readonly number[] } = {}): ExitRule[] {
  if (!existsSync(conformalDir)) throw new InvalidInputError(`no conformal folder at ${conformalDir}: run 'lynx calibrate' first`);
  const rules: ExitRule[] = [];
  for (const f of readdirSync(conformalDir).sort()) {
    if (!f.endsWith('.json')) continue;
    const r = readRuleFile(join(conformalDir, f));
    if (r) rules.push(r);
  }
  if (rules.length === 0) throw new InvalidInputError(`${conformalDir} holds no calibrated rule files: run 'lynx calibrate' first`);
  const want = filter.rules ? checkRules(filter.rules) : undefined;
  const deltas = filter.deltas ? checkDeltas(filter.deltas) : undefined;
  const chosen = rules.filter((r) => (!want || want.includes(r.rule)) && (!deltas || deltas.some((d) => Math.abs(d - r.delta) < 1e-12)));
  for (const rule of want ?? []) {
    for (const d of deltas ?? []) {
      if (!chosen.some((r) => r.rule === rule && Math.abs(r.delta - d) < 1e-12)) {
        throw new InvalidInputError(`${conformalDir} has no ${rule} rule for delta ${d} (${ruleFileName(rule, d)}): calibrate it first`);
      }
    }
  }
  if (chosen.length === 0) throw new InvalidInputError(`${conformalDir} holds no rule matching the requested rules and deltas`);
  return chosen.sort((a, b) => RULE_NAMES.indexOf(a.rule) - RULE_NAMES.indexOf(b.rule) || a.delta - b.delta);
}

/**
 * LYNX's simulated evaluation: score every event of the test datasets with the probe, apply every calibrated rule to
 * the stored rollouts without re-generating, and write one run folder per rule and δ (method `lynx`, `lynx-ltt`,
 * `lynx-crc`; setting `delta=…`) plus the full-rollout baseline (method `full`, setting `full`) under
 * `<exp>/eval/<benchmark>/`, so `lynx report <exp>` shows them.
 */
export function simulateExperiment(opts: SimulateExperimentOptions): { runs: SimulatedRun[]; baseline: SimulatedRun; rollouts: number; events: number; rolloutsWithoutEvents: number } {
  const probeDir = resolveProbeDir(opts.probeDir ?? join(opts.exp, 'probe'));
  const conformalDir = opts.conformalDir ?? join(opts.exp, 'conformal');
  const { probe, header } = loadProbe(probeDir);
  const rules = readRules(conformalDir, { rules: opts.rules, deltas: opts.deltas });
  const data = loadEventDatasets(opts.datasets);
  checkProbeMatches(header, probeDir, data);
  const benchmark = opts.benchmark ?? data.benchmark;
  if (!benchmark) throw new InvalidInputError('the datasets do not name one benchmark (info.benchmark): give --benchmark NAME');
  const scores = probe.predict(data.features, data.rows);
  const rollouts = withGold(datasetRollouts(data, scores), data.meta);
  const rolloutsWithoutEvents = Math.max(0, data.units - rollouts.length);
  if (rolloutsWithoutEvents > 0) {
    opts.log?.(`note: ${rolloutsWithoutEvents} rollouts have no events in the datasets and are left out of the simulation`);
  }
  const config = {
    simulatedFrom: data.datasets,
    probe: { hiddenStateLayers: data.spec.hiddenStateLayers, model: data.spec.model, nFeatures: header.nFeatures },
  };
  const simOpts = { benchmark, seed: opts.seed ?? 0, resamples: opts.resamples };
  const results = simulate(rollouts, rules, simOpts);
  const runs: SimulatedRun[] = [];
  results.forEach((res) => {
    const dir = runDir(opts.exp, benchmark, res.method, res.setting);
    writeRun(dir, res.predictions, res.metrics, { ...config, benchmark, method: res.method, setting: res.setting, rule: nullForNonFinite(res.rule) });
    runs.push({ method: res.method, setting: res.setting, dir, lynx: res.lynx });
    opts.log?.(`${res.method} ${res.setting}: ${describeRun(res.lynx)}`);
  });
  const baseline = writeBaseline(opts.exp, rollouts, benchmark, simOpts, config);
  opts.log?.(`full full: accuracy ${pct(baseline.lynx.baseline.accuracy)}, avg tokens ${baseline.lynx.baseline.avg_tokens.toFixed(0)}`);
  return { runs, baseline, rollouts: rollouts.length, events: data.rows, rolloutsWithoutEvents };
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

function describeRun(m: LynxMetrics): string {
  return (
    `accuracy ${pct(m.early_exit.accuracy)} (full ${pct(m.baseline.accuracy)}), exit rate ${pct(m.early_exit.exit_rate)}, ` +
    `avg tokens ${m.early_exit.avg_tokens.toFixed(0)} (saved ${pct(m.early_exit.savings_rate)}), premature exits ${pct(m.premature_exit_rate)}`
  );
}

function writeRun(dir: string, predictions: readonly PredictionRecord[], metrics: ReturnType<typeof computeMetrics>, config: Record<string, unknown>): void {
  writeFileAtomic(join(dir, PREDICTIONS_FILE), predictions.map((p) => JSON.stringify(p)).join('\n') + '\n');
  writeConfig(dir, {
    ...config,
    benchmark: metrics.benchmark,
    method: metrics.method,
    setting: metrics.setting,
    simulated: true,
    createdAt: new Date().toISOString(),
  });
  writeMetrics(dir, metrics);
}

/** The full rollouts as a run (method `full`, setting `full`): every rollout runs to the end. */
function writeBaseline(
  exp: string,
  rollouts: readonly SimRollout[],
  benchmark: string,
  simOpts: { seed: number; resamples?: number },
  config: Record<string, unknown>,
): SimulatedRun {
  const never = (_p: number) => false;
  const outcomes = rollouts.map((r) => simulateRollout(never, r));
  const lynx = lynxMetrics(rollouts, outcomes, simOpts);
  const predictions = rollouts.map((r, i): PredictionRecord => {
    const o = outcomes[i]!;
    const rec: PredictionRecord = {
      id: rolloutId(r),
      benchmark,
      method: 'full',
      setting: 'full',
      problem: r.problem ?? '',
      gold: r.gold ?? '',
      extracted: r.fullAnswer,
      correct: r.fullCorrect,
      tokens: o.tokens,
      wallMs: r.wallMs ?? 0,
      exit: null,
      baseline: { tokens: o.tokens.total, correct: r.fullCorrect, extracted: r.fullAnswer },
      events: rolloutEventRecords(r),
      extra: { simulated: true },
    };
    if (r.index !== undefined) rec.index = r.index;
    return rec;
  });
  const metrics = computeMetrics(predictions, { method: 'full', setting: 'full', benchmark, seed: simOpts.seed, extra: { simulated: true, lynx } });
  const dir = runDir(exp, benchmark, 'full', 'full');
  writeRun(dir, predictions, metrics, config);
  return { method: 'full', setting: 'full', dir, lynx };
}
