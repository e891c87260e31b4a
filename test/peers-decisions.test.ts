/**
 * The peer methods' decision rules as pure functions, on hand-computed cases: DEER's confidence and gating, DeepConf's
 * confidences, threshold percentile and weighted vote, Dynasor's answer agreement with hesitation words, and the DEER
 * rollout format.
 */
import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DEER_DEFAULTS,
  LiteralCueFinder,
  deerConfidence,
  deerExitReason,
  deerThinkLimit,
} from '../src/reasoning/peers/deer.js';
import {
  GroupConfidence,
  deepConfExtract,
  deepConfThreshold,
  groupConfidences,
  lowestGroupConfidence,
  percentile,
  shouldStopTrace,
  tokenConfidence,
  variantPercentile,
  weightedMajorityVote,
} from '../src/reasoning/peers/deepconf.js';
import {
  DYNASOR_DEFAULTS,
  dynasorShouldExit,
  firstExitProbe,
  isCertain,
  obtainAnswer,
  type ProbeRecord,
} from '../src/reasoning/peers/dynasor.js';
import { parseDeerRollouts, readDeerRollouts, toDeerRows, writeDeerRollouts, type DeerEventResult } from '../src/reasoning/lynx/deer-rollouts.js';
import { answerTextOf, traceSeed } from '../src/reasoning/method.js';
import type { RolloutResult } from '../src/reasoning/rollout.js';
import { InvalidInputError } from '../src/util/errors.js';

describe('DEER', () => {
  it('scores a trial answer by the mean max-token probability from its second token on', () => {
    // First token (the "{" after \boxed) is skipped, as DEER's calculate_average_max_prob_from_logprobs does.
    const probs = [0.1, 0.9, 0.8, 1.0];
    expect(deerConfidence(probs)).toBeCloseTo(0.9, 12);
    expect(deerConfidence(probs, 'avg2')).toBeCloseTo(Math.cbrt(0.72), 12);
    expect(deerConfidence(probs, 'min')).toBe(0.8);
    expect(deerConfidence([0.99])).toBe(0);
    expect(deerConfidence([])).toBe(0);
    expect(DEER_DEFAULTS.aggregation).toBe('avg1');
  });

  it('exits when confidence is strictly above the threshold, or near the think limit whatever the confidence', () => {
    const opts = { threshold: 0.95, thinkLimit: 1000 };
    expect(deerExitReason(0.96, 100, opts)).toBe('confident');
    expect(deerExitReason(0.95, 100, opts)).toBeNull(); // DEER: pred_prob > threshold
    expect(deerExitReason(0.2, 950, opts)).toBe('think-limit'); // >= think_limit - 50
    expect(deerExitReason(0.2, 949, opts)).toBeNull();
    expect(deerThinkLimit(16384, 0.9)).toBe(14745);
    expect(deerThinkLimit(100, 1)).toBe(100);
  });

  it('finds judge points like vLLM stop strings: literal, case-sensitive, inside words, split over tokens', () => {
    const f = new LiteralCueFinder(['Wait']);
    const pieces = ['Let', ' me', ' check', '.', '\n\nWait', ',', ' so', ' wait', ' Waiting'];
    const hits = pieces.map((p) => f.push(p));
    expect(hits.map((h) => h !== null)).toEqual([false, false, false, false, true, false, false, false, true]);
    expect(hits[4]).toEqual({ cue: 'Wait', charStart: 15, tokenIndex: 4, prefix: '\n\n' });
    expect(hits[8]).toMatchObject({ tokenIndex: 8, prefix: ' ' });

    // A cue split over tokens (and an empty piece from a split UTF-8 character) is found at the token completing it,
    // and the judge point is before the token holding its first letter.
    const g = new LiteralCueFinder(['Wait', 'Alternatively']);
    expect(g.push('So')).toBeNull();
    expect(g.push(' W')).toBeNull();
    expect(g.push('')).toBeNull();
    expect(g.push('ait')).toEqual({ cue: 'Wait', charStart: 3, tokenIndex: 1, prefix: ' ' });
    expect(g.push(' Alternatively Wait')).toEqual({ cue: 'Alternatively', charStart: 8, tokenIndex: 4, prefix: ' ' });
    // The second cue in the same token is reported with the next token.
    expect(g.push('.')).toEqual({ cue: 'Wait', charStart: 22, tokenIndex: 4, prefix: ' Alternatively ' });
    expect(g.push('.')).toBeNull();
    expect(() => new LiteralCueFinder([''])).toThrow(InvalidInputError);
  });
});

