/**
 * The methods `lynx eval` runs, from a plain description (what the CLI options, a server request or a script say), and
 * what each needs of a context: its KV cells and sequences per problem decoded at once.
 */
import { fullRollout, tokenBudget, type ReasoningMethod, type ReasoningSweep } from '../reasoning/method.js';
import { deer, deerSweep } from '../reasoning/peers/deer.js';
import { deepConf, deepConfSweep } from '../reasoning/peers/deepconf.js';
import { dynasorCot, dynasorSweep } from '../reasoning/peers/dynasor.js';
import { lynxMethod, lynxSweep } from '../reasoning/lynx/online.js';
import { loadLynxPolicy } from '../reasoning/lynx/policy.js';
import { composeMethod } from '../reasoning/compose/compose-method.js';
import { logprobSubselectPolicy, SUBSELECT_DEFAULTS } from '../reasoning/compose/logprob-subselect.js';
import { SPLIT_DEFAULTS } from '../reasoning/compose/protocol.js';
import type { CompositionPolicy } from '../reasoning/compose/policy.js';
import { randomSwitchPolicy } from '../reasoning/compose/random-switch.js';
import { bigOnlyPolicy, smallOnlyPolicy } from '../reasoning/compose/single-model.js';
import { splitPolicy } from '../reasoning/compose/split.js';
import { specReasonPolicy } from '../reasoning/compose/specreason.js';
import { InvalidInputError } from '../util/errors.js';

export const METHOD_NAMES = ['full', 'budget', 'lynx', 'deer', 'deepconf', 'dynasor'] as const;

/** `lynx eval --method deepconf` without `--traces`: DeepConf's 16 warm-up traces and 16 online ones. */
export const DEFAULT_DEEPCONF_TRACES = 32;
export type MethodName = (typeof METHOD_NAMES)[number];

/** Big/small compositions (need a small model); `<mode>+<method>` runs a method on the composed trace. */
export const COMPOSE_MODES = ['split', 'random-switch', 'logprob-subselect', 'specreason', 'small', 'big'] as const;
export type ComposeMode = (typeof COMPOSE_MODES)[number];

/** A method and its settings; several values of a list run as several settings (one generation where possible). */
export interface MethodSpec {
  method: MethodName | string;
  /** budget: thinking-token budgets. */
  budgets?: readonly number[];
  /** lynx: error levels (default 0.1), rule family (default lynx) and the experiment folder with probe/ and conformal/. */
  deltas?: readonly number[];
  rule?: string;
  probe?: string;
  /** lynx: exit with a rule whose quantile was clipped (LYNX's behaviour; default: it never exits). */
  allowClipped?: boolean;
  /** deer: confidence thresholds (default 0.95), trial answers sampled (default, as DEER's request) or greedy. */
  thresholds?: readonly number[];
  trialSampling?: 'sample' | 'greedy';
  /** deepconf: trace budgets (default 32: 16 warm-up, 16 online), variant, warm-up traces, confidence window. */
  traces?: readonly number[];
  variant?: 'low' | 'high';
  warmup?: number;
  window?: number;
  /** dynasor: agreeing probes needed (default 2) and the probe interval in tokens (default 32). */
  agreements?: readonly number[];
  interval?: number;
  /** split: big tokens between hand-back checks (default 8) and the longest big segment (default 128). */
  handBackEvery?: number;
  segmentCap?: number;
  /** random-switch: switch ratios (P(big) = 1/(ratio+1); several = several runs) and tokens per chunk (default 16). */
  switchRatios?: readonly number[];
  switchChunk?: number;
  /** logprob-subselect: candidates, draft tokens per round, decay, big tokens per kept candidate and round. */
  candidates?: number;
  draftTokens?: number;
  decay?: number;
  bigTokens?: number;
  /** small, random-switch: prompt the small model with SplitReason's hint (a small model trained on the tags). */
  offloadHint?: boolean;
  /** specreason: keep the small model's step at this big-model score (0-9) or above (default 7). */
  scoreThreshold?: number;
}

/** The composition mode of a method name (`split`, `split+lynx`, ...), or undefined for a single-model method. */
export function composeModeOf(method: string): { mode: ComposeMode; inner: string } | undefined {
  const [mode, ...rest] = method.split('+');
  if (!(COMPOSE_MODES as readonly string[]).includes(mode!)) return undefined;
  return { mode: mode as ComposeMode, inner: rest.length === 0 ? 'full' : rest.join('+') };
}

function policiesFor(mode: ComposeMode, spec: MethodSpec): CompositionPolicy[] {
  switch (mode) {
    case 'split':
      return [splitPolicy({ handBackEvery: spec.handBackEvery, segmentCap: spec.segmentCap })];
    case 'random-switch':
      return values(spec.switchRatios, '--switch-ratio R[,R...] (P(big) = 1/(R+1))').map((r) =>
        randomSwitchPolicy({ switchRatio: r, switchChunk: spec.switchChunk, offloadHint: spec.offloadHint }),
      );
    case 'logprob-subselect':
      return [logprobSubselectPolicy({ candidates: spec.candidates, draftTokens: spec.draftTokens, decay: spec.decay, bigTokens: spec.bigTokens })];
    case 'specreason':
      return [specReasonPolicy({ threshold: spec.scoreThreshold })];
    case 'small':
      return [smallOnlyPolicy({ offloadHint: spec.offloadHint })];
    case 'big':
      return [bigOnlyPolicy()];
  }
}

