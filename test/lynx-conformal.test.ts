import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  calibrateCrc,
  calibrateLtt,
  calibrateLynx,
  conformalQuantile,
  conformalSweep,
  firstExit,
  heldOutStats,
  minCalibrationScores,
  predictionSet,
  quantileIndex,
  refusalReason,
  ruleExits,
  type ScoredRollout,
} from '../src/reasoning/calibration/conformal.js';
import { parsePythonJson, parseRule, readRule, ruleFileName, writeSweep } from '../src/reasoning/calibration/rule-files.js';
import { binomCdf, binomialPValue, hoeffdingBentkusPValue } from '../src/reasoning/calibration/stats.js';
import { Rng } from '../src/util/rng.js';

const sigmoid = (z: number) => 1 / (1 + Math.exp(-z));
const tmp = mkdtempSync(join(tmpdir(), 'lynx-conformal-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('LYNX split conformal', () => {
  it('takes the ceil((n+1)(1-delta))-th smallest score, clipped', () => {
    const s = [0.9, 0.1, 0.5, 0.3, 0.7, 0.2, 0.8, 0.4, 0.6]; // n = 9
    expect(quantileIndex(9, 0.1)).toBe(9); // ceil(10 * 0.9) = 9
    expect(conformalQuantile(s, 0.1)).toBe(0.9);
    expect(quantileIndex(9, 0.2)).toBe(8); // ceil(8) = 8
    expect(conformalQuantile(s, 0.2)).toBe(0.8);
    expect(conformalQuantile(s, 0.35)).toBe(0.7); // ceil(6.5) = 7
    expect(conformalQuantile(s, 0.5)).toBe(0.5); // ceil(5) = 5
    expect(conformalQuantile(s, 0.95)).toBe(0.1); // ceil(0.5) = 1
    expect(quantileIndex(3, 0.1)).toBe(3); // ceil(3.6) = 4 -> clipped to 3
    expect(conformalQuantile([0.2, 0.4, 0.3], 0.1)).toBe(0.4);
    expect(conformalQuantile([], 0.1)).toBe(Infinity);
  });

  it('builds the class-conditional rule by hand', () => {
    // label-1 events: p = 0.9, 0.8, 0.6, 0.3  -> scores 1-p = 0.1, 0.2, 0.4, 0.7
    // label-0 events: p = 0.2, 0.1, 0.5, 0.7  -> scores p = 0.2, 0.1, 0.5, 0.7
    const p = [0.9, 0.2, 0.8, 0.1, 0.6, 0.5, 0.3, 0.7];
    const y = [1, 0, 1, 0, 1, 0, 1, 0];
    const r = calibrateLynx(p, y, 0.25); // k = ceil(5 * 0.75) = 4 -> max of each class
    expect(r.nPos).toBe(4);
    expect(r.nNeg).toBe(4);
    expect(r.qPos).toBeCloseTo(0.7, 12);
    expect(r.qNeg).toBeCloseTo(0.7, 12);
    expect(r.clipped).toEqual({ pos: false, neg: false });
    const r2 = calibrateLynx(p, y, 0.45); // k = ceil(5 * 0.55) = 3
    expect(r2.qPos).toBeCloseTo(0.4, 12);
    expect(r2.qNeg).toBeCloseTo(0.5, 12);
    // set for p: 1 in set iff 1-p <= 0.4 (p >= 0.6); 0 in set iff p <= 0.5
    expect(predictionSet(0.65, r2.qPos, r2.qNeg)).toEqual([1]);
    expect(predictionSet(0.55, r2.qPos, r2.qNeg)).toEqual([]);
    expect(predictionSet(0.45, r2.qPos, r2.qNeg)).toEqual([0]);
    expect(ruleExits(r2, 0.65)).toBe(true);
    expect(ruleExits(r2, 0.55)).toBe(false);
    expect(r2.threshold).toBeCloseTo(0.6, 12);
    // {0, 1} does not exit: with qPos = 0.7 and qNeg = 0.7, p = 0.5 has both labels
    expect(predictionSet(0.5, r.qPos, r.qNeg)).toEqual([1, 0]);
    expect(ruleExits(r, 0.5)).toBe(false);
    // too few label-0 events for delta: quantile clipped, guarantee void
    const r3 = calibrateLynx(p, y, 0.1);
    expect(r3.clipped.neg).toBe(true);
    expect(r3.valid).toBe(false);
    // an absent class never constrains its side
    const r4 = calibrateLynx([0.9, 0.8], [1, 1], 0.3);
    expect(r4.qNeg).toBe(Infinity);
    expect(ruleExits(r4, 0.95)).toBe(false); // 0 is always in the set
  });

  it('keeps the per-event error at most delta on exchangeable data', () => {
    const deltas = [0.05, 0.1, 0.2];
    const seeds = 30;
    const avg = new Map<number, number>(deltas.map((d) => [d, 0]));
    const miss = new Map<number, number>(deltas.map((d) => [d, 0]));
    for (let seed = 0; seed < seeds; seed++) {
      const rng = new Rng(100 + seed);
      const draw = (n: number) => {
        const p: number[] = [];
        const y: number[] = [];
        for (let i = 0; i < n; i++) {
          const label = rng.next() < 0.6 ? 1 : 0;
          y.push(label);
          p.push(sigmoid((label ? 1.2 : -1.2) + 1.3 * rng.normal()));
        }
        return { p, y };
      };
      const cal = draw(400);
      const test = draw(4000);
      for (const delta of deltas) {
        const rule = calibrateLynx(cal.p, cal.y, delta);
        let wrong = 0;
        let accepted = 0;
        let uncovered = 0;
        test.y.forEach((label, i) => {
          if (label === 0) {
            wrong++;
            if (ruleExits(rule, test.p[i]!)) accepted++;
            if (!predictionSet(test.p[i]!, rule.qPos, rule.qNeg).includes(0)) uncovered++;
          }
        });
        avg.set(delta, avg.get(delta)! + accepted / wrong / seeds);
        miss.set(delta, miss.get(delta)! + uncovered / wrong / seeds);
      }
    }
    for (const delta of deltas) {
      const rate = avg.get(delta)!;
      expect(rate).toBeLessThanOrEqual(delta + 0.01);
      // label-0 miscoverage is delta up to 1/(n0+1): the rule is tight, and exits need 1 in the set as well
      expect(miss.get(delta)!).toBeGreaterThan(delta - 0.015);
      expect(miss.get(delta)!).toBeLessThanOrEqual(delta + 0.01);
      expect(rate).toBeLessThanOrEqual(miss.get(delta)! + 1e-12);
    }
  });
});

