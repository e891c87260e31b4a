/**
 * LYNX's own output files, written beside this project's run records so LYNX's tooling (and anyone comparing with its
 * published numbers) reads them, and read back:
 *
 * - `early_exit_metrics.json` (`early_exit_eval.py`, `eval_on_deer_rollouts.py`): `rollouts_attempted`,
 *   `exited_count`, `baseline` {accuracy, avg_tokens, total_tokens}, `early_exit` {accuracy, avg_tokens, total_tokens,
 *   exit_rate, avg_savings, savings_rate}, `accepted_subset` {rate, accuracy, baseline_accuracy, avg_tokens,
 *   total_tokens, help, harm, unchanged_correct, unchanged_incorrect}, `wall_time_sec`, and the run's description
 *   (`dataset_id`, `test_problems`, `test_rollouts`, `probe_path`, `conformal_path`). This project adds `n_problems`,
 *   `premature_exit_rate` and bootstrap intervals (`ci95`); LYNX's readers ignore extra keys.
 * - `early_exit_predictions.jsonl`: one row per cue event a rollout passed, up to and including its exit
 *   (`early_exit_eval.py`'s `meta_rows`): `index` (problem), `rollout`, `event_rank` (1-based), `pos_rel` (1-based
 *   index of the event token among the generated ones), `event` (the cue), `p_pos`, `predictive_set`, `set_size`,
 *   `exited`; the exit row adds `early_label`, `baseline_label`, `used_tokens`, `added_tokens`, `cue_len`.
 *
 * Token figures are output tokens, as LYNX counts (`used_tokens = (pos_rel - 1) + cue_len + added_tokens`).
 * For the per-problem rules (LTT, CRC), which have no prediction set, a row's set is [1] where the rule exits and
 * [0, 1] where it does not.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { InvalidInputError } from '../../util/errors.js';
import { writeFileAtomic, writeJsonAtomic } from '../../util/fs.js';
import { predictionSet, ruleExits, type ExitRule } from '../calibration/conformal.js';
import { parsePythonJson } from '../calibration/rule-files.js';
import type { LynxMetrics } from './simulate.js';

export const LYNX_METRICS_FILE = 'early_exit_metrics.json';
export const LYNX_PREDICTIONS_FILE = 'early_exit_predictions.jsonl';

/** What LYNX's metrics file says about the run beside the figures. */
export interface LynxRunDescription {
  dataset_id?: string;
  test_problems?: number;
  test_rollouts?: number;
  probe_path?: string;
  conformal_path?: string;
}

export type LynxMetricsFile = LynxRunDescription & Omit<LynxMetrics, 'ci95' | 'n_problems' | 'premature_exit_rate'> & Partial<Pick<LynxMetrics, 'ci95' | 'n_problems' | 'premature_exit_rate'>>;

export interface LynxPredictionRow {
  index: number;
  rollout: number;
  event_rank: number;
  pos_rel: number;
  event: string;
  p_pos: number;
  predictive_set: (0 | 1)[];
  set_size: number;
  exited: boolean;
  early_label?: 0 | 1;
  baseline_label?: 0 | 1;
  used_tokens?: number;
  added_tokens?: number;
  cue_len?: number;
}

/** One rollout as the rows need it. */
export interface LynxRolloutView {
  /** Problem index (LYNX's `index`: the problem's position in its dataset). */
  index: number;
  rollout: number;
  /** The cue events the rollout passed, in order (synthetic ones are left out: not decision points). */
  events: readonly { tokenIndex: number; cue: string; score: number; synthetic?: boolean }[];
  /** Index into `events` of the exit, or -1. */
  exitEvent: number;
  earlyCorrect: boolean;
  baselineCorrect?: boolean;
  /** Output tokens of the exit, its answer tokens and its cue's. */
  usedTokens?: number;
  addedTokens?: number;
  cueLen?: number;
}

/** The prediction set a rule gives a score (see the file comment for LTT and CRC). */
export function rulePredictionSet(rule: ExitRule, score: number): (0 | 1)[] {
  if (rule.rule === 'lynx') return rule.refused ? [0, 1] : predictionSet(score, rule.qPos, rule.qNeg);
  return ruleExits(rule, score) ? [1] : [0, 1];
}

const label = (b: boolean): 0 | 1 => (b ? 1 : 0);

