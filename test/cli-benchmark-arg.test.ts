import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadBenchmarkArg } from '../src/cli/benchmark-arg.js';
import { loadBenchmark } from '../src/tasks/benchmarks.js';

const DATA = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'shared', 'data');

describe('--benchmark and the problem-selection options', () => {
  it('select the same problems as loadBenchmark, and refuse a split that does not exist', async () => {
    const args = { benchmark: 'math', dataDir: DATA, split: 'train', limitPerSubset: 2, subsetOffset: 3, subsets: ['algebra', 'geometry'] };
    const ids = (await loadBenchmarkArg(args)).map((p) => p.id);
    expect(ids).toHaveLength(4);
    expect(ids).toEqual(loadBenchmark('math', { ...args, split: 'train' }).map((p) => p.id));
    expect((await loadBenchmarkArg({ benchmark: 'gsm8k', dataDir: DATA, limit: 3 })).map((p) => p.id)).toEqual(['gsm8k/test/0', 'gsm8k/test/1', 'gsm8k/test/2']);
    await expect(loadBenchmarkArg({ benchmark: 'gsm8k', dataDir: DATA, split: 'dev' })).rejects.toThrow("--split must be train or test, got 'dev'");
  });

  it('load the demo model’s own problems without a data folder', async () => {
    const problems = await loadBenchmarkArg({ benchmark: 'demo:test', limit: 3 });
    expect(problems).toHaveLength(3);
    expect(new Set(problems.map((p) => p.id)).size).toBe(3);
  });
});
