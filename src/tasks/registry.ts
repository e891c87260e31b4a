/**
 * Every benchmark by name, from the library as from the CLI: the data folder's benchmarks (gsm8k, math, math500,
 * aime24, amc23, commonsenseqa), the demo task (`demo`, `demo:calib`, `demo:test:1-3`, ...) and any JSONL file.
 */
import { basename, resolve } from 'node:path';
import { InvalidInputError } from '../util/errors.js';
import { BENCHMARK_NAMES, loadDataBenchmark, loadJsonlBenchmark, type LoadOptions } from './benchmarks.js';
import { demoBenchmark } from './demo/benchmark.js';
import type { Problem } from './problem.js';

export interface BenchmarkSelection extends Omit<LoadOptions, 'split'> {
  /** 'train' or 'test' (gsm8k, math); a string so that a user's value is checked here. */
  split?: string;
}

/** Is this a demo task name (`demo`, `demo:PART[:LEVELS]`)? */
export function isDemoBenchmark(name: string): boolean {
  return name === 'demo' || name.startsWith('demo:');
}

/** The problems a benchmark name and selection give, in the benchmark's order. */
export function loadBenchmark(name: string, sel: BenchmarkSelection = {}): Problem[] {
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
