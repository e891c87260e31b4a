/**
 * Multi-step arithmetic word problems for the demo reasoning model: a start quantity and 2–6 operations (add,
 * subtract, multiply or divide by a small number), told as a short templated story so the vocabulary stays small.
 *
 * Difficulty level L (1–5) has L+1 operations and larger numbers; every intermediate value is a positive integer
 * below the level's cap, divisions are exact, so the tiny model only ever needs exact integer arithmetic.
 *
 * Held-out problems are a fixed slice of the *arithmetic* space (start and operations, names and wording ignored),
 * chosen by a hash: a training problem can never be a held-out problem told with other names. The slice is cut into
 * test, calibration and probe-training parts (`problemSplit`).
 */
import { Rng } from '../../util/rng.js';
import { InvalidInputError } from '../../util/errors.js';

export type OpKind = 'add' | 'sub' | 'mul' | 'div';

export interface Operation {
  kind: OpKind;
  operand: number;
  /** The sentence of the problem text, e.g. "Then he buys 5 more." */
  sentence: string;
  /** The same event as a clause for the working steps, e.g. "He buys 5 more". */
  clause: string;
}

export interface DemoProblem {
  /** Stable id: `L<level>-<fingerprint>`. */
  id: string;
  level: number;
  name: string;
  item: string;
  start: number;
  ops: Operation[];
  /** values[0] = start, values[i] = after operation i; the answer is the last. */
  values: number[];
  answer: number;
  /** The problem as the user asks it (without the zst instruction). */
  text: string;
}

export interface LevelSpec {
  level: number;
  nOps: number;
  start: readonly [number, number];
  /** Operand range of additions and subtractions. */
  addend: readonly [number, number];
  /** Multipliers (null: no multiplication at this level). */
  factor: readonly [number, number] | null;
  /** Divisors (null: no division at this level). */
  divisor: readonly [number, number] | null;
  /** Every intermediate value stays in [1, maxValue]. */
  maxValue: number;
}

export const LEVELS: readonly LevelSpec[] = [
  { level: 1, nOps: 2, start: [2, 20], addend: [1, 9], factor: null, divisor: null, maxValue: 50 },
  { level: 2, nOps: 3, start: [2, 30], addend: [1, 12], factor: [2, 2], divisor: null, maxValue: 100 },
  { level: 3, nOps: 4, start: [2, 40], addend: [1, 20], factor: [2, 3], divisor: [2, 2], maxValue: 200 },
  { level: 4, nOps: 5, start: [5, 60], addend: [1, 30], factor: [2, 4], divisor: [2, 3], maxValue: 500 },
  { level: 5, nOps: 6, start: [5, 99], addend: [1, 50], factor: [2, 5], divisor: [2, 5], maxValue: 999 },
];

export const MIN_LEVEL = 1;
export const MAX_LEVEL = LEVELS.length;

export function levelSpec(level: number): LevelSpec {
  const spec = LEVELS[level - 1];
  if (!Number.isInteger(level) || !spec) throw new InvalidInputError(`difficulty level ${level} does not exist: use ${MIN_LEVEL}–${MAX_LEVEL}`);
  return spec;
}

const OP_SYMBOL: Record<OpKind, string> = { add: '+', sub: '-', mul: '×', div: '÷' };

export function opSymbol(kind: OpKind): string {
  return OP_SYMBOL[kind];
}

/** The exact result of an operation, or null when it is not a positive integer (a division that does not divide). */
export function applyOp(kind: OpKind, operand: number, x: number): number | null {
  switch (kind) {
    case 'add':
      return x + operand;
    case 'sub':
      return x - operand >= 0 ? x - operand : null;
    case 'mul':
      return x * operand;
    case 'div':
      return x % operand === 0 ? x / operand : null;
  }
}

/** The operation that undoes `kind` (working backwards). */
export function inverseKind(kind: OpKind): OpKind {
  return ({ add: 'sub', sub: 'add', mul: 'div', div: 'mul' } as const)[kind];
}

/** "12 + 5" */
export function expression(x: number, kind: OpKind, operand: number): string {
  return `${x} ${OP_SYMBOL[kind]} ${operand}`;
}

// Small, fixed word lists: the tokenizer's vocabulary and the model's job both stay small.
export const NAMES: readonly { name: string; he: 'he' | 'she' }[] = [
  { name: 'Tom', he: 'he' }, { name: 'Anna', he: 'she' }, { name: 'Ben', he: 'he' }, { name: 'Lily', he: 'she' },
  { name: 'Sam', he: 'he' }, { name: 'Mia', he: 'she' }, { name: 'Jack', he: 'he' }, { name: 'Emma', he: 'she' },
  { name: 'Leo', he: 'he' }, { name: 'Zoe', he: 'she' }, { name: 'Max', he: 'he' }, { name: 'Ella', he: 'she' },
  { name: 'Noah', he: 'he' }, { name: 'Lucy', he: 'she' }, { name: 'Omar', he: 'he' }, { name: 'Rosa', he: 'she' },
];