describe('DeepConf', () => {
  it('token confidence is minus the mean top-k log-probability', () => {
    expect(tokenConfidence([-1, -2, -3])).toBe(2);
    expect(tokenConfidence([])).toBe(0);
  });

  it('group confidence: sliding window means, the lowest full window, the mean of all for short traces', () => {
    expect(groupConfidences([1, 2, 3, 4, 5], 2)).toEqual([1.5, 2.5, 3.5, 4.5]);
    expect(groupConfidences([1, 2, 3, 4, 5], 10)).toEqual([3]);
    expect(groupConfidences([], 4)).toEqual([0]);
    expect(lowestGroupConfidence([5, 4, 3, 0, 9, 9], 3)).toBeCloseTo(7 / 3, 12);

    const g = new GroupConfidence(3);
    for (const c of [5, 4]) g.push(c);
    expect(g.full).toBe(false);
    expect(g.mean).toBe(4.5);
    expect(g.lowest).toBe(4.5); // shorter than a window: the mean of all
    expect(shouldStopTrace(g, 100)).toBe(false); // never stops on a partial window
    g.push(3);
    expect(g.full).toBe(true);
    expect(g.mean).toBe(4);
    expect(shouldStopTrace(g, 4)).toBe(false); // strictly below
    expect(shouldStopTrace(g, 4.01)).toBe(true);
    g.push(0);
    expect(g.mean).toBeCloseTo(7 / 3, 12);
    for (const c of [9, 9]) g.push(c);
    expect(g.lowest).toBeCloseTo(7 / 3, 12);
    expect(g.count).toBe(6);
  });

  it('threshold: numpy percentile with linear interpolation; low = 90th, high = 10th', () => {
    expect(percentile([4, 1, 3, 2], 90)).toBeCloseTo(3.7, 12); // rank 0.9 * 3 = 2.7
    expect(percentile([4, 1, 3, 2], 10)).toBeCloseTo(1.3, 12);
    expect(percentile([7], 90)).toBe(7);
    expect(percentile([1, 2], 100)).toBe(2);
    expect(variantPercentile('low')).toBe(90);
    expect(variantPercentile('high')).toBe(10);
    // 16 warm-up traces 1..16: the 90th percentile keeps the top 10% (2 of 16 are at or above 14.5).
    const warm = Array.from({ length: 16 }, (_, i) => i + 1);
    const low = deepConfThreshold(warm, 90);
    expect(low).toBeCloseTo(14.5, 12);
    expect(warm.filter((c) => c >= low).length).toBe(2);
    expect(deepConfThreshold(warm, 10)).toBeCloseTo(2.5, 12);
    expect(() => percentile([], 50)).toThrow(InvalidInputError);
  });

  it('votes by summed confidence; the first answer wins a tie; no answers, no vote', () => {
    const v = weightedMajorityVote(['a', 'b', 'a', 'c', null], [1, 3, 1.5, 0.2, 9]);
    expect(v.answer).toBe('b');
    expect(v.weight).toBe(3);
    expect(v.total).toBeCloseTo(5.7, 12);
    expect(weightedMajorityVote(['a', 'b', 'a'], [1, 3, 2.5]).answer).toBe('a');
    expect(weightedMajorityVote(['x', 'y'], [1, 1]).answer).toBe('x');
    expect(weightedMajorityVote([null], [1]).answer).toBeNull();
    // A key groups notations.
    expect(weightedMajorityVote(['1/2', '0.5', '3'], [1, 1, 1.5], (a) => (a === '0.5' ? '1/2' : a)).answer).toBe('1/2');
  });

  it('extracts answers like its helper: the last boxed, brace-matched, or up to $', () => {
    expect(deepConfExtract('so \\boxed{\\frac{1}{2}} done')).toBe('\\frac{1}{2}');
    expect(deepConfExtract('\\boxed{1} then \\boxed{ 2 }')).toBe('2');
    expect(deepConfExtract('$\\boxed 5$ text')).toBe('5');
    expect(deepConfExtract('\\boxed{12')).toBe('12');
    expect(deepConfExtract('ends with boxed')).toBe('');
    expect(deepConfExtract('no answer')).toBeNull();
  });
});

