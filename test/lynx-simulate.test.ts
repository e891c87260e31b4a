import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { discoverRuns, loadRun } from '../src/eval/records.js';
import {
  calibrateLtt,
  calibrateLynx,
  heldOutStats,
  CONFORMAL_SCHEMA,
  type TrajectoryRule,
} from '../src/reasoning/calibration/conformal.js';
import { eventDecisions, simulateRollout, type SimRollout } from '../src/reasoning/lynx/simulate.js';
import { simulate, writeSimulation } from '../src/eval/simulated-runs.js';
import { Rng } from '../src/util/rng.js';

const tmp = mkdtempSync(join(tmpdir(), 'lynx-simulate-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const threshold = (t: number): TrajectoryRule => ({
  schema: CONFORMAL_SCHEMA,
  rule: 'ltt',
  delta: 0.1,
  alpha: 0.1,
  threshold: t,
  nCal: 0,
  nRollouts: 0,
  calRisk: 0,
  calExitRate: 0,
  grid: { from: 1, to: 0, step: 0.001 },
  guarantee: '',
});

const ev = (score: number, correct: boolean, tokenIndex: number, answerTokens: number, answer: string | null = null, synthetic = false) => ({
  score,
  correct,
  tokenIndex,
  answerTokens,
  answer,
  synthetic,
  cue: synthetic ? 'synthetic' : 'wait',
});

/** Four rollouts of three problems; exit cue 10 tokens; rule: exit when score >= 0.7. */
const rollouts: SimRollout[] = [
  // exits at event 1 (300 + 10 + 6 = 316 tokens), right; full rollout right
  { problemId: 'A', index: 0, gold: '42', fullCorrect: true, fullAnswer: '42', fullTokens: 1000, exitCueTokens: 10, events: [ev(0.5, false, 100, 5, '7'), ev(0.8, true, 300, 6, '42')] },
  // exits at event 0 (50 + 10 + 4 = 64), right; full rollout wrong: help
  { problemId: 'B', rollout: 0, index: 1, fullCorrect: false, fullAnswer: '3', fullTokens: { reasoning: 700, exitCue: 0, answer: 100, total: 800, decoded: 800, prefilled: 30 }, exitCueTokens: 10, events: [ev(0.9, true, 50, 4, '5')] },
  // the synthetic event is no decision point; exits at event 1 (200 + 10 + 8 = 218), wrong; full right: harm
  { problemId: 'B', rollout: 1, index: 1, fullCorrect: true, fullAnswer: '5', fullTokens: 600, exitCueTokens: 10, events: [ev(0.95, false, 150, 3, '1', true), ev(0.75, false, 200, 8, '9')] },
  // never exits: 500 tokens, right
  { problemId: 'C', index: 2, fullCorrect: true, fullAnswer: '1', fullTokens: 500, exitCueTokens: 10, events: [ev(0.6, true, 100, 2, '1')] },
];