export const ITEMS: readonly string[] = [
  'apples', 'marbles', 'stickers', 'coins', 'books', 'pencils', 'cookies', 'cards',
  'shells', 'stamps', 'pens', 'toys', 'eggs', 'beads', 'balls', 'rocks',
];

interface Pronouns {
  he: string;
  him: string;
  his: string;
}

function pronouns(he: 'he' | 'she'): Pronouns {
  return he === 'he' ? { he: 'he', him: 'him', his: 'his' } : { he: 'she', him: 'her', his: 'her' };
}

export function capitalize(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

/** Clause templates per operation kind; `{k}` is the operand, `{friend}` another name. */
function clauseFor(rng: Rng, kind: OpKind, k: number, p: Pronouns, item: string, friend: string): string {
  const He = capitalize(p.he);
  switch (kind) {
    case 'add':
      return rng.pick([
        `${He} buys ${k} more`,
        `${He} finds ${k} more`,
        `${He} gets ${k} more from ${friend}`,
        `${friend} gives ${p.him} ${k} more`,
      ]);
    case 'sub':
      return rng.pick([
        `${He} gives ${k} to ${friend}`,
        `${He} loses ${k}`,
        `${He} sells ${k}`,
        `${He} gives away ${k}`,
      ]);
    case 'mul': {
      const options = [`The number of ${item} becomes ${k} times as large`, `${He} gets ${k} times as many ${item}`];
      if (k === 2) options.push(`${He} doubles ${p.his} ${item}`);
      if (k === 3) options.push(`${He} triples ${p.his} ${item}`);
      return rng.pick(options);
    }
    case 'div': {
      const options = [`${He} splits ${p.his} ${item} into ${k} equal groups and keeps one group`];
      if (k === 2) options.push(`${He} gives away half of ${p.his} ${item}`);
      return rng.pick(options);
    }
  }
}

const CONNECTORS = ['', 'Then ', 'Next, ', 'After that, '];

function sentenceFrom(rng: Rng, clause: string, first: boolean): string {
  const connector = first ? '' : rng.pick(CONNECTORS);
  if (!connector) return `${clause}.`;
  // Lower-case a leading pronoun or article after a connector; names stay capitalised.
  const lowered = /^(He|She|The) /.test(clause) ? clause.charAt(0).toLowerCase() + clause.slice(1) : clause;
  return `${connector}${lowered}.`;
}

function inRange(rng: Rng, r: readonly [number, number]): number {
  return rng.int(r[0], r[1]);
}

/** One feasible operation for the current value, or null after a few tries. */
function pickOperation(rng: Rng, spec: LevelSpec, x: number): { kind: OpKind; operand: number } | null {
  for (let attempt = 0; attempt < 40; attempt++) {
    const u = rng.next();
    let kind: OpKind;
    if (spec.factor && spec.divisor) kind = u < 0.3 ? 'add' : u < 0.55 ? 'sub' : u < 0.8 ? 'mul' : 'div';
    else if (spec.factor) kind = u < 0.38 ? 'add' : u < 0.7 ? 'sub' : 'mul';
    else kind = u < 0.5 ? 'add' : 'sub';
    const range = kind === 'mul' ? spec.factor! : kind === 'div' ? spec.divisor! : spec.addend;
    const operand = inRange(rng, range);
    const y = applyOp(kind, operand, x);
    if (y === null || y < 1 || y > spec.maxValue) continue;
    return { kind, operand };
  }
  return null;
}

/** The arithmetic of a problem as text: start and operations (names and wording left out). */
export function arithmeticKey(start: number, ops: readonly { kind: OpKind; operand: number }[]): string {
  return [start, ...ops.map((o) => `${o.kind}${o.operand}`)].join(' ');
}

/** FNV-1a (32-bit) of a string; stable across platforms and runs. */
export function fnv1a(text: string, seed = 2166136261): number {
  let h = seed >>> 0;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 16777619) >>> 0;
  return h >>> 0;
}

/** Eight hex digits naming the arithmetic of a problem. */
export function fingerprint(start: number, ops: readonly { kind: OpKind; operand: number }[]): string {
  return fnv1a(arithmeticKey(start, ops)).toString(16).padStart(8, '0');
}

/** Share of the arithmetic space (per mille) reserved for held-out problems, chosen by hash so it never moves. */
export const HELD_OUT_PER_MILLE = 100;

function splitHash(problem: Pick<DemoProblem, 'start' | 'ops'>): number {
  // Another seed than the id's, so the split is independent of the id's digits.
  return fnv1a(arithmeticKey(problem.start, problem.ops), 0x811c9dc5 ^ 0x5bd1e995);
}

/** True when the problem's arithmetic lies in the held-out slice: model training never sees these. */
export function isHeldOut(problem: Pick<DemoProblem, 'start' | 'ops'>): boolean {
  return splitHash(problem) % 1000 < HELD_OUT_PER_MILLE;
}

/**
 * Where a problem belongs. The held-out slice is cut in three parts, so that everything measured on the demo model
 * uses problems it never trained on, and each use has its own: `test` (the model card's 500 problems and `lynx demo`),
 * `calib` (conformal calibration: exchangeable with `test`, as the guarantee needs) and `probe` (the probe's
 * training set). Everything else is `train`.
 */
