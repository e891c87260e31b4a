/**
 * The report's data model: what is embedded in the page as JSON, built from the run folders and conformal results.
 * All derived numbers (fallback metrics, savings, Pareto membership, premature-exit rates) are computed here, in
 * Node, so the page only draws and the tests can check the page against the same numbers.
 */
import type { CueEventRecord, LoadedRun, PredictionRecord, RunConfig, RunMetrics } from '../eval/records.js';
import type { LoadedConformalResult } from './conformal.js';
import { summarizeCompose, type ComposeStats, type ComposeSummary } from '../reasoning/compose/stats.js';

export interface ReportOptions {
  /** Page title. Default "Lynx evaluation report". */
  title?: string;
  /** Problems per run whose reasoning text is embedded for the trace viewer (the rest are listed without text). */
  maxTracesPerRun?: number;
  /** Longest reasoning text embedded per problem, in characters (longer texts are cut, and the cut is shown). */
  maxTextChars?: number;
}

export const DEFAULT_MAX_TRACES_PER_RUN = 200;
export const DEFAULT_MAX_TEXT_CHARS = 60_000;
const MAX_PROBLEM_CHARS = 4_000;
const MAX_EVENTS = 2_000;

/** Method names whose runs are full rollouts: the reference for savings when metrics carry no baseline. */
export const REFERENCE_METHODS = ['full', 'baseline', 'vanilla', 'full-rollout', 'no-exit'];

export interface ReportMetrics {
  n: number;
  accuracy: number;
  accuracyCi95: [number, number];
  /** Output tokens per problem (the response). */
  avgTokens: number;
  avgTokensCi95: [number, number];
  /** Decoded tokens per problem (all the work: probes, trials, traces, forced exits); null for runs that did not count them. */
  avgDecoded: number | null;
  avgDecodedCi95: [number, number] | null;
  /** The saving as a share of the oracle's at the same accuracy (simulated runs, `lynx simulate`). */
  oracleShare: number | null;
  wallSec: number;
  exitRate: number | null;
  baselineAccuracy: number | null;
  baselineAvgTokens: number | null;
  /** Fraction of the full rollout's tokens saved (1 - avgTokens / full); negative when the run spent more. */
  savingsRate: number | null;
  /** Where savingsRate came from, for the table's footnote. */
  savingsSource: string | null;
  /** Fraction of problems whose exit was premature (the exit's forced answer was wrong). */
  prematureExitRate: number | null;
  /** Big/small compositions: offload share, hand-offs and each model's work (null for one-model runs). */
  compose: ComposeSummary | null;
}

export interface ReportEvent {
  index: number;
  position: number;
  charOffset: number;
  cue: string;
  score: number | null;
  label: 0 | 1 | null;
  synthetic: boolean;
  exitAnswer: string | null;
}

export interface ReportProblem {
  id: string;
  problem: string;
  gold: string;
  extracted: string | null;
  correct: boolean;
  tokens: { reasoning: number; exitCue: number; answer: number; total: number };
  wallMs: number;
  exit: { event: number; position: number; cue: string | null; score: number | null } | null;
  baseline: { tokens: number; correct: boolean; extracted: string | null } | null;
  events: ReportEvent[];
  /** Index of the reasoning text in ReportData.texts (identical texts, such as one full rollout replayed at several
   * deltas, are stored once); null when no text was recorded or it was not embedded (see textOmitted). */
  textId: number | null;
  /** 'limit' when the run's trace limit left it out; 'none' when the run recorded no text. */
  textOmitted: 'limit' | 'none' | null;
  /** Characters cut from the end of text. */
  textCut: number;
}

/** The two token figures a run reports: output (what the user reads) and decoded (all compute). */
export type TokenKind = 'output' | 'decoded';

/** A run on one token axis: its mean, 95% interval and whether it is on that axis's Pareto frontier. */
export interface TokenAxis {
  avg: number;
  ci: [number, number];
  pareto: boolean;
}

