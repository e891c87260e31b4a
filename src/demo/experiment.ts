/**
 * `lynx demo experiment`: the whole LYNX pipeline on the demo reasoner, as pipeline steps, each logged as the `lynx`
 * command that does the same (so any step can be rerun or changed by hand):
 *
 *   datasets/probe, datasets/calib, datasets/test   lynx build-dataset on the three disjoint held-out parts
 *   probe/                                           lynx train-probe datasets/probe
 *   conformal/                                       lynx calibrate --data datasets/calib (δ sweep, 3 rules)
 *   eval/demo-sim/...                                lynx simulate --data datasets/test (every rule and δ, the oracle exit;
 *                                                    no generation)
 *   eval/demo/...                                    lynx eval: full rollouts, token budgets, LYNX online, DEER,
 *                                                    DeepConf, Dynasor-CoT on the same test problems and seed
 *   report.html                                      lynx report
 *
 * Every step resumes: dataset builds and evaluation runs skip finished work, and a step whose output is complete is
 * skipped, so an interrupted experiment is finished by running the same command again.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { buildDatasetStep, type BuildDatasetStepOptions } from '../pipeline/build-dataset.js';
import { calibrateStep, DEFAULT_HELD_OUT_FRACTION, type CalibrateStepOptions } from '../pipeline/calibrate.js';
import { evaluateStep, type EvaluateStepOptions } from '../pipeline/evaluate.js';
import { simulateStep, type SimulateStepOptions } from '../pipeline/simulate.js';
import { trainProbeStep, type TrainProbeStepOptions } from '../pipeline/train-probe.js';
import { writeReport } from '../report/index.js';
import { DEFAULT_DELTAS } from '../reasoning/calibration/conformal.js';
import { RULE_NAMES } from '../reasoning/calibration/rule-files.js';
import { DEFAULT_PROBE_CONFIG } from '../reasoning/lynx/probe/probe.js';
import { DEFAULT_SAMPLER } from '../reasoning/method.js';
import { LynxError } from '../util/errors.js';

export interface DemoExperimentOptions {
  /** Experiment folder. */
  out: string;
  model: string;
  /** Problems of each held-out part (at most 500: 100 per level, interleaved over levels). */
  problems?: { probe?: number; calib?: number; test?: number };
  /** Rollouts per problem of the probe's training set (LYNX samples several). */
  probeRollouts?: number;
  maxTokens?: number;
  seed?: number;
  concurrency?: number;
  /** Online evaluation: LYNX δs (the simulated sweep covers all of them). */
  onlineDeltas?: number[];
  /** Skip the peer methods (quicker). */
  skipPeers?: boolean;
  log?: (line: string) => void;
}

/** One step: the pipeline call, with exactly the options its logged command line gives. */
export type DemoExperimentStep = { name: string; argv: string[]; doneWhen?: string } & (
  | { kind: 'build-dataset'; options: Omit<BuildDatasetStepOptions, 'signal' | 'onProgress'> }
  | { kind: 'train-probe'; options: Omit<TrainProbeStepOptions, 'log'> }
  | { kind: 'calibrate'; options: Omit<CalibrateStepOptions, 'log'> }
  | { kind: 'simulate'; options: Omit<SimulateStepOptions, 'log'> }
  | { kind: 'eval'; options: Omit<EvaluateStepOptions, 'onMethod' | 'onProgress'> }
  | { kind: 'report'; options: { root: string } }
);

const BENCH = 'demo';

