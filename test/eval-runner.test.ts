import { describe, expect, it, afterEach, afterAll } from 'vitest';
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadCommonsenseQa, loadMath500 } from '../src/tasks/benchmarks.js';
import type { Problem } from '../src/tasks/problem.js';
import { mergeShards, repairTornTail, runEvaluation, shardProblems, type SolveOutput } from '../src/eval/runner.js';
import { readConfig, readMetrics, readPredictions, runDir } from '../src/eval/records.js';
import { sharedSymbolicChecker } from '../src/tasks/symbolic.js';
import { fakeSolve } from './fixtures/eval/fake-method.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = resolve(HERE, '..');
const DATA = resolve(REPO, '..', 'shared', 'data');
const problems = loadMath500({ dataDir: DATA, limit: 24 });

const dirs: string[] = [];
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'lynx-runner-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  while (dirs.length) rmSync(dirs.pop()!, { recursive: true, force: true });
});
afterAll(async () => {
  await sharedSymbolicChecker().close();
});

const base = { benchmark: 'math500', method: 'fake', setting: 'full' } as const;

async function uninterrupted(): Promise<Awaited<ReturnType<typeof runEvaluation>>> {
  const dir = runDir(tmp(), 'math500', 'fake', 'full');
  return runEvaluation({ ...base, problems, dir, solve: async (p, i) => fakeSolve(p, i) });
}

