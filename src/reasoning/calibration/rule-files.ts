/**
 * Calibrated rules on disk: one JSON per rule and δ (LYNX's `conformal_calib_005.json`, `ltt_005.json`, `crc_005.json`),
 * written by `lynx calibrate` and read by every command that exits early.
 *
 * A LYNX rule file is also LYNX's own: beside this project's fields it carries the keys `calibrate_conformal.py` writes
 * and `early_exit_eval.py` reads (`delta`, `q_pos`, `q_neg`, `n_calib`, `n_pos`, `n_neg`; an infinite quantile is left
 * out, which LYNX's `conf.get("q_pos", float("inf"))` reads back as infinity), and a file LYNX wrote (those keys only,
 * `Infinity` as Python's `json` writes it) reads as a rule here.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { InvalidInputError } from '../../util/errors.js';
import { writeJsonAtomic } from '../../util/fs.js';
import { parseFileJson } from '../../util/validate.js';
import { CONFORMAL_SCHEMA, lynxRuleOf, type ExitRule, type LynxRule } from './conformal.js';

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

/** LYNX's `conformal_calib.json` keys (`calibrate_conformal.py`); infinite quantiles left out. */
export interface LynxConformalJson {
  delta: number;
  q_pos?: number;
  q_neg?: number;
  n_calib: number;
  n_pos: number;
  n_neg: number;
}

export function lynxConformalJson(r: LynxRule): LynxConformalJson {
  return {
    delta: r.delta,
    ...(Number.isFinite(r.qPos) ? { q_pos: r.qPos } : {}),
    ...(Number.isFinite(r.qNeg) ? { q_neg: r.qNeg } : {}),
    n_calib: r.nCal,
    n_pos: r.nPos,
    n_neg: r.nNeg,
  };
}

/** JSON has no Infinity: write unbounded quantiles as null (and, for LYNX's keys, leave them out). */
function jsonSafe(r: ExitRule): unknown {
  const withLynx = r.rule === 'lynx' ? { ...r, ...lynxConformalJson(r) } : r;
  return JSON.parse(JSON.stringify(withLynx, (_k, v) => (typeof v === 'number' && !Number.isFinite(v) ? null : v)));
}

/*
 * Schemas of the rule files, checked field by field on load: a rule silently read wrong breaks its guarantee (a
 * `qNeg` of "abc" exits at another score than calibrated, a missing threshold never exits), so every field a rule
 * decides with must be there with its type. A quantile may be null (written for +∞: the class is never in the set);
 * LYNX's own files leave an infinite quantile out, as its reader does.
 */
const fraction = z.number().gt(0).lt(1);
const count = z.number().int().nonnegative();
// Python's json writes an empty class's quantile as Infinity, which zod's number() refuses.
const quantile = z.custom<number>((v) => typeof v === 'number' && !Number.isNaN(v), 'expected a number (or null for an unbounded quantile)');

const LynxRuleSchema = z.looseObject({
  schema: z.literal(CONFORMAL_SCHEMA),
  rule: z.literal('lynx'),
  delta: fraction,
  qPos: quantile.nullable(),
  qNeg: quantile.nullable(),
  nPos: count,
  nNeg: count,
  useClipped: z.boolean().optional(),
  heldOut: z.looseObject({}).optional(),
});

const TrajectoryRuleSchema = z.looseObject({
  schema: z.literal(CONFORMAL_SCHEMA),
  rule: z.enum(['ltt', 'crc']),
  delta: fraction,
  alpha: fraction.optional(),
  threshold: z.number().min(0).max(1).nullable(),
  nCal: count,
  nRollouts: count,
  calRisk: z.number().min(0).max(1),
  calExitRate: z.number().min(0).max(1),
  grid: z.looseObject({ from: z.number(), to: z.number(), step: z.number().positive() }),
  heldOut: z.looseObject({}).optional(),
});

const LynxConformalSchema = z.looseObject({
  delta: fraction,
  q_pos: quantile.nullable().optional(),
  q_neg: quantile.nullable().optional(),
  n_calib: count.optional(),
  n_pos: count,
  n_neg: count,
});

function validate<T>(schema: z.ZodType<T>, json: unknown, source: string, kind: string): T {
  return parseFileJson(schema, json, { source, kind, remedy: "recalibrate with 'lynx calibrate'" });
}

