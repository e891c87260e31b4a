/**
 * Shards of a list (`--shard i/N`): shard i of N holds the items at positions j with j mod N = i, so N shards run
 * apart cover the list once and their outputs merge back into the unsharded result.
 */
import { InvalidInputError } from './errors.js';

export interface Shard {
  index: number;
  count: number;
}

/** Parse `--shard i/N` (0 <= i < N). */
export function parseShard(spec: string): Shard {
  const m = /^(\d+)\/(\d+)$/.exec(spec.trim());
  if (!m) throw new InvalidInputError(`--shard must look like i/N (e.g. 0/4), got '${spec}'`);
  const index = Number(m[1]);
  const count = Number(m[2]);
  if (count < 1 || index >= count) throw new InvalidInputError(`--shard ${spec}: need 0 <= i < N`);
  return { index, count };
}

/** Refuse a shard built in code (not parsed) that is not whole numbers with 0 <= index < count. */
export function checkShard(shard: Shard | undefined): void {
  if (!shard) return;
  const { index, count } = shard;
  if (!Number.isInteger(count) || count < 1 || !Number.isInteger(index) || index < 0 || index >= count)
    throw new InvalidInputError(`invalid shard ${index} of ${count}: need 0 <= index < count`);
}

/** Whether the item at `position` belongs to the shard; without a shard every item does. */
export function inShard(position: number, shard: Shard | undefined): boolean {
  return !shard || position % shard.count === shard.index;
}

/** The items of one shard, in list order. */
export function shardItems<T>(items: readonly T[], shard: Shard | undefined): T[] {
  return items.filter((_, j) => inShard(j, shard));
}