describe('evaluation runner', () => {
  it('scores, records and summarises every problem', async () => {
    const r = await uninterrupted();
    expect(r.solved).toBe(24);
    expect(r.predictions.map((p) => p.id)).toEqual(problems.map((p) => p.id));
    // every third problem is answered wrong by the fake method
    expect(r.predictions.filter((p) => !p.correct).map((p) => p.index)).toEqual([1, 4, 7, 10, 13, 16, 19, 22]);
    expect(r.predictions[0]).toMatchObject({ extracted: problems[0]!.gold, extraction: 'boxed', gold: problems[0]!.gold });
    expect(r.predictions[0]!.baseline).toEqual({ tokens: expect.any(Number), correct: false, extracted: 'nope' });
    expect(r.metrics.accuracy).toBeCloseTo(16 / 24);
    expect(r.metrics.n).toBe(24);
    expect(readMetrics(r.dir)).toEqual(r.metrics);
    expect(readConfig(r.dir)).toMatchObject({ ...base, policy: 'zst', status: 'complete', completed: 24, problems: 24 });
    expect(readPredictions(r.dir)).toEqual(r.predictions);
  });

  it('resumes after an interruption (and a torn last line) with the same final result', async () => {
    const ref = await uninterrupted();
    const dir = runDir(tmp(), 'math500', 'fake', 'full');
    let calls = 0;
    const crashing = async (p: Problem, i: number): Promise<SolveOutput> => {
      if (++calls === 10) throw new Error('power cut');
      return fakeSolve(p, i);
    };
    await expect(runEvaluation({ ...base, problems, dir, solve: crashing })).rejects.toThrow('power cut');
    expect(readPredictions(dir)).toHaveLength(9);
    expect(existsSync(join(dir, 'metrics.json'))).toBe(false);
    appendFileSync(join(dir, 'predictions.jsonl'), '{"id":"math500/test/prealgebra/1');

    const seen: string[] = [];
    const r = await runEvaluation({
      ...base,
      problems,
      dir,
      solve: async (p, i) => {
        seen.push(p.id);
        return fakeSolve(p, i);
      },
    });
    expect(r.skipped).toBe(9);
    expect(seen).toEqual(problems.slice(9).map((p) => p.id));
    expect(r.predictions).toEqual(ref.predictions);
    expect(r.metrics).toEqual(ref.metrics);
    expect(readFileSync(join(dir, 'predictions.jsonl'), 'utf8').trim().split('\n')).toHaveLength(24);
    // a finished run solves nothing more
    const again = await runEvaluation({ ...base, problems, dir, solve: async () => Promise.reject(new Error('no')) });
    expect(again.solved).toBe(0);
  });

  it('survives kill -9 of the process in the middle of a run', async () => {
    const ref = await uninterrupted();
    const dir = runDir(tmp(), 'math500', 'fake', 'full');
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', join(HERE, 'fixtures', 'eval', 'runner-child.ts'), DATA, dir, '24'],
      { cwd: REPO, stdio: 'ignore' },
    );
    const predPath = join(dir, 'predictions.jsonl');
    const lines = () => (existsSync(predPath) ? readFileSync(predPath, 'utf8').split('\n').length - 1 : 0);
    const deadline = Date.now() + 60_000;
    while (lines() < 5 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    const before = lines();
    expect(before).toBeGreaterThanOrEqual(5);
    expect(before).toBeLessThan(24);
    const r = await runEvaluation({ ...base, problems, dir, solve: async (p, i) => fakeSolve(p, i) });
    expect(r.skipped).toBe(before);
    expect(r.predictions).toEqual(ref.predictions);
    expect(r.metrics).toEqual(ref.metrics);
  });

  it('shards by index and merges to the unsharded result, in any completion order', async () => {
    const ref = await uninterrupted();
    const dir = runDir(tmp(), 'math500', 'fake', 'full');
    for (const index of [2, 0, 1]) {
      const r = await runEvaluation({
        ...base,
        problems,
        dir,
        shard: { index, count: 3 },
        concurrency: 4,
        solve: async (p, i) => {
          await new Promise((res) => setTimeout(res, (i * 7) % 5));
          return fakeSolve(p, i);
        },
      });
      expect(r.dir).toBe(join(dir, `shard-${index}-of-3`));
      expect(r.predictions.map((p) => p.index)).toEqual(shardProblems(problems, { index, count: 3 }).map((x) => x.index));
    }
    const merged = mergeShards(dir);
    expect(merged.predictions).toEqual(ref.predictions);
    expect(merged.metrics).toEqual(ref.metrics);
    expect(readMetrics(dir)).toEqual(ref.metrics);
    expect(readConfig(dir)).toMatchObject({ ...base, mergedShards: 3, status: 'complete', completed: 24 });
    expect(readConfig(dir).shard).toBeUndefined();
  });

  it('refuses to merge incomplete shards and to mix runs in one folder', async () => {
    const dir = runDir(tmp(), 'math500', 'fake', 'full');
    await runEvaluation({ ...base, problems, dir, shard: { index: 0, count: 2 }, solve: async (p, i) => fakeSolve(p, i) });
    expect(() => mergeShards(dir)).toThrow(/unfinished or missing shards shard-1-of-2/);
    await expect(
      runEvaluation({ ...base, setting: 'other', problems, dir, shard: { index: 0, count: 2 }, solve: async (p, i) => fakeSolve(p, i) }),
    ).rejects.toThrow(/holds another run/);
    await expect(runEvaluation({ ...base, problems, dir, shard: { index: 2, count: 2 }, solve: async (p, i) => fakeSolve(p, i) })).rejects.toThrow(
      /invalid shard 2 of 2/,
    );
  });

  it('scores multiple choice by letter', async () => {
    const csqa = loadCommonsenseQa({ dataDir: DATA, limit: 4 });
    const dir = runDir(tmp(), 'commonsenseqa', 'fake', 'full');
    const r = await runEvaluation({
      benchmark: 'commonsenseqa',
      method: 'fake',
      setting: 'full',
      problems: csqa,
      dir,
      solve: async (p, i) => ({
        answerText: i === 0 ? `\\boxed{${p.choices!.find((c) => c.label === p.gold)!.text}}` : `\\boxed{(${i === 1 ? p.gold : 'Z'})}`,
        tokens: { reasoning: 1, exitCue: 0, answer: 1, total: 2, decoded: 2, prefilled: 5 },
        exit: null,
      }),
    });
    expect(r.predictions.map((p) => [p.correct, p.extracted])).toEqual([
      [true, csqa[0]!.gold],
      [true, csqa[1]!.gold],
      // "(Z)" names no choice: no answer
      [false, null],
      [false, null],
    ]);
  });
});

describe('torn tails', () => {
  it('cuts a partial last line and leaves complete files alone', () => {
    const dir = tmp();
    const path = join(dir, 'p.jsonl');
    appendFileSync(path, '{"a":1}\n{"b":');
    expect(repairTornTail(path)).toBe(true);
    expect(readFileSync(path, 'utf8')).toBe('{"a":1}\n');
    expect(repairTornTail(path)).toBe(false);
    expect(repairTornTail(join(dir, 'missing.jsonl'))).toBe(false);
  });
});
