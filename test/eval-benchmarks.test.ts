import { loadBenchmark } from '../src/tasks/registry.js';
import { describe, expect, it, afterEach } from 'vitest';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  MATH_SUBSETS,
  canonicalFloatString,
  gsm8kGold,
  loadAime24,
  loadAmc23,
  loadCommonsenseQa,
  loadGsm8k,
  loadJsonlBenchmark,
  loadMath,
  loadMath500,
} from '../src/tasks/benchmarks.js';
import { InvalidInputError, UnsupportedError } from '../src/util/errors.js';

const DATA = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'shared', 'data');

const tmpDirs: string[] = [];
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'lynx-bench-'));
  tmpDirs.push(d);
  return d;
}
afterEach(() => {
  while (tmpDirs.length) rmSync(tmpDirs.pop()!, { recursive: true, force: true });
});

describe('GSM8K', () => {
  it('loads test and train with the gold after ####, commas stripped', () => {
    const test = loadGsm8k({ dataDir: DATA });
    expect(test).toHaveLength(1319);
    expect(test[0]).toMatchObject({ id: 'gsm8k/test/0', benchmark: 'gsm8k', gold: '18' });
    expect(test[0]!.problem).toMatch(/^Janet/);
    expect(new Set(test.map((p) => p.id)).size).toBe(1319);
    expect(test.every((p) => /^-?\d+(\.\d+)?$/.test(p.gold))).toBe(true);
    // some solutions write the final number with a thousands separator
    const withComma = test.filter((p) => (p.meta.solution as string).split('####')[1]!.includes(','));
    expect(withComma.length).toBeGreaterThan(0);
    expect(withComma.every((p) => !p.gold.includes(','))).toBe(true);
    expect(loadGsm8k({ dataDir: DATA, split: 'train' })).toHaveLength(7473);
    expect(loadBenchmark('gsm8k-train', { dataDir: DATA, limit: 3 }).map((p) => p.id)).toEqual([
      'gsm8k/train/0',
      'gsm8k/train/1',
      'gsm8k/train/2',
    ]);
  });

  it('reads the gold of a solution', () => {
    expect(gsm8kGold('so 3 + 4 = 7\n#### 1,234')).toBe('1234');
    expect(gsm8kGold('no marker')).toBeNull();
  });
});

describe('Hendrycks MATH', () => {
  it('loads every subject with the gold from the last boxed answer of the solution', () => {
    const test = loadMath({ dataDir: DATA });
    expect(test).toHaveLength(5000);
    expect(new Set(test.map((p) => p.meta.subset))).toEqual(new Set(MATH_SUBSETS));
    const p = test.find((x) => x.meta.unique_id === 'test/precalculus/807.json')!;
    expect(p.gold).toBe('\\left( 3, \\frac{\\pi}{2} \\right)');
    expect(p.meta.level).toBe(2);
    // two train solutions end in an empty \boxed{}; they have no gold and are left out
    const train = loadMath({ dataDir: DATA, split: 'train' });
    expect(train).toHaveLength(7498);
    expect(train.every((x) => x.gold !== '')).toBe(true);
  });

  it('agrees with MATH-500 answers (MATH-500 is a subset of MATH test)', () => {
    const byUid = new Map(loadMath({ dataDir: DATA }).map((p) => [p.meta.unique_id, p]));
    const m500 = loadMath500({ dataDir: DATA });
    expect(m500).toHaveLength(500);
    let same = 0;
    for (const p of m500) {
      const q = byUid.get(p.meta.unique_id);
      expect(q).toBeDefined();
      if (q!.gold === p.gold) same++;
    }
    // the three that differ only carry units in the solution's box (90^\circ, 864 \mbox{ inches}^2, 15\mbox{ cm}^2)
    expect(same).toBe(497);
  });

  it('selects subsets, limits per subset, and disjoint seeded offsets', () => {
    const opts = { dataDir: DATA, split: 'train' as const, subsets: ['algebra', 'geometry'] };
    const a = loadMath({ ...opts, limitPerSubset: 20 });
    const b = loadMath({ ...opts, limitPerSubset: 20, subsetOffset: 20 });
    expect(a).toHaveLength(40);
    expect(b).toHaveLength(40);
    expect(a.filter((p) => p.meta.subset === 'algebra')).toHaveLength(20);
    const ids = new Set(a.map((p) => p.id));
    expect(b.some((p) => ids.has(p.id))).toBe(false);
    // deterministic for a seed, different for another
    expect(loadMath({ ...opts, limitPerSubset: 20 }).map((p) => p.id)).toEqual(a.map((p) => p.id));
    expect(loadMath({ ...opts, limitPerSubset: 20, seed: 7 }).map((p) => p.id)).not.toEqual(a.map((p) => p.id));
    // not simply the first problems of the file
    expect(a.filter((p) => p.meta.subset === 'algebra').map((p) => p.id)).not.toEqual(
      loadMath(opts)
        .filter((p) => p.meta.subset === 'algebra')
        .slice(0, 20)
        .map((p) => p.id),
    );
    expect(() => loadMath({ ...opts, subsets: ['algebraa'] })).toThrow(/unknown MATH subset "algebraa"/);
  });
});