/** A rule from LYNX's own calibration file (`q_pos`, `q_neg`, `n_pos`, `n_neg`, `delta`). */
export function parseLynxConformal(json: unknown, opts: { useClipped?: boolean } = {}, source = 'LYNX conformal file'): LynxRule {
  const j = validate(LynxConformalSchema, json, source, 'LYNX conformal file (delta, n_pos, n_neg, and q_pos, q_neg unless infinite)');
  const q = (v: number | null | undefined) => (v === undefined || v === null ? Infinity : v);
  return lynxRuleOf({ delta: j.delta, qPos: q(j.q_pos), qNeg: q(j.q_neg), nPos: j.n_pos, nNeg: j.n_neg, useClipped: opts.useClipped });
}

/**
 * Read a rule JSON written by `writeSweep` (null quantiles back to +∞), or LYNX's `conformal_calib.json`, every field
 * checked. `useClipped` (LYNX's behaviour) makes a LYNX rule with a clipped quantile exit; a file written with
 * `--allow-clipped` says so itself. `source` names the file in errors.
 */
export function parseRule(json: unknown, opts: { useClipped?: boolean } = {}, source = 'rule file'): ExitRule {
  const r = json as { schema?: unknown; rule?: unknown } | null;
  if (r && typeof r === 'object' && !Array.isArray(r) && r.schema === undefined && 'n_neg' in r) return parseLynxConformal(json, opts, source);
  if (!r || typeof r !== 'object' || r.schema !== CONFORMAL_SCHEMA) {
    throw new InvalidInputError(`${source}: not a ${CONFORMAL_SCHEMA} rule file (nor LYNX's conformal_calib.json)`);
  }
  if (r.rule === 'lynx') {
    const l = validate(LynxRuleSchema, json, source, 'lynx rule file');
    // Rebuilt from its quantiles, so files written before rules could be refused are refused alike.
    const rule = lynxRuleOf({ delta: l.delta, qPos: l.qPos ?? Infinity, qNeg: l.qNeg ?? Infinity, nPos: l.nPos, nNeg: l.nNeg, useClipped: opts.useClipped || l.useClipped });
    return { ...rule, ...(l.heldOut ? { heldOut: l.heldOut as unknown as LynxRule['heldOut'] } : {}) };
  }
  if (r.rule !== 'ltt' && r.rule !== 'crc') throw new InvalidInputError(`${source}: unknown rule ${JSON.stringify(r.rule)} (lynx, ltt or crc)`);
  validate(TrajectoryRuleSchema, json, source, `${r.rule} rule file`);
  return json as ExitRule;
}

/** JSON.parse that also reads Python's `Infinity`, `-Infinity` and `NaN` (LYNX's files hold them). */
export function parsePythonJson(text: string, opts: { nanAsString?: boolean } = {}): unknown {
  try {
    return JSON.parse(text);
  } catch {
    // Outside strings only: a string holding the word keeps it. NaN reads as null, or (for files where null means
    // something, as +∞ in a rule) as the string "NaN", which their schema then refuses.
    const nan = opts.nanAsString ? '"NaN"' : 'null';
    const fixed = text.replace(/("(?:[^"\\]|\\.)*")|-Infinity|Infinity|NaN/g, (m, str: string | undefined) =>
      str !== undefined ? str : m === 'NaN' ? nan : m === '-Infinity' ? '-1e999' : '1e999',
    );
    return JSON.parse(fixed);
  }
}

/** Read a rule file from disk (this project's or LYNX's). */
export function readRule(path: string, opts: { useClipped?: boolean } = {}): ExitRule {
  let json: unknown;
  try {
    json = parsePythonJson(readFileSync(path, 'utf8'), { nanAsString: true });
  } catch (e) {
    throw new InvalidInputError(`${path} is not valid JSON: ${(e as Error).message}`);
  }
  return parseRule(json, opts, path);
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
export function readRuleFile(path: string, opts: { useClipped?: boolean } = {}): ExitRule | null {
  let json: unknown;
  try {
    json = parsePythonJson(readFileSync(path, 'utf8'), { nanAsString: true });
  } catch {
    return null;
  }
  if (!json || typeof json !== 'object' || (json as { schema?: unknown }).schema !== CONFORMAL_SCHEMA) return null;
  return parseRule(json, opts, path);
}


/** Rule files in a conformal folder, filtered, in order lynx, ltt, crc and increasing δ. */
export function readRules(
  conformalDir: string,
  filter: { rules?: readonly RuleName[]; deltas?: readonly number[]; useClipped?: boolean } = {},
): ExitRule[] {
  if (!existsSync(conformalDir)) throw new InvalidInputError(`no conformal folder at ${conformalDir}: run 'lynx calibrate' first`);
  const rules: ExitRule[] = [];
  for (const f of readdirSync(conformalDir).sort()) {
    if (!f.endsWith('.json')) continue;
    const r = readRuleFile(join(conformalDir, f), { useClipped: filter.useClipped });
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