/** Synthetic problems: the rollout "knows" the answer after a random event; forced exits before that are mostly wrong. */
function synthRollouts(rng: Rng, nProblems: number, rolloutsPer = 1): ScoredRollout[] {
  const out: ScoredRollout[] = [];
  for (let i = 0; i < nProblems; i++) {
    const hard = rng.next() < 0.3;
    for (let r = 0; r < rolloutsPer; r++) {
      const fullCorrect = rng.next() < (hard ? 0.4 : 0.9);
      const T = rng.int(1, 14);
      const tau = rng.int(0, T);
      const events = [];
      for (let k = 0; k < T; k++) {
        const correct = fullCorrect ? rng.next() < (k >= tau ? 0.9 : 0.25) : rng.next() < 0.1;
        events.push({ score: sigmoid((correct ? 1.5 : -1.5) + 1.4 * rng.normal() + 0.05 * k), correct });
      }
      out.push({ problemId: `p${i}`, fullCorrect, events });
    }
  }
  return out;
}

function bruteRisk(rollouts: ScoredRollout[], threshold: number | null): number {
  const per = new Map<string, number[]>();
  for (const r of rollouts) {
    const k = threshold === null ? -1 : firstExit((p) => p >= threshold, r.events);
    const harm = k >= 0 && !r.events[k]!.correct && r.fullCorrect ? 1 : 0;
    per.set(r.problemId, [...(per.get(r.problemId) ?? []), harm]);
  }
  let s = 0;
  for (const v of per.values()) s += v.reduce((a, b) => a + b, 0) / v.length;
  return s / per.size;
}

