/** `lynx report --markdown`: the results tables written from run folders and the calibration summary. */
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { composeTable, experimentMarkdown } from '../src/report/markdown.js';
import { runDir, type RunMetrics } from '../src/eval/records.js';
import { writeJsonAtomic } from '../src/util/fs.js';

const root = mkdtempSync(join(tmpdir(), 'lynx-md-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function run(method: string, setting: string, accuracy: number, avgTokens: number, exitRate?: number): void {
  const m: RunMetrics = { method, setting, benchmark: 'demo', n: 100, accuracy, accuracyCi95: [accuracy - 0.05, accuracy + 0.05], avgTokens, avgTokensCi95: [avgTokens - 1, avgTokens + 1], wallSec: 12.5, exitRate };
  writeJsonAtomic(join(runDir(root, 'demo', method, setting), 'metrics.json'), m);
  writeJsonAtomic(join(runDir(root, 'demo', method, setting), 'config.json'), { benchmark: 'demo', method, setting });
}

describe('experimentMarkdown', () => {
  it('lists full first, then methods with settings in numeric order, with tokens relative to full', () => {
    run('full', 'full', 0.8, 200);
    run('lynx', 'delta=0.2', 0.7, 100, 0.6);
    run('lynx', 'delta=0.05', 0.79, 150, 0.3);
    run('deer', 'threshold=0.95', 0.75, 250, 0.1);
    writeJsonAtomic(join(root, 'conformal', 'summary.json'), {
      rules: [{ rule: 'lynx', delta: 0.05, threshold: 0.8123, guaranteedRate: 'eventErrorRate', heldOut: { empiricalRate: 0.041, exitRate: 0.3, savingsRate: 0.2, accuracy: 0.79, baselineAccuracy: 0.8 } }],
    });
    const md = experimentMarkdown(root);
    const rows = md.split('\n').filter((l) => /^\| (full|lynx|deer) \| /.test(l));
    expect(rows.map((r) => r.split(' | ').slice(0, 2).join(' '))).toEqual(['| full full', '| deer threshold=0.95', '| lynx delta=0.05', '| lynx delta=0.2', '| lynx 0.05']);
    expect(rows[0]).toContain('80.0% [75.0, 85.0]');
    expect(rows[2]).toContain('| −25.0% |');
    expect(rows[1]).toContain('| +25.0% |');
    expect(rows[3]).toContain('| 60.0% |');
    expect(md).toContain('| lynx | 0.05 | 0.8123 | eventErrorRate | 0.041 | 30.0% | 20.0% | 79.0% (80.0%) |');
  });
});

describe('composeTable', () => {
  const summary = (mode: string, offloadShare: number) => ({
    mode,
    problems: 10,
    offloadShare,
    meanOffloadShare: offloadShare,
    handoffsPerProblem: 2.5,
    small: { decoded: 300, prefilled: 120, probeTokens: 40 },
    big: { decoded: 30, prefilled: 200 },
  });
  const metrics = (method: string, setting: string, wallSec: number, compose?: ReturnType<typeof summary>): RunMetrics => ({
    method, setting, benchmark: 'demo', n: 10, accuracy: 0.6, accuracyCi95: [0.3, 0.85], avgTokens: 200, avgTokensCi95: [190, 210], wallSec, extra: compose ? { compose } : {},
  });

  it('shows accuracy against wall time per mode, relative to the big model alone', () => {
    const rows = composeTable([metrics('full', 'full', 99), metrics('big', 'big-only', 50, summary('big', 1)), metrics('split', 'segment=128,every=8', 20, summary('split', 0.1))]);
    const split = rows.find((r) => r.startsWith('| split |'))!;
    expect(split).toBe('| split | segment=128,every=8 | 10 | 60.0% [30.0, 85.0] | 20.0 | 40% | 10.0% | 2.5 | 300 / 120 | 30 / 200 |');
    expect(rows.find((r) => r.startsWith('| big |'))).toContain('| 100% | 100.0% |');
    // One-model runs are not composition rows.
    expect(rows.some((r) => r.startsWith('| full |'))).toBe(false);
    expect(composeTable([metrics('full', 'full', 1)])).toEqual([]);
  });
});
