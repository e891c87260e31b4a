/** `lynx simulate`: LYNX's simulated evaluation of every calibrated rule on labelled test rollouts (no generation). */
import { join } from 'node:path';
import { InvalidInputError } from '../util/errors.js';
import { writeFileAtomic } from '../util/fs.js';
import { computeMetrics } from '../eval/metrics.js';
import { PREDICTIONS_FILE, runDir, writeConfig, writeMetrics, type PredictionRecord } from '../eval/records.js';
import { datasetRollouts } from '../reasoning/lynx/dataset/store.js';
import { loadProbe } from '../reasoning/lynx/probe/probe.js';
import { lynxMetrics, simulateRollout, type LynxMetrics, type SimRollout } from '../reasoning/lynx/simulate.js';
import { rolloutEventRecords, rolloutId, simulate, simulatedLynxRows, simulateOracleRun } from '../eval/simulated-runs.js';
import { readRules, type RuleName } from '../reasoning/calibration/rule-files.js';
import { refusalReason } from '../reasoning/calibration/conformal.js';
import { writeLynxFiles, type LynxMetricsFile } from '../reasoning/lynx/lynx-files.js';
import { compareWithOracle, oracleFrontier, oracleLimits, thresholdFrontier, type OracleComparison } from '../reasoning/lynx/oracle.js';
import { writeJsonAtomic } from '../util/fs.js';
import { nullForNonFinite } from '../util/json.js';
import { checkProbeMatches, loadEventDatasets, resolveProbeDir, withGold, type Log } from './event-data.js';

// ---------------------------------------------------------------------------------------------------------------
// simulate

export interface SimulateStepOptions {
  /** The experiment folder: probe/ and conformal/ are read from it, eval/ written into it (unless given below). */
  exp: string;
  probeDir?: string;
  conformalDir?: string;
  /** Test datasets: disjoint from the probe's training and the calibration data. */
  datasets: readonly string[];
  /** Benchmark name of the run folders; default the datasets' info.benchmark. */
  benchmark?: string;
  /** Only these rules / δs (default every rule file in the conformal folder). */
  rules?: readonly RuleName[];
  deltas?: readonly number[];
  /** Bootstrap seed and resamples of the intervals. */
  seed?: number;
  resamples?: number;
  /** Exit with LYNX rules whose quantile was clipped (LYNX's behaviour); default: they never exit. */
  allowClipped?: boolean;
  log?: Log;
}

export interface SimulatedRun {
  method: string;
  setting: string;
  dir: string;
  lynx: LynxMetrics;
  /** The setting against the oracle at its accuracy (absent for the baseline and the oracle itself). */
  oracle?: OracleComparison;
}

/** `oracle.json` in the oracle's run folder: both frontiers and the limits, for the tables and the report. */
export const ORACLE_FILE = 'oracle.json';


/**
 * LYNX's simulated evaluation: score every event of the test datasets with the probe, apply every calibrated rule to
 * the stored rollouts without re-generating, and write one run folder per rule and δ (method `lynx`, `lynx-ltt`,
 * `lynx-crc`; setting `delta=…`) plus the full-rollout baseline (method `full`, setting `full`) under
 * `<exp>/eval/<benchmark>/`, so `lynx report <exp>` shows them.
 */
