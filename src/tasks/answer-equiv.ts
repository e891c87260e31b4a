/**
 * Answer equivalence under three policies (see docs/evaluation.md for what each accepts and why):
 *
 * - `strict`: Hendrycks-MATH-style normalised equality. Presentational LaTeX is removed, plain numbers compare as
 *   exact rationals (27.0 = 27, 0.5 = 1/2 = \frac{1}{2}, 1,000 = 1000), tuples/intervals element by element in
 *   order with brackets significant, sets without order. No tolerance, no percent conversion, no algebra.
 * - `zst`: LYNX's tolerant checker: strict plus numeric tolerance, percent (x% = x/100 and x% = x), unordered answer
 *   lists, `\pm` expansion, equations up to sign, case-insensitive words, and symbolic equivalence
 *   (compute-engine, time-limited).
 * - `deer`: DEER's checker (the Qwen2.5-Math `math_equal`): the zst machinery with DEER's own tolerances: the gold
 *   may also be matched as gold*100 or gold/100, comparison is case-insensitive, comma lists are unordered,
 *   bracket types are ignored, and the answer comes only from a \boxed{} (no phrase or last-number fallback).
 */
import { parseNumber, normalizeAnswer, parseStructure, ratEq, ratToNumber, type AnswerNode } from './answer-normalize.js';
import {
  sharedSymbolicChecker,
  symbolicEqualInline,
  type SymbolicChecker,
  type SymbolicRequest,
  type Tolerance,
} from './symbolic.js';
import { extractAnswer, letterFromAnswer, type Extraction } from './answer-extract.js';
import type { Choice } from './problem.js';
import { UnsupportedError } from '../util/errors.js';

export const GRADINGS = ['strict', 'zst', 'deer'] as const;
export type Grading = (typeof GRADINGS)[number];

export function isGrading(s: string): s is Grading {
  return (GRADINGS as readonly string[]).includes(s);
}

export function checkGrading(s: string): Grading {
  if (!isGrading(s)) throw new UnsupportedError(`unknown answer grading "${s}"; expected one of ${GRADINGS.join(', ')}`);
  return s;
}

interface GradingRules {
  symbolic: boolean;
  /** numbers: exact rationals, or within this tolerance */
  tolerance: Tolerance | null;
  /** how a percent sign is read */
  percent: 'ignore' | 'lynx' | 'deer';
  unorderedLists: boolean;
  ignoreBrackets: boolean;
  expandPm: boolean;
  caseInsensitive: 'words' | 'all';
  /** `(1,2)` against `1,2` */
  bracketsOptional: boolean;
  boxedOnly: boolean;
}

const RULES: Record<Grading, GradingRules> = {
  strict: {
    symbolic: false,
    tolerance: null,
    percent: 'ignore',
    unorderedLists: false,
    ignoreBrackets: false,
    expandPm: false,
    caseInsensitive: 'words',
    bracketsOptional: false,
    boxedOnly: false,
  },
  zst: {
    symbolic: true,
    tolerance: { abs: 1e-4, rel: 0 },
    percent: 'lynx',
    unorderedLists: true,
    ignoreBrackets: false,
    expandPm: true,
    caseInsensitive: 'words',
    bracketsOptional: true,
    boxedOnly: false,
  },
  deer: {
    symbolic: true,
    tolerance: { abs: 1e-4, rel: 0 },
    percent: 'deer',
    unorderedLists: true,
    ignoreBrackets: true,
    expandPm: false,
    caseInsensitive: 'all',
    bracketsOptional: true,
    boxedOnly: true,
  },
};

export function gradingRules(grading: Grading): Readonly<GradingRules> {
  return RULES[grading];
}

export interface EquivResult {
  equivalent: boolean;
  /** which rule decided: 'string', 'number', 'symbolic', 'structure', or 'different' / 'empty' */
  reason: string;
  /** a symbolic check ran out of time (counted as not equivalent) */
  timedOut?: boolean;
}

type Decision = Generator<SymbolicRequest, boolean, boolean>;

