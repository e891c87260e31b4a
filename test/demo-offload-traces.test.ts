/**
 * The small model's training traces for big/small composition (issue 17): the steps of the offloaded operations are
 * handed to the big model with SplitReason's tags, the prompt carries its hint, and nothing else changes; and the step
 * checker that chose those operations reads a trace's arithmetic right.
 */
import { describe, expect, it } from 'vitest';
import { generateTrace, generateTraces, traceRng } from '../src/demo/traces.js';
import { checkSteps, stepErrorTable } from '../src/demo/step-errors.js';
import { BIG_CLOSE, BIG_OPEN, OFFLOAD_HINT } from '../src/reasoning/compose/protocol.js';
import { zstMessages } from '../src/tasks/prompts.js';
import { InvalidInputError } from '../src/util/errors.js';

const plain = generateTraces(300, { seed: 4 });
const tagged = generateTraces(300, { seed: 4, trace: { offload: ['mul', 'div'] } });

describe('offloading traces', () => {
  it('put every line working out an offloaded operation, and only those, in spans, one per run of lines', () => {
    let spans = 0;
    const workLine = /^(?:[A-Z][^:\n]*: |Hmm, then [^:\n]*: |Wait, )?\d+ ([-+×÷]) \d+ (?:=|is) \d+(?:, not \d+)?\.$/;
    for (const t of tagged) {
      expect(t.thinking).not.toContain(`${BIG_CLOSE}${BIG_OPEN}`);
      const parts = t.thinking.split(BIG_OPEN);
      for (const part of parts.slice(1)) {
        const [inside, after] = part.split(BIG_CLOSE) as [string, string];
        expect(after).toBeDefined();
        // Whole lines, each working out a multiplication or division.
        expect(inside.endsWith('.\n')).toBe(true);
        for (const l of inside.slice(0, -1).split('\n')) expect(['×', '÷']).toContain(workLine.exec(l)?.[1]);
        spans++;
      }
      // Outside the spans, no multiplication or division is worked out (restating one in a spot check is not).
      const outside = parts.map((p, i) => (i === 0 ? p : p.split(BIG_CLOSE)[1]!)).join('\n');
      for (const l of outside.split('\n')) {
        const m = workLine.exec(l);
        if (m) expect(['+', '-']).toContain(m[1]);
      }
    }
    expect(spans).toBeGreaterThan(300);
  });

  it('put the hint line between problem and instruction, and are otherwise the plain traces', () => {
    const untag = (s: string) => s.split(BIG_OPEN).join('').split(BIG_CLOSE).join('');
    let same = 0;
    tagged.forEach((t, i) => {
      const [problem, instruction] = zstMessages(t.problem.text)[0]!.content.split('\n');
      expect(t.prompt).toBe(`${problem}\n${OFFLOAD_HINT}\n${instruction}`);
      // The same random choices: without tags the first pass is the plain trace's, and most traces are the plain ones
      // (the others leave out rounds the longer tags do not leave room for).
      const firstPass = (s: string) => s.slice(0, s.indexOf('\n\n'));
      expect(firstPass(untag(t.thinking))).toBe(firstPass(plain[i]!.thinking));
      if (untag(t.completion) === plain[i]!.completion) same++;
      expect(t.finalAnswer === t.problem.answer).toBe(t.correct);
    });
    expect(same).toBeGreaterThan(120);
    expect(() => generateTrace(tagged[0]!.problem, traceRng(1, tagged[0]!.problem), { offload: ['pow' as never] })).toThrow(InvalidInputError);
  });

  it('the step checker finds every step, with the slips the generator recorded', () => {
    for (const t of plain.slice(0, 100)) {
      const steps = checkSteps(t.completion);
      const firstPass = steps.filter((s) => s.firstPass);
      expect(firstPass).toHaveLength(t.problem.ops.length);
      const slipped = t.slips.filter((s) => s.round === -1 && s.kind === 'slip').map((s) => s.step);
      expect(firstPass.map((s, i) => (s.right ? -1 : i)).filter((i) => i >= 0)).toEqual(slipped);
    }
    // Tags do not hide steps from it.
    const untagged = tagged.find((t, i) => t.completion.includes(BIG_OPEN) && t.completion.split(BIG_OPEN).join('').split(BIG_CLOSE).join('') === plain[i]!.completion)!;
    expect(checkSteps(untagged.completion)).toEqual(checkSteps(plain[tagged.indexOf(untagged)]!.completion));
    const table = stepErrorTable(plain.flatMap((t) => checkSteps(t.completion)));
    expect(table[0]!.group).toBe('all');
    const kinds = table.slice(1, 5);
    expect(kinds.map((r) => r.group).sort()).toEqual(['add', 'div', 'mul', 'sub']);
    // Sorted by error rate, highest first; the generator slips more on multiplications and divisions.
    expect(kinds.map((r) => r.errorRate)).toEqual([...kinds.map((r) => r.errorRate)].sort((a, b) => b - a));
  });
});