export function simulateStep(opts: SimulateStepOptions): {
  runs: SimulatedRun[];
  baseline: SimulatedRun;
  oracle: SimulatedRun;
  rollouts: number;
  events: number;
  rolloutsWithoutEvents: number;
} {
  const probeDir = resolveProbeDir(opts.probeDir ?? join(opts.exp, 'probe'));
  const conformalDir = opts.conformalDir ?? join(opts.exp, 'conformal');
  const { probe, header } = loadProbe(probeDir);
  const rules = readRules(conformalDir, { rules: opts.rules, deltas: opts.deltas, useClipped: opts.allowClipped });
  for (const r of rules) {
    const why = refusalReason(r);
    if (why) opts.log?.(`warning: ${why}`);
  }
  const data = loadEventDatasets(opts.datasets);
  checkProbeMatches(header, probeDir, data);
  const benchmark = opts.benchmark ?? data.benchmark;
  if (!benchmark) throw new InvalidInputError('the datasets do not name one benchmark (info.benchmark): give --benchmark NAME');
  const scores = probe.predict(data.features, data.rows);
  const rollouts = withGold(datasetRollouts(data, scores), data.meta);
  const rolloutsWithoutEvents = Math.max(0, data.units - rollouts.length);
  if (rolloutsWithoutEvents > 0) {
    opts.log?.(`note: ${rolloutsWithoutEvents} rollouts have no events in the datasets and are left out of the simulation`);
  }
  const config = {
    simulatedFrom: data.datasets,
    probe: { hiddenStateLayers: data.spec.hiddenStateLayers, model: data.spec.model, nFeatures: header.nFeatures },
  };
  const simOpts = { benchmark, seed: opts.seed ?? 0, resamples: opts.resamples };
  const results = simulate(rollouts, rules, simOpts);
  const frontiers = { oracle: oracleFrontier(rollouts), probe: thresholdFrontier(rollouts) };
  const description: Partial<LynxMetricsFile> = {
    dataset_id: benchmark,
    test_problems: new Set(rollouts.map((r) => r.problemId)).size,
    test_rollouts: Math.max(1, ...rollouts.map((r) => (r.rollout ?? 0) + 1)),
    probe_path: probeDir,
    conformal_path: conformalDir,
  };
  const runs: SimulatedRun[] = [];
  results.forEach((res) => {
    const dir = runDir(opts.exp, benchmark, res.method, res.setting);
    const oracle = compareWithOracle(rollouts, { accuracy: res.metrics.accuracy, avgTokens: res.metrics.avgTokens }, frontiers);
    res.metrics.extra = { ...res.metrics.extra, oracle: nullForNonFinite(oracle) };
    writeRun(dir, res.predictions, res.metrics, { ...config, benchmark, method: res.method, setting: res.setting, rule: nullForNonFinite(res.rule) });
    writeLynxFiles(dir, nullForNonFinite({ ...description, ...res.lynx }) as LynxMetricsFile, simulatedLynxRows(rollouts, res.outcomes, res.rule));
    runs.push({ method: res.method, setting: res.setting, dir, lynx: res.lynx, oracle });
    opts.log?.(`${res.method} ${res.setting}: ${describeRun(res.lynx)}; ${describeOracle(oracle)}`);
  });
  const baseline = writeBaseline(opts.exp, rollouts, benchmark, simOpts, config);
  opts.log?.(`full full: accuracy ${pct(baseline.lynx.baseline.accuracy)}, avg tokens ${baseline.lynx.baseline.avg_tokens.toFixed(0)}`);
  const o = simulateOracleRun(rollouts, simOpts);
  const oracleDir = runDir(opts.exp, benchmark, o.method, o.setting);
  writeRun(oracleDir, o.predictions, o.metrics, { ...config, benchmark, method: o.method, setting: o.setting, oracle: 'first cue event with a correct forced exit' });
  writeJsonAtomic(join(oracleDir, ORACLE_FILE), nullForNonFinite({ baselineAvgTokens: baseline.lynx.baseline.avg_tokens, frontiers, limits: oracleLimits(rollouts) }));
  const oracle: SimulatedRun = { method: o.method, setting: o.setting, dir: oracleDir, lynx: o.lynx };
  opts.log?.(`oracle first-correct: ${describeRun(o.lynx)}`);
  return { runs, baseline, oracle, rollouts: rollouts.length, events: data.rows, rolloutsWithoutEvents };
}

function describeOracle(c: OracleComparison): string {
  if (c.oracleSavingsRate === null) return 'the oracle does not reach this accuracy';
  return `oracle at this accuracy saves ${pct(c.oracleSavingsRate)} (share ${c.oracleShare === null ? '—' : pct(c.oracleShare)}), best probe threshold ${c.probeSavingsRate === null ? '—' : pct(c.probeSavingsRate)}`;
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

function describeRun(m: LynxMetrics): string {
  return (
    `accuracy ${pct(m.early_exit.accuracy)} (full ${pct(m.baseline.accuracy)}), exit rate ${pct(m.early_exit.exit_rate)}, ` +
    `avg tokens ${m.early_exit.avg_tokens.toFixed(0)} (saved ${pct(m.early_exit.savings_rate)}), premature exits ${pct(m.premature_exit_rate)}`
  );
}

function writeRun(dir: string, predictions: readonly PredictionRecord[], metrics: ReturnType<typeof computeMetrics>, config: Record<string, unknown>): void {
  writeFileAtomic(join(dir, PREDICTIONS_FILE), predictions.map((p) => JSON.stringify(p)).join('\n') + '\n');
  writeConfig(dir, {
    ...config,
    benchmark: metrics.benchmark,
    method: metrics.method,
    setting: metrics.setting,
    simulated: true,
    createdAt: new Date().toISOString(),
  });
  writeMetrics(dir, metrics);
}

/** The full rollouts as a run (method `full`, setting `full`): every rollout runs to the end. */
function writeBaseline(
  exp: string,
  rollouts: readonly SimRollout[],
  benchmark: string,
  simOpts: { seed: number; resamples?: number },
  config: Record<string, unknown>,
): SimulatedRun {
  const never = (_p: number) => false;
  const outcomes = rollouts.map((r) => simulateRollout(never, r));
  const lynx = lynxMetrics(rollouts, outcomes, simOpts);
  const predictions = rollouts.map((r, i): PredictionRecord => {
    const o = outcomes[i]!;
    const rec: PredictionRecord = {
      id: rolloutId(r),
      benchmark,
      method: 'full',
      setting: 'full',
      problem: r.problem ?? '',
      gold: r.gold ?? '',
      extracted: r.fullAnswer,
      correct: r.fullCorrect,
      tokens: o.tokens,
      wallMs: r.wallMs ?? 0,
      exit: null,
      baseline: { tokens: o.tokens.total, decoded: o.tokens.decoded, correct: r.fullCorrect, extracted: r.fullAnswer },
      events: rolloutEventRecords(r),
      extra: { simulated: true },
    };
    if (r.index !== undefined) rec.index = r.index;
    return rec;
  });
  const metrics = computeMetrics(predictions, { method: 'full', setting: 'full', benchmark, seed: simOpts.seed, extra: { simulated: true, lynx } });
  const dir = runDir(exp, benchmark, 'full', 'full');
  writeRun(dir, predictions, metrics, config);
  return { method: 'full', setting: 'full', dir, lynx };
}

