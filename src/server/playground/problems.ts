/** The problems the playground offers: the demo task's held-out test problems, and benchmarks of the data folder. */
import { loadBenchmark } from '../../tasks/registry.js';
import type { PlaygroundConfig } from './client.js';

const PER_SET = 40;
const BENCHMARKS = ['gsm8k', 'math500', 'aime24', 'amc23'];

/** Demo problems always; each data-folder benchmark when its files are there (`--data-dir`, $LYNX_DATA_DIR). */
export function playgroundSets(dataDir?: string): PlaygroundConfig['sets'] {
  const sets: PlaygroundConfig['sets'] = [];
  const add = (name: string, load: () => ReturnType<typeof loadBenchmark>) => {
    try {
      const problems = load().map((p) => ({ id: p.id, text: p.problem, gold: p.gold }));
      if (problems.length > 0) sets.push({ name, problems });
    } catch {
      // a benchmark whose data is not installed is simply not offered
    }
  };
  add('demo (held-out test problems)', () => loadBenchmark('demo:test', { limit: PER_SET }));
  for (const b of BENCHMARKS) add(b, () => loadBenchmark(b, { dataDir, limit: PER_SET }));
  return sets;
}
