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
import { InvalidInputError } from '../util/errors.js';

export const METHOD_NAMES = ['full', 'budget', 'lynx', 'deer', 'deepconf', 'dynasor'] as const;

/** `lynx eval --method deepconf` without `--traces`: DeepConf's 16 warm-up traces and 16 online ones. */
export const DEFAULT_DEEPCONF_TRACES = 32;
export type MethodName = (typeof METHOD_NAMES)[number];

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
}

function values(xs: readonly number[] | undefined, what: string, fallback?: number[]): number[] {
  if (xs && xs.length > 0) return [...xs];
  if (fallback) return fallback;
  throw new InvalidInputError(`give ${what}`);
}

/** The method (or sweeps of settings) a spec names. */
export function methodsFor(spec: MethodSpec): (ReasoningMethod | ReasoningSweep)[] {
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
      throw new InvalidInputError(`unknown method '${spec.method}': use ${METHOD_NAMES.join(', ')}`);
  }
}

/**
 * KV cells and sequences a context needs to decode `problems` problems of a method at once: each problem's trace
 * (budget + room for the prompt and the exit), and the forks its probes take (DeepConf runs up to 16 traces of a
 * problem side by side, the others a few probes).
 */
export function contextNeeds(method: string, problems: number, maxTokens: number): { nCtx: number; nSeqMax: number } {
  const forks = method === 'deepconf' ? 16 : 4;
  return { nCtx: problems * (maxTokens + 1024) * (method === 'deepconf' ? 4 : 1), nSeqMax: problems * (1 + forks) };
}

/** The rule file a LYNX spec reads for one δ (for LYNX's own output files). */
export function lynxRuleOf(spec: MethodSpec, delta: number) {
  if (!spec.probe) throw new InvalidInputError('--method lynx needs --probe EXP');
  return loadLynxPolicy(spec.probe, { rule: spec.rule ?? 'lynx', delta, allowClipped: spec.allowClipped }).rule;
}