describe('trajectory-level rules', () => {
  it('computes the calibration risk like a brute-force replay', () => {
    const rng = new Rng(3);
    for (const per of [1, 3]) {
      const rollouts = synthRollouts(rng, 300, per);
      for (const delta of [0.05, 0.2]) {
        for (const rule of [calibrateLtt(rollouts, delta), calibrateCrc(rollouts, delta)]) {
          expect(rule.calRisk).toBeCloseTo(bruteRisk(rollouts, rule.threshold), 12);
          expect(rule.nCal).toBe(300);
          expect(rule.nRollouts).toBe(300 * per);
        }
      }
    }
  });

  it('LTT keeps the held-out harmful-exit rate at most delta with probability 1 - alpha', () => {
    const delta = 0.1;
    const alpha = 0.1;
    let violations = 0;
    let meanRate = 0;
    let meanExit = 0;
    const seeds = 20;
    for (let seed = 0; seed < seeds; seed++) {
      const rng = new Rng(1000 + seed);
      const cal = synthRollouts(rng, 600);
      const test = synthRollouts(rng, 8000);
      const rule = calibrateLtt(cal, delta, { alpha });
      expect(rule.pValueMethod).toBe('binomial');
      const h = heldOutStats(rule, test);
      if (h.prematureExitRate > delta + 0.01) violations++; // 0.01: sampling noise of the test estimate
      meanRate += h.prematureExitRate / seeds;
      meanExit += h.exitRate / seeds;
    }
    expect(violations).toBeLessThanOrEqual(Math.ceil(alpha * seeds));
    expect(meanRate).toBeLessThanOrEqual(delta);
    expect(meanExit).toBeGreaterThan(0.3); // the rule does exit
  });

  it('CRC keeps the expected held-out harmful-exit rate at most delta', () => {
    const delta = 0.08;
    let meanRate = 0;
    const seeds = 20;
    for (let seed = 0; seed < seeds; seed++) {
      const rng = new Rng(2000 + seed);
      const cal = synthRollouts(rng, 300, 2);
      const test = synthRollouts(rng, 4000, 2);
      const rule = calibrateCrc(cal, delta);
      meanRate += heldOutStats(rule, test).prematureExitRate / seeds;
    }
    expect(meanRate).toBeLessThanOrEqual(delta + 0.005);
    expect(meanRate).toBeGreaterThan(delta / 3);
  });

  it('refuses to exit when calibration is too small for delta', () => {
    const rollouts = synthRollouts(new Rng(5), 20);
    expect(calibrateLtt(rollouts, 0.01).threshold).toBeNull(); // (0.99)^20 > alpha
    expect(calibrateCrc(rollouts, 0.01).threshold).toBeNull(); // 1/(n+1) > delta
  });

  it('ignores synthetic events', () => {
    const r: ScoredRollout = {
      problemId: 'a',
      fullCorrect: true,
      events: [
        { score: 0.99, correct: false, synthetic: true },
        { score: 0.7, correct: true },
      ],
    };
    expect(firstExit((p) => p >= 0.5, r.events)).toBe(1);
  });
});