describe('Dynasor-CoT', () => {
  it('takes the answer up to the first unmatched brace', () => {
    expect(obtainAnswer('42}\n\\]')).toBe('42');
    expect(obtainAnswer('\\frac{1}{2}} more')).toBe('\\frac{1}{2}');
    expect(obtainAnswer('never closed')).toBe('');
    expect(obtainAnswer('}')).toBe('');
  });

  it('hesitation words are lowercase substrings anywhere in the probe text', () => {
    expect(isCertain('42}\n\\]\n\nSo the answer is 42.')).toBe(true);
    expect(isCertain('41}\n\\]\n\nWait, let me check')).toBe(false);
    expect(isCertain('42} is not right')).toBe(false); // "no" inside "not", as in Dynasor
    expect(isCertain('HMM 42}')).toBe(false);
    expect(isCertain('Okay')).toBe(false);
    expect(isCertain('42}', ['zzz'])).toBe(true);
  });

  it('exits when the last N answers agree, are non-empty and certain', () => {
    const p = (answer: string, certain = true): ProbeRecord => ({ answer, certain });
    expect(dynasorShouldExit([p('42')], 2)).toBe(false);
    expect(dynasorShouldExit([p('42'), p('42')], 2)).toBe(true);
    expect(dynasorShouldExit([p('42'), p(' 4 2')], 2)).toBe(true); // default equality ignores white space
    expect(dynasorShouldExit([p('42', false), p('42')], 2)).toBe(false);
    expect(dynasorShouldExit([p('42'), p('42', false)], 2)).toBe(false);
    expect(dynasorShouldExit([p(''), p('')], 2)).toBe(false);
    expect(dynasorShouldExit([p('41'), p('42'), p('42')], 2)).toBe(true);
    expect(dynasorShouldExit([p('41'), p('42'), p('42')], 3)).toBe(false);
    expect(dynasorShouldExit([p('42'), p('42')], Infinity)).toBe(false);
    const num = (s: string) => (s.includes('/') ? Number(s.split('/')[0]) / Number(s.split('/')[1]) : Number(s));
    expect(dynasorShouldExit([p('0.5'), p('1/2')], 2, (a, b) => num(a) === num(b))).toBe(true);
    const history = [p('7'), p('8', false), p('8'), p('8'), p('8')];
    expect(firstExitProbe(history, 1)).toBe(0);
    expect(firstExitProbe(history, 2)).toBe(3);
    expect(firstExitProbe(history, 3)).toBe(4);
    expect(firstExitProbe(history, 4)).toBe(-1);
    expect(DYNASOR_DEFAULTS.interval).toBe(32);
    expect(DYNASOR_DEFAULTS.agreement).toBe(2);
  });
});

