/**
 * `lynx demo experiment`: the whole LYNX pipeline on the demo reasoner, as the sequence of `lynx` commands a user would
 * type (each printed before it runs, so any step can be rerun or changed by hand):
 *
 *   datasets/probe, datasets/calib, datasets/test   lynx build-dataset on the three disjoint held-out parts
 *   probe/                                           lynx train-probe datasets/probe
 *   conformal/                                       lynx calibrate --data datasets/calib (δ sweep, 3 rules)
 *   eval/demo-sim/...                                lynx simulate --data datasets/test (every rule and δ, no generation)
 *   eval/demo/...                                    lynx eval: full rollouts, token budgets, LYNX online, DEER,
 *                                                    DeepConf, Dynasor-CoT on the same test problems and seed
 *   report.html                                      lynx report
 *
 * Every step resumes: dataset builds and evaluation runs skip finished work, and a step whose output is complete is
 * skipped, so an interrupted experiment is finished by running the same command again.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
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
  /** Runs `lynx ARGS...` and returns its exit code (the CLI's `main`, injected to avoid an import cycle). */
  lynx: (argv: string[]) => Promise<number>;
  log?: (line: string) => void;
}

export interface DemoExperimentStep {
  name: string;
  argv: string[];
  /** Output that, when present, means the step is done. */
  doneWhen?: string;
}

const BENCH = 'demo';

export function demoExperimentSteps(o: Omit<DemoExperimentOptions, 'lynx' | 'log'>): DemoExperimentStep[] {
  const exp = o.out;
  const n = { probe: 500, calib: 500, test: 500, ...o.problems };
  const seed = String(o.seed ?? 0);
  const maxTokens = String(o.maxTokens ?? 640);
  const conc = String(o.concurrency ?? 8);
  const common = ['-m', o.model, '--max-tokens', maxTokens, '--seed', seed, '--concurrency', conc];
  const ds = (part: 'probe' | 'calib' | 'test') => join(exp, 'datasets', part);
  const build = (part: 'probe' | 'calib' | 'test', rollouts: number): DemoExperimentStep => ({
    name: `dataset ${part}`,
    argv: ['build-dataset', '-b', `demo:${part}`, '--limit', String(n[part]), '--rollouts', String(rollouts), '-o', ds(part), ...common],
  });
  const evalRun = (method: string, extra: string[], limit = n.test): DemoExperimentStep => ({
    name: `eval ${method} ${extra.join(' ')}`.trim(),
    argv: ['eval', '-b', BENCH, '--limit', String(limit), '-o', exp, '--method', method, ...extra, ...common],
  });
  const steps: DemoExperimentStep[] = [
    build('probe', o.probeRollouts ?? 2),
    build('calib', 1),
    build('test', 1),
    { name: 'probe', argv: ['train-probe', ds('probe'), '-o', join(exp, 'probe'), '-q'], doneWhen: join(exp, 'probe', 'probe.json') },
    { name: 'calibrate', argv: ['calibrate', '--probe', join(exp, 'probe'), '--data', ds('calib'), '-o', join(exp, 'conformal'), '-q'], doneWhen: join(exp, 'conformal', 'summary.json') },
    { name: 'simulate', argv: ['simulate', '--exp', exp, '--data', ds('test'), '-b', `${BENCH}-sim`, '-q'] },
    evalRun('full', []),
    evalRun('budget', ['--budget', '48,96,144,192']),
    evalRun('lynx', ['--probe', exp, '--delta', (o.onlineDeltas ?? [0.05, 0.1, 0.2, 0.3]).join(',')]),
  ];
  if (!o.skipPeers) {
    steps.push(
      evalRun('deer', ['--threshold', '0.8,0.9,0.95,0.99']),
      evalRun('dynasor', ['--agreement', '2,3,4', '--interval', '32']),
      // DeepConf samples up to 8 traces per problem: the first 100 problems keep its cost near the others'.
      evalRun('deepconf', ['--traces', '4,8', '--warmup', '2'], Math.min(n.test, 100)),
    );
  }
  steps.push({ name: 'report', argv: ['report', exp] });
  return steps;
}

export async function runDemoExperiment(o: DemoExperimentOptions): Promise<DemoExperimentStep[]> {
  const log = o.log ?? ((l: string) => process.stderr.write(l + '\n'));
  const steps = demoExperimentSteps(o);
  for (const [i, s] of steps.entries()) {
    if (s.doneWhen && existsSync(s.doneWhen)) {
      log(`[${i + 1}/${steps.length}] ${s.name}: done already (${s.doneWhen})`);
      continue;
    }
    log(`[${i + 1}/${steps.length}] lynx ${s.argv.map((a) => (/[\s,]/.test(a) && !/^[\w.,:/=-]+$/.test(a) ? JSON.stringify(a) : a)).join(' ')}`);
    const t0 = Date.now();
    const code = await o.lynx(s.argv);
    if (code !== 0) throw new LynxError(`step '${s.name}' failed (exit code ${code}); fix the cause and run the same command again to resume`);
    log(`    ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  }
  return steps;
}
