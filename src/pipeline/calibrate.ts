/**
 * `lynx calibrate`: the exit rules calibrated on held-out event datasets scored by the probe. The data is split **by
 * problem** into a calibration part and a held-out part (events of one problem never on both sides), so the empirical
 * error rate of each written rule can be reported next to its δ.
 */
import { readdirSync, rmSync } from 'node:fs';
import { basename, join } from 'node:path';
import { InvalidInputError } from '../util/errors.js';
import { writeJsonAtomic } from '../util/fs.js';
import { Rng } from '../util/rng.js';
import {
  DEFAULT_DELTAS,
  conformalSweep,
  refusalReason,
  type ExitRule,
  type HeldOutStats,
  type TrajectoryOptions
} from '../reasoning/calibration/conformal.js';
import { datasetRollouts, unitKey, type EventMeta } from '../reasoning/lynx/dataset/store.js';
import { loadProbe } from '../reasoning/lynx/probe/probe.js';
import { RULE_NAMES, checkDeltas, checkRules, readRuleFile, ruleFileName, writeSweep, type RuleName } from '../reasoning/calibration/rule-files.js';
import { nullForNonFinite } from '../util/json.js';
import { checkProbeMatches, fullTotal, labelsOf, loadEventDatasets, resolveProbeDir, withGold, type Log, type DatasetRecord } from './event-data.js';

/** Default share of the calibration problems held out to report empirical rates next to δ (see `calibrateStep`). */
export const DEFAULT_HELD_OUT_FRACTION = 0.3;

export const SUMMARY_SCHEMA = 'lynx.conformal-summary/1';
export const SUMMARY_FILE = 'summary.json';

// ---------------------------------------------------------------------------------------------------------------
// calibrate

export interface CalibrateStepOptions {
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
  /**
   * LYNX's rule at a δ its calibration events are too few for (the conformal quantile is clipped, and the guarantee
   * void): false (default) refuses it, the rule file says so and it never exits; true uses it, as LYNX does.
   */
  allowClipped?: boolean;
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
  /** lynx: the quantile was clipped and the rule is not used (never exits); the wrong-exit events δ needs. */
  refused?: boolean;
  neededNeg?: number;
  heldOut?: SummaryHeldOut;
}

export interface CalibrationSummary {
  schema: typeof SUMMARY_SCHEMA;
  createdAt: string;
  probe: { nFeatures: number; hiddenStateLayers: number[]; model?: unknown; cues?: unknown; trainedOn?: unknown };
  data: DatasetRecord[];
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
export function calibrateStep(opts: CalibrateStepOptions): { rules: ExitRule[]; summary: CalibrationSummary; files: string[] } {
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
    useClipped: opts.allowClipped,
  });
  for (const r of rules) {
    const why = refusalReason(r);
    if (why) opts.log?.(`warning: ${why}`);
    else if (r.rule === 'lynx' && !r.valid) {
      opts.log?.(`warning: the lynx rule at delta ${r.delta} uses a clipped quantile (${r.nNeg} wrong-exit events, ${r.neededNeg} needed): it exits without its guarantee (--allow-clipped)`);
    }
  }
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
      ...(r.rule === 'lynx' ? { qPos: finiteOrNull(r.qPos), qNeg: finiteOrNull(r.qNeg), valid: r.valid, refused: r.refused, neededNeg: r.neededNeg } : {}),
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

const finiteOrNull = (x: number) => (Number.isFinite(x) ? x : null);

function removeStaleRules(dir: string, keep: ReadonlySet<string>): void {
  for (const f of readdirSync(dir)) {
    if (keep.has(f) || !/^(conformal_calib|ltt|crc)_.+\.json$/.test(f)) continue;
    if (readRuleFile(join(dir, f))) rmSync(join(dir, f), { force: true });
  }
}

