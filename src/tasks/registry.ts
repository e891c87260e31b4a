/**
 * Every benchmark by name, from the library as from the CLI: the data folder's benchmarks (gsm8k, math, math500,
 * aime24, amc23, commonsenseqa), the demo task (`demo`, `demo:calib`, `demo:test:1-3`, ...) and any JSONL file.
 */
import { basename, resolve } from 'node:path';
import { InvalidInputError } from '../util/errors.js';
import { numpyPermutation } from '../util/rng.js';
import { BENCHMARK_NAMES, loadDataBenchmark, loadJsonlBenchmark, type LoadOptions } from './benchmarks.js';
import { demoBenchmark } from './demo/benchmark.js';
import type { Problem } from './problem.js';

export interface BenchmarkSelection extends Omit<LoadOptions, 'split'> {
  /** 'train' or 'test' (gsm8k, math); a string so that a user's value is checked here. */
  split?: string;
  /**
   * LYNX's seeded subsets: the problems at positions `perm[splitOffset : splitOffset + limit]` of NumPy's
   * `default_rng(splitSeed).permutation(count)`, in benchmark order (LYNX's `--split-offset`, `--test-problems`,
   * `--seed`: `sorted(perm[start:end])`). `limit` is then the subset's size (default: to the end).
   */
  splitOffset?: number;
  /** Seed of that permutation. Default 42 (LYNX's dataset builders; its `early_exit_eval.py` defaults to 123). */
  splitSeed?: number;
}

export const DEFAULT_SPLIT_SEED = 42;

/** Is this a demo task name (`demo`, `demo:PART[:LEVELS]`)? */
export function isDemoBenchmark(name: string): boolean {
  return name === 'demo' || name.startsWith('demo:');
}

/** The problems a benchmark name and selection give, in the benchmark's order. */
export function loadBenchmark(name: string, sel: BenchmarkSelection = {}): Problem[] {
  if (sel.splitOffset !== undefined) {
    const { splitOffset, splitSeed, limit, ...rest } = sel;
    if (!Number.isInteger(splitOffset) || splitOffset < 0) throw new InvalidInputError(`--split-offset must be an integer >= 0 (got ${splitOffset})`);
    const all = loadBenchmark(name, rest);
    const perm = numpyPermutation(all.length, splitSeed ?? DEFAULT_SPLIT_SEED);
    const picked = perm.slice(splitOffset, limit !== undefined && limit >= 0 ? splitOffset + limit : undefined).sort((a, b) => a - b);
    return picked.map((i) => all[i]!);
  }
  if (isDemoBenchmark(name)) return demoBenchmark(name, { limit: sel.limit });
  if (sel.split !== undefined && sel.split !== 'train' && sel.split !== 'test') {
    throw new InvalidInputError(`--split must be train or test, got '${sel.split}'`);
  }
  const opts: LoadOptions = { ...sel, split: sel.split as LoadOptions['split'] };
  if (name.endsWith('.jsonl')) return loadJsonlBenchmark(resolve(name), { limit: opts.limit });
  return loadDataBenchmark(name, opts);
}

/**
 * The name a benchmark's run folders and records carry: a JSONL file's base name, a demo task's name with `-` for `:`
 * (`demo:test:1-5` -> `demo-test-1-5`, a folder name), else the name itself.
 */
export function benchmarkLabel(name: string): string {
  if (name.endsWith('.jsonl')) return basename(name).replace(/\.jsonl$/, '');
  return isDemoBenchmark(name) ? name.replace(/:/g, '-') : name;
}

/** What `--benchmark` accepts, for help texts and errors. */
export const BENCHMARK_HELP = `${BENCHMARK_NAMES.join(', ')}, demo[:probe|:calib|:test][:LEVELS], or a .jsonl file`;
