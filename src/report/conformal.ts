/**
 * Conformal calibration results as the report reads them: `<root>/conformal/**.json`, one file per rule and delta
 * (a file may also hold an array of results). The calibration code writes this shape; docs/report.md documents it.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { readJson } from '../util/fs.js';

/** Held-out evaluation of one calibrated threshold. */
export interface ConformalHeldOut {
  /** Units the rates are over: cue events for class-conditional rules, trajectories for trajectory rules. */
  n: number;
  /** Empirical premature-exit rate on the held-out set, in [0, 1]; the guarantee is that it stays near or below delta. */
  prematureExitRate: number;
  /** Fraction of held-out units that exit, in [0, 1]. */
  exitRate: number;
  /** Optional 95% interval of prematureExitRate (drawn as a whisker when present). */
  prematureExitRateCi95?: [number, number];
  /** Optional extras shown in the table when present. */
  accuracy?: number;
  savingsRate?: number;
  [key: string]: unknown;
}

export interface ConformalResult {
  /** `lynx-class-conditional`, `trajectory-ltt`, or any other rule name (each is its own series). */
  rule: string;
  /** Target premature-exit rate, in (0, 1]. */
  delta: number;
  /** Calibrated probe-score threshold; null when no threshold is certified at this delta (the rule never exits). */
  threshold: number | null;
  heldOut: ConformalHeldOut;
  /** Benchmark or data set of the held-out split, when a root holds several. */
  benchmark?: string;
  /** Calibration split summary (only `n` is shown). */
  calibration?: { n?: number; [key: string]: unknown };
  [key: string]: unknown;
}

/** A result with the file it came from (relative to conformal/). */
export interface LoadedConformalResult extends ConformalResult {
  file: string;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const rate = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0 && v <= 1;

/** Why `v` is not a ConformalResult, or null when it is one. */
export function conformalProblem(v: unknown): string | null {
  if (!isObject(v)) return 'not a JSON object';
  if (typeof v.rule !== 'string' || v.rule === '') return '"rule" must be a non-empty string';
  if (typeof v.delta !== 'number' || !(v.delta > 0 && v.delta <= 1)) return '"delta" must be a number in (0, 1]';
  if (!(v.threshold === null || (typeof v.threshold === 'number' && Number.isFinite(v.threshold))))
    return '"threshold" must be a number or null';
  if (!isObject(v.heldOut)) return '"heldOut" must be an object';
  const h = v.heldOut;
  if (typeof h.n !== 'number' || !Number.isInteger(h.n) || h.n < 0) return '"heldOut.n" must be a non-negative integer';
  if (!rate(h.prematureExitRate)) return '"heldOut.prematureExitRate" must be a number in [0, 1]';
  if (!rate(h.exitRate)) return '"heldOut.exitRate" must be a number in [0, 1]';
  if (h.prematureExitRateCi95 !== undefined) {
    const ci = h.prematureExitRateCi95;
    if (!Array.isArray(ci) || ci.length !== 2 || !rate(ci[0]) || !rate(ci[1]))
      return '"heldOut.prematureExitRateCi95" must be [lo, hi] within [0, 1]';
  }
  if (v.benchmark !== undefined && typeof v.benchmark !== 'string') return '"benchmark" must be a string';
  return null;
}

function jsonFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    if (name.startsWith('.')) continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...jsonFiles(p));
    else if (name.endsWith('.json')) out.push(p);
  }
  return out;
}

/**
 * Every valid result under `<root>/conformal/` (recursively). Files that cannot be read or do not match the schema
 * are skipped with a warning; a missing folder is no results and no warning.
 */
export function readConformalResults(root: string): { results: LoadedConformalResult[]; warnings: string[] } {
  const dir = join(root, 'conformal');
  const results: LoadedConformalResult[] = [];
  const warnings: string[] = [];
  if (!existsSync(dir) || !statSync(dir).isDirectory()) return { results, warnings };
  for (const path of jsonFiles(dir)) {
    const file = relative(dir, path).split('\\').join('/');
    let value: unknown;
    try {
      value = readJson(path);
    } catch (e) {
      warnings.push(`conformal/${file}: skipped, ${(e as Error).message.replace(path, 'file')}`);
      continue;
    }
    // The calibration's own summary (`lynx calibrate`'s summary.json) restates the rule files: not a result.
    if (value && typeof value === 'object' && (value as { schema?: unknown }).schema === 'lynx.conformal-summary/1') continue;
    const items = Array.isArray(value) ? value : [value];
    items.forEach((item, i) => {
      const problem = conformalProblem(item);
      const where = Array.isArray(value) ? `conformal/${file}[${i}]` : `conformal/${file}`;
      if (problem) warnings.push(`${where}: skipped, ${problem}`);
      else results.push({ ...(item as ConformalResult), file });
    });
  }
  results.sort((a, b) => a.rule.localeCompare(b.rule) || (a.benchmark ?? '').localeCompare(b.benchmark ?? '') || a.delta - b.delta);
  return { results, warnings };
}
