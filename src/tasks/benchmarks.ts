/**
 * Benchmark loaders. Every benchmark becomes a list of `Problem`s with a stable id, the problem text, the gold
 * answer as a string and, for multiple choice, the lettered choices.
 *
 * Files are read from the data folder (`dataDir()`: an explicit option, else $LYNX_DATA_DIR, else ../shared/data)
 * in the layout described in ../shared/data/README.md, which is also what `fetchBenchmark` writes.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, basename } from 'node:path';
import { InvalidInputError, UnsupportedError } from '../util/errors.js';
import { dataDir } from '../util/paths.js';
import { parseJsonlLines, readUtf8File } from '../util/jsonl.js';
import { Rng } from '../util/rng.js';
import { lastBoxedContent } from './answer-extract.js';
import type { Choice, Problem } from './problem.js';

export const BENCHMARK_NAMES = ['gsm8k', 'math', 'math500', 'aime24', 'amc23', 'commonsenseqa'] as const;
export type BenchmarkName = (typeof BENCHMARK_NAMES)[number];

/** The seven Hendrycks MATH subjects, as folder names (also the EleutherAI/hendrycks_math config names). */
export const MATH_SUBSETS = [
  'algebra',
  'counting_and_probability',
  'geometry',
  'intermediate_algebra',
  'number_theory',
  'prealgebra',
  'precalculus',
] as const;

const MATH_TYPE_TO_SUBSET: Record<string, string> = {
  Algebra: 'algebra',
  'Counting & Probability': 'counting_and_probability',
  Geometry: 'geometry',
  'Intermediate Algebra': 'intermediate_algebra',
  'Number Theory': 'number_theory',
  Prealgebra: 'prealgebra',
  Precalculus: 'precalculus',
};

export interface LoadOptions {
  /** data folder; default `dataDir()` */
  dataDir?: string;
  /** split for benchmarks that have several: gsm8k and math ('train' | 'test'); default 'test' */
  split?: 'train' | 'test';
  /** MATH: only these subjects (folder names such as 'algebra'); default all */
  subsets?: readonly string[];
  /** MATH: at most this many problems per subject, taken from a seeded permutation of the subject */
  limitPerSubset?: number;
  /**
   * MATH: start this far into each subject's seeded permutation. With the same seed, `subsetOffset: 0,
   * limitPerSubset: n` and `subsetOffset: n` select disjoint problems (train and calibration splits).
   */
  subsetOffset?: number;
  /** seed of the per-subject permutation; default 42 */
  seed?: number;
  /** keep only the first n problems (after every other selection) */
  limit?: number;
}

/** A JSONL file as records, with malformed lines reported as `file:line`. Keeps each record's line number. */
function readRecords(path: string): { line: number; rec: Record<string, unknown> }[] {
  if (!existsSync(path))
    throw new InvalidInputError(
      `benchmark file not found: ${path}. Set --data-dir (or LYNX_DATA_DIR) to the data folder, or run 'lynx data fetch'.`,
    );
  return parseJsonlLines(readUtf8File(path), path).map(({ line, text, value }) => {
    if (value === null || typeof value !== 'object' || Array.isArray(value))
      throw new InvalidInputError(`${path}:${line}: expected a JSON object per line, got ${text.slice(0, 40)}`);
    return { line, rec: value as Record<string, unknown> };
  });
}

function field(path: string, line: number, rec: Record<string, unknown>, names: readonly string[], kind = 'string'): string {
  for (const n of names) {
    const v = rec[n];
    if (typeof v === 'string') return v;
    // JSON has already turned an AMC float such as `27.0` into 27; String(27) is "27".
    if (kind === 'answer' && typeof v === 'number' && Number.isFinite(v)) return String(v);
  }
  throw new InvalidInputError(`${path}:${line}: missing ${kind === 'answer' ? 'answer' : 'string'} field ${names.map((n) => `"${n}"`).join(' or ')}`);
}

/** "27.0" -> "27", "3.50" -> "3.5"; other strings unchanged. */
export function canonicalFloatString(s: string): string {
  const m = /^\s*(-?\d+)\.(\d*?)0+\s*$/.exec(s);
  if (!m) return s.trim();
  return m[2] === '' ? m[1]! : `${m[1]}.${m[2]}`;
}

/** The GSM8K gold: the text after the last `####`, thousands separators removed. */
export function gsm8kGold(solution: string): string | null {
  const i = solution.lastIndexOf('####');
  if (i < 0) return null;
  return solution.slice(i + 4).trim().replace(/,/g, '');
}

export function loadGsm8k(opts: LoadOptions = {}): Problem[] {
  const split = opts.split ?? 'test';
  const path = join(dataDir(opts.dataDir), 'gsm8k', `${split}.jsonl`);
  const out = readRecords(path).map(({ line, rec }, i) => {
    const solution = field(path, line, rec, ['answer']);
    const gold = gsm8kGold(solution);
    if (gold === null || gold === '') throw new InvalidInputError(`${path}:${line}: answer has no '#### <number>' line`);
    return {
      id: `gsm8k/${split}/${i}`,
      benchmark: 'gsm8k',
      problem: field(path, line, rec, ['question']),
      gold,
      meta: { split, index: i, solution },
    } satisfies Problem;
  });
  return take(out, opts.limit);
}

