/**
 * Early-exit heads (src/reasoning/heads/, src/training/head-trainer.ts, src/reasoning/calibration/coverage.ts):
 * distillation makes a head agree more with the full model and lowers its KL to it, from a hidden-state cache or
 * streamed online; heads reload as saved and refuse another model; the coverage rules pick thresholds as defined,
 * and LTT's hold on data they were not chosen on; calibration on the demo reasoner; the decoding modes heads open.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { calibrateHeadsStep, trainHeadsStep } from '../src/pipeline/heads.js';
import { coverageAt, coverageThreshold } from '../src/reasoning/calibration/coverage.js';
import { EarlyExitHeads, evenlySpacedLayers, modelFingerprint } from '../src/reasoning/heads/heads.js';
import { chooseDraftLayer, draftStepCost, layerExitMode, OpenHeads, selfSpeculativeMode } from '../src/reasoning/heads/exit.js';
import { readHeadCache } from '../src/reasoning/heads/data.js';
import { packageRoot } from '../src/util/paths.js';
import { Rng } from '../src/util/rng.js';
import { buildTinyGguf } from './helpers/engine-models.js';
import { writeLensHeads } from './helpers/heads.js';

const DEMO = resolve(packageRoot(), 'models', 'lynx-demo', 'model.gguf');

let dir: string;
let tiny: string;
let text: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'lynx-heads-'));
  tiny = buildTinyGguf(join(dir, 'tiny.gguf'), { arch: 'qwen2', type: 'f32', nLayer: 4, nEmbd: 64, seed: 5 });
  const rng = new Rng(1);
  const words = ['the', 'cat', 'sat', 'on', 'a', 'mat', 'and', 'then', 'ran', 'to', 'see', 'her', 'friend', 'in', 'park', 'with', 'red', 'ball'];
  const texts = Array.from({ length: 40 }, () => Array.from({ length: 60 }, () => rng.pick(words)).join(' '));
  text = join(dir, 'texts.txt');
  writeFileSync(text, texts.join('\n\n'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('training', () => {
  it('raises agreement and lowers KL from zero-initialised heads, through a cache; the heads reload as saved', async () => {
    const out = join(dir, 'heads');
    const cache = join(dir, 'cache.safetensors');
    const r = await trainHeadsStep({ model: tiny, out, layers: [1, 2], init: 'zero', data: { file: text }, cache, epochs: 3, lr: 1e-2, threads: 1 });
    expect(existsSync(cache)).toBe(true);
    for (const m of r.metrics) {
      expect(m.agreementAfter).toBeGreaterThan(m.agreementBefore + 0.2);
      expect(m.klAfter).toBeLessThan(0.9 * m.klBefore);
    }
    const back = EarlyExitHeads.load(out);
    expect(back.layers).toEqual([1, 2]);
    for (const l of [1, 2]) expect(Array.from(back.matrices.get(l)!)).toEqual(Array.from(r.heads.matrices.get(l)!));
    expect(back.manifest.metrics).toEqual(r.metrics);
    // The cache holds every position with the head blocks' hidden states and the teacher.
    const c = readHeadCache(cache, [1, 2]);
    expect(c.rows).toBeGreaterThan(1000);
    expect(c.hidden.get(2)!.length).toBe(c.rows * 64);
    // A second run reads the cache (no decoding) and trains the same way.
    const again = await trainHeadsStep({ model: tiny, out: join(dir, 'heads-again'), layers: [1, 2], init: 'zero', cache, epochs: 3, lr: 1e-2, threads: 1 });
    expect(again.metrics).toEqual(r.metrics);
    // The full model's argmax counts over every position (training and held out), for draft vocabularies: saved, reloaded.
    const counts = back.argmaxCounts!;
    expect(counts.reduce((a, b) => a + b, 0)).toBe(c.rows);
    const argmax = new Int32Array(counts.length);
    for (const t of c.teacher.argmax) argmax[t]!++;
    expect(Array.from(counts)).toEqual(Array.from(argmax));
  });

  it('a draft vocabulary holds the tokens the full model emits most, and covers their share of its argmaxes', async () => {
    const out = join(dir, 'heads');
    const counts = EarlyExitHeads.load(out).argmaxCounts!;
    const n = 12;
    const open = OpenHeads.open(out, tiny, { draftVocab: n });
    try {
      const tokens = Array.from(open.tokens!);
      expect(tokens).toEqual([...tokens].sort((a, b) => a - b));
      const nth = [...counts].sort((a, b) => b - a)[n - 1]!;
      for (let t = 0; t < counts.length; t++) if (counts[t]! > nth) expect(tokens).toContain(t);
      expect(tokens.every((t) => counts[t]! >= nth)).toBe(true);
      const total = counts.reduce((a, b) => a + b, 0);
      expect(open.draftVocabCoverage).toBeCloseTo(tokens.reduce((a, t) => a + counts[t]!, 0) / total, 12);
      // Its logits are the whole head's at those tokens.
      const whole = OpenHeads.open(out, tiny);
      const h = Float32Array.from({ length: 64 }, (_, i) => Math.sin(i));
      const all = whole.head(2).logits(h);
      const part = open.head(2).logits(h);
      whole.dispose();
      expect(part).toHaveLength(n);
      tokens.forEach((t, i) => expect(part[i]).toBeCloseTo(all[t]!, 4));
    } finally {
      open.dispose();
    }
    expect(() => OpenHeads.open(out, tiny, { draftVocab: 0 })).toThrow(/draft vocabulary must be 1 to/);
    // A draft step over fewer rows costs less.
    expect(draftStepCost(28, 6, 1536, 151936, 1.78e9, 32768)).toBeLessThan(draftStepCost(28, 6, 1536, 151936, 1.78e9) - 0.09);
  });

  it('trains each head on its own: a head trained beside another ends as it does alone', async () => {
    const cache = join(dir, 'cache.safetensors');
    const both = await trainHeadsStep({ model: tiny, out: join(dir, 'h12'), layers: [1, 2], init: 'zero', cache, epochs: 1, lr: 1e-2, threads: 1 });
    const alone = await trainHeadsStep({ model: tiny, out: join(dir, 'h1'), layers: [1], init: 'zero', cache, epochs: 1, lr: 1e-2, threads: 1 });
    expect(both.metrics[0]).toEqual(alone.metrics[0]);
    expect(Array.from(both.heads.matrices.get(1)!)).toEqual(Array.from(alone.heads.matrices.get(1)!));
  });

  it('trains online too (chunks streamed from the engine), and refuses another model', async () => {
    const r = await trainHeadsStep({ model: tiny, out: join(dir, 'heads-online'), layers: [2], init: 'zero', data: { file: text }, online: true, epochs: 2, lr: 1e-2, threads: 1 });
    expect(r.metrics[0]!.agreementAfter).toBeGreaterThan(r.metrics[0]!.agreementBefore + 0.2);
    // Argmax counts from the first epoch's chunks as they streamed past, and the held-out part.
    const t = r.heads.manifest.training as { positions: number; heldOutPositions: number };
    expect(EarlyExitHeads.load(join(dir, 'heads-online')).argmaxCounts!.reduce((a, b) => a + b, 0)).toBe(t.positions + t.heldOutPositions);
    const other = buildTinyGguf(join(dir, 'other.gguf'), { arch: 'qwen2', type: 'f32', nLayer: 4, nEmbd: 64, seed: 6 });
    expect(() => r.heads.checkModel(modelFingerprint(other).fingerprint)).toThrow(/were trained for tiny\.gguf/);
    expect(() => OpenHeads.open(join(dir, 'heads-online'), other)).toThrow(/train heads for this model/);
  });

  it('places default heads evenly, never on the last block', () => {
    expect(evenlySpacedLayers(28, 3)).toEqual([6, 13, 20]);
    expect(evenlySpacedLayers(6, 3)).toEqual([1, 2, 4]);
    expect(evenlySpacedLayers(2, 3)).toEqual([0]);
  });
});

describe('coverage thresholds', () => {
  it("max-coverage is BranchyLLM's rule: the largest score whose cumulative accuracy reaches the level", () => {
    const scores = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6];
    const right = [1, 1, 0, 1, 0, 0];
    // Cumulative accuracy 1, 1, 2/3, 3/4, 3/5, 1/2.
    expect(coverageThreshold(scores, right, 0.75, { rule: 'max-coverage' })).toEqual({ threshold: 0.4, coverage: 4 / 6, accuracy: 0.75 });
    expect(coverageThreshold(scores, right, 0.6, { rule: 'max-coverage' }).threshold).toBe(0.5);
    expect(coverageThreshold([0.1, 0.2], [0, 0], 0.6, { rule: 'max-coverage' }).threshold).toBeNull();
    // Equal scores are selected together: no threshold splits them.
    expect(coverageThreshold([0.1, 0.1, 0.2], [1, 0, 1], 0.9, { rule: 'max-coverage' }).threshold).toBeNull();
  });

  it('LTT thresholds keep their accuracy on new data (max-coverage, in-sample, falls short about half the time)', () => {
    // Agreement falls with the score: P(right | s) = 1 - s/2 for s uniform in [0, 1].
    const draw = (rng: Rng, n: number) => {
      const s = new Float64Array(n);
      const y = new Uint8Array(n);
      for (let i = 0; i < n; i++) {
        s[i] = rng.next();
        y[i] = rng.next() < 1 - s[i]! / 2 ? 1 : 0;
      }
      return { s, y };
    };
    const test = draw(new Rng(999), 200000);
    let lttShort = 0;
    let maxShort = 0;
    const trials = 40;
    for (let t = 0; t < trials; t++) {
      const cal = draw(new Rng(t), 2000);
      const ltt = coverageThreshold(cal.s, cal.y, 0.85, { rule: 'ltt', alpha: 0.1 });
      const mc = coverageThreshold(cal.s, cal.y, 0.85, { rule: 'max-coverage' });
      expect(ltt.threshold).not.toBeNull();
      expect(ltt.threshold!).toBeLessThanOrEqual(mc.threshold!);
      if (coverageAt(test.s, test.y, ltt.threshold).accuracy < 0.85) lttShort++;
      if (coverageAt(test.s, test.y, mc.threshold).accuracy < 0.85) maxShort++;
    }
    expect(lttShort).toBeLessThanOrEqual(Math.ceil(0.1 * trials) + 2);
    expect(maxShort).toBeGreaterThan(trials / 4);
  });
});

describe('calibration on the demo reasoner', () => {
  it('picks thresholds, higher for lower levels, whose agreement on held-out text meets the level', async () => {
    const heads = join(dir, 'demo-heads');
    writeLensHeads(DEMO, [3, 4], heads);
    const { calibration } = await calibrateHeadsStep({ model: DEMO, heads, data: { benchmark: 'demo:calib', generate: 64 }, maxRows: 40, threads: 1 });
    expect(calibration.rule).toBe('ltt');
    expect(calibration.checkPositions).toBeGreaterThan(1000);
    let checked = 0;
    for (const h of calibration.heads) {
      const t = h.levels.map((l) => l.threshold ?? -Infinity);
      for (let i = 1; i < t.length; i++) expect(t[i]!).toBeLessThanOrEqual(t[i - 1]!);
      for (const l of h.levels) {
        if (l.threshold === null || l.check!.coverage * l.check!.positions < 300) continue;
        checked++;
        expect(l.check!.agreement!, `head ${h.layer} level ${l.level}`).toBeGreaterThan(l.level - 0.02);
      }
    }
    expect(checked).toBeGreaterThan(5);
    // The heads folder now opens with its calibration: both decoding modes take their thresholds from it.
    const open = OpenHeads.open(heads, DEMO, { threads: 1 });
    try {
      expect(open.calibration?.heads.map((h) => h.layer)).toEqual([3, 4]);
      expect(selfSpeculativeMode(open, { layer: 4, level: 0.9 }).lossless).toBe(true);
      expect(layerExitMode(open, { level: 0.9 }).lossless).toBe(false);
      expect(() => open.thresholds(0.42)).toThrow(/not calibrated/);
    } finally {
      open.dispose();
    }
  });
});

describe('choosing the drafting head', () => {
  it('a draft step costs more from a later block, and auto picks the head with the best analytic speedup', () => {
    const c = (l: number) => draftStepCost(28, l, 1536, 151936, 1.78e9);
    expect(c(6)).toBeLessThan(c(13));
    expect(c(27)).toBeCloseTo(1, 6);
    const heads = join(dir, 'pick');
    writeLensHeads(DEMO, [1, 4], heads);
    const open = OpenHeads.open(heads, DEMO, { threads: 1 });
    try {
      // Without calibration or training metrics there is no agreement to go by: the last head.
      expect(chooseDraftLayer(open, 1.44e6, 5).layer).toBe(4);
    } finally {
      open.dispose();
    }
  });
});
