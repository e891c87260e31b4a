/**
 * LYNX's own output files: `early_exit_metrics.json` and `early_exit_predictions.jsonl` as `early_exit_eval.py` writes
 * them (keys, one row per event passed up to the exit, 1-based ranks and positions), written by `lynx simulate` and
 * read back, by this project and from a file LYNX's Python wrote.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { calibrateLynx, type ExitRule } from '../src/reasoning/calibration/conformal.js';
import {
  LYNX_METRICS_FILE,
  LYNX_PREDICTIONS_FILE,
  lynxPredictionRows,
  readLynxMetrics,
  readLynxPredictions,
  writeLynxFiles,
} from '../src/reasoning/lynx/lynx-files.js';
import { lynxMetrics, simulateRollout, type SimEvent, type SimRollout } from '../src/reasoning/lynx/simulate.js';
import { lynxViews, simulatedLynxRows } from '../src/eval/simulated-runs.js';
import { writeLynxRunFiles } from '../src/eval/lynx-run-files.js';
import type { PredictionRecord } from '../src/eval/records.js';

const tmp = mkdtempSync(join(tmpdir(), 'lynx-files-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const ev = (score: number, correct: boolean, tokenIndex: number, answerTokens: number, synthetic = false): SimEvent => ({
  score,
  correct,
  tokenIndex,
  answerTokens,
  answer: correct ? '4' : '5',
  synthetic,
  cue: synthetic ? 'synthetic' : 'wait',
});

const rollouts: SimRollout[] = [
  { problemId: 'a', index: 3, fullCorrect: true, fullAnswer: '4', fullTokens: 400, exitCueTokens: 7, events: [ev(0.2, false, 50, 3), ev(0.9, true, 120, 4), ev(0.95, true, 200, 4)] },
  { problemId: 'b', index: 5, fullCorrect: false, fullAnswer: '1', fullTokens: 300, exitCueTokens: 7, events: [ev(0.1, false, 40, 3)] },
  { problemId: 'c', index: 8, fullCorrect: true, fullAnswer: '4', fullTokens: 200, exitCueTokens: 7, events: [ev(0.99, false, 60, 2, true), ev(0.7, false, 90, 5)] },
];

// Exits iff p > 0.5 (set {1}): qPos = 1 keeps 1 always, qNeg = 0.5 keeps 0 for p <= 0.5.
const rule = (): ExitRule => ({ ...calibrateLynx([0.9, 0.1], [1, 0], 0.3, { useClipped: true }), qPos: 1, qNeg: 0.5, threshold: 0.5 + 1e-12 });

describe("LYNX's prediction rows", () => {
  it("one row per event passed, up to and including the exit, with LYNX's keys", () => {
    const r = rule();
    const outcomes = rollouts.map((x) => simulateRollout(r, x));
    const rows = simulatedLynxRows(rollouts, outcomes, r);
    // a: exits at its second event; b: never (its one event); c: the synthetic event is no decision point.
    expect(rows.map((x) => [x.index, x.event_rank, x.pos_rel, x.exited])).toEqual([
      [3, 1, 51, false],
      [3, 2, 121, true],
      [5, 1, 41, false],
      [8, 1, 91, true],
    ]);
    expect(rows[0]).toEqual({ index: 3, rollout: 0, event_rank: 1, pos_rel: 51, event: 'wait', p_pos: 0.2, predictive_set: [1, 0], set_size: 2, exited: false });
    // LYNX's exit row: used_tokens = (pos_rel - 1) + cue_len + added_tokens.
    expect(rows[1]).toMatchObject({ predictive_set: [1], set_size: 1, early_label: 1, baseline_label: 1, used_tokens: 120 + 7 + 4, added_tokens: 4, cue_len: 7 });
    expect(rows[3]).toMatchObject({ early_label: 0, baseline_label: 1 });
  });

  it('round-trip through the files, and read the metrics LYNX writes (with Python Infinity)', () => {
    const r = rule();
    const outcomes = rollouts.map((x) => simulateRollout(r, x));
    const metrics = { dataset_id: 'demo', test_problems: 3, test_rollouts: 1, ...lynxMetrics(rollouts, outcomes, { resamples: 50 }) };
    const rows = lynxPredictionRows(lynxViews(rollouts, outcomes), r);
    writeLynxFiles(tmp, metrics, rows);
    expect(readLynxPredictions(join(tmp, LYNX_PREDICTIONS_FILE))).toEqual(rows);
    const back = readLynxMetrics(join(tmp, LYNX_METRICS_FILE));
    expect(back).toEqual(JSON.parse(JSON.stringify(metrics)));
    expect(back.accepted_subset).toMatchObject({ rate: 2 / 3, help: 0, harm: 1, unchanged_correct: 1, unchanged_incorrect: 0 });
    expect(back.early_exit.total_tokens).toBe(131 + 300 + (90 + 7 + 5));

    // A file as LYNX's Python writes it: the figures only, floats and a NaN-free Infinity elsewhere.
    const lynxPath = join(tmp, 'python-metrics.json');
    writeFileSync(
      lynxPath,
      JSON.stringify({ ...JSON.parse(readFileSync(join(tmp, LYNX_METRICS_FILE), 'utf8')), ci95: undefined, llm_device: 'cuda:0' }).replace('"dataset_id"', '"extra": Infinity, "dataset_id"'),
    );
    expect(readLynxMetrics(lynxPath).rollouts_attempted).toBe(3);
    writeFileSync(join(tmp, 'bad.json'), JSON.stringify({ rollouts_attempted: 3, exited_count: 1, baseline: { accuracy: 1 } }));
    expect(() => readLynxMetrics(join(tmp, 'bad.json'))).toThrow(/baseline: avg_tokens must be a number/);
    writeFileSync(join(tmp, 'bad.jsonl'), '{"index": 1}\n');
    expect(() => readLynxPredictions(join(tmp, 'bad.jsonl'))).toThrow(/bad.jsonl:1: rollout must be a number/);
  });

  it('an online run that knows its full rollouts writes the same files as its simulation', () => {
    const r = rule();
    const outcomes = rollouts.map((x) => simulateRollout(r, x));
    const preds: PredictionRecord[] = rollouts.map((x, i) => {
      const o = outcomes[i]!;
      return {
        id: x.problemId,
        index: x.index,
        benchmark: 'demo',
        method: 'lynx',
        setting: 'delta=0.3',
        problem: '',
        gold: '4',
        extracted: o.answer,
        correct: o.correct,
        tokens: o.tokens,
        wallMs: 1000,
        exit: o.exited ? { event: o.eventIndex, position: x.events[o.eventIndex]!.tokenIndex } : null,
        baseline: { tokens: 400 - 100 * i, correct: x.fullCorrect, extracted: x.fullAnswer },
        events: x.events.map((e, k) => ({ index: k, position: e.tokenIndex, charOffset: 0, cue: e.cue!, score: e.score, synthetic: e.synthetic })),
      };
    });
    const dir = join(tmp, 'online');
    writeLynxRunFiles(dir, preds, r, { resamples: 50 });
    expect(readLynxPredictions(join(dir, LYNX_PREDICTIONS_FILE))).toEqual(simulatedLynxRows(rollouts, outcomes, r));
    const m = readLynxMetrics(join(dir, LYNX_METRICS_FILE));
    const sim = lynxMetrics(rollouts, outcomes, { resamples: 50 });
    expect({ b: m.baseline, e: m.early_exit, a: m.accepted_subset }).toEqual({ b: sim.baseline, e: sim.early_exit, a: sim.accepted_subset });
    expect(m.wall_time_sec).toBe(3);
  });
});