interface Ctx {
  rules: GradingRules;
  reason: string;
}

/**
 * Absolute tolerance 1e-4 as LYNX and Qwen2.5-Math use, but never more than 0.1% of the gold's magnitude, so
 * that 0 is not accepted for a gold of 0.0000672 (and a gold of 0 needs an exact 0).
 */
function numbersClose(pred: number, gold: number, tol: Tolerance): boolean {
  if (pred === gold) return true;
  if (!Number.isFinite(pred) || !Number.isFinite(gold)) return false;
  const limit = Math.max(Math.min(tol.abs, 1e-3 * Math.abs(gold)), tol.rel * Math.abs(gold));
  return Math.abs(pred - gold) <= limit * (1 + 1e-9);
}

function compareNumbers(p: string, g: string, ctx: Ctx): boolean | null {
  const a = parseNumber(p);
  const b = parseNumber(g);
  if (!a || !b) return null;
  const r = ctx.rules;
  if (r.tolerance === null) return ratEq(a.value, b.value);
  const av = ratToNumber(a.value);
  const bv = ratToNumber(b.value);
  let preds = [av];
  let golds = [bv];
  if (r.percent === 'lynx') {
    // LYNX reads "x%" as x/100, and also accepts it when the % sign is dropped.
    if (a.percent) preds = [av, av / 100];
    if (b.percent) golds = [bv, bv / 100];
  } else if (r.percent === 'deer') {
    // Qwen2.5-Math math_equal(include_percentage=True): the gold, gold/100 or gold*100.
    golds = [bv, bv / 100, bv * 100];
  }
  // Exact rationals first, so integers never pass by tolerance alone.
  if (ratEq(a.value, b.value)) return true;
  return preds.some((x) => golds.some((y) => numbersClose(x, y, r.tolerance!)));
}

const MAX_SYMBOLIC_CHARS = 400;

