import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import {
  DatasetWriter,
  datasetLabels,
  datasetRollouts,
  MANIFEST_FILE,
  mergeDatasets,
  readDataset,
  unitKey,
  type DatasetRow,
  type EventMeta,
} from '../src/reasoning/lynx/dataset/store.js';
import { Rng } from '../src/util/rng.js';
import { parseShard, shardItems } from '../src/util/shard.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const tmp = mkdtempSync(join(tmpdir(), 'lynx-dataset-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let n = 0;
const fresh = () => join(tmp, `d${n++}`);

const D = 16;
/**
 * The rows of one rollout, fully determined by the seed (as a seeded build would produce them). Plain JavaScript
 * source, so the killed child process runs exactly the same generator as this file.
 */
const MAKE_UNIT_SRC = `function makeUnit(Rng, problemIndex, rollout, d) {
  const rng = Rng.derive(1234, problemIndex + '#' + rollout);
  const count = rng.int(0, 4);
  const fullCorrect = rng.next() < 0.6;
  const fullTokens = rng.int(200, 900);
  let position = 0;
  const rows = [];
  for (let e = 0; e < count; e++) {
    position += rng.int(1, 40);
    const features = new Float32Array(d);
    for (let k = 0; k < d; k++) features[k] = rng.normal();
    const label = rng.next() < 0.5 ? 1 : 0;
    rows.push({
      features,
      meta: {
        problemId: 'p' + problemIndex, problemIndex, rollout, eventIndex: e, position, tokensSoFar: position + 1,
        cue: 'wait', synthetic: false, label, exitAnswer: label ? '42' : '7', exitAnswerTokens: rng.int(2, 9),
        exitCueTokens: 11, fullAnswer: fullCorrect ? '42' : '8', fullCorrect, fullTokens,
      },
    });
  }
  return rows;
}`;
const makeUnitImpl = new Function(`return ${MAKE_UNIT_SRC}`)() as (rng: typeof Rng, p: number, r: number, d: number) => DatasetRow[];
const makeUnit = (problemIndex: number, rollout: number, d: number) => makeUnitImpl(Rng, problemIndex, rollout, d);

const UNITS = Array.from({ length: 12 }, (_, p) => [0, 1].map((r) => ({ problemIndex: p, rollout: r }))).flat();

function build(dir: string, opts: { units?: typeof UNITS; stopAfter?: number; info?: Record<string, unknown> } = {}): DatasetWriter {
  const w = DatasetWriter.open(dir, { nFeatures: D, info: opts.info ?? { split: 'train' }, chunkUnits: 3, compactRows: 10 });
  let added = 0;
  for (const u of opts.units ?? UNITS) {
    const key = unitKey(`p${u.problemIndex}`, u.rollout);
    if (w.isDone(key)) continue;
    if (opts.stopAfter !== undefined && added === opts.stopAfter) return w; // "crash": buffered units are lost
    w.add(key, makeUnit(u.problemIndex, u.rollout, D));
    added++;
  }
  w.finish();
  return w;
}

function files(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of readdirSync(dir).sort()) out[f] = createHash('sha256').update(readFileSync(join(dir, f))).digest('hex').slice(0, 16);
  return out;
}