describe('DEER rollout format', () => {
  it('reads DEER rows and the alternative field names, and names the line of a bad row', () => {
    const text = [
      JSON.stringify({ question: 'Q1', generated_responses: ['r1', 'r1b'], gold_answer: '1', too_long: 0, high_prob: 1 }),
      '',
      JSON.stringify({ problem: 'Q2', generated_response: 'r2', answer: 2 }),
    ].join('\n');
    const rows = parseDeerRollouts(text);
    expect(rows.map((r) => [r.index, r.question, r.gold, r.response])).toEqual([
      [0, 'Q1', '1', 'r1'],
      [1, 'Q2', '2', 'r2'],
    ]);
    expect(parseDeerRollouts(text, 'x', 1)).toHaveLength(1);
    expect(() => parseDeerRollouts('{"question":"q"}\n{bad', 'f.jsonl')).toThrow(/f\.jsonl:1: no "generated_responses"/);
    expect(() => parseDeerRollouts('{"question":"q","generated_responses":["a"]}\n{bad', 'f.jsonl')).toThrow(/f\.jsonl:2: malformed/);
  });

  it('writes exited rows with LYNX flags and kept rows with their own, and reads them back', () => {
    const rows = parseDeerRollouts(
      [
        JSON.stringify({ question: 'Q1', generated_responses: ['long'], gold_answer: '1', too_long: 1, thinking_steps: 3, rep_end: 0, high_prob: 0, regular_end: 0 }),
        JSON.stringify({ question: 'Q2', generated_responses: ['long2'], gold_answer: '2' }),
      ].join('\n'),
    );
    const counts = { reasoning: 3, exitCue: 2, answer: 1, total: 6, decoded: 4, prefilled: 7 };
    const results: DeerEventResult[] = [
      { rollout: rows[0]!, events: [], exitEvent: null, baselineTokens: 9, tokens: { reasoning: 9, exitCue: 0, answer: 0, total: 9, decoded: 9, prefilled: 5 }, response: 'long' },
      { rollout: rows[1]!, events: [], exitEvent: 0, baselineTokens: 9, tokens: counts, response: 'short \\boxed{2}' },
    ];
    const out = toDeerRows(results);
    expect(out[0]).toEqual({ question: 'Q1', generated_responses: ['long'], gold_answer: '1', too_long: 1, thinking_steps: 3, rep_end: 0, high_prob: 0, regular_end: 0 });
    expect(out[1]).toEqual({ question: 'Q2', generated_responses: ['short \\boxed{2}'], gold_answer: '2', too_long: 0, thinking_steps: 0, rep_end: 0, high_prob: 0, regular_end: 1 });
    const dir = mkdtempSync(join(tmpdir(), 'lynx-deer-'));
    try {
      const path = join(dir, 'out.jsonl');
      writeDeerRollouts(path, out);
      expect(readFileSync(path, 'utf8').trim().split('\n')).toHaveLength(2);
      expect(readDeerRollouts(path).map((r) => r.response)).toEqual(['long', 'short \\boxed{2}']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('method helpers', () => {
  it('seeds depend on seed, problem and trace only', () => {
    expect(traceSeed({ seed: 1 }, 'p1')).toBe(traceSeed({ seed: 1 }, 'p1', 0));
    expect(traceSeed({ seed: 1 }, 'p1')).not.toBe(traceSeed({ seed: 2 }, 'p1'));
    expect(traceSeed({ seed: 1 }, 'p1')).not.toBe(traceSeed({ seed: 1 }, 'p2'));
    expect(traceSeed({ seed: 1 }, 'p1', 1)).not.toBe(traceSeed({ seed: 1 }, 'p1', 2));
  });

  it('the answer text puts the exit cue back in front of a forced answer', () => {
    const r = (end: RolloutResult['end'], exitCue: number, answerText: string, text = 'thinking'): RolloutResult => ({
      text,
      tokens: [],
      end,
      answerText,
      tokenCounts: { reasoning: 1, exitCue, answer: 1, total: 2 + exitCue, decoded: 2, prefilled: exitCue },
      wallMs: 0,
    });
    expect(answerTextOf(r('exit', 3, '42}'), ' \\boxed{')).toBe(' \\boxed{42}');
    expect(answerTextOf(r('budget', 3, '7}'), ' \\boxed{')).toBe(' \\boxed{7}');
    expect(answerTextOf(r('natural', 0, 'The answer is \\boxed{5}.'), 'x')).toBe('The answer is \\boxed{5}.');
    expect(answerTextOf(r('natural', 0, '', 'never closed \\boxed{3}'), 'x')).toBe('never closed \\boxed{3}');
    expect(answerTextOf(r('stopped', 0, ''), 'x')).toBe('');
  });
});
