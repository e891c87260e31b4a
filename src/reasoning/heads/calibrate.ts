/**
 * Calibration of early-exit heads: on held-out text, each head's entropy and whether its argmax agrees with the full
 * model's at every position, and for each accuracy level the largest entropy threshold at which the head's tokens
 * agree with the full model at that rate (reasoning/calibration/coverage.ts: BranchyLLM's max-coverage rule, or
 * `ltt` with a finite-sample guarantee). A threshold is used two ways: layer exit emits a head's token at or under
 * it (lossy), and self-speculative drafting stops drafting above it (lossless either way; it saves draft steps that
 * would be rejected).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { entropy } from '../../engine/index.js';
import type { HeadForward } from '../../graph/head-forward.js';
import type { HeadTrainingData } from '../../training/head-trainer.js';
import { z } from 'zod';
import { InvalidInputError } from '../../util/errors.js';
import { readJson, writeJsonAtomic } from '../../util/fs.js';
import { parseFileJson } from '../../util/validate.js';
import { COVERAGE_RULES, coverageAt, coverageThreshold, DEFAULT_ACCURACY_LEVELS, type CoverageRule } from '../calibration/coverage.js';

export const CALIBRATION_SCHEMA = 'lynx.heads-calibration/1';
export const CALIBRATION_FILE = 'calibration.json';

/** Per held-out position of one head: its entropy (nats) and whether its argmax is the full model's. */
export interface HeadScores {
  layer: number;
  entropy: Float32Array;
  agree: Uint8Array;
}

export interface HeadLevel {
  level: number;
  /** Entropy threshold (nats); null: no threshold reaches the level on the calibration data. */
  threshold: number | null;
  /** Fraction of calibration positions at or under it, and their agreement. */
  coverage: number;
  agreement: number | null;
  /** The same on the check split, when one was held out. */
  check?: { coverage: number; agreement: number | null; positions: number };
}

export interface HeadCalibration {
  layer: number;
  /** Agreement over all calibration positions, and the mean entropy. */
  agreement: number;
  meanEntropy: number;
  levels: HeadLevel[];
}

export interface HeadsCalibration {
  schema: typeof CALIBRATION_SCHEMA;
  rule: CoverageRule;
  alpha?: number;
  /** Calibration positions (and check positions, when some were held out of it). */
  positions: number;
  checkPositions?: number;
  heads: HeadCalibration[];
}

/** Entropy and agreement of every head at every position of `data`, the heads run on ggml in batches. */
export function scoreHeads(forward: HeadForward, data: HeadTrainingData, batch = 256): HeadScores[] {
  const { nEmbd: E, nVocab: V } = forward;
  return forward.layers.map((layer) => {
    const hidden = data.hidden.get(layer);
    if (!hidden) throw new InvalidInputError(`the data has no hidden states of block ${layer}`);
    const ent = new Float32Array(data.rows);
    const agree = new Uint8Array(data.rows);
    for (let begin = 0; begin < data.rows; begin += batch) {
      const n = Math.min(batch, data.rows - begin);
      const logits = forward.logits(layer, hidden.subarray(begin * E, (begin + n) * E));
      for (let i = 0; i < n; i++) {
        const row = logits.subarray(i * V, (i + 1) * V);
        ent[begin + i] = entropy(row);
        let best = 0;
        for (let v = 1; v < V; v++) if (row[v]! > row[best]!) best = v;
        agree[begin + i] = best === data.teacher.argmax[begin + i] ? 1 : 0;
      }
    }
    return { layer, entropy: ent, agree };
  });
}

export interface CalibrateOptions {
  levels?: readonly number[];
  rule?: CoverageRule;
  alpha?: number;
  /** Scores of a second held-out split, to report each threshold's agreement on data it was not chosen on. */
  check?: readonly HeadScores[];
}