/** The rows of `early_exit_predictions.jsonl` for rollouts under a rule. */
export function lynxPredictionRows(rollouts: readonly LynxRolloutView[], rule: ExitRule): LynxPredictionRow[] {
  const rows: LynxPredictionRow[] = [];
  for (const r of rollouts) {
    let rank = 0;
    for (let i = 0; i < r.events.length; i++) {
      const e = r.events[i]!;
      if (e.synthetic) continue;
      const set = rulePredictionSet(rule, e.score);
      const row: LynxPredictionRow = {
        index: r.index,
        rollout: r.rollout,
        event_rank: ++rank,
        pos_rel: e.tokenIndex + 1,
        event: e.cue,
        p_pos: e.score,
        predictive_set: set,
        set_size: set.length,
        exited: i === r.exitEvent,
      };
      if (i === r.exitEvent) {
        row.early_label = label(r.earlyCorrect);
        if (r.baselineCorrect !== undefined) row.baseline_label = label(r.baselineCorrect);
        if (r.usedTokens !== undefined) row.used_tokens = r.usedTokens;
        if (r.addedTokens !== undefined) row.added_tokens = r.addedTokens;
        if (r.cueLen !== undefined) row.cue_len = r.cueLen;
      }
      rows.push(row);
      if (i === r.exitEvent) break;
    }
  }
  return rows;
}

/** Write both files into a run folder (atomically). */
export function writeLynxFiles(dir: string, metrics: LynxMetricsFile, rows: readonly LynxPredictionRow[]): void {
  writeJsonAtomic(join(dir, LYNX_METRICS_FILE), metrics);
  writeFileAtomic(join(dir, LYNX_PREDICTIONS_FILE), rows.map((r) => JSON.stringify(r)).join('\n') + (rows.length ? '\n' : ''));
}

const isNum = (v: unknown): v is number => typeof v === 'number';

function need(o: Record<string, unknown>, keys: readonly string[], where: string): void {
  for (const k of keys) if (!isNum(o[k])) throw new InvalidInputError(`${where}: ${k} must be a number`);
}

/** Read LYNX's `early_exit_metrics.json` (LYNX's own or this project's), checking the keys LYNX writes. */
export function readLynxMetrics(path: string): LynxMetricsFile {
  if (!existsSync(path)) throw new InvalidInputError(`no LYNX metrics file at ${path}`);
  const m = parsePythonJson(readFileSync(path, 'utf8')) as Record<string, unknown>;
  if (!m || typeof m !== 'object') throw new InvalidInputError(`${path}: not a JSON object`);
  need(m, ['rollouts_attempted', 'exited_count'], path);
  const part = (k: string, keys: string[]) => {
    const v = m[k] as Record<string, unknown> | undefined;
    if (!v || typeof v !== 'object') throw new InvalidInputError(`${path}: ${k} is missing`);
    need(v, keys, `${path}: ${k}`);
  };
  part('baseline', ['accuracy', 'avg_tokens', 'total_tokens']);
  part('early_exit', ['accuracy', 'avg_tokens', 'total_tokens', 'exit_rate', 'avg_savings', 'savings_rate']);
  // Older LYNX runs (the spawned-shard aggregate) have no accepted subset; this project's always do.
  if (m.accepted_subset !== undefined) part('accepted_subset', ['rate', 'accuracy', 'baseline_accuracy', 'avg_tokens', 'total_tokens', 'help', 'harm']);
  return m as unknown as LynxMetricsFile;
}

/** Read LYNX's `early_exit_predictions.jsonl`; a malformed line is an error naming it. */
export function readLynxPredictions(path: string): LynxPredictionRow[] {
  if (!existsSync(path)) throw new InvalidInputError(`no LYNX predictions file at ${path}`);
  const rows: LynxPredictionRow[] = [];
  readFileSync(path, 'utf8')
    .split('\n')
    .forEach((line, i) => {
      if (line.trim() === '') return;
      let r: Record<string, unknown>;
      try {
        r = parsePythonJson(line) as Record<string, unknown>;
      } catch (e) {
        throw new InvalidInputError(`${path}:${i + 1}: malformed JSON line (${(e as Error).message})`);
      }
      need(r, ['index', 'rollout', 'event_rank', 'pos_rel', 'p_pos', 'set_size'], `${path}:${i + 1}`);
      if (!Array.isArray(r.predictive_set) || typeof r.exited !== 'boolean' || typeof r.event !== 'string') {
        throw new InvalidInputError(`${path}:${i + 1}: needs predictive_set (a list), exited (true/false) and event (a string)`);
      }
      rows.push(r as unknown as LynxPredictionRow);
    });
  return rows;
}
