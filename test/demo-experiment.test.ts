/**
 * `lynx demo experiment` runs pipeline steps and logs each as a `lynx` command: the command must do exactly what the
 * step does, so each logged command line, parsed by the real CLI, gives the step's own options.
 */
import { describe, expect, it } from 'vitest';
import type { Command } from 'commander';
import { buildProgram } from '../src/cli/main.js';
import { buildDatasetOptions, type BuildDatasetArgs } from '../src/cli/commands/build-dataset.js';
import { calibrateOptions, type CalibrateArgs } from '../src/cli/commands/calibrate.js';
import { evaluateOptions, type EvalArgs } from '../src/cli/commands/eval.js';
import { simulateOptions, type SimulateArgs } from '../src/cli/commands/simulate.js';
import { trainProbeOptions, type TrainProbeArgs } from '../src/cli/commands/train-probe.js';
import { demoExperimentSteps, type DemoExperimentStep } from '../src/demo/experiment.js';

/** The arguments commander hands the command's action for `argv` (the action itself does not run). */
async function parsedArgs(argv: string[]): Promise<unknown[]> {
  const program = buildProgram();
  const command = program.commands.find((c: Command) => c.name() === argv[0])!;
  let captured: unknown[] = [];
  command.action((...args: unknown[]) => {
    captured = args.slice(0, -1); // the last one is the Command
  });
  await program.parseAsync(argv, { from: 'user' });
  return captured;
}

/** Undefined fields are absent: an option the CLI leaves unset equals one the step does not name. */
const plain = (x: unknown) => JSON.parse(JSON.stringify(x));

async function cliOptions(step: DemoExperimentStep): Promise<unknown> {
  const a = await parsedArgs(step.argv);
  switch (step.kind) {
    case 'build-dataset':
      return buildDatasetOptions(a[0] as BuildDatasetArgs);
    case 'train-probe':
      return trainProbeOptions(a[0] as string[], a[1] as TrainProbeArgs);
    case 'calibrate':
      return calibrateOptions(a[0] as CalibrateArgs);
    case 'simulate':
      return simulateOptions(a[0] as SimulateArgs);
    case 'eval':
      return evaluateOptions(a[0] as EvalArgs);
    case 'report':
      return { root: a[0] };
  }
}

describe('lynx demo experiment', () => {
  const steps = demoExperimentSteps({ out: 'exp/demo', model: 'models/demo.gguf', problems: { probe: 50, calib: 60, test: 70 }, seed: 3 });

  it('covers the whole pipeline: datasets, probe, calibration, simulation, every method, report', () => {
    expect(steps.map((s) => s.kind)).toEqual([
      'build-dataset', 'build-dataset', 'build-dataset', 'train-probe', 'calibrate', 'simulate',
      'eval', 'eval', 'eval', 'eval', 'eval', 'eval', 'report',
    ]);
    const methods = steps.flatMap((s) => (s.kind === 'eval' ? [s.options.spec.method] : []));
    expect(methods).toEqual(['full', 'budget', 'lynx', 'deer', 'dynasor', 'deepconf']);
  });

  it('logs, for every step, a command line that the CLI turns into the very options the step runs with', async () => {
    for (const step of steps) {
      expect({ step: step.name, options: plain(await cliOptions(step)) }).toEqual({ step: step.name, options: plain(step.options) });
    }
  });

  it('notices a step whose command line says something else', async () => {
    const step = structuredClone(steps[0]!);
    step.argv[step.argv.indexOf('--rollouts') + 1] = '5';
    expect(plain(await cliOptions(step))).not.toEqual(plain(step.options));
  });
});
