import { describe, expect, it, afterEach } from 'vitest';
import { appendFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  dirToSetting,
  discoverRuns,
  loadExperiment,
  readPredictions,
  runDir,
  settingToDir,
  writeConfig,
  writeMetrics,
  type PredictionRecord,
  type RunMetrics,
} from '../src/eval/records.js';
import { appendJsonl } from '../src/util/jsonl.js';
import { InvalidInputError } from '../src/util/errors.js';

const dirs: string[] = [];
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'lynx-records-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  while (dirs.length) rmSync(dirs.pop()!, { recursive: true, force: true });
});

function pred(id: string, correct = true): PredictionRecord {
  return {
    id,
    benchmark: 'math500',
    method: 'lynx',
    setting: 'delta=0.05',
    problem: 'p',
    gold: '1',
    extracted: '1',
    correct,
    tokens: { reasoning: 10, exitCue: 2, answer: 3, total: 15 },
    wallMs: 5,
    exit: null,
  };
}

function metrics(method: string, setting: string): RunMetrics {
  return {
    method,
    setting,
    benchmark: 'math500',
    n: 1,
    accuracy: 1,
    accuracyCi95: [0.2, 1],
    avgTokens: 15,
    avgTokensCi95: [15, 15],
    wallSec: 0.005,
  };
}

describe('run folder names', () => {
  it('keeps readable settings and encodes the rest reversibly', () => {
    expect(settingToDir('delta=0.05')).toBe('delta=0.05');
    expect(settingToDir('full')).toBe('full');
    for (const s of ['a/b', '..', '.', 'p=0.9, k=3', 'über 50%'])
      expect(dirToSetting(settingToDir(s))).toBe(s);
    expect(settingToDir('a/b')).not.toContain('/');
    expect(settingToDir('..')).not.toBe('..');
    expect(() => settingToDir('')).toThrow(InvalidInputError);
  });

  it('places runs at <root>/eval/<benchmark>/<method>/<setting>', () => {
    expect(runDir('root', 'math500', 'lynx', 'delta=0.05')).toBe(join('root', 'eval', 'math500', 'lynx', 'delta=0.05'));
    expect(() => runDir('root', '../x', 'lynx', 's')).toThrow(/benchmark name/);
    expect(() => runDir('root', 'gsm8k', 'my method', 's')).toThrow(/method name/);
  });
});

describe('discovery and reading', () => {
  it('finds finished runs (and unfinished on request) and loads them', () => {
    const root = tmp();
    const a = runDir(root, 'math500', 'lynx', 'delta=0.05');
    const b = runDir(root, 'math500', 'deer', 'p/0.95');
    const c = runDir(root, 'gsm8k', 'lynx', 'full');
    appendJsonl(join(a, 'predictions.jsonl'), [pred('x'), pred('y', false)]);
    writeMetrics(a, metrics('lynx', 'delta=0.05'));
    writeConfig(a, { benchmark: 'math500', method: 'lynx', setting: 'delta=0.05', policy: 'zst' });
    appendJsonl(join(b, 'predictions.jsonl'), [pred('x')]);
    writeMetrics(b, metrics('deer', 'p/0.95'));
    appendJsonl(join(c, 'predictions.jsonl'), [pred('x')]); // still running: no metrics
    mkdirSync(join(root, 'eval', 'gsm8k', 'lynx', 'empty'), { recursive: true });

    const runs = discoverRuns(root);
    expect(runs.map((r) => [r.benchmark, r.method, r.setting])).toEqual([
      ['math500', 'deer', 'p/0.95'],
      ['math500', 'lynx', 'delta=0.05'],
    ]);
    expect(discoverRuns(root, { includeIncomplete: true }).map((r) => r.setting)).toEqual(['full', 'p/0.95', 'delta=0.05']);
    const loaded = loadExperiment(root);
    expect(loaded[1]!.predictions.map((p) => p.id)).toEqual(['x', 'y']);
    expect(loaded[1]!.config?.policy).toBe('zst');
    expect(loaded[0]!.config).toBeUndefined();
    expect(discoverRuns(join(root, 'nothing-here'))).toEqual([]);
  });

  it('tolerates a torn last line but not a malformed line in the middle; later records replace earlier ones', () => {
    const dir = tmp();
    const path = join(dir, 'predictions.jsonl');
    appendJsonl(path, [pred('a'), pred('b', false)]);
    appendFileSync(path, '{"id":"c","bench');
    expect(readPredictions(dir).map((p) => p.id)).toEqual(['a', 'b']);
    writeFileSync(path, `${JSON.stringify(pred('a'))}\n{"broken\n${JSON.stringify(pred('b'))}\n`);
    expect(() => readPredictions(dir)).toThrow(`${path}:2: malformed JSON line`);
    writeFileSync(path, `${JSON.stringify(pred('a', false))}\n${JSON.stringify(pred('a', true))}\n`);
    expect(readPredictions(dir)).toEqual([pred('a', true)]);
    expect(readPredictions(join(dir, 'none'))).toEqual([]);
  });
});