export function demoExperimentSteps(o: Omit<DemoExperimentOptions, 'log'>): DemoExperimentStep[] {
  const exp = o.out;
  const n = { probe: 500, calib: 500, test: 500, ...o.problems };
  const seed = o.seed ?? 0;
  const maxTokens = o.maxTokens ?? 640;
  const concurrency = o.concurrency ?? 8;
  const common = ['-m', o.model, '--max-tokens', String(maxTokens), '--seed', String(seed), '--concurrency', String(concurrency)];
  const sampler = { temperature: DEFAULT_SAMPLER.temperature!, topP: DEFAULT_SAMPLER.topP! };
  const ds = (part: 'probe' | 'calib' | 'test') => join(exp, 'datasets', part);
  const build = (part: 'probe' | 'calib' | 'test', rollouts: number): DemoExperimentStep => ({
    name: `dataset ${part}`,
    argv: ['build-dataset', '-b', `demo:${part}`, '--limit', String(n[part]), '--rollouts', String(rollouts), '-o', ds(part), ...common],
    kind: 'build-dataset',
    options: {
      model: o.model,
      benchmark: `demo:${part}`,
      selection: { limit: n[part] },
      outDir: ds(part),
      rolloutsPerProblem: rollouts,
      cues: 'default',
      exitCue: 'paper',
      answerMaxTokens: 64,
      maxTokens,
      skipFirstEvents: 0,
      sampler,
      seed,
      grading: 'zst',
      numerics: 'exact',
      concurrency,
      chunkUnits: 16,
    },
  });
  const evalRun = (method: string, extra: string[], spec: Omit<EvaluateStepOptions['spec'], 'method'>, limit = n.test): DemoExperimentStep => ({
    name: `eval ${method} ${extra.join(' ')}`.trim(),
    argv: ['eval', '-b', BENCH, '--limit', String(limit), '-o', exp, '--method', method, ...extra, ...common],
    kind: 'eval',
    options: {
      model: o.model,
      benchmark: BENCH,
      selection: { limit },
      out: exp,
      spec: { method, rule: 'lynx', variant: 'low', interval: 32, ...spec },
      maxTokens,
      sampler,
      seed,
      grading: 'zst',
      concurrency,
      exitCue: 'paper',
    },
  });
  const deltas = o.onlineDeltas ?? [0.05, 0.1, 0.2, 0.3];
  const steps: DemoExperimentStep[] = [
    build('probe', o.probeRollouts ?? 2),
    build('calib', 1),
    build('test', 1),
    {
      name: 'probe',
      argv: ['train-probe', ds('probe'), '-o', join(exp, 'probe'), '-q'],
      doneWhen: join(exp, 'probe', 'probe.json'),
      kind: 'train-probe',
      options: { datasets: [ds('probe')], outDir: join(exp, 'probe'), config: { hidden: [...DEFAULT_PROBE_CONFIG.hidden] }, seed: 42, valSplit: 0.2, kernels: 'auto' },
    },
    {
      name: 'calibrate',
      argv: ['calibrate', '--probe', join(exp, 'probe'), '--data', ds('calib'), '-o', join(exp, 'conformal'), '-q'],
      doneWhen: join(exp, 'conformal', 'summary.json'),
      kind: 'calibrate',
      options: {
        probeDir: join(exp, 'probe'),
        datasets: [ds('calib')],
        outDir: join(exp, 'conformal'),
        deltas: [...DEFAULT_DELTAS],
        rules: [...RULE_NAMES],
        heldOutFraction: DEFAULT_HELD_OUT_FRACTION,
        seed: 0,
        trajectory: { alpha: 0.1, gridStep: 0.001 },
      },
    },
    {
      name: 'simulate',
      argv: ['simulate', '--exp', exp, '--data', ds('test'), '-b', `${BENCH}-sim`, '-q'],
      kind: 'simulate',
      options: { exp, datasets: [ds('test')], benchmark: `${BENCH}-sim`, seed: 0, resamples: 2000 },
    },
    evalRun('full', [], {}),
    evalRun('budget', ['--budget', '48,96,144,192'], { budgets: [48, 96, 144, 192] }),
    evalRun('lynx', ['--probe', exp, '--delta', deltas.join(',')], { probe: exp, deltas }),
  ];
  if (!o.skipPeers) {
    steps.push(
      evalRun('deer', ['--threshold', '0.8,0.9,0.95,0.99'], { thresholds: [0.8, 0.9, 0.95, 0.99] }),
      evalRun('dynasor', ['--agreement', '2,3,4', '--interval', '32'], { agreements: [2, 3, 4] }),
      // DeepConf as its code runs: 16 warm-up traces (enough for a 90th percentile to sit between traces), then online
      // traces its stop can cut short (the window scaled to the budget). Up to 32 traces per problem: the first 50
      // problems keep its cost near the others'.
      evalRun('deepconf', ['--traces', '24,32', '--warmup', '16'], { traces: [24, 32], warmup: 16 }, Math.min(n.test, 50)),
    );
  }
  steps.push({ name: 'report', argv: ['report', exp], kind: 'report', options: { root: exp } });
  return steps;
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

/** Run one step through the pipeline; returns what it produced, in a line or a few. */
export async function runDemoStep(step: DemoExperimentStep): Promise<string[]> {
  switch (step.kind) {
    case 'build-dataset': {
      const { result: r, summary: s } = await buildDatasetStep(step.options);
      return [`${s.rows} events from ${s.rollouts} rollouts (${r.rollouts} built, ${r.skipped} already done), ${pct(s.rows > 0 ? s.labelOnes / s.rows : 0)} correct exits`];
    }
    case 'train-probe': {
      const { metrics: m } = trainProbeStep(step.options);
      return [`probe: validation AUC ${m.val_auc.toFixed(3)}, accuracy ${m.val_acc.toFixed(3)} on ${m.n_val} events`];
    }
    case 'calibrate': {
      const { files } = calibrateStep(step.options);
      return [`${files.length} rule files`];
    }
    case 'simulate': {
      const r = simulateStep(step.options);
      return [`${r.runs.length} rule settings simulated on ${r.rollouts} rollouts`];
    }
    case 'eval':
      return (await evaluateStep(step.options)).map(({ metrics: m }) => `${m.method} ${m.setting}: accuracy ${pct(m.accuracy)}, avg tokens ${m.avgTokens.toFixed(0)}, n ${m.n}`);
    case 'report':
      return [writeReport(step.options.root).path];
  }
}

/** A step's command line as the log shows it (quoting what a shell would split). */
export function commandText(step: DemoExperimentStep): string {
  return `lynx ${step.argv.map((a) => (/[\s,]/.test(a) && !/^[\w.,:/=-]+$/.test(a) ? JSON.stringify(a) : a)).join(' ')}`;
}

export async function runDemoExperiment(o: DemoExperimentOptions): Promise<DemoExperimentStep[]> {
  const log = o.log ?? ((l: string) => process.stderr.write(l + '\n'));
  const steps = demoExperimentSteps(o);
  for (const [i, s] of steps.entries()) {
    if (s.doneWhen && existsSync(s.doneWhen)) {
      log(`[${i + 1}/${steps.length}] ${s.name}: done already (${s.doneWhen})`);
      continue;
    }
    log(`[${i + 1}/${steps.length}] ${commandText(s)}`);
    const t0 = Date.now();
    let lines: string[];
    try {
      lines = await runDemoStep(s);
    } catch (e) {
      if (!(e instanceof LynxError)) throw e;
      throw new LynxError(`step '${s.name}' failed: ${e.message}; fix the cause and run the same command again to resume`, { cause: e });
    }
    for (const line of lines) log(`    ${line}`);
    log(`    ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  }
  return steps;
}
