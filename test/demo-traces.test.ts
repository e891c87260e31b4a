import { describe, expect, it } from 'vitest';
import { applyOp, generateProblems, opSymbol, type OpKind } from '../src/tasks/demo/problems.js';
import { generateTrace, generateTraces, parseCompletion, traceRng, THINK_END } from '../src/demo/traces.js';
import { formatTraceStats, summarizeCompletion, thinkingTokenSplit, traceStatistics } from '../src/demo/trace-stats.js';
import { buildDemoTokenizer } from '../src/demo/corpus.js';
import { lastBoxedContent } from '../src/tasks/answer-extract.js';
import { findCueEvents } from '../src/reasoning/lynx/cues.js';
import { zstMessages } from '../src/tasks/prompts.js';
import { Rng } from '../src/util/rng.js';
import { InvalidInputError } from '../src/util/errors.js';

const KIND_OF: Record<string, OpKind> = { [opSymbol('add')]: 'add', [opSymbol('sub')]: 'sub', [opSymbol('mul')]: 'mul', [opSymbol('div')]: 'div' };
const ARITH = /(\d+) ([-+×÷]) (\d+) (=|is) (\d+)(?:, not (\d+))?/g;

const traces = generateTraces(1500, { seed: 21 });

describe('demo traces', () => {
  it('are reproducible: the same seed and problem give the same trace, whatever the order', () => {
    const again = generateTraces(1500, { seed: 21 });
    expect(again.map((t) => t.completion)).toEqual(traces.map((t) => t.completion));
    const p = traces[17]!.problem;
    expect(generateTrace(p, traceRng(21, p)).completion).toBe(traces[17]!.completion);
    const other = generateTraces(50, { seed: 22 });
    expect(other.map((t) => t.completion)).not.toEqual(traces.slice(0, 50).map((t) => t.completion));
  });

  it('use the zst prompt and the R1 layout', () => {
    for (const t of traces) {
      expect(t.prompt).toBe(zstMessages(t.problem.text)[0]!.content);
      expect(t.completion).toBe(`${t.thinking}${THINK_END}${t.ending}`);
      expect(t.thinking.endsWith('.\n\n')).toBe(true);
      expect(t.ending).toMatch(/^( |\n\n)Final Answer: \\boxed\{\d+\}$/);
      expect(t.completion.split(THINK_END)).toHaveLength(2);
      expect(lastBoxedContent(t.completion)).toBe(String(t.finalAnswer));
    }
  });

  it('parse back from text alone: final answer, candidates, cue words', () => {
    for (const t of traces) {
      const parsed = parseCompletion(t.completion);
      expect(parsed.thinking).toBe(t.thinking);
      expect(parsed.finalAnswer).toBe(t.finalAnswer);
      expect(parsed.candidates).toEqual(t.candidates.map(({ value, start, end }) => ({ value, start, end })));
      expect(parsed.cues).toEqual(t.cues.map(({ word, start, end }) => ({ word, start, end })));
      // The first candidate comes before any verification round; the last one is the final answer.
      expect(t.candidates[0]!.round).toBe(-1);
      expect(t.candidates.at(-1)!.value).toBe(t.finalAnswer);
      if (t.rounds.length > 0) expect(t.candidates[0]!.end).toBeLessThan(t.rounds[0]!.start);
    }
  });

  it('label candidates and answers correct exactly when they match the recomputed answer', () => {
    for (const t of traces) {
      let x = t.problem.start;
      for (const op of t.problem.ops) x = applyOp(op.kind, op.operand, x)!;
      expect(t.problem.answer).toBe(x);
      expect(t.correct).toBe(t.finalAnswer === x);
      for (const c of t.candidates) expect(c.correct).toBe(c.value === x);
    }
  });

  it('write only exact arithmetic, except slips that are recorded', () => {
    let lines = 0;
    let wrongLines = 0;
    for (const t of traces) {
      const wrongValues = new Set(t.slips.map((s) => s.wrong));
      for (const m of t.thinking.matchAll(ARITH)) {
        const [, a, sym, b, verb, c, not] = m;
        const exact = applyOp(KIND_OF[sym!]!, Number(b), Number(a));
        lines++;
        if (Number(c) !== exact) wrongLines++;
        if (verb === 'is') {
          // "Wait, a op b is c, not d.": a fix (c exact, d a recorded wrong value) or a false fix (c recorded).
          expect(not).toBeDefined();
          if (Number(c) === exact) expect(wrongValues.has(Number(not))).toBe(true);
          else expect(wrongValues.has(Number(c))).toBe(true);
        } else if (Number(c) !== exact) {
          // A wrong line repeats a recorded slip; working backwards may mirror one (its input is then a slip too).
          const mirrored = t.rounds.some((r) => r.kind === 'backward' && m.index! >= r.start && m.index! < r.end);
          expect(wrongValues.has(Number(c)) || (mirrored && wrongValues.has(Number(a)))).toBe(true);
        }
      }
    }
    expect(lines).toBeGreaterThan(traces.length * 5);
    expect(wrongLines).toBeGreaterThan(100);
  });

  it('fix flagged slips in a later round with a cue, and are right exactly when no slip is left', () => {
    let fixed = 0;
    for (const t of traces) {
      for (const s of t.slips) {
        if (s.fixedInRound === null) continue;
        fixed++;
        expect(s.fixedInRound).toBeGreaterThan(s.round);
        const round = t.rounds[s.fixedInRound]!;
        const fixCues = t.cues.filter((c) => c.role === 'fix' && c.start >= round.start && c.end <= round.end);
        expect(fixCues.length).toBeGreaterThan(0);
        expect(round.changed || t.candidates.some((c) => c.round === s.fixedInRound)).toBe(true);
      }
      const open = t.slips.filter((s) => s.fixedInRound === null);
      if (open.length === 0) expect(t.correct).toBe(true);
      if (open.length === 1) expect(t.correct).toBe(false);
    }
    expect(fixed).toBeGreaterThan(50);
  });

  it('open every verification round with a cue word right after a candidate and a blank line', () => {
    for (const t of traces) {
      for (const r of t.rounds) {
        expect(t.thinking.slice(r.start).startsWith(r.cue)).toBe(true);
        expect(t.thinking.slice(0, r.start).endsWith('.\n\n')).toBe(true);
        const before = t.candidates.filter((c) => c.end <= r.start).at(-1)!;
        expect(t.thinking.slice(before.end, r.start)).toBe('.\n\n');
      }
      // The natural end of thinking follows the same text, so a forced exit at a round's cue is in distribution.
      expect(t.thinking.slice(t.candidates.at(-1)!.end)).toBe('.\n\n');
    }
  });

  it('agree with the project cue detector on the tokenized thinking', () => {
    const tok = buildDemoTokenizer();
    for (const t of traces.slice(0, 300)) {
      const pieces = tok.encode(t.completion).map((id) => tok.decode([id]));
      const hits = findCueEvents(pieces);
      expect(hits.map((h) => h.word)).toEqual(t.cues.map((c) => c.word));
      expect(hits.map((h) => h.charStart)).toEqual(t.cues.map((c) => c.start));
    }
  });

  it('meet the targets: accuracy high on level 1 and falling, much thinking after the first correct answer', () => {
    const many = generateTraces(3000, { seed: 4 });
    const tok = buildDemoTokenizer();
    const stats = traceStatistics(many, (s) => tok.encode(s).length);
    const acc = stats.byLevel.map((l) => l.accuracy);
    expect(stats.byLevel.map((l) => l.level)).toEqual([1, 2, 3, 4, 5]);
    expect(acc[0]!).toBeGreaterThanOrEqual(0.9);
    expect(acc[0]!).toBeGreaterThan(acc[2]!);
    expect(acc[2]!).toBeGreaterThan(acc[4]!);
    expect(acc[0]! - acc[4]!).toBeGreaterThan(0.15);
    for (let i = 1; i < 5; i++) expect(acc[i]!).toBeLessThanOrEqual(acc[i - 1]! + 0.02);
    expect(stats.meanShareAfterFirstCorrect).toBeGreaterThanOrEqual(0.4);
    // Both ways early exit can go wrong or right happen: first answer wrong then fixed, and mostly confirmation.
    expect(stats.wrongThenRight).toBeGreaterThan(0.08);
    expect(stats.rightThenWrong).toBeGreaterThan(0);
    expect(stats.slipRate).toBeGreaterThan(0.15);
    expect(stats.fixRate).toBeGreaterThan(0.4);
    expect(stats.fixRate).toBeLessThan(0.9);
    expect(stats.meanCuesPerTrace).toBeGreaterThan(2);
    expect(Object.keys(stats.cuesByWord).sort()).toEqual(['Alternatively', 'Hmm', 'Wait']);
    expect(formatTraceStats(stats)).toContain('share of thinking after the first correct answer');
  });

  it('measure a completion from its text alone as from the generator marks', () => {
    const tok = buildDemoTokenizer();
    const count = (s: string) => tok.encode(s).length;
    for (const t of traces.slice(0, 300)) {
      const fromText = summarizeCompletion(t.completion, t.problem.answer, count);
      const fromMarks = thinkingTokenSplit(t, count);
      expect(fromText.thinkingTokens).toBe(fromMarks.thinking);
      expect(fromText.afterFirstCorrect).toBe(fromMarks.afterFirstCorrect);
      expect(fromText.correct).toBe(t.correct);
      expect(fromText.firstCandidateCorrect).toBe(t.candidates[0]!.correct);
      expect(fromText.cues).toBe(t.cues.length);
      expect(fromText.reachedCorrect).toBe(fromMarks.firstCorrectIndex >= 0);
      // Token counts are additive at the cut: the thinking splits cleanly at a round boundary.
      if (fromMarks.firstCorrectIndex >= 0) expect(fromMarks.afterFirstCorrect).toBeLessThan(fromMarks.thinking);
    }
    const cut = summarizeCompletion('So the answer is 5.\n\nWait', 5, count);
    expect(cut.finalAnswer).toBeNull();
    expect(cut.correct).toBe(false);
    expect(cut.afterFirstCorrect).toBe(1);
    expect(cut.reachedCorrect).toBe(true);
    expect(summarizeCompletion('So the answer is 4.\n\nWait', 5, count).reachedCorrect).toBe(false);
  });

  it('reject unusable options', () => {
    const p = generateProblems(1, { seed: 1 })[0]!;
    expect(() => generateTrace(p, new Rng(1), { falseFixPerRound: 2 })).toThrow(InvalidInputError);
    expect(() => generateTrace(p, new Rng(1), { roundWeights: [] })).toThrow(InvalidInputError);
  });
});

