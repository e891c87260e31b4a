/** The benchmark a command runs on: `--benchmark` and the options that select its problems. */
import type { Command } from 'commander';
import { loadBenchmark, type Problem } from '../tasks/benchmarks.js';
import { InvalidInputError } from '../util/errors.js';
import { intOption, listOption } from './options.js';

export interface BenchmarkArgs {
  benchmark: string;
  dataDir?: string;
  split?: string;
  limit?: number;
  limitPerSubset?: number;
  subsetOffset?: number;
  subsets?: string[];
}

/** Declare the problem-selection options (`--data-dir`, `--split`, `--limit`, and MATH's subject options). */
export function problemSelectionOptions(command: Command): Command {
  return command
    .option('--data-dir <dir>', 'benchmark data folder (default $LYNX_DATA_DIR or ../shared/data)')
    .option('--split <split>', 'train or test (gsm8k, math)')
    .option('--limit <n>', 'first n problems', intOption('--limit', 1))
    .option('--limit-per-subset <n>', 'MATH: problems per subject', intOption('--limit-per-subset', 1))
    .option('--subset-offset <n>', 'MATH: skip this many per subject (disjoint splits)', intOption('--subset-offset', 0))
    .option('--subsets <list>', 'MATH: subjects', listOption);
}

/** The problems the arguments select: a benchmark from the data folder, a .jsonl file, or the demo model's `demo[:part]`. */
export async function loadBenchmarkArg(args: BenchmarkArgs): Promise<Problem[]> {
  if (args.benchmark === 'demo' || args.benchmark.startsWith('demo:')) {
    const { demoBenchmark } = await import('../tasks/demo/benchmark.js');
    return demoBenchmark(args.benchmark, { limit: args.limit });
  }
  if (args.split !== undefined && args.split !== 'train' && args.split !== 'test') throw new InvalidInputError(`--split must be train or test, got '${args.split}'`);
  return loadBenchmark(args.benchmark, {
    dataDir: args.dataDir,
    split: args.split,
    limit: args.limit,
    limitPerSubset: args.limitPerSubset,
    subsetOffset: args.subsetOffset,
    subsets: args.subsets,
  });
}