describe('competitions and CommonsenseQA', () => {
  it('AIME 2024 keeps string integers', () => {
    const aime = loadAime24({ dataDir: DATA });
    expect(aime).toHaveLength(30);
    expect(aime[0]).toMatchObject({ id: 'aime24/60', gold: '204' });
    expect(aime.some((p) => p.gold === '025')).toBe(true);
  });

  it('AMC 2023 float answers become canonical numbers', () => {
    const amc = loadAmc23({ dataDir: DATA });
    expect(amc).toHaveLength(40);
    expect(amc[0]).toMatchObject({ id: 'amc23/0', gold: '27', meta: { answerRaw: 27 } });
    expect(amc.every((p) => !p.gold.endsWith('.0'))).toBe(true);
    expect(canonicalFloatString('27.0')).toBe('27');
    expect(canonicalFloatString('3.50')).toBe('3.5');
    expect(canonicalFloatString('1.25')).toBe('1.25');
  });

  it('CommonsenseQA has five lettered choices and a letter gold', () => {
    const csqa = loadCommonsenseQa({ dataDir: DATA });
    expect(csqa).toHaveLength(1221);
    expect(csqa[0]!.choices!.map((c) => c.label)).toEqual(['A', 'B', 'C', 'D', 'E']);
    expect(csqa[0]).toMatchObject({ gold: 'A', problem: expect.stringMatching(/^A revolving door/) });
    expect(csqa.every((p) => p.choices!.length === 5 && p.choices!.some((c) => c.label === p.gold))).toBe(true);
  });
});

describe('any JSONL and errors', () => {
  it('loads problem|question with string or numeric answers', () => {
    const dir = tmp();
    const path = join(dir, 'mine.jsonl');
    writeFileSync(
      path,
      [
        JSON.stringify({ question: 'What is 2+2?', answer: 4 }),
        JSON.stringify({ id: 'x7', problem: 'Half of 1?', answer: '0.50' }),
        '',
        JSON.stringify({ problem: 'Pick', answer: 'B', choices: ['no', 'yes'] }),
      ].join('\n'),
    );
    const ps = loadBenchmark(path);
    expect(ps.map((p) => [p.id, p.gold])).toEqual([
      ['mine/0', '4'],
      ['mine/x7', '0.5'],
      ['mine/2', 'B'],
    ]);
    expect(ps[2]!.choices).toEqual([
      { label: 'A', text: 'no' },
      { label: 'B', text: 'yes' },
    ]);
  });

  it('names the file and line of a malformed or incomplete record', () => {
    const dir = tmp();
    const path = join(dir, 'bad.jsonl');
    writeFileSync(path, `${JSON.stringify({ problem: 'a', answer: '1' })}\n{"problem": "b", "answer":\n`);
    expect(() => loadJsonlBenchmark(path)).toThrow(InvalidInputError);
    expect(() => loadJsonlBenchmark(path)).toThrow(`${path}:2: malformed JSON line`);
    writeFileSync(path, `\n${JSON.stringify({ problem: 'a', answer: '1' })}\n[1, 2]\n`);
    expect(() => loadJsonlBenchmark(path)).toThrow(`${path}:3: expected a JSON object per line, got [1, 2]`);
    writeFileSync(path, `${JSON.stringify({ problem: 'a', answer: '1' })}\n${JSON.stringify({ problem: 'b' })}\n`);
    expect(() => loadJsonlBenchmark(path)).toThrow(`${path}:2: missing answer field "answer"`);
    const gsmDir = tmp();
    writeFileSync(join(gsmDir, 'placeholder'), '');
    expect(() => loadGsm8k({ dataDir: gsmDir })).toThrow(/benchmark file not found: .*gsm8k.*test\.jsonl.*--data-dir/);
  });

  it('finds the data folder from LYNX_DATA_DIR and rejects unknown names', () => {
    const old = process.env.LYNX_DATA_DIR;
    process.env.LYNX_DATA_DIR = DATA;
    try {
      expect(loadBenchmark('aime24')).toHaveLength(30);
    } finally {
      if (old === undefined) delete process.env.LYNX_DATA_DIR;
      else process.env.LYNX_DATA_DIR = old;
    }
    expect(() => loadBenchmark('gsm9k', { dataDir: DATA })).toThrow(UnsupportedError);
  });
});
