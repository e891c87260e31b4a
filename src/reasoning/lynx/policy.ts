/**
 * A LYNX policy on disk: an experiment folder holding `probe/` (probe.json + probe.safetensors, whose info names the
 * hidden-state layers) and `conformal/` (one rule JSON per rule and δ), or a probe folder with a rule file beside it.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { InvalidInputError } from '../../util/errors.js';
import { loadProbe } from './probe/probe.js';
import { isRuleName, parseRule, readRule, readRules, RULE_NAMES, ruleFileName } from '../calibration/rule-files.js';
import { checkLastLayerTap } from './features.js';
import type { LynxPolicy } from './online.js';
import type { TapLayer } from '../../engine/index.js';
import type { Vocabulary } from '../../backends/generator.js';
import { tapLayersFor } from './features.js';

export interface PolicySelector {
  /** 'lynx' (per-event, the paper's rule), 'ltt' or 'crc' (per-problem rules). */
  rule: string;
  delta: number;
  /** Exit with a LYNX rule whose quantile was clipped (LYNX's behaviour); default: such a rule never exits. */
  allowClipped?: boolean;
}

function probeDirOf(root: string): string {
  return existsSync(join(root, 'probe', 'probe.json')) ? join(root, 'probe') : root;
}

function conformalDirOf(root: string): string {
  return existsSync(join(root, 'conformal')) ? join(root, 'conformal') : join(probeDirOf(root), '..', 'conformal');
}

/** The calibrated rules a policy folder offers, as (rule, δ) pairs in table order. */
export function calibratedRules(root: string): PolicySelector[] {
  return readRules(conformalDirOf(root)).map((r) => ({ rule: r.rule, delta: r.delta }));
}

/** Find the probe and the calibrated rule for (rule, δ) under `root`. */
export function loadLynxPolicy(root: string, sel: PolicySelector): LynxPolicy {
  const probeDir = probeDirOf(root);
  const { probe, header } = loadProbe(probeDir);
  const layers = header.info?.hiddenStateLayers as number[] | undefined;
  if (!Array.isArray(layers) || layers.length === 0) {
    throw new InvalidInputError(`${probeDir}/probe.json does not say which hidden-state layers it reads (info.hiddenStateLayers)`);
  }
  const cues = header.info?.cues as string[] | undefined;
  const conformalDir = conformalDirOf(root);
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

/**
 * The policy's taps for this model, checked: every hidden-state layer exists and the probe reads exactly the
 * features they give (else the probe was trained on another model).
 */
export function policyTaps(policy: LynxPolicy, model: Pick<Vocabulary, 'info'>, probeSource = 'the policy'): TapLayer[] {
  const { nLayer, nEmbd } = model.info;
  let taps: TapLayer[];
  try {
    taps = tapLayersFor(policy.hiddenStateLayers, nLayer, policy.lastLayer ?? 'final');
  } catch (e) {
    throw new InvalidInputError(`${probeSource === 'the policy' ? 'the probe' : `the probe in ${probeSource}`} reads hidden-state layers [${policy.hiddenStateLayers.join(', ')}], but the model has ${nLayer} layers: ${(e as Error).message}`);
  }
  if (policy.probe.nFeatures !== taps.length * nEmbd) {
    throw new InvalidInputError(
      `${probeSource === 'the policy' ? 'the probe' : `the probe in ${probeSource}`} expects ${policy.probe.nFeatures} features, but ${taps.length} hidden-state layers x ${nEmbd} ` +
        `(the model's embedding size) = ${taps.length * nEmbd}: was it trained on another model?`,
    );
  }
  return taps;
}
