/**
 * Answer normalisation: presentational LaTeX is removed so that notations of the same answer meet, and the
 * answer is parsed into a small structure (number, tuple/interval, set, list, union, matrix, equation).
 *
 * Nothing here decides equivalence; `answer-equiv.ts` compares the structures under a policy.
 */

// ---------------------------------------------------------------------------------------------------------------
// Exact rationals

export interface Rational {
  n: bigint;
  d: bigint; // > 0, gcd(n, d) = 1
}

function gcd(a: bigint, b: bigint): bigint {
  a = a < 0n ? -a : a;
  b = b < 0n ? -b : b;
  while (b !== 0n) [a, b] = [b, a % b];
  return a;
}

export function rational(n: bigint, d: bigint = 1n): Rational | null {
  if (d === 0n) return null;
  if (d < 0n) [n, d] = [-n, -d];
  const g = gcd(n, d) || 1n;
  return { n: n / g, d: d / g };
}

export function ratEq(a: Rational, b: Rational): boolean {
  return a.n === b.n && a.d === b.d;
}

export function ratToNumber(r: Rational): number {
  // Scale down huge numerators/denominators together so the division stays finite.
  let { n, d } = r;
  while ((n > 2n ** 1000n || n < -(2n ** 1000n)) && d > 2n ** 64n) {
    n /= 2n ** 32n;
    d /= 2n ** 32n;
  }
  return Number(n) / Number(d);
}

function ratAdd(a: Rational, b: Rational): Rational {
  return rational(a.n * b.d + b.n * a.d, a.d * b.d)!;
}

/** "12", "-0.125", ".5", "3." as an exact rational. */
function decimalToRational(s: string): Rational | null {
  const m = /^([+-]?)(\d*)(?:\.(\d*))?$/.exec(s);
  if (!m || (m[2] === '' && (m[3] ?? '') === '')) return null;
  const frac = m[3] ?? '';
  const r = rational(BigInt((m[2] || '0') + frac), 10n ** BigInt(frac.length));
  return r && m[1] === '-' ? { n: -r.n, d: r.d } : r;
}

export interface ParsedNumber {
  value: Rational;
  /** written with a percent sign */
  percent: boolean;
}

/**
 * A canonical answer string that is a plain number: integer, decimal, scientific (1e5), `a/b`, `\frac{a}{b}`,
 * a mixed number (`1\frac{4}{5}` = 9/5), optionally signed and with a trailing `%`.
 */
export function parseNumber(canon: string): ParsedNumber | null {
  let s = canon.trim();
  let percent = false;
  if (s.endsWith('%')) {
    percent = true;
    s = s.slice(0, -1);
  }
  let sign = 1n;
  if (s.startsWith('-')) {
    sign = -1n;
    s = s.slice(1);
  } else if (s.startsWith('+')) s = s.slice(1);
  let value: Rational | null = null;
  let m: RegExpExecArray | null;
  if ((m = /^(\d*\.?\d*)(?:e([+-]?\d+))?$/i.exec(s)) && /\d/.test(m[1]!)) {
    value = decimalToRational(m[1]!);
    if (value && m[2]) {
      const e = BigInt(m[2]);
      if (e > 400n || e < -400n) return null;
      value = e >= 0n ? rational(value.n * 10n ** e, value.d) : rational(value.n, value.d * 10n ** -e);
    }
  } else if ((m = /^(\d+(?:\.\d+)?)\/(\d+(?:\.\d+)?)$/.exec(s))) {
    const a = decimalToRational(m[1]!);
    const b = decimalToRational(m[2]!);
    value = a && b ? rational(a.n * b.d, a.d * b.n) : null;
  } else if ((m = /^(\d+)?\\frac\{(-?\d+(?:\.\d+)?)\}\{(-?\d+(?:\.\d+)?)\}$/.exec(s))) {
    const a = decimalToRational(m[2]!);
    const b = decimalToRational(m[3]!);
    value = a && b ? rational(a.n * b.d, a.d * b.n) : null;
    // "1\frac{4}{5}" is the mixed number 1 4/5, as MATH writes it.
    if (value && m[1] !== undefined) value = ratAdd(rational(BigInt(m[1]))!, value);
  }
  if (!value) return null;
  return { value: { n: sign * value.n, d: value.d }, percent };
}