describe('p-values', () => {
  it('binomial tail matches direct summation', () => {
    const choose = (n: number, k: number) => {
      let c = 1;
      for (let i = 1; i <= k; i++) c = (c * (n - k + i)) / i;
      return c;
    };
    for (const [k, n, p] of [
      [0, 10, 0.1],
      [3, 10, 0.3],
      [7, 20, 0.5],
      [20, 20, 0.4],
    ] as const) {
      let s = 0;
      for (let i = 0; i <= k; i++) s += choose(n, i) * p ** i * (1 - p) ** (n - i);
      expect(binomCdf(k, n, p)).toBeCloseTo(Math.min(1, s), 10);
    }
    expect(binomCdf(0, 5000, 0.3)).toBe(0);
    expect(binomialPValue(0, 230, 0.01)).toBeLessThan(0.1);
    expect(binomialPValue(0, 200, 0.01)).toBeGreaterThan(0.1);
    // Hoeffding–Bentkus is never smaller than the exact binomial tail / e
    const hb = hoeffdingBentkusPValue(0.05, 500, 0.1);
    expect(hb).toBeGreaterThan(0);
    expect(hb).toBeLessThan(0.01);
    expect(hoeffdingBentkusPValue(0.2, 500, 0.1)).toBe(1);
  });
});

describe('sweep files', () => {
  it('writes one JSON per rule and delta and reads it back', () => {
    const rng = new Rng(9);
    const cal = synthRollouts(rng, 400);
    const events = { p: cal.flatMap((r) => r.events.map((e) => e.score)), labels: cal.flatMap((r) => r.events.map((e) => (e.correct ? 1 : 0))) };
    const rules = conformalSweep({ events, rollouts: cal, heldOut: synthRollouts(rng, 400) });
    expect(rules).toHaveLength(21);
    const dir = join(tmp, 'conformal');
    writeSweep(dir, rules);
    const names = readdirSync(dir).sort();
    expect(names).toContain('conformal_calib_001.json');
    expect(names).toContain('conformal_calib_030.json');
    expect(names).toContain('ltt_005.json');
    expect(names).toContain('crc_010.json');
    expect(ruleFileName('lynx', 0.025)).toBe('conformal_calib_0.025.json');
    const back = parseRule(JSON.parse(readFileSync(join(dir, 'ltt_005.json'), 'utf8')));
    expect(back.rule).toBe('ltt');
    expect(back.heldOut).toBeDefined();
    expect(back.heldOut!.nProblems).toBe(400);
    const lynx = parseRule(JSON.parse(readFileSync(join(dir, 'conformal_calib_005.json'), 'utf8')));
    expect(lynx).toEqual(rules.find((r) => r.rule === 'lynx' && r.delta === 0.05));
  });
});

describe('a clipped quantile', () => {
  // 30 label-0 events: enough for delta 0.1 ((n+1)(1-delta) = 27.9 -> 28 <= 30), too few for 0.02 (31 > 30: clipped).
  const rng = new Rng(21);
  const p: number[] = [];
  const y: number[] = [];
  for (let i = 0; i < 200; i++) {
    const label = i < 30 ? 0 : 1;
    y.push(label);
    p.push(label ? 0.5 + 0.5 * rng.next() : 0.6 * rng.next());
  }

  it('is refused by default: the rule never exits, and says how many wrong-exit events delta needs', () => {
    const ok = calibrateLynx(p, y, 0.1);
    expect(ok.valid).toBe(true);
    expect(ok.refused).toBe(false);
    expect(ok.neededNeg).toBe(9);
    const clipped = calibrateLynx(p, y, 0.02);
    expect(clipped.valid).toBe(false);
    expect(clipped.refused).toBe(true);
    expect(clipped.neededNeg).toBe(49);
    expect(clipped.threshold).toBeNull();
    for (let x = 0; x <= 1; x += 0.01) expect(ruleExits(clipped, x)).toBe(false);
    expect(refusalReason(clipped)).toMatch(/30 calibration events with a wrong forced exit.*at least 49.*--allow-clipped/);
    expect(refusalReason(ok)).toBeNull();
  });

  it("is used on request, as LYNX uses it: the same quantiles, and exits at high scores", () => {
    const refused = calibrateLynx(p, y, 0.02);
    const used = calibrateLynx(p, y, 0.02, { useClipped: true });
    expect([used.qPos, used.qNeg]).toEqual([refused.qPos, refused.qNeg]);
    expect(used.refused).toBe(false);
    expect(used.valid).toBe(false);
    expect(ruleExits(used, 0.99)).toBe(true);
    // The choice survives the rule file, and a reader may ask for it too.
    const dir = join(tmp, 'clipped');
    const [file] = writeSweep(dir, [used]);
    expect(ruleExits(readRule(file!), 0.99)).toBe(true);
    const [file2] = writeSweep(join(tmp, 'clipped2'), [refused]);
    expect(ruleExits(readRule(file2!), 0.99)).toBe(false);
    expect(ruleExits(readRule(file2!, { useClipped: true }), 0.99)).toBe(true);
  });

  it('needs the smallest n with ceil((n + 1)(1 - delta)) <= n', () => {
    for (const d of [0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.3]) {
      const n = minCalibrationScores(d);
      expect(quantileIndex(n, d)).toBe(Math.ceil((n + 1) * (1 - d)));
      expect(Math.ceil((n + 1) * (1 - d))).toBeLessThanOrEqual(n);
      expect(Math.ceil(n * (1 - d))).toBeGreaterThan(n - 1);
    }
    expect([0.01, 0.05, 0.1, 0.3].map(minCalibrationScores)).toEqual([99, 19, 9, 3]);
  });
});

