import { describe, expect, it, afterAll } from 'vitest';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { answersEquivalent, answersEquivalentSync, scoreText, type Grading } from '../src/tasks/answer-equiv.js';
import { normalizeAnswer, parseNumber, parseStructure } from '../src/tasks/answer-normalize.js';
import { SymbolicChecker, sharedSymbolicChecker } from '../src/tasks/symbolic.js';
import { loadAmc23, loadGsm8k } from '../src/tasks/benchmarks.js';

const DATA = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'shared', 'data');

interface Pair {
  pred: string;
  gold: string;
  policy: Grading;
  expect: boolean;
  why: string;
}

const ALL: Grading[] = ['strict', 'zst', 'deer'];
const pairs: Pair[] = [];
const add = (pred: string, gold: string, policies: Grading[], expected: boolean, why: string) => {
  for (const policy of policies) pairs.push({ pred, gold, policy, expect: expected, why });
};

function withCommas(int: string): string {
  const neg = int.startsWith('-');
  const digits = neg ? int.slice(1) : int;
  return (neg ? '-' : '') + digits.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

function gcd(a: number, b: number): number {
  return b === 0 ? Math.abs(a) : gcd(b, a % b);
}

/** a/b as a terminating decimal string, or null */
function terminatingDecimal(a: number, b: number): string | null {
  let d = b / gcd(a, b);
  while (d % 2 === 0) d /= 2;
  while (d % 5 === 0) d /= 5;
  if (d !== 1) return null;
  return String(a / b);
}

// ---- MATH-500 answers rewritten in other notations ----------------------------------------------------------
const math500 = readFileSync(resolve(DATA, 'math500', 'test.jsonl'), 'utf8')
  .trim()
  .split('\n')
  .map((l) => (JSON.parse(l) as { answer: string }).answer);

const ints = math500.filter((a) => /^-?\d+$/.test(a));
for (const a of ints.slice(0, 30)) {
  add(`${a}.0`, a, ALL, true, 'integer with .0');
  add(`$${a}$`, a, ['strict'], true, 'math delimiters');
  if (Math.abs(Number(a)) >= 1000) add(withCommas(a), a, ALL, true, 'thousands separators');
  add(String(BigInt(a) + 1n), a, ALL, false, 'off by one');
}

const fracRe = /^(-?)\\[dt]?frac\{(\d+)\}\{(\d+)\}$/;
const fracs = math500.filter((a) => fracRe.test(a));
for (const a of fracs.slice(0, 25)) {
  const [, sign, n, d] = fracRe.exec(a)!;
  const num = Number(n);
  const den = Number(d);
  add(`${sign}${n}/${d}`, a, ALL, true, 'slash fraction');
  add(`${sign}\\dfrac${n.length === 1 ? n : `{${n}}`}${d.length === 1 ? d : `{${d}}`}`, a, ['strict'], true, 'dfrac shorthand');
  const dec = terminatingDecimal(num, den);
  if (dec !== null) add(`${sign}${dec}`, a, ['strict', 'zst'], true, 'exact decimal');
  const rounded = (num / den).toFixed(6);
  if (dec === null) {
    add(`${sign}${rounded}`, a, ['zst', 'deer'], true, 'decimal within 1e-4');
    add(`${sign}${rounded}`, a, ['strict'], false, 'rounded decimal is not exact');
  }
  if (num !== den) add(`${sign}\\frac{${d}}{${n}}`, a, ALL, false, 'reciprocal');
}

const sqrtRe = /^(\d*)\s*\\sqrt\{?(\d+)\}?$/;
for (const a of math500.filter((x) => sqrtRe.test(x)).slice(0, 12)) {
  const [, c, r] = sqrtRe.exec(a)!;
  const k = c === '' ? 1 : Number(c);
  const value = k * Math.sqrt(Number(r));
  if (k > 1) add(`\\sqrt{${k * k * Number(r)}}`, a, ['zst', 'deer'], true, 'coefficient moved under the root');
  if (k > 1) add(`\\sqrt{${k * k * Number(r)}}`, a, ['strict'], false, 'strict does no algebra');
  add(value.toFixed(8), a, ['zst', 'deer'], true, 'root as a decimal');
  add((value + 0.01).toFixed(8), a, ['zst', 'deer'], false, 'decimal off by 0.01');
  add(`${k === 1 ? '' : k}\\sqrt{${Number(r) + 1}}`, a, ALL, false, 'different radicand');
}

const tupleRe = /^\\left\(\s*(-?\d+)\s*,\s*(-?\d+)\s*\\right\)$|^\((-?\d+),\s*(-?\d+)\)$/;
for (const a of math500.filter((x) => tupleRe.test(x))) {
  const m = tupleRe.exec(a)!;
  const x = m[1] ?? m[3]!;
  const y = m[2] ?? m[4]!;
  add(`(${x}, ${y})`, a, ALL, true, 'tuple spacing');
  add(`\\left( ${x},${y} \\right)`, a, ALL, true, 'tuple with left/right');
  if (x !== y) add(`(${y}, ${x})`, a, ALL, false, 'tuple order matters');
}

for (const a of math500.filter((x) => /^\\text\{[A-Za-z]+\}$/.test(x))) {
  const word = /^\\text\{([A-Za-z]+)\}$/.exec(a)![1]!;
  add(word, a, ALL, true, 'text wrapper');
  add(word.toLowerCase(), a, ALL, true, 'case of a word');
  add(`${word}x`, a, ALL, false, 'different word');
}

for (const a of math500.filter((x) => /^\d+\^\\circ$/.test(x)).slice(0, 6)) {
  const n = a.replace('^\\circ', '');
  add(n, a, ALL, true, 'degree mark dropped');
  add(`${n}^{\\circ}`, a, ALL, true, 'degree mark in braces');
  add(`${n}\u00b0`, a, ALL, true, 'unicode degree sign');
}

const intervalRe = /^([([])(-?\d+|-\\infty),\s*(-?\d+|\\infty)([)\]])$/;
for (const a of math500.filter((x) => intervalRe.test(x))) {
  const [, l, lo, hi, r] = intervalRe.exec(a)!;
  const flipped = `${l}${lo}, ${hi}${r === ')' ? ']' : ')'}`;
  add(`${l}${lo},${hi}${r}`, a, ALL, true, 'interval spacing');
  if (!hi!.includes('infty')) {
    add(flipped, a, ['strict', 'zst'], false, 'interval end open/closed matters');
    add(flipped, a, ['deer'], true, 'DEER ignores bracket types');
  }
}

// ---- GSM8K numbers -------------------------------------------------------------------------------------------
const gsm = loadGsm8k({ dataDir: DATA, limit: 30 });
for (const p of gsm) {
  const g = p.gold;
  add(`\\$${withCommas(g)}`, g, ALL, true, 'dollars and thousands separators');
  add(`${g} dollars`, g, ALL, true, 'unit word');
  add(`${g}%`, g, ALL, true, 'percent sign on an integer answer');
  if (Number(g) !== 0) {
    add(String(Number(g) * 100), g, ['deer'], true, 'DEER accepts gold*100');
    add(String(Number(g) * 100), g, ['strict', 'zst'], false, 'gold*100 is wrong');
  }
}

// ---- AMC 2023 floats -------------------------------------------------------------------------------------------
const amcRaw = readFileSync(resolve(DATA, 'amc23', 'test.jsonl'), 'utf8')
  .trim()
  .split('\n')
  .map((l) => /"answer":\s*(-?[\d.]+)/.exec(l)![1]!);
const amc = loadAmc23({ dataDir: DATA });
for (let i = 0; i < 15; i++) {
  add(amc[i]!.gold, amcRaw[i]!, ALL, true, 'AMC float gold against an integer');
  add(amcRaw[i]!, amc[i]!.gold, ALL, true, 'AMC float prediction');
  add(`${amc[i]!.gold}.5`, amcRaw[i]!, ALL, false, 'AMC half off');
}

// ---- hand-written ---------------------------------------------------------------------------------------------
const hand: [string, string, Grading[], boolean, string][] = [
  ['(3, \\frac{\\pi}{2})', '\\left( 3, \\frac{\\pi}{2} \\right)', ALL, true, 'polar point'],
  ['\\frac{\\sqrt{3}}{3}', '\\frac{1}{\\sqrt3}', ['zst', 'deer'], true, 'rationalised denominator'],
  ['\\frac{\\sqrt{3}}{3}', '\\frac{1}{\\sqrt3}', ['strict'], false, 'strict does no algebra'],
  ['10080', '10,\\!080', ALL, true, 'thin space thousands separator'],
  ['11111111100', '11,\\! 111,\\! 111,\\! 100', ALL, true, 'several separators'],
  ['1.8', '1\\frac{4}{5}', ALL, true, 'mixed number'],
  ['9/5', '1\\frac{4}{5}', ALL, true, 'mixed number as fraction'],
  ['275/2', '137 \\frac{1}{2}', ALL, true, 'mixed number with a space'],
  ['32348', '\\$32,\\!348', ALL, true, 'dollar amount'],
  ['C', '\\text{(C)}', ALL, true, 'choice letter'],
  ['(C)', '\\text{(C)}', ALL, true, 'choice letter in parentheses'],
  ['D', '\\text{(C)}', ALL, false, 'wrong letter'],
  ['5.4', '5.4 \\text{ cents}', ALL, true, 'unit in text'],
  ['270/7', '\\frac{270}7\\text{ degrees}', ALL, true, 'unit after a shorthand fraction'],
  ['1+\\sqrt{19}, 1-\\sqrt{19}', '1 \\pm \\sqrt{19}', ['zst'], true, 'plus-minus expanded'],
  ['1-\\sqrt{19},1+\\sqrt{19}', '1 \\pm \\sqrt{19}', ['zst'], true, 'plus-minus in any order'],
  ['1+\\sqrt{19}', '1 \\pm \\sqrt{19}', ['zst'], false, 'only one of the two roots'],
  ['1 \\pm \\sqrt{19}', '1\\pm\\sqrt{19}', ALL, true, 'plus-minus spacing'],
  ['[-2,7]', 'x \\in [-2,7]', ALL, true, 'x in interval'],
  ['(9,36)\\cup(0,9)', '(0,9) \\cup (9,36)', ALL, true, 'union in another order'],
  ['\\{3,5,7\\}', '3, 5, 7', ['strict'], false, 'strict: a set is not a list'],
  ['\\{7,3,5\\}', '\\{3,5,7\\}', ALL, true, 'sets have no order'],
  ['(0,9)\\cup(9,36)', '(0,9) \\cup (9,36)', ['strict'], true, 'union spacing'],
  ['(0,9]\\cup(9,36)', '(0,9) \\cup (9,36)', ['strict', 'zst'], false, 'union with a closed end'],
  ['(-\\infty,2)\\cup(3,\\infty)', '(-\\infty, 2) \\cup (3, \\infty)', ALL, true, 'union with infinities'],
  ['(-\\infty, 0]', '(-\\infty, 0]', ALL, true, 'ray'],
  ['(-inf, 0]', '(-\\infty, 0]', ALL, true, 'inf spelled out'],
  ['-2, 1', '1,-2', ['zst', 'deer'], true, 'solutions in another order'],
  ['-2, 1', '1,-2', ['strict'], false, 'strict keeps list order'],
  ['1, -2', '1,-2', ALL, true, 'list spacing'],
  ['1, 2', '1,-2', ALL, false, 'wrong sign in list'],
  ['3, 5, 7', '3, 5, 7', ALL, true, 'same list'],
  ['\\{3,5,7\\}', '3, 5, 7', ['zst', 'deer'], true, 'set against list'],
  ['7, 5, 3', '3, 5, 7', ['zst', 'deer'], true, 'list reversed'],
  ['3, 5', '3, 5, 7', ALL, false, 'missing element'],
  ['2x+3', 'y = 2x + 3', ALL, true, 'short left side dropped'],
  ['y=2x+3', 'y = 2x + 3', ALL, true, 'same line'],
  ['y=3+2x', 'y = 2x + 3', ['zst', 'deer'], true, 'line with terms swapped'],
  ['y=2x-3', 'y = 2x + 3', ALL, false, 'different line'],
  ['5x-7y+11z=-4', '5x - 7y + 11z + 4 = 0', ['zst', 'deer'], true, 'plane equation rearranged'],
  ['-5x+7y-11z-4=0', '5x - 7y + 11z + 4 = 0', ['zst', 'deer'], true, 'plane equation negated'],
  ['5x-7y+11z+5=0', '5x - 7y + 11z + 4 = 0', ALL, false, 'different plane'],
  ['\\begin{pmatrix} -1/3 \\\\ 2/3 \\\\ 5/3 \\end{pmatrix}', '\\begin{pmatrix} -\\frac13 \\\\ \\frac{2}{3} \\\\ \\frac53 \\end{pmatrix}', ALL, true, 'vector entries as fractions'],
  ['\\begin{bmatrix} -2 \\\\ -14 \\\\ -7 \\end{bmatrix}', '\\begin{pmatrix} -2 \\\\ -14 \\\\ -7 \\end{pmatrix}', ALL, true, 'bmatrix'],
  ['\\begin{pmatrix} -2 \\\\ -14 \\\\ 7 \\end{pmatrix}', '\\begin{pmatrix} -2 \\\\ -14 \\\\ -7 \\end{pmatrix}', ALL, false, 'vector entry sign'],
  ['\\begin{pmatrix} -1 & 0 \\\\ 0 & -1 \\end{pmatrix}', '\\begin{pmatrix} -1 & 0 \\\\ 0 & -1 \\end{pmatrix}', ALL, true, 'matrix'],
  ['\\begin{pmatrix} 0 & -1 \\\\ -1 & 0 \\end{pmatrix}', '\\begin{pmatrix} -1 & 0 \\\\ 0 & -1 \\end{pmatrix}', ALL, false, 'matrix entries moved'],
  ['50', '0.5', ['deer'], true, 'DEER: gold*100'],
  ['50', '0.5', ['strict', 'zst'], false, 'percent value without sign'],
  ['50\\%', '0.5', ['zst', 'deer'], true, 'percent sign'],
  ['50\\%', '0.5', ['strict'], false, 'strict does not convert percent'],
  ['0.5', '50', ['zst', 'strict'], false, 'fraction for a percentage'],
  ['0.5', '50', ['deer'], true, 'DEER: gold/100'],
  ['x^5 - x^4 + x^3 - x^2 + x - 1', '(x-1)(x^4+x^2+1)', ['zst', 'deer'], true, 'factored polynomial'],
  ['x^5 - x^4 + x^3 - x^2 + x + 1', '(x-1)(x^4+x^2+1)', ALL, false, 'different polynomial'],
  ['6r^2-4r-24', '6x^2-4x-24', ALL, false, 'different variable'],
  ['2(k+1)', '2k+2', ['zst', 'deer'], true, 'expanded'],
  ['2k+1', '2k+2', ALL, false, 'off by one in k'],
  ['\\frac{9a+11}{20}', '\\frac{11+9a}{20}', ['zst', 'deer'], true, 'terms reordered'],
  ['\\{1+\\sqrt5, 1-\\sqrt5, -2\\}', '\\{1\\pm\\sqrt{5},-2\\}', ['zst'], true, 'set with plus-minus'],
  ['Evelyn', '\\text{Evelyn}', ALL, true, 'name'],
  ['Navin', '\\text{Evelyn}', ALL, false, 'other name'],
  ['0.0000672', '.0000672', ALL, true, 'leading zero'],
  ['0', '.0000672', ALL, false, 'zero is not a tiny number'],
  ['0.0000673', '.0000672', ['zst', 'deer'], false, 'tolerance scales with tiny golds'],
  ['25', '025', ALL, true, 'AIME leading zero'],
  ['6-5i', '-5i+6', ['zst', 'deer'], true, 'complex number reordered'],
  ['6+5i', '6 - 5i', ALL, false, 'conjugate'],
  ['52_{8}', '52_8', ALL, true, 'base subscript in braces'],
  ['52', '52_8', ALL, false, 'base subscript matters'],
  ['\\frac{3}{56}', '3/56', ALL, true, 'slash fraction gold'],
  ['2', '\\frac{1}{2}', ALL, false, 'not the last number of a fraction'],
  ['\\frac12', '0.5', ALL, true, 'fraction against decimal'],
  ['1.4142', '\\sqrt{2}', ['zst', 'deer'], true, 'root within tolerance'],
  ['1.414', '\\sqrt{2}', ['zst', 'deer'], false, 'root outside tolerance'],
  ['3.14159', '\\pi', ['zst', 'deer'], true, 'pi within tolerance'],
  ['3.14', '\\pi', ALL, false, 'pi outside tolerance'],
  ['288\\pi', '288 \\pi', ALL, true, 'pi coefficient spacing'],
  ['\\pi \\cdot 288', '288 \\pi', ['zst', 'deer'], true, 'pi product reordered'],
  ['\\frac{20000}{\\pi}', '\\frac{20000}{\\pi}', ALL, true, 'same expression'],
  ['-\\frac{\\pi}{6}', '-\\frac{\\pi}{6}', ALL, true, 'negative pi fraction'],
  ['\\frac{-\\pi}{6}', '-\\frac{\\pi}{6}', ['zst', 'deer'], true, 'sign inside'],
  ['\\frac{\\pi}{6}', '-\\frac{\\pi}{6}', ALL, false, 'sign dropped'],
  ['\\cot x', '\\cot x', ALL, true, 'function'],
  ['\\frac{\\cos x}{\\sin x}', '\\cot x', ['zst', 'deer'], true, 'cotangent identity'],
  ['\\tan x', '\\cot x', ALL, false, 'other function'],
  ['3R^2', '3R^2', ALL, true, 'capital variable'],
  ['3r^2', '3R^2', ['deer'], true, 'DEER compares case-insensitively'],
  ['3r^2', '3R^2', ['strict', 'zst'], false, 'variables are case-sensitive'],
  ['18.90', '\\$18.90', ALL, true, 'money'],
  ['18.9', '\\$18.90', ALL, true, 'money trailing zero'],
  ['36', '\\$36', ALL, true, 'money integer'],
  ['5r^5', '5r^5', ALL, true, 'monomial'],
  ['4210_5', '4210_{5}', ALL, true, 'base five'],
  ['\\text{even}', 'even', ALL, true, 'parity word'],
  ['odd', '\\text{even}', ALL, false, 'other parity'],
  ['\\infty', '\\infty', ALL, true, 'infinity'],
  ['-\\infty', '\\infty', ALL, false, 'negative infinity'],
  ['1,000,000', '1000000', ALL, true, 'million with separators'],
  ['1{,}000', '1000', ALL, true, 'braced comma separator'],
  ['1000001', '1000000', ALL, false, 'large integers are exact'],
  ['12 students', '12', ALL, true, 'counted noun'],
  ['12 cm^2', '12', ALL, true, 'squared unit'],
  ['12x', '12', ALL, false, 'a variable is not a unit'],
  ['x=5', '5', ALL, true, 'x ='],
  ['5.', '5', ALL, true, 'trailing period'],
  ['\\boxed{5}', '5', ALL, true, 'boxed prediction'],
  ['\\left(\\frac{3}{2}, -13\\right)', '\\left( \\frac{3}{2}, -13 \\right)', ALL, true, 'fraction in tuple'],
  ['(1.5, -13)', '\\left( \\frac{3}{2}, -13 \\right)', ALL, true, 'decimal in tuple'],
  ['(1,2)', '1,2', ['zst', 'deer'], true, 'tuple against bare pair'],
  ['(1,2)', '1,2', ['strict'], false, 'strict keeps brackets'],
  ['\\left[ \\frac{\\pi^2}{8}, \\frac{5 \\pi^2}{4} \\right]', '\\left[ \\frac{\\pi^2}{8}, \\frac{5 \\pi^2}{4} \\right]', ALL, true, 'interval of pi squares'],
  ['[\\frac{\\pi^2}{8}, \\frac{5\\pi^2}{4})', '\\left[ \\frac{\\pi^2}{8}, \\frac{5 \\pi^2}{4} \\right]', ['strict', 'zst'], false, 'half-open instead of closed'],
  ['', '5', ALL, false, 'empty prediction'],
  ['\\emptyset', '\\varnothing', ALL, true, 'empty set symbols'],
  ['-\\frac{35}{9}', '-\\frac{35}{9}', ALL, true, 'negative fraction'],
  ['\\frac{-35}{9}', '-\\frac{35}{9}', ALL, true, 'sign in numerator'],
  ['-3.8889', '-\\frac{35}{9}', ['zst', 'deer'], true, 'negative rounded'],
  ['100\\%', '1', ['zst', 'deer'], true, 'hundred percent'],
  ['4.5', '\\frac{9}{2}', ALL, true, 'half'],
  ['\\tfrac{9}{2}', '4.5', ALL, true, 'tfrac'],
  ['2\\sqrt{3}+1', '1+2\\sqrt{3}', ['zst', 'deer'], true, 'sum reordered'],
  ['2\\sqrt3', '\\sqrt{12}', ['zst', 'deer'], true, 'root simplified'],
  ['11\\sqrt{5}+11', '11 \\sqrt{5} + 11', ALL, true, 'spacing in sum'],
  ['16\\sqrt3', '16 \\sqrt{3}', ALL, true, 'shorthand root'],
];
for (const [p, g, pol, e, why] of hand) add(p, g, pol, e, why);

afterAll(async () => {
  await sharedSymbolicChecker().close();
});

describe('answer equivalence table', () => {
  it('has at least 200 pairs, with equivalent and different pairs under every policy', () => {
    expect(pairs.length).toBeGreaterThanOrEqual(200);
    console.log(`equivalence table: ${pairs.length} decisions, ${new Set(pairs.map((p) => `${p.pred}\u0000${p.gold}`)).size} distinct pairs`);
    for (const policy of ALL) {
      expect(pairs.filter((p) => p.policy === policy && p.expect).length).toBeGreaterThan(30);
      expect(pairs.filter((p) => p.policy === policy && !p.expect).length).toBeGreaterThan(20);
    }
  });

  for (const policy of ALL) {
    it(`decides every ${policy} pair right`, async () => {
      const wrong: string[] = [];
      for (const p of pairs.filter((x) => x.policy === policy)) {
        const r = await answersEquivalent(p.pred, p.gold, { grading: policy });
        if (r.equivalent !== p.expect)
          wrong.push(`${p.why}: ${JSON.stringify(p.pred)} vs ${JSON.stringify(p.gold)} -> ${r.equivalent} (${r.reason})`);
      }
      expect(wrong).toEqual([]);
    });
  }

  it('the synchronous checker agrees with the worker-thread checker', () => {
    const disagree = pairs
      .filter((p) => answersEquivalentSync(p.pred, p.gold, { grading: p.policy }).equivalent !== p.expect)
      .map((p) => `${p.policy} ${p.pred} vs ${p.gold}`);
    expect(disagree).toEqual([]);
  });
});

describe('normalisation', () => {
  it('removes presentation and keeps meaning', () => {
    expect(normalizeAnswer('\\left( 3, \\dfrac{\\pi}{2} \\right)')).toBe('(3,\\frac{\\pi}{2})');
    expect(normalizeAnswer('10,\\!080')).toBe('10080');
    expect(normalizeAnswer('\\frac{270}7\\text{ degrees}')).toBe('\\frac{270}{7}');
    expect(normalizeAnswer('\\pi r^2')).toBe('\\pi r^2');
    expect(normalizeAnswer('145^\\circ')).toBe('145');
    expect(normalizeAnswer('\\$18.90.')).toBe('18.90');
    expect(normalizeAnswer('x \\in [-2,7]')).toBe('[-2,7]');
  });

  it('parses numbers exactly', () => {
    expect(parseNumber('1\\frac{4}{5}')!.value).toEqual({ n: 9n, d: 5n });
    expect(parseNumber('-0.125')!.value).toEqual({ n: -1n, d: 8n });
    expect(parseNumber('12%')).toEqual({ value: { n: 12n, d: 1n }, percent: true });
    expect(parseNumber('1.5e3')!.value).toEqual({ n: 1500n, d: 1n });
    expect(parseNumber('x')).toBeNull();
  });

  it('parses structure: intervals, sets, unions, equations', () => {
    expect(parseStructure('(3,4]')).toMatchObject({ k: 'seq', open: '(', close: ']' });
    expect(parseStructure('\\{1,2\\}')).toMatchObject({ k: 'set' });
    expect(parseStructure('(0,9)\\cup(9,36)')).toMatchObject({ k: 'union' });
    expect(parseStructure('5x+4=0')).toMatchObject({ k: 'eq' });
    expect(parseStructure('(x+1)')).toEqual({ k: 'leaf', s: '(x+1)' });
    expect(parseStructure('1\\pm\\sqrt{2}', { expandPm: true })).toEqual({
      k: 'list',
      items: [
        { k: 'leaf', s: '1+\\sqrt{2}' },
        { k: 'leaf', s: '1-\\sqrt{2}' },
      ],
    });
  });
});

describe('symbolic time limit', () => {
  it('a check that runs past its limit counts as not equivalent, and the next check still works', async () => {
    const checker = new SymbolicChecker(300);
    try {
      const slow = await checker.check({ a: 'x+1', b: '1+x', tol: { abs: 1e-4, rel: 0 }, delayMs: 5000 });
      expect(slow).toEqual({ verdict: false, timedOut: true });
      expect(checker.timeouts).toBe(1);
      const next = await checker.check({ a: 'x+1', b: '1+x', tol: { abs: 1e-4, rel: 0 } });
      expect(next).toEqual({ verdict: true, timedOut: false });
    } finally {
      await checker.close();
    }
  });

  it('reports a timeout through answersEquivalent', async () => {
    const timingOut = { check: async () => ({ verdict: false, timedOut: true }) } as unknown as SymbolicChecker;
    const r = await answersEquivalent('(x+1)^2', 'x^2+2x+1', { grading: 'zst', checker: timingOut });
    expect(r).toEqual({ equivalent: false, reason: 'timeout', timedOut: true });
    // a pair decided without algebra never reaches the checker
    expect(await answersEquivalent('1/2', '0.5', { grading: 'zst', checker: timingOut })).toMatchObject({ equivalent: true });
  });
});

describe('runaway answers', () => {
  it('are not handed to algebra', async () => {
    let calls = 0;
    const counting = {
      check: async () => {
        calls++;
        return { verdict: true, timedOut: false };
      },
    } as unknown as SymbolicChecker;
    const runaway = 'x+'.repeat(300) + '1';
    expect(await answersEquivalent(runaway, 'x+1', { grading: 'zst', checker: counting })).toMatchObject({ equivalent: false });
    expect(calls).toBe(0);
    expect(await answersEquivalent('1+x', 'x+1', { grading: 'zst', checker: counting })).toMatchObject({ equivalent: true });
    expect(calls).toBe(1);
  });
});

describe('scoring generated text', () => {
  it('extracts and compares under each policy', async () => {
    const text = 'Wait, so the area is 12. Hmm.\n</think>\nThe answer is $\\boxed{\\dfrac{1}{2}}$.';
    for (const policy of ALL) expect((await scoreText(text, { gold: '0.5' }, { grading: policy })).correct).toBe(true);
    const unboxed = 'So the answer is 0.5';
    expect((await scoreText(unboxed, { gold: '\\frac12' }, { grading: 'zst' })).correct).toBe(true);
    expect((await scoreText(unboxed, { gold: '\\frac12' }, { grading: 'deer' })).correct).toBe(false);
  });

  it('scores multiple choice by letter', async () => {
    const choices = ['bank', 'library', 'department store', 'mall', 'new york'].map((text, i) => ({
      label: String.fromCharCode(65 + i),
      text,
    }));
    const s = await scoreText('It is a bank. \\boxed{A}', { gold: 'A', choices });
    expect(s).toMatchObject({ extracted: 'A', correct: true });
    expect((await scoreText('\\boxed{\\text{(B)}}', { gold: 'A', choices })).correct).toBe(false);
    expect((await scoreText('\\boxed{library}', { gold: 'B', choices })).correct).toBe(true);
  });
});