/** Subject folder of a MATH record: from `unique_id` (`split/subject/N.json`), else from `type`. */
function mathSubset(rec: Record<string, unknown>): string | undefined {
  const uid = rec.unique_id;
  if (typeof uid === 'string') {
    const parts = uid.split('/');
    if (parts.length >= 3 && (MATH_SUBSETS as readonly string[]).includes(parts[1]!)) return parts[1];
  }
  const type = rec.type ?? rec.subject;
  if (typeof type === 'string') return MATH_TYPE_TO_SUBSET[type] ?? type.toLowerCase().replace(/ & | /g, '_');
  return undefined;
}

function parseLevel(level: unknown): number | null {
  if (typeof level === 'number') return level;
  const m = typeof level === 'string' ? /(\d+)/.exec(level) : null;
  return m ? Number(m[1]) : null;
}

export function loadMath(opts: LoadOptions = {}): Problem[] {
  const split = opts.split ?? 'test';
  const path = join(dataDir(opts.dataDir), 'math', `${split}.jsonl`);
  const wanted = opts.subsets && opts.subsets.length > 0 ? new Set(opts.subsets) : undefined;
  if (wanted) {
    for (const s of wanted)
      if (!(MATH_SUBSETS as readonly string[]).includes(s))
        throw new InvalidInputError(`unknown MATH subset "${s}"; expected one of ${MATH_SUBSETS.join(', ')}`);
  }
  const bySubset = new Map<string, Problem[]>();
  for (const { line, rec } of readRecords(path)) {
    const subset = mathSubset(rec);
    if (!subset) throw new InvalidInputError(`${path}:${line}: cannot tell the subject (no unique_id or type field)`);
    if (wanted && !wanted.has(subset)) continue;
    const solution = field(path, line, rec, ['solution']);
    const gold = typeof rec.answer === 'string' && rec.answer.trim() !== '' ? rec.answer : lastBoxedContent(solution);
    if (gold === null) throw new InvalidInputError(`${path}:${line}: solution has no \\boxed{} answer`);
    // Two MATH train solutions end in an empty \boxed{} (the answer was lost upstream): no gold, no problem.
    if (gold.trim() === '') continue;
    const uid = typeof rec.unique_id === 'string' ? rec.unique_id : `${split}/${subset}/line${line}`;
    const list = bySubset.get(subset) ?? [];
    list.push({
      id: `math/${uid}`,
      benchmark: 'math',
      problem: field(path, line, rec, ['problem']),
      gold: gold.trim(),
      meta: { split, subset, level: parseLevel(rec.level), type: rec.type, unique_id: uid, solution },
    });
    bySubset.set(subset, list);
  }
  const selecting = opts.limitPerSubset !== undefined || (opts.subsetOffset ?? 0) > 0;
  const out: Problem[] = [];
  for (const subset of [...bySubset.keys()].sort()) {
    const all = bySubset.get(subset)!;
    if (!selecting) {
      out.push(...all);
      continue;
    }
    // A seeded permutation per subject, so a (seed, offset, limit) triple always picks the same problems and
    // different offsets pick disjoint ones; the picked problems keep their file order.
    const perm = Rng.derive(opts.seed ?? 42, `math/${subset}`).shuffle(all.map((_, i) => i));
    const start = Math.max(0, opts.subsetOffset ?? 0);
    const end = opts.limitPerSubset !== undefined && opts.limitPerSubset >= 0 ? start + opts.limitPerSubset : all.length;
    const picked = perm.slice(start, end).sort((a, b) => a - b);
    out.push(...picked.map((i) => all[i]!));
  }
  return take(out, opts.limit);
}

export function loadMath500(opts: LoadOptions = {}): Problem[] {
  const path = join(dataDir(opts.dataDir), 'math500', 'test.jsonl');
  const out = readRecords(path).map(({ line, rec }, i) => {
    const uid = typeof rec.unique_id === 'string' ? rec.unique_id : `test/${i}`;
    return {
      id: `math500/${uid}`,
      benchmark: 'math500',
      problem: field(path, line, rec, ['problem']),
      gold: field(path, line, rec, ['answer'], 'answer').trim(),
      meta: { subject: rec.subject, level: parseLevel(rec.level), unique_id: uid, solution: rec.solution },
    } satisfies Problem;
  });
  return take(out, opts.limit);
}

function loadCompetition(name: 'aime24' | 'amc23', opts: LoadOptions): Problem[] {
  const path = join(dataDir(opts.dataDir), name, 'test.jsonl');
  const seen = new Set<string>();
  const records = readRecords(path);
  if (records.length === 0) throw new InvalidInputError(`${path} holds no problems (no JSON lines): give one {"problem": ..., "answer": ...} object per line`);
  const out = records.map(({ line, rec }, i) => {
    const raw = rec.answer;
    const gold = canonicalFloatString(field(path, line, rec, ['answer'], 'answer'));
    const key = rec.id !== undefined ? String(rec.id) : String(i);
    if (seen.has(key)) throw new InvalidInputError(`${path}:${line}: duplicate id ${key}`);
    seen.add(key);
    return {
      id: `${name}/${key}`,
      benchmark: name,
      problem: field(path, line, rec, ['problem', 'question']),
      gold,
      meta: { answerRaw: raw, url: rec.url, solution: rec.solution },
    } satisfies Problem;
  });
  return take(out, opts.limit);
}