// ---------------------------------------------------------------------------------------------------------------
// String normalisation

/** Read one TeX argument at i (after spaces): a brace group's content or a single token. */
function readArg(s: string, i: number): { arg: string; end: number } | null {
  while (s[i] === ' ') i++;
  if (i >= s.length) return null;
  if (s[i] === '{') {
    let depth = 0;
    for (let j = i; j < s.length; j++) {
      if (s[j] === '\\') {
        j++;
        continue;
      }
      if (s[j] === '{') depth++;
      else if (s[j] === '}' && --depth === 0) return { arg: s.slice(i + 1, j), end: j + 1 };
    }
    return null;
  }
  if (s[i] === '\\') {
    const m = /^\\[A-Za-z]+/.exec(s.slice(i));
    if (m) return { arg: m[0], end: i + m[0].length };
  }
  if (s[i] === '}') return null;
  return { arg: s[i]!, end: i + 1 };
}

/** `\frac12` -> `\frac{1}{2}`, `\frac{270}7` -> `\frac{270}{7}`, `\sqrt2` -> `\sqrt{2}` (TeX reads one token). */
export function bracketTexArguments(s: string): string {
  let out = '';
  let i = 0;
  while (i < s.length) {
    const m = /^\\(frac|sqrt|binom)(?![A-Za-z])/.exec(s.slice(i));
    if (!m) {
      out += s[i];
      i++;
      continue;
    }
    const name = m[1]!;
    let j = i + m[0].length;
    out += '\\' + name;
    if (name === 'sqrt') {
      while (s[j] === ' ') j++;
      if (s[j] === '[') {
        const close = s.indexOf(']', j);
        if (close > 0) {
          out += s.slice(j, close + 1);
          j = close + 1;
        }
      }
    }
    const nargs = name === 'sqrt' ? 1 : 2;
    let ok = true;
    for (let k = 0; k < nargs; k++) {
      const a = readArg(s, j);
      if (!a) {
        ok = false;
        break;
      }
      out += '{' + bracketTexArguments(a.arg) + '}';
      j = a.end;
    }
    if (!ok) {
      out += s.slice(j);
      return out;
    }
    i = j;
  }
  return out;
}

/** Words that name a unit or a counted thing when they follow a number ("5 cents", "12 students"). */
const UNIT_WORD = /^(?:[a-z]{2,}|m|g|l|s|h)(?:\s+[a-z]{2,})*(?:\^\{?[23]\}?|\^?[23])?$/i;

const TEXT_COMMANDS = 'text|textrm|textit|textbf|textnormal|mathrm|mathit|mathbf|mathsf|mathtt|boldsymbol|bm|mbox|operatorname';

/** The number-like head of a string whose tail is a unit (or null when the tail is not a unit). */
function stripUnit(s: string): string | null {
  // "5.4 \text{ cents}", "\frac{270}{7}\text{ degrees}", "30\mbox{ cm}^2"
  let m = new RegExp(`^(.*?\\S)\\s*\\\\(?:${TEXT_COMMANDS})\\{\\s*([^{}]*?)\\s*\\}(\\^\\{?[23]\\}?)?$`).exec(s);
  if (m && /[\d}]/.test(m[1]!) && /^[A-Za-z][A-Za-z .]*$/.test(m[2]!)) return m[1]!;
  // "12 students", "5 cm^2", "100 square feet": only after a plain number
  m = /^([-+]?[\d.,]*\d(?:\/\d+)?|\\frac\{\d+\}\{\d+\})\s*([A-Za-z][A-Za-z ]*(?:\^\{?[23]\}?)?)$/.exec(s);
  if (m && UNIT_WORD.test(m[2]!.trim()) && !/^[a-z]$/i.test(m[2]!.trim())) return m[1]!;
  return null;
}

