import type { Command } from 'commander';
import { fetchBenchmark, fetchableBenchmarks } from '../../tasks/fetch.js';

export function registerData(program: Command): void {
  const data = program.command('data').description('benchmark data');
  data
    .command('fetch')
    .description(`download a benchmark from its canonical public location, verify it and store it in the data folder (${fetchableBenchmarks().join(', ')})`)
    .argument('<name...>', 'benchmark names')
    .option('--data-dir <dir>', 'data folder (default $LYNX_DATA_DIR or ../shared/data)')
    .option('--base-url <url>', 'fetch from a mirror serving the same paths')
    .action(async (names: string[], opts: { dataDir?: string; baseUrl?: string }) => {
      for (const name of names) {
        const r = await fetchBenchmark(name, { dataDir: opts.dataDir, baseUrl: opts.baseUrl });
        process.stdout.write(`${name}: ${JSON.stringify(r)}\n`);
      }
    });
}
