/**
 * The shipped small model (models/lynx-demo-small) is the small half of the demo pair: through SplitReason's split with
 * the shipped big model it hands spans to the big one, and every token of work is counted per model.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { evaluateStep } from '../src/pipeline/evaluate.js';
import { shippedDemo } from '../src/demo/shipped.js';

const big = shippedDemo().model;
const small = join(shippedDemo().root, '..', 'lynx-demo-small', 'model.gguf');
const tmp = mkdtempSync(join(tmpdir(), 'lynx-small-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('the shipped small model', () => {
  it('offloads to the shipped big model through split, and both models’ work adds up', async () => {
    expect(existsSync(small)).toBe(true);
    const [run] = await evaluateStep({
      model: big,
      small,
      benchmark: 'demo:test',
      selection: { limit: 3 },
      out: tmp,
      spec: { method: 'split' },
      maxTokens: 600,
      sampler: { temperature: 0.6, topP: 0.95 },
      seed: 0,
      grading: 'zst',
      concurrency: 1,
      exitCue: 'paper',
    });
    const compose = (run!.metrics.extra as { compose: { offloadShare: number; handoffsPerProblem: number } }).compose;
    expect(compose.offloadShare).toBeGreaterThan(0.1);
    expect(compose.handoffsPerProblem).toBeGreaterThan(0);
    for (const p of run!.predictions) {
      const m = p.tokens.models!;
      expect(m.big!.decoded).toBeGreaterThan(0);
      expect(p.tokens.decoded).toBe(m.small!.decoded + m.big!.decoded);
      expect(p.tokens.prefilled).toBe(m.small!.prefilled + m.big!.prefilled);
    }
  });
});