export interface ReportRun {
  key: string;
  benchmark: string;
  method: string;
  setting: string;
  label: string;
  delta: number | null;
  threshold: number | null;
  isReference: boolean;
  /** On the accuracy / output-token frontier (= axes.output.pareto). */
  pareto: boolean;
  /** The run on each token axis (decoded null when the run did not count decoded tokens). */
  axes: Record<TokenKind, TokenAxis | null>;
  metricsSource: 'metrics.json' | 'predictions';
  metrics: ReportMetrics;
  problems: ReportProblem[];
}

export interface PrematurePoint {
  source: 'conformal' | 'eval';
  series: string;
  rule: string;
  benchmark: string | null;
  delta: number;
  threshold: number | null;
  n: number;
  prematureExitRate: number;
  prematureExitRateCi95: [number, number] | null;
  exitRate: number | null;
  calibrationN: number | null;
  accuracy: number | null;
  savingsRate: number | null;
  file: string | null;
}

export interface BaselinePoint {
  benchmark: string;
  accuracy: number;
  avgTokens: number;
  avgDecoded: number | null;
}

export interface ReportData {
  version: 1;
  title: string;
  rootName: string;
  generatedAt: string;
  benchmarks: string[];
  methods: string[];
  /** Every run's setting, in compareSettings order (the summary table sorts its Setting column by it). */
  settings: string[];
  runs: ReportRun[];
  /** Token axes some run reports, output first: the Pareto plot switches between them. */
  tokenKinds: TokenKind[];
  baselines: BaselinePoint[];
  premature: PrematurePoint[];
  /** Reasoning texts, each stored once, referenced by ReportProblem.textId. */
  texts: string[];
  hasConformalFolder: boolean;
  warnings: string[];
}

const natural = new Intl.Collator('en', { numeric: true, sensitivity: 'base' });

/**
 * Order setting names by their numbers, not their digits: `delta=0.05` < `delta=0.1` < `delta=0.2`, `tokens=512` <
 * `tokens=1024`. Text parts compare naturally, number parts numerically.
 */
export function compareSettings(a: string, b: string): number {
  const split = (s: string) => s.split(/(\d*\.?\d+(?:e-?\d+)?)/i);
  const pa = split(a);
  const pb = split(b);
  for (let i = 0; i < Math.min(pa.length, pb.length); i++) {
    const r = i % 2 === 1 ? Number(pa[i]) - Number(pb[i]) : natural.compare(pa[i]!, pb[i]!);
    if (r !== 0) return r;
  }
  return pa.length - pb.length || natural.compare(a, b);
}

const finite = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const numOrNull = (v: unknown): number | null => (finite(v) ? v : null);

/** Wilson score interval of a proportion (95%). */
export function wilson(successes: number, n: number, z = 1.959964): [number, number] {
  if (n === 0) return [0, 0];
  const p = successes / n;
  const d = 1 + (z * z) / n;
  const c = (p + (z * z) / (2 * n)) / d;
  const h = (z * Math.sqrt((p * (1 - p)) / n + (z * z) / (4 * n * n))) / d;
  // At p = 0 or 1 the bound is exactly 0 or 1; floating point would give 1e-17 or 0.9999999999999999.
  return [successes === 0 ? 0 : Math.max(0, c - h), successes === n ? 1 : Math.min(1, c + h)];
}

/** Mean and its normal 95% interval. */
export function meanCi(xs: readonly number[], z = 1.959964): { mean: number; ci: [number, number] } {
  const n = xs.length;
  if (n === 0) return { mean: 0, ci: [0, 0] };
  const mean = xs.reduce((a, b) => a + b, 0) / n;
  if (n === 1) return { mean, ci: [mean, mean] };
  const sd = Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1));
  const h = (z * sd) / Math.sqrt(n);
  return { mean, ci: [mean - h, mean + h] };
}

/**
 * Indices of the points on the accuracy/token Pareto frontier: no other point has at least the accuracy with at most
 * the tokens and is strictly better in one of them. Exact duplicates are all kept.
 */
