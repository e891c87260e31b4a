/** The problem-selection options every command that reads a benchmark declares (`loadBenchmark` reads them). */
import type { Command } from 'commander';
import type { BenchmarkSelection } from '../tasks/registry.js';
import { intOption, listOption } from './options.js';

/** Declare the problem-selection options (`--data-dir`, `--split`, `--limit`, and MATH's subject options). */
export function problemSelectionOptions(command: Command): Command {
  return command
    .option('--data-dir <dir>', 'benchmark data folder (default $LYNX_DATA_DIR or ../shared/data)')
    .option('--split <split>', 'train or test (gsm8k, math)')
    .option('--limit <n>', 'first n problems', intOption('--limit', 1))
    .option('--limit-per-subset <n>', 'MATH: problems per subject', intOption('--limit-per-subset', 1))
    .option('--subset-offset <n>', 'MATH: skip this many per subject (disjoint splits)', intOption('--subset-offset', 0))
    .option('--subsets <list>', 'MATH: subjects', listOption)
    .option('--split-offset <n>', "LYNX's seeded subset: problems perm[n : n + limit] of numpy default_rng(--split-seed).permutation, in benchmark order", intOption('--split-offset', 0))
    .option('--split-seed <n>', "seed of that permutation (default 42, LYNX's builders; early_exit_eval.py uses 123)", intOption('--split-seed', 0));
}

/** The selection the options give (what `loadBenchmark` takes). */
export function selectionOf(args: {
  dataDir?: string;
  split?: string;
  limit?: number;
  limitPerSubset?: number;
  subsetOffset?: number;
  subsets?: string[];
  splitOffset?: number;
  splitSeed?: number;
}): BenchmarkSelection {
  return {
    dataDir: args.dataDir,
    split: args.split,
    limit: args.limit,
    limitPerSubset: args.limitPerSubset,
    subsetOffset: args.subsetOffset,
    subsets: args.subsets,
    splitOffset: args.splitOffset,
    splitSeed: args.splitSeed,
  };
}
