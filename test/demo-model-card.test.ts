/**
 * The model card's pieces that need no model: merging the loss curves of several training stages (one cut at the
 * checkpoint the next stage started from), the behaviour table rows, and the loss-curve plot.
 */
import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { behaviourRow, lossCurveSvg, mergeStageCurves, writeModelCard } from '../src/demo/model-card.js';
import { DEMO_RECIPES, recipeWith, type LossCurveFile } from '../src/demo/train.js';

function curve(nSteps: number, evalEvery: number, seed: number, lossAt: (i: number) => number): LossCurveFile {
  const recipe = recipeWith(DEMO_RECIPES.default, { data: { seed, sequences: nSteps } });
  return {
    complete: true,
    recipe,
    model: { path: 'm.gguf', nParams: 10, nTrainable: 10, nVocab: 5 },
    corpus: { traces: 1, droppedTooLong: 0, fill: 1, tokens: nSteps * 512 },
    threads: 1,
    tokens: nSteps * 512,
    seconds: nSteps,
    tokensPerSecond: 512,
    steps: Array.from({ length: nSteps }, (_, i) => [i + 1, lossAt(i + 1), 0.5, 1e-3] as [number, number, number, number]),
    evals: Array.from({ length: nSteps / evalEvery + 1 }, (_, k) => ({ step: k * evalEvery, loss: lossAt(k * evalEvery), accuracy: 0.5, rows: 4 })),
  };
}

describe('model card', () => {
  it('merges training stages, cutting a stage at the checkpoint the next one started from', () => {
    const s1 = curve(100, 20, 101, (i) => 5 - i / 100);
    const s2 = curve(50, 10, 102, (i) => 3 - i / 100);
    const { curve: m, table } = mergeStageCurves([{ curve: s1, upToStep: 60 }, { curve: s2 }]);
    expect(m.steps).toHaveLength(110);
    expect(m.steps[59]![0]).toBe(60);
    expect(m.steps[60]![0]).toBe(61); // stage 2's first step follows the cut
    expect(m.steps[60]![1]).toBeCloseTo(3 - 1 / 100);
    // Stage 1's evaluations up to the cut, then stage 2's after its step 0 (which repeats stage 1's last one).
    expect(m.evals.map((e) => e.step)).toEqual([0, 20, 40, 60, 70, 80, 90, 100, 110]);
    expect(m.tokens).toBe(110 * 512);
    expect(m.seconds).toBeCloseTo(60 + 50);
    expect(m.recipe.data.seed).toBe(102);
    expect(table).toContain('continued from its step-60 checkpoint');
    expect(table.split('\n').filter((l) => /^\| \d /.test(l))).toHaveLength(2);
    expect(table).not.toContain('grown');
    const s3 = curve(10, 5, 103, () => 2);
    s3.recipe = { ...s3.recipe, shape: { ...s3.recipe.shape, nLayer: 6 }, addLayersAfter: [1, 3] };
    expect(mergeStageCurves([{ curve: s1 }, { curve: s3 }]).table).toContain('grown to 6 layers (new identity blocks after layer 1, 3)');
  });

  it('summarises completions by level and draws the loss curve', () => {
    const row = behaviourRow(1, [
      { finalAnswer: 7, correct: true, firstCandidateCorrect: true, candidates: 2, thinkingTokens: 100, afterFirstCorrect: 60, cues: 3, reachedCorrect: true },
      { finalAnswer: null, correct: false, firstCandidateCorrect: false, candidates: 1, thinkingTokens: 200, afterFirstCorrect: 0, cues: 1, reachedCorrect: false },
      { finalAnswer: 4, correct: false, firstCandidateCorrect: false, candidates: 2, thinkingTokens: 100, afterFirstCorrect: 20, cues: 2, reachedCorrect: true },
    ]);
    expect(row.formatted).toBeCloseTo(2 / 3);
    expect(row.accuracy).toBeCloseTo(1 / 3);
    expect(row.meanThinkingTokens).toBeCloseTo(400 / 3);
    expect(row.meanShareAfterFirstCorrect).toBeCloseTo((0.6 + 0 + 0.2) / 3);
    expect(row.pooledShareAfterFirstCorrect).toBeCloseTo(80 / 400);
    // Only the two traces that reach a correct candidate (a right answer later abandoned counts too).
    expect(row.meanShareAfterFirstCorrectWhenReached).toBeCloseTo((0.6 + 0.2) / 2);
    const svg = lossCurveSvg(curve(100, 20, 1, (i) => 5 - i / 50));
    expect(svg.startsWith('<svg')).toBe(true);
    // Training line (100 points, one per step) and validation line (6 points), each a path of M/L commands.
    const paths = [...svg.matchAll(/<path d="([^"]+)"/g)].map((m) => m[1]!.split(/[ML]/).filter(Boolean).length);
    expect(paths).toEqual([100, 6]);
    expect(svg.match(/<circle /g)).toHaveLength(6);
  });
});

describe('small model card', () => {
  it('describes an offloading small model as the small half of a pair, without the big reasoner’s targets', () => {
    const dir = mkdtempSync(join(tmpdir(), 'lynx-card-'));
    try {
      const file = join(dir, 'model.gguf');
      writeFileSync(file, 'x');
      const row = behaviourRow(1, [{ finalAnswer: 7, correct: true, firstCandidateCorrect: true, candidates: 2, thinkingTokens: 100, afterFirstCorrect: 60, cues: 3, reachedCorrect: true }]);
      const behaviour = { temperature: 0.6, topP: 0.95, seed: 0, maxTokens: 600, rows: [row, { ...row, level: 'all' as const }], seconds: 1, tokensPerSecond: 100, samples: [] };
      const input = { modelFile: file, curve: curve(10, 5, 1, () => 1), behaviour };
      const big = readFileSync(writeModelCard(dir, input), 'utf8');
      expect(big).toContain('Targets of the project (issue 7)');
      const small = readFileSync(writeModelCard(dir, { ...input, offload: { ops: ['multiplication', 'division'], bigModel: 'lynx-demo' } }), 'utf8');
      expect(small).toMatch(/^# lynx-demo: the Lynx demo small reasoning model \(offloads to lynx-demo\)/);
      expect(small).toContain('multiplication and division steps');
      expect(small).toContain('<bigmodel>39.\\n</bigmodel>');
      expect(small).not.toContain('Targets of the project (issue 7)');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