function stripWrappers(s: string): string {
  for (;;) {
    const before = s;
    s = s.trim();
    let m: RegExpExecArray | null;
    if ((m = /^\$+([\s\S]*?)\$+$/.exec(s))) s = m[1]!;
    else if ((m = /^\\\(([\s\S]*)\\\)$/.exec(s))) s = m[1]!;
    else if ((m = /^\\\[([\s\S]*)\\\]$/.exec(s))) s = m[1]!;
    else if ((m = /^\\(?:boxed|fbox)\s*\{([\s\S]*)\}$/.exec(s)) && balanced(m[1]!)) s = m[1]!;
    else if (s.startsWith('{') && s.endsWith('}') && balanced(s.slice(1, -1))) s = s.slice(1, -1);
    if (s === before) return s;
  }
}

function balanced(s: string): boolean {
  let depth = 0;
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '\\') {
      i++;
      continue;
    }
    if (s[i] === '{') depth++;
    else if (s[i] === '}' && --depth < 0) return false;
  }
  return depth === 0;
}

/**
 * Remove presentational differences from an answer: math delimiters and a surrounding \boxed, \left/\right,
 * \dfrac/\tfrac, spacing commands (\! \, \; \quad ~), degree marks, dollar signs, thousands separators, \text
 * wrappers and trailing units, trailing periods, a leading "x =" (short left side, as in Hendrycks' MATH
 * normalisation), `x \in`, \frac/\sqrt shorthand, unicode symbols, and whitespace. A trailing percent sign is
 * kept as `%` so policies can decide what it means.
 */