function values(xs: readonly number[] | undefined, what: string, fallback?: number[]): number[] {
  if (xs && xs.length > 0) return [...xs];
  if (fallback) return fallback;
  throw new InvalidInputError(`give ${what}`);
}

/** The method (or sweeps of settings) a spec names. */
export function methodsFor(spec: MethodSpec): (ReasoningMethod | ReasoningSweep)[] {
  const composed = composeModeOf(spec.method);
  if (composed) {
    if (composeModeOf(composed.inner)) throw new InvalidInputError(`--method ${spec.method}: compose one mode with one method, e.g. split+lynx`);
    const inner = methodsFor({ ...spec, method: composed.inner });
    return policiesFor(composed.mode, spec).flatMap((policy) => inner.map((m) => composeMethod(policy, m)));
  }
  switch (spec.method) {
    case 'full':
      return [fullRollout()];
    case 'budget':
      return values(spec.budgets, '--budget B[,B...]').map((b) => tokenBudget(b));
    case 'lynx': {
      if (!spec.probe) throw new InvalidInputError('--method lynx needs --probe EXP (an experiment folder with probe/ and conformal/)');
      const policies = values(spec.deltas, '--delta', [0.1]).map((delta) =>
        loadLynxPolicy(spec.probe!, { rule: spec.rule ?? 'lynx', delta, allowClipped: spec.allowClipped }),
      );
      // Several deltas: one generation per problem serves them all (the probe never changes the trace before the exit).
      // The rules come from one folder and share its probe.
      return [policies.length === 1 ? lynxMethod(policies[0]!) : lynxSweep(policies.map((p) => ({ ...p, probe: policies[0]!.probe })))];
    }
    case 'deer': {
      const t = values(spec.thresholds, '--threshold', [0.95]);
      const opts = spec.trialSampling ? { trialSampling: spec.trialSampling } : {};
      return [t.length === 1 ? deer({ ...opts, threshold: t[0] }) : deerSweep(t, opts)];
    }
    case 'deepconf': {
      // The default leaves room for online traces: 16 warm-up (DeepConf's) and 16 that can be stopped.
      const b = values(spec.traces, '--traces', [DEFAULT_DEEPCONF_TRACES]);
      const opts = { variant: spec.variant, warmupTraces: spec.warmup, windowSize: spec.window };
      return [b.length === 1 ? deepConf({ ...opts, budget: b[0] }) : deepConfSweep(b, opts)];
    }
    case 'dynasor': {
      const n = values(spec.agreements, '--agreement', [2]);
      const interval = spec.interval ?? 32;
      return [n.length === 1 ? dynasorCot({ agreement: n[0], interval }) : dynasorSweep(n, { interval })];
    }
    default:
      throw new InvalidInputError(`unknown method '${spec.method}': use ${METHOD_NAMES.join(', ')}, or with --small ${COMPOSE_MODES.join(', ')} (optionally +METHOD)`);
  }
}

/**
 * KV cells and sequences a context needs to decode `problems` problems of a method at once: each problem's trace
 * (budget + room for the prompt and the exit), and the forks its probes take (DeepConf runs up to 16 traces of a
 * problem side by side, the others a few probes).
 */
export function contextNeeds(
  method: string,
  problems: number,
  maxTokens: number,
  compose: { model?: 'big' | 'small'; handBackEvery?: number; candidates?: number } = {},
): { nCtx: number; nSeqMax: number } {
  const composed = composeModeOf(method);
  const inner = composed?.inner ?? method;
  const forks = inner === 'deepconf' ? 16 : 4;
  // The small model of a composition also holds the hand-back probes (one fork per prefix of a chunk) or the
  // logprob-subselect candidates; the big one a fork per candidate.
  const probes = compose.handBackEvery ?? SPLIT_DEFAULTS.handBackEvery;
  const candidates = compose.candidates ?? SUBSELECT_DEFAULTS.candidates;
  const extra =
    composed?.mode === 'split' && compose.model === 'small' ? probes : composed?.mode === 'logprob-subselect' ? candidates : composed?.mode === 'specreason' ? 2 : 0;
  return { nCtx: problems * (maxTokens + 1024) * (inner === 'deepconf' ? 4 : 1), nSeqMax: problems * (1 + forks + extra) };
}

/** The rule file a LYNX spec reads for one δ (for LYNX's own output files). */
export function lynxRuleOf(spec: MethodSpec, delta: number) {
  if (!spec.probe) throw new InvalidInputError('--method lynx needs --probe EXP');
  return loadLynxPolicy(spec.probe, { rule: spec.rule ?? 'lynx', delta, allowClipped: spec.allowClipped }).rule;
}
