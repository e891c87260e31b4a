/**
 * Final-answer extraction from generated text.
 *
 * Math: the last complete, brace-balanced `\boxed{...}` (or `\fbox{...}`, or `\boxed 5`), else the text after the
 * last "the answer is" / "Final Answer:", else the last number. Multiple choice: the letter (boxed, then an
 * "answer is (C)" phrase, then a parenthesised or line-leading letter, then the text of a choice).
 */
import type { Choice } from './problem.js';

export type ExtractionMethod = 'boxed' | 'phrase' | 'number' | 'letter' | 'choice-text';

export interface Extraction {
  answer: string | null;
  method: ExtractionMethod | null;
}

export interface ExtractOptions {
  /** 'boxed': only a boxed answer counts (DEER's extraction); 'default': boxed, phrase, then last number */
  fallback?: 'default' | 'boxed';
}

const BOX_COMMANDS = ['\\boxed', '\\fbox'];

/**
 * Content of the brace group opening at `open` (which must be `{`), or null if it never closes.
 * Escaped braces (`\{`, `\}`) are content, not grouping.
 */
export function braceGroup(text: string, open: number): { content: string; end: number } | null {
  if (text[open] !== '{') return null;
  let depth = 0;
  for (let i = open; i < text.length; i++) {
    const c = text[i];
    if (c === '\\') {
      i++; // skip the escaped character (\{, \}, \\)
      continue;
    }
    if (c === '{') depth++;
    else if (c === '}') {
      depth--;
      if (depth === 0) return { content: text.slice(open + 1, i), end: i + 1 };
    }
  }
  return null;
}

/** Every complete boxed answer in order of appearance (nested boxes are reported once, as the outer one). */
export function allBoxed(text: string): string[] {
  const found: { start: number; end: number; content: string }[] = [];
  for (const cmd of BOX_COMMANDS) {
    let from = 0;
    for (;;) {
      const at = text.indexOf(cmd, from);
      if (at < 0) break;
      from = at + cmd.length;
      const after = text[at + cmd.length];
      // \boxedsomething is another command, not a box
      if (after !== undefined && /[A-Za-z]/.test(after)) continue;
      const r = boxedAt(text, at + cmd.length);
      if (r) found.push({ start: at, end: r.end, content: r.content });
    }
  }
  found.sort((a, b) => a.start - b.start);
  const outer: typeof found = [];
  for (const f of found) {
    const last = outer[outer.length - 1];
    if (last && f.start < last.end) continue;
    outer.push(f);
  }
  return outer.map((f) => f.content.trim());
}

/** Parse the argument of a box command starting right after its name. */
function boxedAt(text: string, i: number): { content: string; end: number } | null {
  let j = i;
  while (j < text.length && (text[j] === ' ' || text[j] === '\t')) j++;
  if (text[j] === '{') return braceGroup(text, j);
  if (j === i) return null; // "\boxed" glued to something that is not a brace
  // "\boxed 5": up to the end of the math, the line or the sentence
  const m = /^[^\s$]+/.exec(text.slice(j));
  if (!m) return null;
  const content = m[0].replace(/[.,;]+$/, '');
  return content ? { content, end: j + m[0].length } : null;
}

/** The last complete boxed answer, or null. */
export function lastBoxedContent(text: string): string | null {
  const all = allBoxed(text);
  return all.length > 0 ? all[all.length - 1]! : null;
}

const PHRASE_RE = /(?:final answer\s*(?:is|:)|the (?:final )?answer is|answer\s*:)/gi;

/** The answer after the last "the answer is" / "Final Answer:" phrase, up to the end of its line/sentence. */
export function answerAfterPhrase(text: string): string | null {
  let last: RegExpExecArray | null = null;
  for (let m = PHRASE_RE.exec(text); m; m = PHRASE_RE.exec(text)) last = m;
  PHRASE_RE.lastIndex = 0;
  if (!last) return null;
  let rest = text.slice(last.index + last[0].length);
  // A boxed answer right after the phrase is the answer.
  const boxed = lastBoxedContent(rest.split('\n')[0] ?? '');
  if (boxed !== null) return boxed;
  rest = rest.replace(/^[\s:*]+/, '');
  let line = (rest.split('\n')[0] ?? '').trim();
  // "$5$. I hope it is correct." (Minerva style): the math, else up to the end of the sentence.
  const math = /^\$+([^$]+)\$+/.exec(line) ?? /^\\\((.+?)\\\)/.exec(line) ?? /^\\\[(.+?)\\\]/.exec(line);
  if (math) line = math[1]!;
  else line = line.replace(/\.\s+[A-Z].*$/, '');
  line = line.replace(/\*\*/g, '').replace(/[.\s]+$/, '').trim();
  return line === '' ? null : line;
}