export function normalizeAnswer(raw: string): string {
  let s = String(raw);
  s = s
    .replace(/[\u2212\u2013\u2014]/g, '-')
    .replace(/\u00d7/g, '\\times ')
    .replace(/\u22c5|\u00b7/g, '\\cdot ')
    .replace(/\u03c0/g, '\\pi ')
    .replace(/\u221e/g, '\\infty ')
    .replace(/\u221a/g, '\\sqrt')
    .replace(/\u00b0/g, '^\\circ')
    .replace(/\u2264/g, '\\le ')
    .replace(/\u2265/g, '\\ge ')
    .replace(/\u2260/g, '\\ne ')
    .replace(/\u00b1/g, '\\pm ')
    .replace(/\u222a/g, '\\cup ')
    .replace(/\u2205/g, '\\emptyset ')
    .replace(/\n/g, ' ');
  s = stripWrappers(s);
  s = s.replace(/\\displaystyle|\\textstyle/g, '');
  s = s.replace(/\\[dt]frac(?![A-Za-z])/g, '\\frac');
  // invisible delimiters first, then the sizing commands themselves
  s = s.replace(/\\(?:left|right)\s*\./g, '');
  s = s.replace(/\\(?:left|right|bigl|bigr|Bigl|Bigr|biggl|biggr|big|Big|bigg|Bigg)(?![A-Za-z])/g, '');
  // spacing commands, but not the row separator \\ of matrices
  s = s.replace(/\\(?:qquad|quad)(?![A-Za-z])|(?<!\\)\\[,;:!> ]|~/g, ' ');
  s = s.replace(/\{,\}/g, ',');
  s = s.replace(/\^\s*\{\s*\\circ\s*\}|\^\s*\\circ|\\circ|\\degree/g, '');
  s = s.replace(/\\\$|\$/g, '');
  s = s.replace(/\\%/g, '%');
  s = s.replace(/\\(?:leqslant|leq)(?![A-Za-z])/g, '\\le').replace(/\\(?:geqslant|geq)(?![A-Za-z])/g, '\\ge');
  s = s.replace(/\\neq(?![A-Za-z])/g, '\\ne');
  s = s.replace(/\\varnothing(?![A-Za-z])/g, '\\emptyset');
  s = s.replace(/\\(?:mathbb|mathbf)\s*\{\s*R\s*\}/g, '\\mathbb{R}');
  s = s.trim();
  // units: strip them repeatedly ("5\text{ cm}^2" -> "5")
  for (let k = 0; k < 3; k++) {
    const head = stripUnit(s.replace(/[.\s]+$/, ''));
    if (head === null) break;
    s = head.trim();
  }
  // "\text{ and }", " and ", " or " between answers separate them
  s = s.replace(new RegExp(`\\\\(?:${TEXT_COMMANDS})\\{\\s*(?:and|or)\\s*\\}`, 'g'), ',');
  // unwrap the remaining text-like commands
  for (let k = 0; k < 4; k++) s = s.replace(new RegExp(`\\\\(?:${TEXT_COMMANDS})\\s*\\{([^{}]*)\\}`, 'g'), '$1');
  s = s.replace(/\s+(?:and|or)\s+/g, ',');
  s = s.replace(/\\infinity|(?<![A-Za-z\\])(?:infinity|inf)(?![A-Za-z])/g, '\\infty');
  s = s.trim().replace(/[.;,\s]+$/, '');
  // "x \in [-2, 7]" -> "[-2, 7]"
  s = s.replace(/^[A-Za-z]\s*\\in\s*/, '');
  // "x = 5", "k = 3" (short left side, one equals sign) -> the right side
  const eq = s.split('=');
  if (eq.length === 2 && /^\s*\\?[A-Za-z]{1,2}(?:_\{?\w\}?)?\s*$/.test(eq[0]!) && eq[1]!.trim() !== '') s = eq[1]!;
  s = bracketTexArguments(s);
  // whitespace: keep one space only where it ends a command name before a letter ("\pi r")
  s = s.replace(/(\\[A-Za-z]+)?\s+/g, (_all, cmd: string | undefined) => (cmd ? cmd + ' ' : ''));
  s = s.replace(/(\\[A-Za-z]+) (?![A-Za-z])/g, '$1');
  s = stripWrappers(s);
  // thousands separators: "10,080", "11,111,111,100", "32,348.50"
  if (/^[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?%?$/.test(s)) s = s.replace(/,/g, '');
  // "(C)" as a multiple-choice answer is the letter
  const letter = /^\(([A-Z])\)$/.exec(s);
  if (letter) s = letter[1]!;
  // a single base subscript in braces: 52_{8} -> 52_8
  s = s.replace(/_\{(\w)\}/g, '_$1');
  return s;
}

// ---------------------------------------------------------------------------------------------------------------
// Structure

export type AnswerNode =
  | { k: 'leaf'; s: string }
  /** bracketed, ordered: tuples, points, intervals */
  | { k: 'seq'; open: '(' | '['; close: ')' | ']'; items: AnswerNode[] }
  /** bare comma-separated answers ("3, 5, 7") */
  | { k: 'list'; items: AnswerNode[] }
  /** \{a, b\} */
  | { k: 'set'; items: AnswerNode[] }
  /** A \cup B */
  | { k: 'union'; items: AnswerNode[] }
  | { k: 'matrix'; rows: AnswerNode[][] }
  /** an equation that is not "x = value" */
  | { k: 'eq'; lhs: AnswerNode; rhs: AnswerNode };

/**
 * The bracket depth change of the character at `i` and how many characters it spans: ( [ { open, ) ] } close, the
 * escaped braces `\{ \}` open and close (2 characters), any other escape is skipped whole (2 characters).
 */
function bracketAt(s: string, i: number): { depth: number; width: number } {
  const c = s[i]!;
  if (c === '\\') return { depth: s[i + 1] === '{' ? 1 : s[i + 1] === '}' ? -1 : 0, width: 2 };
  if (c === '(' || c === '[' || c === '{') return { depth: 1, width: 1 };
  if (c === ')' || c === ']' || c === '}') return { depth: -1, width: 1 };
  return { depth: 0, width: 1 };
}

/** Split at separators that are not inside any bracket or brace (`\\{ \\}` count as braces). */
export function splitTopLevel(s: string, sep: string | RegExp): string[] {
  const sticky = typeof sep === 'string' ? null : new RegExp(sep.source.replace(/^\^/, ''), 'y');
  const matchAt = (i: number): number => {
    if (sticky === null) return s.startsWith(sep as string, i) ? (sep as string).length : 0;
    sticky.lastIndex = i;
    const m = sticky.exec(s);
    return m ? Math.max(1, m[0].length) : 0;
  };
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    if (depth === 0) {
      const len = matchAt(i);
      if (len > 0) {
        parts.push(s.slice(start, i));
        start = i + len;
        i = start - 1;
        continue;
      }
    }
    const b = bracketAt(s, i);
    depth += b.depth;
    i += b.width - 1;
  }
  parts.push(s.slice(start));
  return parts;
}

