import type { Command } from 'commander';
import { simulateStep, type SimulateStepOptions } from '../../pipeline/simulate.js';
import type { RuleName } from '../../reasoning/calibration/rule-files.js';
import { InvalidInputError } from '../../util/errors.js';
import { intOption, listOption } from '../options.js';
import { parseDeltas } from './calibrate.js';

export interface SimulateArgs {
  exp: string;
  data: string[];
  benchmark?: string;
  probe?: string;
  conformal?: string;
  rules?: string[];
  deltas?: string[];
  seed: number;
  resamples: number;
  allowClipped?: boolean;
  quiet?: boolean;
}

const collect = (value: string, previous: string[]) => [...previous, value];

export function registerSimulate(program: Command): void {
  program
    .command('simulate')
    .description(
      "LYNX's simulated evaluation: apply every calibrated rule to the stored rollouts of test datasets (no generation); " +
        'writes EXP/eval/<benchmark>/<method>/<setting>/ for each rule and delta and the full-rollout baseline (method full)',
    )
    .requiredOption('--exp <dir>', 'experiment folder (reads probe/ and conformal/, writes eval/)')
    .option('--data <dir>', 'test dataset folder, disjoint from training and calibration data (repeat for several)', collect, [])
    .option('-b, --benchmark <name>', "benchmark name of the run folders (default: the datasets' info.benchmark)")
    .option('--probe <dir>', 'probe folder (default EXP/probe)')
    .option('--conformal <dir>', 'rule folder (default EXP/conformal)')
    .option('--rules <list>', 'only these rules (lynx, ltt, crc)', listOption)
    .option('--deltas <list>', 'only these deltas', listOption)
    .option('-s, --seed <n>', 'bootstrap seed of the intervals', intOption('--seed', 0), 0)
    .option('--resamples <n>', 'bootstrap resamples', intOption('--resamples', 100), 2000)
    .option('--allow-clipped', 'exit with lynx rules whose quantile was clipped (as LYNX does); default: they never exit')
    .option('-q, --quiet', 'no per-run lines')
    .action((args: SimulateArgs) => {
      const r = simulateStep({ ...simulateOptions(args), log: args.quiet ? undefined : (line) => process.stdout.write(`${line}\n`) });
      process.stdout.write(
        `simulated ${r.runs.length} rule settings, the full-rollout baseline and the oracle exit on ${r.rollouts} rollouts (${r.events} events); ` +
          `run folders under ${args.exp}/eval/ (lynx report ${args.exp})\n`,
      );
    });
}

/** The pipeline step's options from the command's arguments. */
export function simulateOptions(args: SimulateArgs): Omit<SimulateStepOptions, 'log'> {
  if (args.data.length === 0) throw new InvalidInputError('give the test data with --data DIR (repeat for several folders)');
  return {
    exp: args.exp,
    probeDir: args.probe,
    conformalDir: args.conformal,
    datasets: args.data,
    benchmark: args.benchmark,
    rules: args.rules as RuleName[] | undefined,
    deltas: args.deltas ? parseDeltas(args.deltas) : undefined,
    seed: args.seed,
    resamples: args.resamples,
    ...(args.allowClipped ? { allowClipped: true } : {}),
  };
}