export type ProblemSplit = 'train' | 'test' | 'calib' | 'probe';

export const PROBLEM_SPLITS: readonly ProblemSplit[] = ['train', 'test', 'calib', 'probe'];

export function problemSplit(problem: Pick<DemoProblem, 'start' | 'ops'>): ProblemSplit {
  const h = splitHash(problem);
  if (h % 1000 >= HELD_OUT_PER_MILLE) return 'train';
  const part = Math.floor(h / 1000) % 4;
  return part < 2 ? 'test' : part === 2 ? 'calib' : 'probe';
}

/** One random problem of a level. */
export function generateProblem(rng: Rng, level: number): DemoProblem {
  const spec = levelSpec(level);
  for (;;) {
    const person = rng.pick(NAMES);
    const p = pronouns(person.he);
    const item = rng.pick(ITEMS);
    const start = inRange(rng, spec.start);
    const values = [start];
    const ops: Operation[] = [];
    let x = start;
    let ok = true;
    for (let i = 0; i < spec.nOps; i++) {
      const op = pickOperation(rng, spec, x);
      if (!op) {
        ok = false;
        break;
      }
      let friend = rng.pick(NAMES).name;
      while (friend === person.name) friend = rng.pick(NAMES).name;
      const clause = clauseFor(rng, op.kind, op.operand, p, item, friend);
      ops.push({ kind: op.kind, operand: op.operand, clause, sentence: sentenceFrom(rng, clause, i === 0) });
      x = applyOp(op.kind, op.operand, x)!;
      values.push(x);
    }
    if (!ok) continue;
    const question = rng.pick([`How many ${item} does ${person.name} have now?`, `How many ${item} does ${person.name} have in the end?`]);
    const text = [`${person.name} has ${start} ${item}.`, ...ops.map((o) => o.sentence), question].join(' ');
    return { id: `L${level}-${fingerprint(start, ops)}`, level, name: person.name, item, start, ops, values, answer: x, text };
  }
}

export interface ProblemStreamOptions {
  seed: number;
  /** Levels to draw from, uniformly. Default all. */
  levels?: readonly number[];
  /** Keep only problems of this split ('any': keep everything). Default 'train'. */
  split?: ProblemSplit | 'any';
  /** Skip problems whose arithmetic was already given (default false: training may repeat easy problems). */
  distinct?: boolean;
}

/** An endless, reproducible stream of problems. */
export function* problemStream(opts: ProblemStreamOptions): Generator<DemoProblem> {
  const levels = opts.levels ?? LEVELS.map((l) => l.level);
  if (levels.length === 0) throw new InvalidInputError('no difficulty levels given');
  for (const l of levels) levelSpec(l);
  const split = opts.split ?? 'train';
  if (split !== 'any' && !PROBLEM_SPLITS.includes(split)) {
    throw new InvalidInputError(`unknown problem split '${split as string}': use ${PROBLEM_SPLITS.join(', ')} or any`);
  }
  const seen = new Set<string>();
  const rng = new Rng(opts.seed);
  let misses = 0;
  for (;;) {
    const level = rng.pick(levels);
    const p = generateProblem(rng, level);
    let keep = split === 'any' || problemSplit(p) === split;
    if (keep && opts.distinct) {
      const key = arithmeticKey(p.start, p.ops);
      keep = !seen.has(key);
      if (keep) seen.add(key);
    }
    if (!keep) {
      if (++misses > 2_000_000) throw new InvalidInputError(`no more ${opts.distinct ? 'distinct ' : ''}problems of split ${split} at levels ${levels.join(', ')}`);
      continue;
    }
    misses = 0;
    yield p;
  }
}

/** `count` reproducible problems from a seed (see problemStream). */
export function generateProblems(count: number, opts: ProblemStreamOptions): DemoProblem[] {
  const out: DemoProblem[] = [];
  if (count <= 0) return out;
  for (const p of problemStream(opts)) {
    out.push(p);
    if (out.length >= count) break;
  }
  return out;
}

/** Seed of the fixed held-out sets. */
export const HELD_OUT_SEED = 20250707;

/**
 * A fixed set of distinct problems of one held-out part, `perLevel` of each level, in level order L1, L2, ..., L5,
 * L1, ... (so the first N problems cover every level). `heldOutProblems()` is the model card's 500 test problems.
 */
export function heldOutProblems(perLevel = 100, part: Exclude<ProblemSplit, 'train'> = 'test', seed = HELD_OUT_SEED): DemoProblem[] {
  const byLevel = LEVELS.map((spec) => {
    const stream = problemStream({ seed: fnv1a(`${part}-L${spec.level}`, seed), levels: [spec.level], split: part, distinct: true });
    const out: DemoProblem[] = [];
    for (const p of stream) {
      out.push(p);
      if (out.length >= perLevel) break;
    }
    return out;
  });
  const out: DemoProblem[] = [];
  for (let i = 0; i < perLevel; i++) for (const list of byLevel) out.push(list[i]!);
  return out;
}