export function calibrateHeads(scores: readonly HeadScores[], o: CalibrateOptions = {}): HeadsCalibration {
  const levels = [...(o.levels ?? DEFAULT_ACCURACY_LEVELS)].sort((a, b) => a - b);
  const rule = o.rule ?? 'ltt';
  if (scores.length === 0 || scores[0]!.entropy.length === 0) throw new InvalidInputError('no calibration positions');
  const heads = scores.map((s): HeadCalibration => {
    const check = o.check?.find((c) => c.layer === s.layer);
    const n = s.entropy.length;
    let agree = 0;
    let ent = 0;
    for (let i = 0; i < n; i++) {
      agree += s.agree[i]!;
      ent += s.entropy[i]!;
    }
    return {
      layer: s.layer,
      agreement: agree / n,
      meanEntropy: ent / n,
      levels: levels.map((level): HeadLevel => {
        const t = coverageThreshold(s.entropy, s.agree, level, { rule, alpha: o.alpha });
        const out: HeadLevel = { level, threshold: t.threshold, coverage: t.coverage, agreement: Number.isNaN(t.accuracy) ? null : t.accuracy };
        if (check) {
          const c = coverageAt(check.entropy, check.agree, t.threshold);
          out.check = { coverage: c.coverage, agreement: Number.isNaN(c.accuracy) ? null : c.accuracy, positions: check.entropy.length };
        }
        return out;
      }),
    };
  });
  return {
    schema: CALIBRATION_SCHEMA,
    rule,
    ...(rule === 'ltt' ? { alpha: o.alpha ?? 0.05 } : {}),
    positions: scores[0]!.entropy.length,
    ...(o.check && o.check.length > 0 ? { checkPositions: o.check[0]!.entropy.length } : {}),
    heads,
  };
}

const fraction = z.number().min(0).max(1);
/** calibration.json, checked on load: a threshold that is not a finite entropy would exit on every token or none. */
const CalibrationSchema = z.looseObject({
  schema: z.literal(CALIBRATION_SCHEMA),
  rule: z.enum(COVERAGE_RULES as readonly [CoverageRule, ...CoverageRule[]]),
  alpha: fraction.optional(),
  positions: z.number().int().positive(),
  checkPositions: z.number().int().nonnegative().optional(),
  heads: z
    .array(
      z.looseObject({
        layer: z.number().int().nonnegative(),
        agreement: fraction,
        meanEntropy: z.number().nonnegative(),
        levels: z.array(z.looseObject({ level: fraction, threshold: z.number().nonnegative().nullable(), coverage: fraction, agreement: fraction.nullable() })).min(1),
      }),
    )
    .min(1),
});

export function saveCalibration(dir: string, c: HeadsCalibration): void {
  writeJsonAtomic(join(dir, CALIBRATION_FILE), c);
}

/** The calibration in a heads folder, or null when it has none yet. */
export function loadCalibration(dir: string): HeadsCalibration | null {
  const path = join(dir, CALIBRATION_FILE);
  if (!existsSync(path)) return null;
  const raw = readJson<unknown>(path);
  const schema = (raw as { schema?: unknown } | null)?.schema;
  if (schema !== CALIBRATION_SCHEMA) throw new InvalidInputError(`${path}: schema ${JSON.stringify(schema)} is not ${CALIBRATION_SCHEMA}`);
  return parseFileJson(CalibrationSchema, raw, { source: path, kind: 'heads calibration', remedy: "calibrate again with 'lynx heads calibrate'" }) as HeadsCalibration;
}

/** Each head's threshold at `level` (one of the calibrated levels). */
export function thresholdsAt(c: HeadsCalibration, level: number): Map<number, number | null> {
  const out = new Map<number, number | null>();
  for (const h of c.heads) {
    const l = h.levels.find((x) => Math.abs(x.level - level) < 1e-9);
    if (!l) throw new InvalidInputError(`accuracy level ${level} is not calibrated: use one of ${h.levels.map((x) => x.level).join(', ')} or calibrate it`);
    out.set(h.layer, l.threshold);
  }
  return out;
}