export function paretoFrontier(points: readonly { accuracy: number; avgTokens: number }[]): number[] {
  const out: number[] = [];
  points.forEach((p, i) => {
    const dominated = points.some(
      (q, j) => j !== i && q.accuracy >= p.accuracy && q.avgTokens <= p.avgTokens && (q.accuracy > p.accuracy || q.avgTokens < p.avgTokens),
    );
    if (!dominated) out.push(i);
  });
  return out;
}

/** The delta of a run: metrics.extra.delta, else config.delta, else `delta=<x>` (or `delta-<x>`, `delta<x>`) in the setting. */
export function runDelta(metrics: RunMetrics | undefined, config: RunConfig | undefined, setting: string): number | null {
  const fromExtra = numOrNull(metrics?.extra?.delta);
  if (fromExtra !== null) return fromExtra;
  const fromConfig = numOrNull(config?.delta);
  if (fromConfig !== null) return fromConfig;
  const m = /(?:^|[^a-z])delta\s*[=:_-]?\s*(\d*\.?\d+(?:e-?\d+)?)/i.exec(setting);
  if (m) {
    const v = Number(m[1]);
    if (Number.isFinite(v) && v > 0 && v <= 1) return v;
  }
  return null;
}

/** Premature exit of one prediction: it exited and the exit event's forced answer was wrong (label 0), or, when the
 * event carries no label, the final answer is wrong. */
export function isPrematureExit(p: PredictionRecord): boolean {
  if (!p.exit) return false;
  const ev = p.events?.find((e) => e.index === p.exit!.event);
  if (ev && (ev.label === 0 || ev.label === 1)) return ev.label === 0;
  return !p.correct;
}

function metricsFromPredictions(preds: readonly PredictionRecord[]): ReportMetrics {
  const n = preds.length;
  const correct = preds.filter((p) => p.correct).length;
  const tok = meanCi(preds.map((p) => p.tokens?.total ?? 0));
  const decodedAll = n > 0 && preds.every((p) => finite(p.tokens?.decoded));
  const dec = decodedAll ? meanCi(preds.map((p) => p.tokens.decoded!)) : null;
  const withBaseline = preds.filter((p) => p.baseline && finite(p.baseline.tokens));
  const fullBaseline = n > 0 && withBaseline.length === n;
  return {
    n,
    accuracy: n ? correct / n : 0,
    accuracyCi95: wilson(correct, n),
    avgTokens: tok.mean,
    avgTokensCi95: tok.ci,
    avgDecoded: dec?.mean ?? null,
    avgDecodedCi95: dec?.ci ?? null,
    oracleShare: null,
    wallSec: preds.reduce((a, p) => a + (finite(p.wallMs) ? p.wallMs : 0), 0) / 1000,
    exitRate: n ? preds.filter((p) => p.exit).length / n : null,
    baselineAccuracy: fullBaseline ? withBaseline.filter((p) => p.baseline!.correct).length / n : null,
    baselineAvgTokens: fullBaseline ? withBaseline.reduce((a, p) => a + p.baseline!.tokens, 0) / n : null,
    savingsRate: null,
    savingsSource: null,
    prematureExitRate: null,
    compose: summarizeCompose(preds.flatMap((p) => (p.extra?.compose ? [p.extra.compose as ComposeStats] : []))) ?? null,
  };
}