describe("LYNX's conformal_calib.json", () => {
  it('is written beside our fields (an infinite quantile left out, as LYNX reads a missing one) and read back', () => {
    const p = [0.9, 0.2, 0.8, 0.1, 0.6, 0.5, 0.3, 0.7, 0.95, 0.85];
    const y = [1, 0, 1, 0, 1, 0, 1, 0, 1, 1];
    const r = calibrateLynx(p, y, 0.3);
    const [file] = writeSweep(join(tmp, 'lynx-json'), [r]);
    const json = JSON.parse(readFileSync(file!, 'utf8'));
    expect(json).toMatchObject({ delta: 0.3, q_pos: r.qPos, q_neg: r.qNeg, n_calib: 10, n_pos: 6, n_neg: 4 });
    // Only LYNX's keys: what calibrate_conformal.py writes reads as the same rule.
    const lynxOnly = { delta: json.delta, q_pos: json.q_pos, q_neg: json.q_neg, n_calib: json.n_calib, n_pos: json.n_pos, n_neg: json.n_neg };
    const back = parseRule(lynxOnly);
    expect(back.rule).toBe('lynx');
    expect(back).toMatchObject({ qPos: r.qPos, qNeg: r.qNeg, nPos: 6, nNeg: 4, threshold: r.threshold, refused: r.refused });
    const empty = calibrateLynx([0.9, 0.8], [1, 1], 0.3); // no label-0 event: q_neg = +inf
    const [f2] = writeSweep(join(tmp, 'lynx-json-inf'), [empty]);
    expect(JSON.parse(readFileSync(f2!, 'utf8'))).not.toHaveProperty('q_neg');
    expect((readRule(f2!) as { qNeg: number }).qNeg).toBe(Infinity);
  });

  it("reads Python's Infinity, which LYNX's json.dumps writes for an empty class", () => {
    const path = join(tmp, 'python.json');
    writeFileSync(path, '{\n  "delta": 0.1,\n  "q_pos": 0.4,\n  "q_neg": Infinity,\n  "n_calib": 12,\n  "n_pos": 12,\n  "n_neg": 0\n}');
    const r = readRule(path, { useClipped: true });
    expect(r).toMatchObject({ rule: 'lynx', qPos: 0.4, qNeg: Infinity, nNeg: 0 });
    // 0 is always in the set: never exits, whatever the flag.
    expect(ruleExits(r, 1)).toBe(false);
    expect(parsePythonJson('{"a": -Infinity, "b": "Infinity", "c": NaN}')).toEqual({ a: -Infinity, b: 'Infinity', c: null });
  });
});
