/**
 * A LYNX policy on disk: an experiment folder holding `probe/` (probe.json + probe.safetensors, whose info names the
 * hidden-state layers) and `conformal/` (one rule JSON per rule and δ), or a probe folder with a rule file beside it.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { InvalidInputError } from '../../util/errors.js';
import { loadProbe } from './probe/probe.js';
import { isRuleName, readRule, RULE_NAMES, ruleFileName } from '../calibration/rule-files.js';
import { checkLastLayerTap } from './features.js';
import type { LynxPolicy } from './online.js';

export interface PolicySelector {
  /** 'lynx' (per-event, the paper's rule), 'ltt' or 'crc' (per-problem rules). */
  rule: string;
  delta: number;
  /** Exit with a LYNX rule whose quantile was clipped (LYNX's behaviour); default: such a rule never exits. */
  allowClipped?: boolean;
}

/** Find the probe and the calibrated rule for (rule, δ) under `root`. */
export function loadLynxPolicy(root: string, sel: PolicySelector): LynxPolicy {
  const probeDir = existsSync(join(root, 'probe', 'probe.json')) ? join(root, 'probe') : root;
  const { probe, header } = loadProbe(probeDir);
  const layers = header.info?.hiddenStateLayers as number[] | undefined;
  if (!Array.isArray(layers) || layers.length === 0) {
    throw new InvalidInputError(`${probeDir}/probe.json does not say which hidden-state layers it reads (info.hiddenStateLayers)`);
  }
  const cues = header.info?.cues as string[] | undefined;
  const conformalDir = existsSync(join(root, 'conformal')) ? join(root, 'conformal') : join(probeDir, '..', 'conformal');
  if (!isRuleName(sel.rule)) throw new InvalidInputError(`unknown rule '${sel.rule}': use ${RULE_NAMES.join(', ')}`);
  const file = join(conformalDir, ruleFileName(sel.rule, sel.delta));
  if (!existsSync(file)) {
    const have = existsSync(conformalDir) ? readdirSync(conformalDir).filter((f) => f.endsWith('.json')) : [];
    throw new InvalidInputError(
      `no calibrated ${sel.rule} rule for delta ${sel.delta} (${file}); available: ${have.join(', ') || 'none — run lynx calibrate'}`,
    );
  }
  const lastLayer = checkLastLayerTap(header.info?.lastLayer, `${probeDir}/probe.json`);
  return { probe, hiddenStateLayers: layers, lastLayer, rule: readRule(file, { useClipped: sel.allowClipped }), cues };
}
