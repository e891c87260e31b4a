/**
 * Statistics of generated traces, in the terms the model card and issue 7 use: accuracy by level, thinking tokens,
 * the share of thinking after the first correct candidate answer (the room early exit has), cue words per trace,
 * and how often slips are made and fixed.
 */
import { parseCompletion, type Trace } from './traces.js';

/** Counts tokens of a text (for the demo: the demo tokenizer). Must be additive at line boundaries. */
export type TokenCounter = (text: string) => number;

export interface LevelStats {
  level: number;
  traces: number;
  /** Final answer correct. */
  accuracy: number;
  /** First candidate answer correct. */
  firstCandidateAccuracy: number;
  meanThinkingTokens: number;
  /** Mean over traces of (thinking tokens after the first correct candidate) / (thinking tokens); 0 without one. */
  meanShareAfterFirstCorrect: number;
  meanCuesPerTrace: number;
  meanRounds: number;
}

export interface TraceStats {
  traces: number;
  accuracy: number;
  firstCandidateAccuracy: number;
  meanThinkingTokens: number;
  maxThinkingTokens: number;
  /** Mean over traces of the per-trace share after the first correct candidate (0 when no candidate is correct). */
  meanShareAfterFirstCorrect: number;
  /** Total thinking tokens after first correct candidates / total thinking tokens. */
  pooledShareAfterFirstCorrect: number;
  /** Traces with at least one correct candidate. */
  reachesCorrect: number;
  meanCuesPerTrace: number;
  /** Cue words by role: opening a round, announcing a fix, inside the first pass. */
  cuesByRole: { round: number; fix: number; work: number };
  cuesByWord: Record<string, number>;
  meanRounds: number;
  roundsByKind: Record<string, number>;
  /** Traces whose first pass has at least one slip. */
  slipRate: number;
  /** First-pass slips put right by a later round / first-pass slips. */
  fixRate: number;
  /** Traces with a false correction (a right step "fixed" into a wrong one). */
  falseFixRate: number;
  /** Traces where the first candidate was wrong and the final answer right (exiting at the first answer hurts). */
  wrongThenRight: number;
  /** Traces where the first candidate was right and the final answer wrong (overthinking hurts). */
  rightThenWrong: number;
  byLevel: LevelStats[];
}

interface PerTrace {
  level: number;
  correct: boolean;
  firstCorrect: boolean;
  thinking: number;
  after: number;
  cues: number;
  rounds: number;
}

/** Thinking tokens of a trace and those after its first correct candidate (counted from the next round's start). */
export function thinkingTokenSplit(trace: Trace, count: TokenCounter): { thinking: number; afterFirstCorrect: number; firstCorrectIndex: number } {
  const thinking = count(trace.thinking);
  const first = trace.candidates.findIndex((c) => c.correct);
  if (first < 0) return { thinking, afterFirstCorrect: 0, firstCorrectIndex: -1 };
  // A candidate line ends with "." and a blank line; the rest of the thinking starts after that.
  let cut = trace.candidates[first]!.end + 1;
  while (trace.thinking[cut] === '\n') cut++;
  return { thinking, afterFirstCorrect: count(trace.thinking.slice(cut)), firstCorrectIndex: first };
}

export function traceStatistics(traces: readonly Trace[], count: TokenCounter): TraceStats {
  const rows: PerTrace[] = [];
  const cuesByRole = { round: 0, fix: 0, work: 0 };
  const cuesByWord: Record<string, number> = {};
  const roundsByKind: Record<string, number> = {};
  let maxThinking = 0;
  let slipTraces = 0;
  let firstPassSlips = 0;
  let firstPassFixed = 0;
  let falseFixTraces = 0;
  let wrongThenRight = 0;
  let rightThenWrong = 0;
  for (const t of traces) {
    const split = thinkingTokenSplit(t, count);
    maxThinking = Math.max(maxThinking, split.thinking);
    for (const c of t.cues) {
      cuesByRole[c.role]++;
      cuesByWord[c.word] = (cuesByWord[c.word] ?? 0) + 1;
    }
    for (const r of t.rounds) roundsByKind[r.kind] = (roundsByKind[r.kind] ?? 0) + 1;
    const first = t.slips.filter((s) => s.round === -1);
    if (first.length > 0) slipTraces++;
    firstPassSlips += first.length;
    firstPassFixed += first.filter((s) => s.fixedInRound !== null).length;
    if (t.slips.some((s) => s.kind === 'false-fix')) falseFixTraces++;
    const firstCorrect = t.candidates[0]!.correct;
    if (!firstCorrect && t.correct) wrongThenRight++;
    if (firstCorrect && !t.correct) rightThenWrong++;
    rows.push({ level: t.problem.level, correct: t.correct, firstCorrect, thinking: split.thinking, after: split.afterFirstCorrect, cues: t.cues.length, rounds: t.rounds.length });
  }
  const mean = (xs: number[]) => (xs.length === 0 ? 0 : xs.reduce((a, b) => a + b, 0) / xs.length);
  const summarize = (rs: PerTrace[]) => ({
    accuracy: mean(rs.map((r) => (r.correct ? 1 : 0))),
    firstCandidateAccuracy: mean(rs.map((r) => (r.firstCorrect ? 1 : 0))),
    meanThinkingTokens: mean(rs.map((r) => r.thinking)),
    meanShareAfterFirstCorrect: mean(rs.map((r) => (r.thinking > 0 ? r.after / r.thinking : 0))),
    meanCuesPerTrace: mean(rs.map((r) => r.cues)),
    meanRounds: mean(rs.map((r) => r.rounds)),
  });
  const levels = [...new Set(rows.map((r) => r.level))].sort((a, b) => a - b);
  const totalThinking = rows.reduce((a, r) => a + r.thinking, 0);
  const totalAfter = rows.reduce((a, r) => a + r.after, 0);
  const n = traces.length;
  return {
    traces: n,
    ...summarize(rows),
    maxThinkingTokens: maxThinking,
    pooledShareAfterFirstCorrect: totalThinking > 0 ? totalAfter / totalThinking : 0,
    reachesCorrect: n === 0 ? 0 : traces.filter((t) => t.candidates.some((c) => c.correct)).length / n,
    cuesByRole,
    cuesByWord,
    roundsByKind,
    slipRate: n === 0 ? 0 : slipTraces / n,
    fixRate: firstPassSlips === 0 ? 0 : firstPassFixed / firstPassSlips,
    falseFixRate: n === 0 ? 0 : falseFixTraces / n,
    wrongThenRight: n === 0 ? 0 : wrongThenRight / n,
    rightThenWrong: n === 0 ? 0 : rightThenWrong / n,
    byLevel: levels.map((level) => {
      const rs = rows.filter((r) => r.level === level);
      return { level, traces: rs.length, ...summarize(rs) };
    }),
  };
}