const NUMBER_RE = /-?\d{1,3}(?:,\d{3})+(?:\.\d+)?|-?\d+(?:\.\d+)?(?:\s*\/\s*\d+)?|-?\.\d+/g;

/** The last number in the text (integers with thousands separators, decimals, simple a/b fractions). */
export function lastNumber(text: string): string | null {
  let last: string | null = null;
  for (const m of text.matchAll(NUMBER_RE)) last = m[0];
  return last === null ? null : last.replace(/\s+/g, '');
}

/** Math answer of a generation. */
export function extractMathAnswer(text: string, opts: ExtractOptions = {}): Extraction {
  const boxed = lastBoxedContent(text);
  if (boxed !== null) return { answer: boxed, method: 'boxed' };
  if (opts.fallback === 'boxed') return { answer: null, method: null };
  const phrase = answerAfterPhrase(text);
  if (phrase !== null) return { answer: phrase, method: 'phrase' };
  const num = lastNumber(text);
  if (num !== null) return { answer: num, method: 'number' };
  return { answer: null, method: null };
}

function labelsOf(choices: readonly Choice[] | undefined): string[] {
  return choices && choices.length > 0 ? choices.map((c) => c.label.toUpperCase()) : ['A', 'B', 'C', 'D', 'E'];
}

/** The choice letter named by a short answer such as `C`, `(C)`, `\text{C}`, `C. bank` or `bank`. */
export function letterFromAnswer(answer: string, choices?: readonly Choice[]): string | null {
  const labels = labelsOf(choices);
  let s = answer.trim();
  for (let k = 0; k < 3; k++) s = s.replace(/\\(?:text|textbf|mathrm|mathbf)\s*\{([^{}]*)\}/g, '$1');
  s = s.replace(/[$*]/g, '').trim();
  const m = /^\(?\s*([A-Za-z])\s*\)?(?:$|[.:)\s])/.exec(s);
  if (m && labels.includes(m[1]!.toUpperCase()) && (s.length === m[0].length || m[1] === m[1]!.toUpperCase()))
    return m[1]!.toUpperCase();
  if (choices) {
    const low = s.toLowerCase().replace(/[.\s]+$/, '');
    const hit = choices.find((c) => c.text.toLowerCase() === low);
    if (hit) return hit.label.toUpperCase();
  }
  return null;
}

/** Multiple-choice letter of a generation. */
export function extractChoiceAnswer(text: string, choices?: readonly Choice[], opts: ExtractOptions = {}): Extraction {
  const labels = labelsOf(choices);
  const boxes = allBoxed(text);
  for (let i = boxes.length - 1; i >= 0; i--) {
    const l = letterFromAnswer(boxes[i]!, choices);
    if (l) return { answer: l, method: 'boxed' };
  }
  if (opts.fallback === 'boxed') return { answer: null, method: null };
  const cls = labels.join('');
  const phrase = new RegExp(
    `(?:answer|choice|option)\\s*(?:is|:)?\\s*(?:option\\s*)?\\(?\\s*([${cls}])\\s*\\)?(?![A-Za-z])`,
    'g',
  );
  let last: string | null = null;
  for (const m of text.matchAll(phrase)) last = m[1]!;
  if (last) return { answer: last, method: 'phrase' };
  const paren = new RegExp(`\\(([${cls}])\\)|^\\s*([${cls}])[.)](?=\\s|$)`, 'gm');
  for (const m of text.matchAll(paren)) last = (m[1] ?? m[2])!;
  if (last) return { answer: last, method: 'letter' };
  if (choices) {
    // The choice whose text appears last in the final part of the text.
    const tail = text.slice(-600).toLowerCase();
    let best: { at: number; label: string } | null = null;
    for (const c of choices) {
      const at = tail.lastIndexOf(c.text.toLowerCase());
      if (at >= 0 && (!best || at > best.at)) best = { at, label: c.label.toUpperCase() };
    }
    if (best) return { answer: best.label, method: 'choice-text' };
  }
  return { answer: null, method: null };
}

/** Answer of a generation for a problem: the letter when it has choices, else the math answer. */
export function extractAnswer(text: string, problem: { choices?: readonly Choice[] }, opts: ExtractOptions = {}): Extraction {
  return problem.choices && problem.choices.length > 0
    ? extractChoiceAnswer(text, problem.choices, opts)
    : extractMathAnswer(text, opts);
}
