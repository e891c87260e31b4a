/**
 * Record formats of evaluation runs, shared by the runner (writer) and the HTML report (reader).
 *
 * Layout of an experiment root:
 *
 *   <root>/eval/<benchmark>/<method>/<setting>/metrics.json       RunMetrics
 *   <root>/eval/<benchmark>/<method>/<setting>/predictions.jsonl  one PredictionRecord per line
 *   <root>/eval/<benchmark>/<method>/<setting>/config.json        RunConfig (free-form beyond the fixed keys)
 *
 * Shards of a run live in sibling folders `<setting>/shard-<i>-of-<n>/` until merged into `<setting>/`.
 * Setting names are free text such as `delta=0.05`; they are encoded into one safe folder name with
 * `settingToDir` and decoded with `dirToSetting`, so the report can show the original text.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { InvalidInputError } from '../util/errors.js';
import { readJson, writeJsonAtomic } from '../util/fs.js';
import { readJsonl } from '../util/jsonl.js';

import type { RecordedTokenCounts } from '../reasoning/token-counts.js';

export interface CueEventRecord {
  index: number;
  /** token index in the generated text */
  position: number;
  charOffset: number;
  cue: string;
  /** probe p(correct) */
  score?: number;
  label?: 0 | 1;
  synthetic?: boolean;
  exitAnswer?: string | null;
}

export interface PredictionRecord {
  id: string;
  benchmark: string;
  /** e.g. method 'lynx', setting 'delta=0.05'; setting 'full' for full rollouts */
  method: string;
  setting: string;
  problem: string;
  gold: string;
  extracted: string | null;
  correct: boolean;
  /** Output tokens (reasoning + exitCue + answer = total) and the work (decoded, prefilled; absent in old records). */
  tokens: RecordedTokenCounts;
  wallMs: number;
  /** null = ran to the end */
  exit: { event: number; position: number; cue?: string; score?: number } | null;
  /** the full rollout when known: its output tokens (and decoded tokens, when counted) */
  baseline?: { tokens: number; decoded?: number; correct: boolean; extracted: string | null };
  events?: CueEventRecord[];
  /** generated reasoning text for the trace viewer */
  text?: string;
  extra?: Record<string, unknown>;
  /** position of the problem in the benchmark's problem list (orders merged shards) */
  index?: number;
  /** how the answer was found: 'boxed' | 'phrase' | 'number' | 'letter' | 'choice-text', or null */
  extraction?: string | null;
}

export interface RunMetrics {
  method: string;
  setting: string;
  benchmark: string;
  n: number;
  accuracy: number;
  accuracyCi95: [number, number];
  /** Output tokens per problem (what the user reads). */
  avgTokens: number;
  avgTokensCi95: [number, number];
  /** Decoded tokens per problem (every probe, trial, trace and forced exit), when every record counts them. */
  avgDecoded?: number;
  avgDecodedCi95?: [number, number];
  /** Prefilled tokens per problem (prompt and appended cues), when every record counts them. */
  avgPrefilled?: number;
  wallSec: number;
  exitRate?: number;
  baselineAccuracy?: number;
  baselineAvgTokens?: number;
  /** The full rollout's decoded tokens per problem, when every baseline counts them. */
  baselineAvgDecoded?: number;
  avgSavings?: number;
  savingsRate?: number;
  extra?: Record<string, unknown>;
}

/** config.json: the fixed keys below plus whatever the method wants to record (model, seed, delta, ...). */
export interface RunConfig {
  benchmark: string;
  method: string;
  setting: string;
  /** answer-equivalence policy used for `correct` */
  policy?: string;
  /** set on a shard folder; a merged folder has `mergedShards` instead */
  shard?: { index: number; count: number };
  mergedShards?: number;
  createdAt?: string;
  [key: string]: unknown;
}

export const METRICS_FILE = 'metrics.json';
export const PREDICTIONS_FILE = 'predictions.jsonl';
export const CONFIG_FILE = 'config.json';

/**
 * A setting as a single folder name: characters outside [A-Za-z0-9._=,+-] are percent-encoded, so `delta=0.05`
 * stays readable and `a/b` cannot escape the folder.
 */
export function settingToDir(setting: string): string {
  if (setting === '') throw new InvalidInputError('a run setting must not be empty (use "full" for full rollouts)');
  const enc = setting.replace(/[^A-Za-z0-9._=,+-]/g, (c) =>
    Array.from(Buffer.from(c, 'utf8'), (b) => '%' + b.toString(16).toUpperCase().padStart(2, '0')).join(''),
  );
  // "." and ".." would be the folder itself or its parent.
  return enc === '.' || enc === '..' ? enc.replace(/\./g, '%2E') : enc;
}

