/**
 * A finished run's records as LYNX's own files (`early_exit_metrics.json`, `early_exit_predictions.jsonl`; formats in
 * reasoning/lynx/lynx-files.ts), for online LYNX runs that know their full rollout (a δ sweep generates it anyway):
 * the same figures `lynx simulate` writes for simulated runs, from the prediction records.
 */
import type { ExitRule } from '../reasoning/calibration/conformal.js';
import { lynxPredictionRows, writeLynxFiles, type LynxMetricsFile, type LynxRolloutView } from '../reasoning/lynx/lynx-files.js';
import { lynxMetrics, type SimOutcome, type SimRollout } from '../reasoning/lynx/simulate.js';
import { tokenCounts } from '../reasoning/token-counts.js';
import { nullForNonFinite } from '../util/json.js';
import type { PredictionRecord } from './records.js';

/** `id` or `id#rollout` (several test rollouts per problem) to the problem and rollout. */
export function splitRolloutId(id: string): { problemId: string; rollout: number } {
  const m = /^(.*)#(\d+)$/.exec(id);
  return m ? { problemId: m[1]!, rollout: Number(m[2]) } : { problemId: id, rollout: 0 };
}

/** Whether LYNX's files can be written for these records: every one knows its full rollout. */
export function hasBaselines(preds: readonly PredictionRecord[]): boolean {
  return preds.length > 0 && preds.every((p) => p.baseline !== undefined);
}

/** Write LYNX's files for a run's records (every record must carry its baseline; see `hasBaselines`). */
export function writeLynxRunFiles(
  dir: string,
  preds: readonly PredictionRecord[],
  rule: ExitRule,
  opts: { description?: Partial<LynxMetricsFile>; seed?: number; resamples?: number } = {},
): void {
  if (!hasBaselines(preds)) throw new Error('LYNX metrics need every record to carry its full rollout (baseline)');
  const rollouts: SimRollout[] = [];
  const outcomes: SimOutcome[] = [];
  const views: LynxRolloutView[] = [];
  for (const p of preds) {
    const { problemId, rollout } = splitRolloutId(p.id);
    const b = p.baseline!;
    rollouts.push({ problemId, rollout, fullCorrect: b.correct, fullAnswer: b.extracted, fullTokens: b.tokens, exitCueTokens: p.tokens.exitCue, events: [] });
    const t = p.tokens;
    outcomes.push({
      exited: p.exit !== null,
      eventIndex: p.exit?.event ?? -1,
      correct: p.correct,
      answer: p.extracted,
      tokens: tokenCounts(t.reasoning, t.exitCue, t.answer, { decoded: t.decoded ?? t.total, prefilled: t.prefilled ?? 0 }),
    });
    const events = (p.events ?? []).map((e) => ({ tokenIndex: e.position, cue: e.cue, score: e.score ?? NaN, synthetic: e.synthetic }));
    const exitEvent = p.exit ? (p.events ?? []).findIndex((e) => e.index === p.exit!.event) : -1;
    views.push({
      index: p.index ?? views.length,
      rollout,
      events,
      exitEvent,
      earlyCorrect: p.correct,
      baselineCorrect: b.correct,
      ...(p.exit ? { usedTokens: t.total, addedTokens: t.answer, cueLen: t.exitCue } : {}),
    });
  }
  const lynx = lynxMetrics(rollouts, outcomes, { seed: opts.seed ?? 0, resamples: opts.resamples, wallTimeSec: preds.reduce((a, p) => a + p.wallMs, 0) / 1000 });
  writeLynxFiles(dir, nullForNonFinite({ ...opts.description, ...lynx }) as LynxMetricsFile, lynxPredictionRows(views, rule));
}