function mergeMetrics(m: RunMetrics, fromPreds: ReportMetrics | null): ReportMetrics {
  const pair = (v: unknown): [number, number] | null =>
    Array.isArray(v) && v.length === 2 && finite(v[0]) && finite(v[1]) ? [v[0], v[1]] : null;
  const acc = numOrNull(m.accuracy) ?? fromPreds?.accuracy ?? 0;
  const tok = numOrNull(m.avgTokens) ?? fromPreds?.avgTokens ?? 0;
  return {
    n: numOrNull(m.n) ?? fromPreds?.n ?? 0,
    accuracy: acc,
    accuracyCi95: pair(m.accuracyCi95) ?? fromPreds?.accuracyCi95 ?? [acc, acc],
    avgTokens: tok,
    avgTokensCi95: pair(m.avgTokensCi95) ?? fromPreds?.avgTokensCi95 ?? [tok, tok],
    avgDecoded: numOrNull(m.avgDecoded) ?? fromPreds?.avgDecoded ?? null,
    avgDecodedCi95: pair(m.avgDecodedCi95) ?? fromPreds?.avgDecodedCi95 ?? null,
    oracleShare: numOrNull((m.extra?.oracle as { oracleShare?: unknown } | undefined)?.oracleShare),
    wallSec: numOrNull(m.wallSec) ?? fromPreds?.wallSec ?? 0,
    exitRate: numOrNull(m.exitRate) ?? fromPreds?.exitRate ?? null,
    baselineAccuracy: numOrNull(m.baselineAccuracy) ?? fromPreds?.baselineAccuracy ?? null,
    baselineAvgTokens: numOrNull(m.baselineAvgTokens) ?? fromPreds?.baselineAvgTokens ?? null,
    savingsRate: null,
    savingsSource: null,
    prematureExitRate: null,
    compose: (m.extra?.compose as ComposeSummary | undefined) ?? fromPreds?.compose ?? null,
  };
}

function cut(s: string, max: number): string {
  return s.length > max ? s.slice(0, max) + ' …' : s;
}

function toEvent(e: CueEventRecord): ReportEvent {
  return {
    index: e.index,
    position: e.position,
    charOffset: e.charOffset,
    cue: typeof e.cue === 'string' ? e.cue : '',
    score: numOrNull(e.score),
    label: e.label === 0 || e.label === 1 ? e.label : null,
    synthetic: e.synthetic === true,
    exitAnswer: typeof e.exitAnswer === 'string' ? e.exitAnswer : null,
  };
}

function toProblem(p: PredictionRecord, embedText: boolean, maxTextChars: number, intern: (text: string) => number): ReportProblem {
  const hasText = typeof p.text === 'string';
  const text = hasText && embedText ? p.text!.slice(0, maxTextChars) : null;
  const t = p.tokens ?? { reasoning: 0, exitCue: 0, answer: 0, total: 0 };
  return {
    id: String(p.id),
    problem: cut(String(p.problem ?? ''), MAX_PROBLEM_CHARS),
    gold: String(p.gold ?? ''),
    extracted: p.extracted ?? null,
    correct: p.correct === true,
    tokens: { reasoning: t.reasoning ?? 0, exitCue: t.exitCue ?? 0, answer: t.answer ?? 0, total: t.total ?? 0 },
    wallMs: finite(p.wallMs) ? p.wallMs : 0,
    exit: p.exit
      ? { event: p.exit.event, position: p.exit.position, cue: p.exit.cue ?? null, score: numOrNull(p.exit.score) }
      : null,
    baseline: p.baseline && finite(p.baseline.tokens) ? { tokens: p.baseline.tokens, correct: p.baseline.correct === true, extracted: p.baseline.extracted ?? null } : null,
    events: (p.events ?? []).slice(0, MAX_EVENTS).map(toEvent).sort((a, b) => a.charOffset - b.charOffset || a.index - b.index),
    textId: text !== null ? intern(text) : null,
    textOmitted: !hasText ? 'none' : embedText ? null : 'limit',
    textCut: text !== null ? p.text!.length - text.length : 0,
  };
}

export function isReferenceMethod(method: string): boolean {
  return REFERENCE_METHODS.includes(method.toLowerCase());
}

