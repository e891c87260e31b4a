/**
 * The oracle exit (the first cue event whose forced exit is correct; none when no event is), the oracle frontier (the
 * fewest tokens any choice of one exit per rollout reaches at each accuracy), checked against brute force, and the
 * probe's best single threshold.
 */
import { describe, expect, it } from 'vitest';
import { calibrateLynx } from '../src/reasoning/calibration/conformal.js';
import { simulateRollout } from '../src/reasoning/lynx/simulate.js';
import { calibrationSizeCurve, compareWithOracle, oracleExitIndex, oracleFrontier, oracleLimits, simulateOracle, thresholdFrontier, tokensAtAccuracy } from '../src/reasoning/lynx/oracle.js';
import type { SimEvent, SimRollout } from '../src/reasoning/lynx/simulate.js';
import { simulateOracleRun } from '../src/eval/simulated-runs.js';
import { Rng } from '../src/util/rng.js';

const ev = (tokenIndex: number, correct: boolean, score = 0.5, synthetic = false): SimEvent => ({
  tokenIndex,
  correct,
  score,
  answerTokens: 3,
  answer: correct ? 'y' : 'n',
  synthetic,
  cue: 'wait',
});
const roll = (id: string, fullCorrect: boolean, fullTokens: number, events: SimEvent[]): SimRollout => ({
  problemId: id,
  fullCorrect,
  fullAnswer: fullCorrect ? 'y' : 'n',
  fullTokens,
  exitCueTokens: 2,
  events,
});

describe('the oracle exit', () => {
  it('exits at the first correct non-synthetic event, and never when there is none', () => {
    const a = roll('a', true, 100, [ev(10, false), ev(20, true), ev(30, true)]);
    const b = roll('b', false, 80, [ev(5, true, 0.5, true), ev(15, false)]);
    expect(oracleExitIndex(a)).toBe(1);
    expect(simulateOracle(a)).toMatchObject({ exited: true, eventIndex: 1, correct: true, tokens: { total: 20 + 2 + 3 } });
    expect(oracleExitIndex(b)).toBe(-1);
    expect(simulateOracle(b)).toMatchObject({ exited: false, correct: false, tokens: { total: 80 } });
    const run = simulateOracleRun([a, b], { benchmark: 'demo', resamples: 20 });
    expect(run.method).toBe('oracle');
    expect(run.metrics.accuracy).toBe(0.5);
    expect(run.metrics.avgTokens).toBe((25 + 80) / 2);
    expect(oracleLimits([a, b, roll('c', true, 50, [ev(4, false)])])).toEqual({
      rollouts: 3,
      fullCorrectWithoutCorrectEvent: 1,
      withoutEvents: 0,
      oracleExitDepth: 20 / 100,
    });
  });

  it('its frontier is the fewest tokens reaching each accuracy, as brute force over every choice finds', () => {
    const rng = new Rng(13);
    for (let trial = 0; trial < 30; trial++) {
      const rs = Array.from({ length: 5 }, (_, i) => {
        const full = rng.int(50, 200);
        const events = Array.from({ length: rng.int(0, 3) }, () => ev(rng.int(1, full - 10), rng.next() < 0.5, rng.next(), rng.next() < 0.15));
        events.sort((x, y) => x.tokenIndex - y.tokenIndex);
        return roll(`p${i}`, rng.next() < 0.6, full, events);
      });
      // Brute force: every rollout picks "no exit" or one of its real events.
      const options = rs.map((r) => [
        { cost: r.fullTokens as number, correct: r.fullCorrect },
        ...r.events.filter((e) => !e.synthetic).map((e) => ({ cost: e.tokenIndex + 2 + 3, correct: e.correct })),
      ]);
      const best = new Map<number, number>();
      const walk = (i: number, cost: number, correct: number) => {
        if (i === rs.length) {
          best.set(correct, Math.min(best.get(correct) ?? Infinity, cost));
          return;
        }
        for (const o of options[i]!) walk(i + 1, cost + o.cost, correct + (o.correct ? 1 : 0));
      };
      walk(0, 0, 0);
      const frontier = oracleFrontier(rs);
      for (let k = 0; k <= rs.length; k++) {
        const brute = Math.min(...[...best].filter(([c]) => c >= k).map(([, t]) => t));
        const got = tokensAtAccuracy(frontier, k / rs.length, rs.length);
        if (!Number.isFinite(brute)) expect(got).toBeNull();
        else expect(got! * rs.length).toBeCloseTo(brute, 9);
      }
    }
  });

  it("compares a setting with the oracle and with the probe's best threshold at its accuracy", () => {
    const rs = [
      roll('a', true, 100, [ev(10, false, 0.9), ev(40, true, 0.8)]),
      roll('b', true, 100, [ev(20, true, 0.7)]),
      roll('c', false, 100, [ev(30, false, 0.6)]),
      roll('d', true, 100, [ev(50, true, 0.95)]),
    ];
    // Full rollouts: 3/4 right at 100 tokens each. The oracle reaches 3/4 with a, b, d exiting at their correct events
    // (45 + 25 + 55) and c at its cheapest choice (35): 160 / 4 = 40 tokens.
    expect(tokensAtAccuracy(oracleFrontier(rs), 0.75, 4)).toBe(40);
    // Thresholds: 0.7 exits a at 10 (wrong), b at 20, c at 30 (wrong), d at 50: 2/4 right; 0.95 only d: 3/4, (100*3 + 55) / 4.
    const probe = thresholdFrontier(rs);
    expect(probe.find((p) => p.threshold === 0.95)).toMatchObject({ accuracy: 0.75, avgTokens: (300 + 55) / 4 });
    const c = compareWithOracle(rs, { accuracy: 0.75, avgTokens: 80 });
    expect(c.savingsRate).toBeCloseTo(0.2, 12);
    expect(c.oracleSavingsRate).toBeCloseTo(0.6, 12);
    expect(c.oracleShare).toBeCloseTo(1 / 3, 12);
    expect(c.probeSavingsRate).toBeCloseTo(1 - 355 / 400, 12);
    expect(compareWithOracle(rs, { accuracy: 1, avgTokens: 100 }).oracleSavingsRate).toBeNull();
  });
});

