/**
 * Calibrated rules on disk: one JSON per rule and δ (LYNX's `conformal_calib_005.json`, `ltt_005.json`, `crc_005.json`),
 * written by `lynx calibrate` and read by every command that exits early.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { InvalidInputError } from '../../util/errors.js';
import { readJson, writeJsonAtomic } from '../../util/fs.js';
import { CONFORMAL_SCHEMA, type ExitRule } from './conformal.js';

export type RuleName = ExitRule['rule'];

/** The rule families, in the order tables and folders list them: LYNX's per-event rule, then the per-problem ones. */
export const RULE_NAMES: readonly RuleName[] = ['lynx', 'ltt', 'crc'];

export function isRuleName(s: string): s is RuleName {
  return (RULE_NAMES as readonly string[]).includes(s);
}

/** File name of one rule at one δ: LYNX's `conformal_calib_005.json` for its rule, `ltt_005.json`, `crc_005.json`. */
export function ruleFileName(rule: ExitRule['rule'], delta: number): string {
  const pct = delta * 100;
  const tag = Math.abs(pct - Math.round(pct)) < 1e-9 ? String(Math.round(pct)).padStart(3, '0') : String(delta);
  return `${rule === 'lynx' ? 'conformal_calib' : rule}_${tag}.json`;
}

/** Write one JSON per rule and δ (atomically) into `dir`; returns the paths. */
export function writeSweep(dir: string, rules: readonly ExitRule[]): string[] {
  return rules.map((r) => {
    const path = join(dir, ruleFileName(r.rule, r.delta));
    writeJsonAtomic(path, jsonSafe(r));
    return path;
  });
}

/** JSON has no Infinity: write unbounded quantiles as null. */
function jsonSafe(r: ExitRule): unknown {
  return JSON.parse(JSON.stringify(r, (_k, v) => (typeof v === 'number' && !Number.isFinite(v) ? null : v)));
}

/** Read a rule JSON written by `writeSweep` (null quantiles back to +∞). */
export function parseRule(json: unknown): ExitRule {
  const r = json as ExitRule;
  if (!r || typeof r !== 'object' || (r as { schema?: string }).schema !== CONFORMAL_SCHEMA) {
    throw new InvalidInputError(`not a ${CONFORMAL_SCHEMA} rule file`);
  }
  if (r.rule === 'lynx') {
    return { ...r, qPos: r.qPos ?? Infinity, qNeg: r.qNeg ?? Infinity };
  }
  if (r.rule !== 'ltt' && r.rule !== 'crc') throw new InvalidInputError(`unknown rule '${(r as { rule: string }).rule}'`);
  return r;
}

export function checkRules(rules: readonly string[]): RuleName[] {
  if (rules.length === 0) throw new InvalidInputError('give at least one rule (lynx, ltt, crc)');
  for (const r of rules) if (!isRuleName(r)) throw new InvalidInputError(`unknown rule '${r}': use lynx, ltt or crc`);
  return [...new Set(rules as RuleName[])];
}

export function checkDeltas(deltas: readonly number[]): number[] {
  if (deltas.length === 0) throw new InvalidInputError('give at least one delta');
  for (const d of deltas) if (!(d > 0 && d < 1)) throw new InvalidInputError(`delta must be in (0, 1), got ${d}`);
  return [...new Set(deltas)].sort((a, b) => a - b);
}

/** A rule file written by a calibration (schema checked), or null for any other file. */
export function readRuleFile(path: string): ExitRule | null {
  let json: unknown;
  try {
    json = readJson(path);
  } catch {
    return null;
  }
  if (!json || typeof json !== 'object' || (json as { schema?: unknown }).schema !== CONFORMAL_SCHEMA) return null;
  return parseRule(json);
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