export function dirToSetting(dir: string): string {
  return decodeURIComponent(dir);
}

function checkName(kind: string, name: string): string {
  if (!/^[A-Za-z0-9._+-]+$/.test(name) || name === '.' || name === '..')
    throw new InvalidInputError(`${kind} name "${name}" must use only letters, digits and . _ + -`);
  return name;
}

/** `<root>/eval/<benchmark>/<method>/<setting>` */
export function runDir(root: string, benchmark: string, method: string, setting: string): string {
  return join(root, 'eval', checkName('benchmark', benchmark), checkName('method', method), settingToDir(setting));
}

export function shardDirName(index: number, count: number): string {
  return `shard-${index}-of-${count}`;
}

export interface RunFolder {
  dir: string;
  benchmark: string;
  method: string;
  setting: string;
}

/** Every run folder under `<root>/eval` that has a metrics.json (complete runs), sorted by benchmark, method, setting. */
export function discoverRuns(root: string, opts: { includeIncomplete?: boolean } = {}): RunFolder[] {
  const base = join(root, 'eval');
  if (!existsSync(base)) return [];
  const out: RunFolder[] = [];
  const subdirs = (d: string) =>
    readdirSync(d)
      .filter((n) => !n.startsWith('.') && statSync(join(d, n)).isDirectory())
      .sort();
  for (const benchmark of subdirs(base)) {
    for (const method of subdirs(join(base, benchmark))) {
      for (const settingDir of subdirs(join(base, benchmark, method))) {
        const dir = join(base, benchmark, method, settingDir);
        const complete = existsSync(join(dir, METRICS_FILE));
        const started = complete || existsSync(join(dir, PREDICTIONS_FILE));
        if (complete || (opts.includeIncomplete && started))
          out.push({ dir, benchmark, method, setting: dirToSetting(settingDir) });
      }
    }
  }
  return out;
}

export function writeMetrics(dir: string, metrics: RunMetrics): void {
  writeJsonAtomic(join(dir, METRICS_FILE), metrics);
}

export function readMetrics(dir: string): RunMetrics {
  return readJson<RunMetrics>(join(dir, METRICS_FILE));
}

export function writeConfig(dir: string, config: RunConfig): void {
  writeJsonAtomic(join(dir, CONFIG_FILE), config);
}

export function readConfig(dir: string): RunConfig {
  return readJson<RunConfig>(join(dir, CONFIG_FILE));
}

/**
 * Predictions of a run folder. A torn last line (a writer killed mid-append) is skipped; a malformed line
 * anywhere else is an error naming file and line. Later records with the same id replace earlier ones.
 */
export function readPredictions(dir: string): PredictionRecord[] {
  const path = join(dir, PREDICTIONS_FILE);
  if (!existsSync(path)) return [];
  return readPredictionsFile(path);
}

export function readPredictionsFile(path: string): PredictionRecord[] {
  let bad: { line: number; text: string } | undefined;
  const recs = readJsonl<PredictionRecord>(path, {
    onBadLine: (line, text) => {
      if (bad) throw new InvalidInputError(`${path}:${bad.line}: malformed JSON line: ${bad.text.slice(0, 80)}`);
      bad = { line, text };
    },
  });
  if (bad) {
    // Only the very last non-empty line may be torn.
    if (bad.line !== lastNonEmptyLine(path))
      throw new InvalidInputError(`${path}:${bad.line}: malformed JSON line: ${bad.text.slice(0, 80)}`);
  }
  const byId = new Map<string, PredictionRecord>();
  for (const r of recs) byId.set(r.id, r);
  return [...byId.values()];
}

function lastNonEmptyLine(path: string): number {
  const lines = readFileSync(path, 'utf8').split('\n');
  for (let i = lines.length - 1; i >= 0; i--) if (lines[i]!.trim() !== '') return i + 1;
  return 0;
}

/** Everything in one run folder; metrics/config are undefined when the run is not finished. */
export interface LoadedRun extends RunFolder {
  metrics?: RunMetrics;
  config?: RunConfig;
  predictions: PredictionRecord[];
}

export function loadRun(folder: RunFolder): LoadedRun {
  const { dir } = folder;
  return {
    ...folder,
    metrics: existsSync(join(dir, METRICS_FILE)) ? readMetrics(dir) : undefined,
    config: existsSync(join(dir, CONFIG_FILE)) ? readConfig(dir) : undefined,
    predictions: readPredictions(dir),
  };
}

/** All finished runs under an experiment root, loaded. */
export function loadExperiment(root: string): LoadedRun[] {
  return discoverRuns(root).map(loadRun);
}