describe('event dataset store', () => {
  it('round-trips features and metadata in canonical order', () => {
    const dir = fresh();
    build(dir);
    const ds = readDataset(dir);
    const expected = UNITS.flatMap((u) => makeUnit(u.problemIndex, u.rollout, D));
    expect(ds.rows).toBe(expected.length);
    expect(ds.nFeatures).toBe(D);
    expect(ds.info).toEqual({ split: 'train' });
    expected.forEach((r, i) => {
      expect(ds.meta[i]).toEqual({ ...r.meta, unit: unitKey(r.meta.problemId, r.meta.rollout) });
      expect(ds.features.subarray(i * D, (i + 1) * D)).toEqual(r.features);
    });
    expect(datasetLabels(ds)).toEqual(Uint8Array.from(expected, (r) => r.meta.label));
    const manifest = JSON.parse(readFileSync(join(dir, MANIFEST_FILE), 'utf8'));
    expect(manifest.complete).toBe(true);
    expect(manifest.units).toHaveLength(24); // units without events are recorded too
    expect(readdirSync(dir).filter((f) => f.startsWith('chunk-'))).toEqual([]);
  });

  it('resumes an interrupted build to byte-identical files, whatever the completion order', () => {
    const ref = fresh();
    build(ref);
    const dir = fresh();
    build(dir, { stopAfter: 7 }); // 2 chunks on disk, 1 unit lost from the buffer
    const m = JSON.parse(readFileSync(join(dir, MANIFEST_FILE), 'utf8'));
    expect(m.units).toHaveLength(6);
    expect(m.complete).toBe(false);
    // debris of a crash between a chunk file and the manifest, and of a torn atomic write
    writeFileSync(join(dir, 'chunk-00002.safetensors'), 'garbage');
    writeFileSync(join(dir, '.chunk-00002.jsonl.999.tmp'), 'torn');
    expect(() => readDataset(dir)).toThrow(/unfinished/);
    expect(readDataset(dir, { requireComplete: false }).rows).toBeGreaterThan(0);
    const shuffled = new Rng(3).shuffle(UNITS.slice());
    build(dir, { units: shuffled });
    expect(files(dir)).toEqual(files(ref));
    // a finished dataset is left alone
    const again = build(dir);
    expect(again.complete).toBe(true);
    expect(files(dir)).toEqual(files(ref));
  });

  it('survives kill -9 of the building process', async () => {
    const ref = fresh();
    build(ref);
    const dir = fresh();
    const child = `
      import { DatasetWriter, unitKey } from './src/reasoning/lynx/dataset/store.ts';
      import { Rng } from './src/util/rng.ts';
      const makeUnit = ${MAKE_UNIT_SRC};
      const units = ${JSON.stringify(UNITS)};
      const w = DatasetWriter.open(process.env.LYNX_TEST_DIR, { nFeatures: ${D}, info: { split: 'train' }, chunkUnits: 3, compactRows: 10 });
      const pause = new Int32Array(new SharedArrayBuffer(4));
      for (const u of units) {
        const key = unitKey('p' + u.problemIndex, u.rollout);
        if (w.isDone(key)) continue;
        Atomics.wait(pause, 0, 0, 40);
        w.add(key, makeUnit(Rng, u.problemIndex, u.rollout, ${D}));
      }
      w.finish();
    `;
    const proc = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', child], {
      cwd: REPO,
      env: { ...process.env, LYNX_TEST_DIR: dir },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    proc.stderr!.on('data', (b) => (stderr += b));
    const unitsOnDisk = () => {
      try {
        return (JSON.parse(readFileSync(join(dir, MANIFEST_FILE), 'utf8')).units as string[]).length;
      } catch {
        return 0;
      }
    };
    const deadline = Date.now() + 60_000;
    while (unitsOnDisk() < 9 && Date.now() < deadline && proc.exitCode === null) await new Promise((r) => setTimeout(r, 10));
    const exited = new Promise((r) => (proc.exitCode !== null || proc.signalCode !== null ? r(null) : proc.once('exit', r)));
    proc.kill('SIGKILL');
    await exited;
    expect(stderr).toBe('');
    const before = unitsOnDisk();
    expect(before).toBeGreaterThanOrEqual(9);
    expect(before).toBeLessThan(24);
    build(dir);
    expect(files(dir)).toEqual(files(ref));
  });

  it('loads and merges shards of a build as the unsharded dataset', () => {
    const ref = fresh();
    build(ref, { info: { split: 'calib' } });
    const shards = [0, 1, 2].map((i) => {
      const dir = fresh();
      build(dir, { units: shardItems(UNITS, parseShard(`${i}/3`)), info: { split: 'calib', shard: `${i}/3` } });
      return dir;
    });
    const whole = readDataset(ref);
    const joined = readDataset(shards);
    expect(joined.meta).toEqual(whole.meta);
    expect(joined.features).toEqual(whole.features);
    const out = fresh();
    const merged = mergeDatasets(shards, out, { info: { split: 'calib' }, compactRows: 10 });
    expect(merged.features).toEqual(whole.features);
    expect(files(out)).toEqual(files(ref));
    expect(() => readDataset([shards[0]!, shards[0]!])).toThrow(/overlap/);
    expect(() => mergeDatasets(shards, out)).toThrow(/already holds/);
    expect(() => parseShard('3/3')).toThrow(/i < N/);
    expect(() => parseShard('x')).toThrow(/i\/N/);
  });

  it('refuses to resume with other settings', () => {
    const dir = fresh();
    build(dir, { stopAfter: 4 });
    expect(() => DatasetWriter.open(dir, { nFeatures: D + 1, info: { split: 'train' } })).toThrow(/features/);
    expect(() => DatasetWriter.open(dir, { nFeatures: D, info: { split: 'calib' } })).toThrow(/other settings/);
    const w = DatasetWriter.open(dir, { nFeatures: D, info: { split: 'train' } });
    expect(() => w.add('x#0', [{ features: new Float32Array(3), meta: makeUnit(0, 0, D)[0]?.meta as EventMeta }])).toThrow(/features/);
    expect(existsSync(join(dir, MANIFEST_FILE))).toBe(true);
  });

  it('groups rows into rollouts for simulation', () => {
    const dir = fresh();
    build(dir);
    const ds = readDataset(dir);
    const scores = Float32Array.from(ds.meta, (_, i) => (i % 10) / 10);
    const rollouts = datasetRollouts(ds, scores);
    const withEvents = UNITS.filter((u) => makeUnit(u.problemIndex, u.rollout, D).length > 0);
    expect(rollouts.map((r) => `${r.problemId}#${r.rollout}`)).toEqual(withEvents.map((u) => `p${u.problemIndex}#${u.rollout}`));
    const first = rollouts[0]!;
    const rows = makeUnit(withEvents[0]!.problemIndex, withEvents[0]!.rollout, D);
    expect(first.events.map((e) => e.tokenIndex)).toEqual(rows.map((r) => r.meta.position));
    expect(first.exitCueTokens).toBe(11);
    expect(first.events[0]!.score).toBe(scores[0]);
  });
});