/** Index of the bracket closing the one opened at 0 ( ( or [ closed by ) or ] ), or -1. */
function closingBracket(s: string): number {
  let depth = 0;
  for (let i = 0; i < s.length; i++) {
    const b = bracketAt(s, i);
    depth += b.depth;
    // Only a plain bracket closes it; an escaped brace \} is part of the content.
    if (b.depth < 0 && b.width === 1 && depth === 0) return i;
    i += b.width - 1;
  }
  return -1;
}

export interface StructureOptions {
  /** turn `a \pm b` into the two answers a + b and a - b */
  expandPm?: boolean;
}

/** Parse a normalised answer into its structure. */
export function parseStructure(canon: string, opts: StructureOptions = {}): AnswerNode {
  const s = canon.trim();
  const union = splitTopLevel(s, /^\\cup(?![A-Za-z])/);
  if (union.length > 1) return { k: 'union', items: union.map((p) => parseStructure(p, opts)) };
  const mat = /^\\begin\{([pbvB]?matrix|array)\}(?:\{[^}]*\})?([\s\S]*)\\end\{\1\}$/.exec(s);
  if (mat) {
    const rows = mat[2]!
      .split(/\\\\/)
      .map((r) => r.trim())
      .filter((r) => r !== '')
      .map((r) => r.split('&').map((c) => parseStructure(c, opts)));
    return { k: 'matrix', rows };
  }
  if (s.startsWith('\\{') && s.endsWith('\\}') && closingBracketOfSet(s) === s.length - 2) {
    const inner = s.slice(2, -2).trim();
    if (inner === '') return { k: 'set', items: [] };
    return { k: 'set', items: splitTopLevel(inner, ',').flatMap((p) => pmItems(p, opts)) };
  }
  if ((s.startsWith('(') || s.startsWith('[')) && (s.endsWith(')') || s.endsWith(']')) && closingBracket(s) === s.length - 1) {
    const inner = s.slice(1, -1);
    const parts = splitTopLevel(inner, ',');
    if (parts.length > 1)
      return {
        k: 'seq',
        open: s[0] as '(' | '[',
        close: s[s.length - 1] as ')' | ']',
        items: parts.map((p) => parseStructure(p, opts)),
      };
  }
  const parts = splitTopLevel(s, ',');
  if (parts.length > 1) return { k: 'list', items: parts.flatMap((p) => pmItems(p, opts)) };
  const eqParts = splitTopLevel(s, '=');
  if (eqParts.length === 2 && eqParts[0]!.trim() !== '' && eqParts[1]!.trim() !== '')
    return { k: 'eq', lhs: parseStructure(eqParts[0]!, opts), rhs: parseStructure(eqParts[1]!, opts) };
  if (opts.expandPm) {
    const pm = pmItems(s, opts);
    if (pm.length > 1) return { k: 'list', items: pm };
  }
  return { k: 'leaf', s };
}

function closingBracketOfSet(s: string): number {
  let depth = 0;
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '\\' && s[i + 1] === '{') {
      depth++;
      i++;
    } else if (s[i] === '\\' && s[i + 1] === '}') {
      depth--;
      if (depth === 0) return i;
      i++;
    } else if (s[i] === '\\') i++;
  }
  return -1;
}

/** `1\pm\sqrt{19}` -> [1+\sqrt{19}, 1-\sqrt{19}] when expanding; otherwise the parsed item itself. */
function pmItems(p: string, opts: StructureOptions): AnswerNode[] {
  const t = p.trim();
  if (opts.expandPm) {
    const pieces = splitTopLevel(t, /^\\(?:pm|mp)(?![A-Za-z])/);
    if (pieces.length === 2) {
      const head = pieces[0]!.trim();
      const tail = pieces[1]!.trim();
      const sub = splitTopLevel(tail.slice(1), /[+-]/).length > 1 ? `(${tail})` : tail;
      return [
        { k: 'leaf', s: head === '' ? tail : `${head}+${tail}` },
        { k: 'leaf', s: head === '' ? `-${sub}` : `${head}-${sub}` },
      ];
    }
  }
  return [parseStructure(t, { ...opts, expandPm: false })];
}
