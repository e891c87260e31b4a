import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadDataBenchmark } from '../src/tasks/benchmarks.js';
import { benchmarkLabel, loadBenchmark } from '../src/tasks/registry.js';
import { numpyPermutation } from '../src/util/rng.js';

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

  it("picks LYNX's seeded subsets: sorted(perm[offset : offset + limit]) of NumPy's default_rng(seed).permutation", () => {
    const all = loadBenchmark('gsm8k', { dataDir: DATA });
    const perm = numpyPermutation(all.length, 123);
    const block = loadBenchmark('gsm8k', { dataDir: DATA, splitOffset: 20, limit: 10, splitSeed: 123 });
    const want = perm.slice(20, 30).sort((a, b) => a - b).map((i) => all[i]!.id);
    expect(block.map((p) => p.id)).toEqual(want);
    // Disjoint blocks of one permutation, and the default seed is 42 (LYNX's builders).
    const next = loadBenchmark('gsm8k', { dataDir: DATA, splitOffset: 30, limit: 10, splitSeed: 123 });
    expect(next.some((p) => block.includes(p))).toBe(false);
    expect(loadBenchmark('gsm8k', { dataDir: DATA, splitOffset: 0, limit: 5 }).map((p) => p.id)).toEqual(
      numpyPermutation(all.length, 42).slice(0, 5).sort((a, b) => a - b).map((i) => all[i]!.id),
    );
    expect(() => loadBenchmark('gsm8k', { dataDir: DATA, splitOffset: -1 })).toThrow(/--split-offset/);
  });

  it('labels a JSONL benchmark by its file name', () => {
    expect(benchmarkLabel('data/my-set.jsonl')).toBe('my-set');
    expect(benchmarkLabel('math500')).toBe('math500');
    // A demo task's name becomes a folder name.
    expect(benchmarkLabel('demo:test:1-5')).toBe('demo-test-1-5');
  });
});
