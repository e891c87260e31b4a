/** `lynx merge`: join the shards of one `lynx build-dataset` run into one dataset folder. */
import type { Command } from 'commander';
import { mergeShards } from '../../reasoning/lynx/dataset/builder.js';

export function registerMerge(program: Command): void {
  program
    .command('merge')
    .description('join the shard folders of one build-dataset run (--shard 0/N .. N-1/N) into one dataset, equal to the unsharded build')
    .requiredOption('-o, --out <dir>', 'output dataset folder (must not hold a dataset yet)')
    .argument('<shards...>', 'shard folders')
    .action((shards: string[], opts: { out: string }) => {
      const r = mergeShards(shards, opts.out);
      process.stdout.write(`${r.rows} rows, ${r.units} rollouts from shards ${r.shards.join(', ')} -> ${r.dir}\n`);
    });
}