export function loadAime24(opts: LoadOptions = {}): Problem[] {
  return loadCompetition('aime24', opts);
}

/** AMC 2023: answers are floats such as 27.0 in the source; the gold is their canonical text ("27"). */
export function loadAmc23(opts: LoadOptions = {}): Problem[] {
  return loadCompetition('amc23', opts);
}

export function loadCommonsenseQa(opts: LoadOptions = {}): Problem[] {
  const path = join(dataDir(opts.dataDir), 'commonsenseqa', 'dev_rand_split.jsonl');
  const out = readRecords(path).map(({ line, rec }) => {
    const q = rec.question as { stem?: unknown; choices?: unknown } | undefined;
    if (!q || typeof q.stem !== 'string' || !Array.isArray(q.choices))
      throw new InvalidInputError(`${path}:${line}: expected question.stem and question.choices`);
    const choices = q.choices.map((c: unknown) => {
      const cc = c as { label?: unknown; text?: unknown };
      if (typeof cc.label !== 'string' || typeof cc.text !== 'string')
        throw new InvalidInputError(`${path}:${line}: each choice needs a string label and text`);
      return { label: cc.label, text: cc.text };
    });
    const gold = field(path, line, rec, ['answerKey']);
    if (!choices.some((c) => c.label === gold))
      throw new InvalidInputError(`${path}:${line}: answerKey "${gold}" is not one of the choice labels`);
    return {
      id: `commonsenseqa/${field(path, line, rec, ['id'])}`,
      benchmark: 'commonsenseqa',
      problem: q.stem,
      gold,
      choices,
      meta: { concept: (rec.question as Record<string, unknown>).question_concept },
    } satisfies Problem;
  });
  return take(out, opts.limit);
}

/**
 * Any JSONL file with a `problem` or `question` field and an `answer` field (string or number). Optional `id`
 * and `choices` (a list of strings, lettered A, B, ..., or of {label, text}) are used when present.
 */
export function loadJsonlBenchmark(path: string, opts: { name?: string; limit?: number } = {}): Problem[] {
  const name = opts.name ?? basename(path).replace(/\.jsonl$/i, '');
  const seen = new Set<string>();
  const records = readRecords(path);
  if (records.length === 0) throw new InvalidInputError(`${path} holds no problems (no JSON lines): give one {"problem": ..., "answer": ...} object per line`);
  const out = records.map(({ line, rec }, i) => {
    const id = rec.id !== undefined && rec.id !== null ? String(rec.id) : String(i);
    if (seen.has(id)) throw new InvalidInputError(`${path}:${line}: duplicate id ${id}`);
    seen.add(id);
    const p: Problem = {
      id: `${name}/${id}`,
      benchmark: name,
      problem: field(path, line, rec, ['problem', 'question']),
      gold: canonicalFloatString(field(path, line, rec, ['answer'], 'answer')),
      meta: { line },
    };
    if (Array.isArray(rec.choices)) {
      p.choices = rec.choices.map((c: unknown, k: number) =>
        typeof c === 'string'
          ? { label: String.fromCharCode(65 + k), text: c }
          : { label: String((c as Choice).label), text: String((c as Choice).text) },
      );
    }
    return p;
  });
  return take(out, opts.limit);
}

/**
 * A benchmark of the data folder by name (gsm8k, math, math500, aime24, amc23, commonsenseqa).
 * `gsm8k-train`/`math-train` are accepted as short forms of `{split: 'train'}`. `loadBenchmark` (registry.ts) also
 * takes the demo task's names and JSONL files.
 */
export function loadDataBenchmark(name: string, opts: LoadOptions = {}): Problem[] {
  const m = /^(gsm8k|math)-(train|test)$/.exec(name);
  if (m) return loadDataBenchmark(m[1]!, { ...opts, split: m[2] as 'train' | 'test' });
  switch (name as BenchmarkName) {
    case 'gsm8k':
      return loadGsm8k(opts);
    case 'math':
      return loadMath(opts);
    case 'math500':
      return loadMath500(opts);
    case 'aime24':
      return loadAime24(opts);
    case 'amc23':
      return loadAmc23(opts);
    case 'commonsenseqa':
      return loadCommonsenseQa(opts);
    default:
      throw new UnsupportedError(
        `unknown benchmark "${name}"; expected one of ${BENCHMARK_NAMES.join(', ')}, or a path to a .jsonl file`,
      );
  }
}

function take<T>(items: T[], limit: number | undefined): T[] {
  return limit !== undefined && limit >= 0 ? items.slice(0, limit) : items;
}