/** Build the page's data from loaded runs and conformal results. Runs are sorted by benchmark, method, setting. */
export function buildReportData(
  runs: readonly LoadedRun[],
  conformal: readonly LoadedConformalResult[],
  meta: { rootName: string; hasConformalFolder: boolean; warnings: string[]; generatedAt?: Date },
  opts: ReportOptions = {},
): ReportData {
  const maxTraces = opts.maxTracesPerRun ?? DEFAULT_MAX_TRACES_PER_RUN;
  const maxText = opts.maxTextChars ?? DEFAULT_MAX_TEXT_CHARS;
  const warnings = [...meta.warnings];
  const texts: string[] = [];
  const textIds = new Map<string, number>();
  const intern = (text: string): number => {
    let id = textIds.get(text);
    if (id === undefined) {
      id = texts.push(text) - 1;
      textIds.set(text, id);
    }
    return id;
  };
  const sorted = [...runs].sort(
    (a, b) =>
      natural.compare(a.benchmark, b.benchmark) ||
      Number(isReferenceMethod(b.method)) - Number(isReferenceMethod(a.method)) ||
      natural.compare(a.method, b.method) ||
      compareSettings(a.setting, b.setting),
  );

  const out: ReportRun[] = sorted.map((r) => {
    const preds = r.predictions;
    const fromPreds = preds.length ? metricsFromPredictions(preds) : null;
    const metrics = r.metrics ? mergeMetrics(r.metrics, fromPreds) : fromPreds!;
    if (r.metrics && fromPreds && finite(r.metrics.n) && r.metrics.n !== preds.length)
      warnings.push(`eval/${r.benchmark}/${r.method}/${r.setting}: metrics.json says n=${r.metrics.n} but predictions.jsonl has ${preds.length} records`);
    if (finite(r.metrics?.savingsRate)) {
      metrics.savingsRate = r.metrics!.savingsRate!;
      metrics.savingsSource = 'metrics.json savingsRate';
    } else if (metrics.baselineAvgTokens !== null && metrics.baselineAvgTokens > 0) {
      metrics.savingsRate = 1 - metrics.avgTokens / metrics.baselineAvgTokens;
      metrics.savingsSource = r.metrics && finite(r.metrics.baselineAvgTokens) ? 'metrics.json baselineAvgTokens' : 'predictions baseline tokens';
    }
    const delta = runDelta(r.metrics, r.config, r.setting);
    const extraPremature = numOrNull(r.metrics?.extra?.prematureExitRate);
    if (extraPremature !== null) metrics.prematureExitRate = extraPremature;
    else if (preds.length && !isReferenceMethod(r.method)) metrics.prematureExitRate = preds.filter(isPrematureExit).length / preds.length;
    else if (!isReferenceMethod(r.method)) metrics.prematureExitRate = numOrNull(r.metrics?.extra?.wrongExitRate);
    const threshold = numOrNull(r.metrics?.extra?.threshold) ?? numOrNull(r.config?.threshold);
    const anyText = preds.some((p) => typeof p.text === 'string');
    let embedded = 0;
    // Problems in benchmark order when the records say it (merged shards may interleave), else file order.
    const order = (p: PredictionRecord) => numOrNull((p as { index?: unknown }).index) ?? Infinity;
    const ordered = preds.map((p, i) => ({ p, i })).sort((a, b) => order(a.p) - order(b.p) || a.i - b.i).map((x) => x.p);
    const problems = ordered.map((p) => {
      const embed = anyText && typeof p.text === 'string' && embedded < maxTraces;
      if (embed) embedded++;
      return toProblem(p, embed, maxText, intern);
    });
    const setting = r.setting;
    return {
      key: `${r.benchmark}/${r.method}/${setting}`,
      benchmark: r.benchmark,
      method: r.method,
      setting,
      label: `${r.method} · ${setting}`,
      delta,
      threshold,
      isReference: isReferenceMethod(r.method),
      pareto: false,
      axes: {
        output: { avg: metrics.avgTokens, ci: metrics.avgTokensCi95, pareto: false },
        decoded: metrics.avgDecoded === null ? null : { avg: metrics.avgDecoded, ci: metrics.avgDecodedCi95 ?? [metrics.avgDecoded, metrics.avgDecoded], pareto: false },
      },
      metricsSource: r.metrics ? 'metrics.json' : 'predictions',
      metrics,
      problems,
    };
  });

  const benchmarks = [...new Set(out.map((r) => r.benchmark))];
  const baselines: BaselinePoint[] = [];
  for (const b of benchmarks) {
    const inB = out.filter((r) => r.benchmark === b);
    const ref = inB.find((r) => r.isReference);
    for (const r of inB) {
      if (r.isReference) {
        r.metrics.savingsRate = null;
        r.metrics.savingsSource = null;
      } else if (r.metrics.savingsRate === null && ref && ref.metrics.avgTokens > 0) {
        r.metrics.savingsRate = 1 - r.metrics.avgTokens / ref.metrics.avgTokens;
        r.metrics.savingsSource = `reference run ${ref.label}`;
      }
    }
    for (const i of paretoFrontier(inB.map((r) => r.metrics))) {
      inB[i]!.pareto = true;
      inB[i]!.axes.output!.pareto = true;
    }
    // The decoded-token frontier, over the runs that count decoded tokens.
    const counted = inB.filter((r) => r.axes.decoded !== null);
    for (const i of paretoFrontier(counted.map((r) => ({ accuracy: r.metrics.accuracy, avgTokens: r.axes.decoded!.avg })))) counted[i]!.axes.decoded!.pareto = true;
    if (!ref) {
      // Full-rollout reference points carried by the runs' metrics (one per distinct pair, e.g. per model).
      const seen = new Set<string>();
      for (const r of inB) {
        const { baselineAccuracy: a, baselineAvgTokens: t } = r.metrics;
        if (a === null || t === null) continue;
        const k = `${a.toFixed(6)}|${t.toFixed(3)}`;
        if (!seen.has(k)) {
          seen.add(k);
          baselines.push({ benchmark: b, accuracy: a, avgTokens: t, avgDecoded: null });
        }
      }
    }
  }

  const premature: PrematurePoint[] = conformal.map((c) => ({
    source: 'conformal',
    series: c.benchmark ? `${c.rule} (${c.benchmark})` : c.rule,
    rule: c.rule,
    benchmark: c.benchmark ?? null,
    delta: c.delta,
    threshold: c.threshold,
    n: c.heldOut.n,
    prematureExitRate: c.heldOut.prematureExitRate,
    prematureExitRateCi95: c.heldOut.prematureExitRateCi95 ?? null,
    exitRate: c.heldOut.exitRate,
    calibrationN: numOrNull(c.calibration?.n),
    accuracy: numOrNull(c.heldOut.accuracy),
    savingsRate: numOrNull(c.heldOut.savingsRate),
    file: c.file,
  }));
  for (const r of out) {
    if (r.delta === null || r.metrics.prematureExitRate === null) continue;
    const k = Math.round(r.metrics.prematureExitRate * r.metrics.n);
    premature.push({
      source: 'eval',
      series: `eval: ${r.method} (${r.benchmark})`,
      rule: r.method,
      benchmark: r.benchmark,
      delta: r.delta,
      threshold: r.threshold,
      n: r.metrics.n,
      prematureExitRate: r.metrics.prematureExitRate,
      prematureExitRateCi95: r.metrics.n > 0 ? wilson(k, r.metrics.n) : null,
      exitRate: r.metrics.exitRate,
      calibrationN: null,
      accuracy: r.metrics.accuracy,
      savingsRate: r.metrics.savingsRate,
      file: null,
    });
  }

  const methods = [...new Set(out.map((r) => r.method))].sort(
    (a, b) => Number(isReferenceMethod(b)) - Number(isReferenceMethod(a)) || natural.compare(a, b),
  );
  const settings = [...new Set(out.map((r) => r.setting))].sort(compareSettings);
  return {
    version: 1,
    title: opts.title ?? 'Lynx evaluation report',
    rootName: meta.rootName,
    generatedAt: (meta.generatedAt ?? new Date()).toISOString(),
    benchmarks,
    methods,
    settings,
    runs: out,
    tokenKinds: out.some((r) => r.axes.decoded !== null) ? ['output', 'decoded'] : ['output'],
    baselines,
    premature,
    texts,
    hasConformalFolder: meta.hasConformalFolder,
    warnings,
  };
}