describe('simulated early exit', () => {
  it('computes LYNX metrics of a hand-worked example', () => {
    const [res] = simulate(rollouts, [threshold(0.7)], { benchmark: 'toy', resamples: 500 });
    const m = res!.lynx;
    expect(m.rollouts_attempted).toBe(4);
    expect(m.n_problems).toBe(3);
    expect(m.exited_count).toBe(3);
    expect(m.baseline).toEqual({ accuracy: 0.75, avg_tokens: 725, total_tokens: 2900 });
    expect(m.early_exit.accuracy).toBe(0.75);
    expect(m.early_exit.total_tokens).toBe(316 + 64 + 218 + 500);
    expect(m.early_exit.avg_tokens).toBe(274.5);
    expect(m.early_exit.exit_rate).toBe(0.75);
    expect(m.early_exit.avg_savings).toBe(450.5);
    expect(m.early_exit.savings_rate).toBeCloseTo(450.5 / 725, 12);
    expect(m.accepted_subset).toEqual({
      rate: 0.75,
      accuracy: 2 / 3,
      baseline_accuracy: 2 / 3,
      avg_tokens: 598 / 3,
      total_tokens: 598,
      help: 1,
      harm: 1,
      unchanged_correct: 1,
      unchanged_incorrect: 0,
    });
    expect(m.premature_exit_rate).toBe(0.25);
    for (const [key, point] of [
      ['early_exit_accuracy', 0.75],
      ['early_exit_avg_tokens', 274.5],
      ['savings_rate', 450.5 / 725],
      ['baseline_accuracy', 0.75],
    ] as const) {
      const [lo, hi] = m.ci95[key];
      expect(lo).toBeLessThanOrEqual(point + 1e-12);
      expect(hi).toBeGreaterThanOrEqual(point - 1e-12);
      expect(hi).toBeGreaterThan(lo);
    }

    const p = res!.predictions;
    expect(p.map((r) => r.id)).toEqual(['A', 'B#0', 'B#1', 'C']);
    // Output as LYNX counts it; decoded: the trace through the event token (no decision point recorded) and the answer.
    expect(p[0]!.tokens).toEqual({ reasoning: 300, exitCue: 10, answer: 6, total: 316, decoded: 301 + 6, prefilled: 10 });
    expect(p[0]!.exit).toEqual({ event: 1, position: 300, cue: 'wait', score: 0.8 });
    expect(p[0]!.extracted).toBe('42');
    expect(p[2]!.exit!.event).toBe(1);
    expect(p[2]!.correct).toBe(false);
    expect(p[3]!.exit).toBeNull();
    expect(p[3]!.tokens).toEqual({ reasoning: 500, exitCue: 0, answer: 0, total: 500, decoded: 500, prefilled: 0 });
    expect(p[1]!.baseline).toEqual({ tokens: 800, decoded: 800, correct: false, extracted: '3' });
    expect(p[2]!.events![0]).toMatchObject({ index: 0, position: 150, synthetic: true, label: 0, score: 0.95 });

    const rm = res!.metrics;
    expect(rm.method).toBe('lynx-ltt');
    expect(rm.setting).toBe('delta=0.1');
    expect(rm.accuracy).toBe(0.75);
    expect(rm.avgTokens).toBe(274.5);
    expect(rm.exitRate).toBe(0.75);
    expect(rm.baselineAccuracy).toBe(0.75);
    expect(rm.baselineAvgTokens).toBe(725);
    expect(rm.avgSavings).toBe(450.5);
    expect(rm.savingsRate).toBeCloseTo(1 - 1098 / 2900, 12);
    expect(rm.extra!.harm).toBe(1);
    expect(rm.extra!.help).toBe(1);
  });

  it('runs to the end when nothing exits and uses natural token counts', () => {
    const o = simulateRollout(threshold(0.99), rollouts[1]!);
    expect(o).toEqual({
      exited: false,
      eventIndex: -1,
      correct: false,
      answer: '3',
      tokens: { reasoning: 700, exitCue: 0, answer: 100, total: 800, decoded: 800, prefilled: 30 },
    });
  });

  it('agrees with the held-out statistics of the conformal sweep', () => {
    const rng = new Rng(4);
    const sigmoid = (z: number) => 1 / (1 + Math.exp(-z));
    const make = (n: number): SimRollout[] =>
      Array.from({ length: n }, (_, i) => {
        const fullCorrect = rng.next() < 0.7;
        const T = rng.int(1, 10);
        let pos = 0;
        const events = Array.from({ length: T }, () => {
          pos += rng.int(5, 50);
          const correct = fullCorrect ? rng.next() < 0.6 : rng.next() < 0.1;
          return ev(sigmoid((correct ? 1.5 : -1.5) + rng.normal()), correct, pos, rng.int(3, 20), correct ? 'x' : 'y');
        });
        return { problemId: `p${i}`, fullCorrect, fullAnswer: null, fullTokens: pos + rng.int(10, 400), exitCueTokens: 9, events };
      });
    const cal = make(500);
    const test = make(1500);
    const ltt = calibrateLtt(cal, 0.1);
    const lynx = calibrateLynx(
      cal.flatMap((r) => r.events.map((e) => e.score)),
      cal.flatMap((r) => r.events.map((e) => (e.correct ? 1 : 0))),
      0.1,
    );
    for (const rule of [ltt, lynx]) {
      const [res] = simulate(test, [rule], { benchmark: 'synthetic', includeEvents: false, resamples: 200 });
      const h = heldOutStats(rule, test);
      expect(res!.lynx.premature_exit_rate).toBeCloseTo(h.prematureExitRate, 12);
      expect(res!.lynx.early_exit.exit_rate).toBeCloseTo(h.exitRate, 12);
      expect(res!.lynx.early_exit.accuracy).toBeCloseTo(h.accuracy, 12);
      expect(res!.lynx.early_exit.avg_savings).toBeCloseTo(h.avgSavings!, 9);
      const d = eventDecisions(rule, test);
      expect(d.wrongAccepted / d.wrong).toBeCloseTo(h.eventErrorRate, 12);
    }
  });

  it('writes run folders the evaluation reader loads', () => {
    const results = simulate(rollouts, [threshold(0.7), threshold(0.85)], { benchmark: 'toy', resamples: 100 });
    results[1]!.rule.delta = 0.2; // distinct settings
    const again = simulate(rollouts, [results[1]!.rule], { benchmark: 'toy', resamples: 100 });
    const dirs = writeSimulation(tmp, [results[0]!, again[0]!], { probe: 'probe/' });
    expect(dirs).toHaveLength(2);
    const runs = discoverRuns(tmp);
    expect(runs.map((r) => r.setting).sort()).toEqual(['delta=0.1', 'delta=0.2']);
    const run = loadRun(runs.find((r) => r.setting === 'delta=0.1')!);
    expect(run.predictions).toHaveLength(4);
    expect(run.metrics!.avgTokens).toBe(274.5);
    expect(run.config!.simulated).toBe(true);
    expect((run.metrics!.extra!.lynx as { premature_exit_rate: number }).premature_exit_rate).toBe(0.25);
  });

  it('rejects malformed rollouts', () => {
    const bad = [{ ...rollouts[0]!, events: [ev(0.5, true, 300, 1), ev(0.6, true, 100, 1)] }];
    expect(() => simulate(bad, [threshold(0.7)], { benchmark: 't' })).toThrow(/trace order/);
    expect(() => simulate([rollouts[0]!, rollouts[0]!], [threshold(0.7)], { benchmark: 't' })).toThrow(/twice/);
  });
});
