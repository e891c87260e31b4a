import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadDataBenchmark } from '../src/tasks/benchmarks.js';
import { benchmarkLabel, loadBenchmark } from '../src/tasks/registry.js';

const DATA = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'shared', 'data');

describe('the benchmark registry', () => {
  it('selects the data folder’s benchmarks as their loaders do, and refuses a split that does not exist', () => {
    const sel = { dataDir: DATA, split: 'train', limitPerSubset: 2, subsetOffset: 3, subsets: ['algebra', 'geometry'] };
    const ids = loadBenchmark('math', sel).map((p) => p.id);
    expect(ids).toHaveLength(4);
    expect(ids).toEqual(loadDataBenchmark('math', { ...sel, split: 'train' }).map((p) => p.id));
    expect(loadBenchmark('gsm8k', { dataDir: DATA, limit: 3 }).map((p) => p.id)).toEqual(['gsm8k/test/0', 'gsm8k/test/1', 'gsm8k/test/2']);
    expect(() => loadBenchmark('gsm8k', { dataDir: DATA, split: 'dev' })).toThrow("--split must be train or test, got 'dev'");
  });

  it('loads the demo task’s own problems without a data folder', () => {
    const problems = loadBenchmark('demo:test', { limit: 3 });
    expect(problems).toHaveLength(3);
    expect(new Set(problems.map((p) => p.id)).size).toBe(3);
    expect(loadBenchmark('demo', { limit: 3 }).map((p) => p.id)).toEqual(problems.map((p) => p.id));
    expect(loadBenchmark('demo:calib', { limit: 3 }).map((p) => p.id)).not.toEqual(problems.map((p) => p.id));
    expect(() => loadBenchmark('demo:nope')).toThrow(/unknown part 'nope'/);
  });

  it('labels a JSONL benchmark by its file name', () => {
    expect(benchmarkLabel('data/my-set.jsonl')).toBe('my-set');
    expect(benchmarkLabel('math500')).toBe('math500');
    // A demo task's name becomes a folder name.
    expect(benchmarkLabel('demo:test:1-5')).toBe('demo-test-1-5');
  });
});