function isWords(s: string): boolean {
  return /^[A-Za-z][A-Za-z' -]*$/.test(s);
}

function* leafEqual(p: string, g: string, ctx: Ctx): Decision {
  const r = ctx.rules;
  if (p === g) return true;
  if ((r.caseInsensitive === 'all' || (isWords(p) && isWords(g))) && p.toLowerCase() === g.toLowerCase()) return true;
  // Two plain numbers: the numeric verdict is final (algebra cannot make different numbers equal).
  const num = compareNumbers(p, g, ctx);
  if (num !== null) {
    ctx.reason = 'number';
    return num;
  }
  // A percent sign on anything but a plain number is decoration.
  const a = p.replace(/%$/, '');
  const b = g.replace(/%$/, '');
  if (a === b) return true;
  if (!r.symbolic) return false;
  if (/^\w+_\w$/.test(a) || /^\w+_\w$/.test(b)) return false; // base-n numbers are compared as written
  // Hundreds of characters are a runaway generation, not an answer: not worth seconds of algebra.
  if (a.length > MAX_SYMBOLIC_CHARS || b.length > MAX_SYMBOLIC_CHARS) return false;
  const ok: boolean = yield { a, b, tol: r.tolerance! };
  if (ok) ctx.reason = 'symbolic';
  return ok;
}

function* nodesEqual(p: AnswerNode, g: AnswerNode, ctx: Ctx): Decision {
  const r = ctx.rules;
  if (p.k === 'leaf' && g.k === 'leaf') return yield* leafEqual(p.s, g.s, ctx);
  // `(1, 2)` against `1, 2` and list against set when order does not matter
  const itemsOf = (n: AnswerNode): AnswerNode[] | null =>
    n.k === 'list' || n.k === 'set' ? n.items : n.k === 'seq' && r.bracketsOptional ? n.items : null;
  if (p.k === g.k || (r.unorderedLists && itemsOf(p) && itemsOf(g) && p.k !== g.k)) {
    ctx.reason = 'structure';
    switch (g.k) {
      case 'seq': {
        if (p.k === 'seq') {
          if (!r.ignoreBrackets && (p.open !== g.open || p.close !== g.close)) return false;
          return yield* allInOrder(p.items, g.items, ctx);
        }
        // a bare list against a tuple: same elements, in order
        const items = itemsOf(p);
        return items !== null && p.k === 'list' ? yield* allInOrder(items, g.items, ctx) : false;
      }
      case 'list':
      case 'set':
      case 'union': {
        const pi = itemsOf(p) ?? (p.k === 'union' ? p.items : null);
        if (!pi) return false;
        const ordered = g.k === 'list' && p.k === 'list' && !r.unorderedLists;
        if (p.k === 'seq') return yield* allInOrder(pi, g.items, ctx);
        return ordered ? yield* allInOrder(pi, g.items, ctx) : yield* matchUnordered(pi, g.items, ctx);
      }
      case 'matrix': {
        if (p.k !== 'matrix' || p.rows.length !== g.rows.length) return false;
        for (let i = 0; i < g.rows.length; i++) if (!(yield* allInOrder(p.rows[i]!, g.rows[i]!, ctx))) return false;
        return true;
      }
      case 'eq': {
        if (p.k !== 'eq') return false;
        if ((yield* nodesEqual(p.lhs, g.lhs, ctx)) && (yield* nodesEqual(p.rhs, g.rhs, ctx))) return true;
        if ((yield* nodesEqual(p.lhs, g.rhs, ctx)) && (yield* nodesEqual(p.rhs, g.lhs, ctx))) return true;
        if (!r.symbolic || p.lhs.k !== 'leaf' || p.rhs.k !== 'leaf' || g.lhs.k !== 'leaf' || g.rhs.k !== 'leaf') return false;
        // the same equation up to sign: lhs - rhs of one is +-(lhs - rhs) of the other
        const pd = `(${p.lhs.s})-(${p.rhs.s})`;
        const gd = `(${g.lhs.s})-(${g.rhs.s})`;
        if (yield { a: pd, b: gd, tol: r.tolerance! }) return true;
        return yield { a: `-(${pd})`, b: gd, tol: r.tolerance! };
      }
      default:
        return false;
    }
  }
  // a single-element structure against a leaf: "(5)" against "5"
  if (g.k === 'leaf' && p.k !== 'leaf') return false;
  return false;
}

function* allInOrder(ps: AnswerNode[], gs: AnswerNode[], ctx: Ctx): Decision {
  if (ps.length !== gs.length) return false;
  for (let i = 0; i < gs.length; i++) if (!(yield* nodesEqual(ps[i]!, gs[i]!, ctx))) return false;
  return true;
}

/** A perfect matching between predicted and gold elements (augmenting paths; lists are short). */
function* matchUnordered(ps: AnswerNode[], gs: AnswerNode[], ctx: Ctx): Decision {
  if (ps.length !== gs.length) return false;
  const n = gs.length;
  const eq: boolean[][] = [];
  for (let i = 0; i < n; i++) {
    eq.push([]);
    for (let j = 0; j < n; j++) eq[i]!.push(yield* nodesEqual(ps[i]!, gs[j]!, ctx));
  }
  const matchOfGold = new Array<number>(n).fill(-1);
  const tryAssign = (i: number, seen: boolean[]): boolean => {
    for (let j = 0; j < n; j++) {
      if (!eq[i]![j] || seen[j]) continue;
      seen[j] = true;
      if (matchOfGold[j] === -1 || tryAssign(matchOfGold[j]!, seen)) {
        matchOfGold[j] = i;
        return true;
      }
    }
    return false;
  };
  for (let i = 0; i < n; i++) if (!tryAssign(i, new Array<boolean>(n).fill(false))) return false;
  return true;
}

function* decide(pred: string, gold: string, grading: Grading, ctx: Ctx): Decision {
  const rules = RULES[grading];
  const p = normalizeAnswer(pred);
  const g = normalizeAnswer(gold);
  if (p === '' || g === '') {
    ctx.reason = 'empty';
    return false;
  }
  if (p === g) {
    ctx.reason = 'string';
    return true;
  }
  const pn = parseStructure(p, { expandPm: rules.expandPm });
  const gn = parseStructure(g, { expandPm: rules.expandPm });
  ctx.reason = 'string';
  const ok = yield* nodesEqual(pn, gn, ctx);
  if (ok && gn.k !== 'leaf') ctx.reason = 'structure';
  if (!ok) {
    // DEER also compares the strings with every bracket and brace removed (Qwen2.5-Math does so).
    if (rules.ignoreBrackets) {
      const strip = (s: string) => s.replace(/[{}()[\]]/g, '').toLowerCase();
      if (strip(p) === strip(g) && strip(p) !== '') {
        ctx.reason = 'string';
        return true;
      }
    }
    ctx.reason = 'different';
  }
  return ok;
}

export interface EquivOptions {
  grading?: Grading;
  /** time limit of one symbolic check (default 3000 ms) */
  timeoutMs?: number;
  /** the checker to use (default: a shared worker-thread checker) */
  checker?: SymbolicChecker;
}

/** Whether a predicted answer (already extracted) is equivalent to the gold answer. */
export async function answersEquivalent(pred: string | null, gold: string, opts: EquivOptions = {}): Promise<EquivResult> {
  if (pred === null) return { equivalent: false, reason: 'empty' };
  const grading = opts.grading ?? 'zst';
  const checker = opts.checker ?? sharedSymbolicChecker();
  const ctx: Ctx = { rules: RULES[grading], reason: 'different' };
  const gen = decide(pred, gold, grading, ctx);
  let timedOut = false;
  let step = gen.next();
  while (!step.done) {
    const r = await checker.check(step.value);
    if (r.timedOut) timedOut = true;
    step = gen.next(r.verdict === true);
  }
  return timedOut && !step.value
    ? { equivalent: false, reason: 'timeout', timedOut: true }
    : { equivalent: step.value, reason: ctx.reason };
}

/** Synchronous variant: symbolic checks run in this thread, without a hard time limit. */
export function answersEquivalentSync(pred: string | null, gold: string, opts: { grading?: Grading } = {}): EquivResult {
  if (pred === null) return { equivalent: false, reason: 'empty' };
  const grading = opts.grading ?? 'zst';
  const ctx: Ctx = { rules: RULES[grading], reason: 'different' };
  const gen = decide(pred, gold, grading, ctx);
  let step = gen.next();
  while (!step.done) step = gen.next(symbolicEqualInline(step.value) === true);
  return { equivalent: step.value, reason: ctx.reason };
}

export interface Scored {
  extracted: string | null;
  extraction: Extraction['method'];
  correct: boolean;
  reason: string;
  timedOut?: boolean;
}

/**
 * Extract the answer of a generated text and compare it with a problem's gold answer under a grading.
 * Multiple-choice problems compare letters.
 */
export async function scoreText(
  text: string,
  problem: { gold: string; choices?: readonly Choice[] },
  opts: EquivOptions = {},
): Promise<Scored> {
  const grading = opts.grading ?? 'zst';
  const ex = extractAnswer(text, problem, { fallback: RULES[grading].boxedOnly ? 'boxed' : 'default' });
  return { ...(await scoreExtracted(ex.answer, problem, opts)), extraction: ex.method };
}

/** Compare an already extracted answer with a problem's gold answer. */
export async function scoreExtracted(
  extracted: string | null,
  problem: { gold: string; choices?: readonly Choice[] },
  opts: EquivOptions = {},
): Promise<Scored> {
  if (extracted === null) return { extracted, extraction: null, correct: false, reason: 'no answer' };
  if (problem.choices && problem.choices.length > 0) {
    const letter = letterFromAnswer(extracted, problem.choices);
    const correct = letter !== null && letter === problem.gold.trim().toUpperCase();
    return { extracted: letter ?? extracted, extraction: null, correct, reason: 'letter' };
  }
  const r = await answersEquivalent(extracted, problem.gold, opts);
  return { extracted, extraction: null, correct: r.equivalent, reason: r.reason, timedOut: r.timedOut };
}