const pct = (x: number) => `${(x * 100).toFixed(1)}%`;

/** A plain-text table of the statistics. */
export function formatTraceStats(s: TraceStats): string {
  const lines = [
    `traces: ${s.traces}`,
    `accuracy: ${pct(s.accuracy)} (first candidate ${pct(s.firstCandidateAccuracy)}; reaches a correct candidate ${pct(s.reachesCorrect)})`,
    `thinking tokens: mean ${s.meanThinkingTokens.toFixed(1)}, max ${s.maxThinkingTokens}`,
    `share of thinking after the first correct answer: mean ${pct(s.meanShareAfterFirstCorrect)}, pooled ${pct(s.pooledShareAfterFirstCorrect)}`,
    `cue words per trace: ${s.meanCuesPerTrace.toFixed(2)} (round ${s.cuesByRole.round}, fix ${s.cuesByRole.fix}, in working ${s.cuesByRole.work}; ` +
      Object.entries(s.cuesByWord).map(([w, c]) => `${w} ${c}`).join(', ') + ')',
    `verification rounds per trace: ${s.meanRounds.toFixed(2)} (` + Object.entries(s.roundsByKind).map(([k, c]) => `${k} ${c}`).join(', ') + ')',
    `slips: ${pct(s.slipRate)} of traces; ${pct(s.fixRate)} of first-pass slips fixed later; false corrections in ${pct(s.falseFixRate)}`,
    `first answer wrong, final right: ${pct(s.wrongThenRight)}; first right, final wrong: ${pct(s.rightThenWrong)}`,
    '',
    'level  traces  accuracy  first-cand  think-tok  after-first-correct  cues  rounds',
    ...s.byLevel.map(
      (l) =>
        `${String(l.level).padStart(5)}  ${String(l.traces).padStart(6)}  ${pct(l.accuracy).padStart(8)}  ${pct(l.firstCandidateAccuracy).padStart(10)}  ` +
        `${l.meanThinkingTokens.toFixed(1).padStart(9)}  ${pct(l.meanShareAfterFirstCorrect).padStart(19)}  ${l.meanCuesPerTrace.toFixed(2).padStart(4)}  ${l.meanRounds.toFixed(2).padStart(6)}`,
    ),
  ];
  return lines.join('\n');
}

export interface CompletionSummary {
  /** Final boxed answer after `</think>`, or null (no end of thinking, or no box). */
  finalAnswer: number | null;
  correct: boolean;
  /** The first candidate ("the answer is N") is right; null when there is none. */
  firstCandidateCorrect: boolean | null;
  candidates: number;
  cues: number;
  thinkingTokens: number;
  /** Thinking tokens after the first correct candidate's sentence (0 when none is correct). */
  afterFirstCorrect: number;
  /** Some candidate answer in the thinking is right. */
  reachedCorrect: boolean;
}

/**
 * The same measures from a completion's text alone, for what a model writes (the model card measures rollouts of the
 * trained model with this). `count` must count tokens as the model's tokenizer does.
 */
export function summarizeCompletion(completion: string, answer: number, count: TokenCounter): CompletionSummary {
  const parsed = parseCompletion(completion);
  const thinkingTokens = count(parsed.thinking);
  const first = parsed.candidates.findIndex((c) => c.value === answer);
  let afterFirstCorrect = 0;
  if (first >= 0) {
    let cut = parsed.candidates[first]!.end + 1;
    while (parsed.thinking[cut] === '\n') cut++;
    afterFirstCorrect = count(parsed.thinking.slice(cut));
  }
  return {
    finalAnswer: parsed.finalAnswer,
    correct: parsed.finalAnswer === answer,
    firstCandidateCorrect: parsed.candidates.length > 0 ? parsed.candidates[0]!.value === answer : null,
    candidates: parsed.candidates.length,
    cues: parsed.cues.length,
    thinkingTokens,
    afterFirstCorrect,
    reachedCorrect: first >= 0,
  };
}
