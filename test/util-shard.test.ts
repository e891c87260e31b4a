import { describe, expect, it } from 'vitest';
import { checkShard, inShard, parseShard, shardItems } from '../src/util/shard.js';

describe('shards (--shard i/N)', () => {
  it('parses i/N and refuses anything else with one message', () => {
    expect(parseShard('2/5')).toEqual({ index: 2, count: 5 });
    expect(parseShard(' 0/1 ')).toEqual({ index: 0, count: 1 });
    for (const bad of ['x', '1', '-1/2', '1/2/3', '1.5/2', ''])
      expect(() => parseShard(bad)).toThrow(`--shard must look like i/N (e.g. 0/4), got '${bad}'`);
    for (const bad of ['2/2', '0/0', '7/3']) expect(() => parseShard(bad)).toThrow(`--shard ${bad}: need 0 <= i < N`);
  });

  it('refuses shards built in code that are out of range or not whole numbers', () => {
    expect(() => checkShard(undefined)).not.toThrow();
    expect(() => checkShard({ index: 1, count: 2 })).not.toThrow();
    for (const s of [{ index: 2, count: 2 }, { index: -1, count: 2 }, { index: 0, count: 0 }, { index: 0.5, count: 2 }])
      expect(() => checkShard(s)).toThrow(/invalid shard .*: need 0 <= index < count/);
  });

  it('splits a list so that the N shards cover every item exactly once, in order', () => {
    const items = Array.from({ length: 11 }, (_, i) => `p${i}`);
    const shards = [0, 1, 2].map((index) => shardItems(items, { index, count: 3 }));
    expect(shards[1]).toEqual(['p1', 'p4', 'p7', 'p10']);
    expect(shards.flat().sort()).toEqual([...items].sort());
    expect(shardItems(items, undefined)).toEqual(items);
    expect(items.filter((_, j) => inShard(j, { index: 0, count: 1 }))).toEqual(items);
  });
});