describe('the calibration-size curve', () => {
  it('calibrates on shares of the calibration problems; all of them is one draw equal to a direct calibration', () => {
    const rng = new Rng(8);
    const ids: string[] = [];
    const p: number[] = [];
    const labels: number[] = [];
    for (let i = 0; i < 120; i++) {
      const y = rng.next() < 0.6 ? 1 : 0;
      ids.push(`c${i}`);
      labels.push(y);
      p.push(y ? 0.4 + 0.6 * rng.next() : 0.7 * rng.next());
    }
    const test = Array.from({ length: 40 }, (_, i) => roll(`t${i}`, i % 3 !== 0, 200, [ev(30, i % 2 === 0, rng.next()), ev(90, i % 3 !== 0, rng.next())]));
    const [quarter, all] = calibrationSizeCurve({ problemIds: ids, p, labels }, test, 0.05, { fractions: [0.25, 1], draws: 5, seed: 1 });
    expect(all!.draws).toBe(1);
    const direct = calibrateLynx(p, labels, 0.05);
    expect(all!.nNeg).toBe(direct.nNeg);
    const outcomes = test.map((r) => simulateRollout(direct, r));
    expect(all!.accuracy.mean).toBeCloseTo(outcomes.filter((o) => o.correct).length / test.length, 12);
    // A quarter of ~48 wrong exits is ~12: below the 19 that delta 0.05 needs, so every draw is refused and saves nothing.
    expect(quarter!.draws).toBe(5);
    expect(quarter!.nNeg).toBeLessThan(19);
    expect(quarter!.refused).toBe(5);
    expect(quarter!.savingsRate.max).toBe(0);
  });
});
