/** The report's data model and page assembly, without a browser. */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PredictionRecord } from '../src/eval/records.js';
import {
  buildReportData,
  compareSettings,
  conformalProblem,
  inlineScript,
  isPrematureExit,
  jsonForScript,
  meanCi,
  paretoFrontier,
  readConformalResults,
  renderReportHtml,
  runDelta,
  scanExperiment,
  wilson,
  writeReport,
} from '../src/report/index.js';
import { InvalidInputError } from '../src/util/errors.js';
import { buildSyntheticExperiment, INJECTION } from './fixtures/report/synthetic-experiment.js';

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'lynx-report-model-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function pred(over: Partial<PredictionRecord>): PredictionRecord {
  return {
    id: 'p', benchmark: 'b', method: 'm', setting: 's', problem: 'q', gold: '1', extracted: '1', correct: true,
    tokens: { reasoning: 90, exitCue: 5, answer: 5, total: 100 }, wallMs: 5, exit: null, ...over,
  };
}

describe('statistics', () => {
  it('wilson interval matches known values and stays inside [0, 1]', () => {
    const [lo, hi] = wilson(8, 10);
    expect(lo).toBeCloseTo(0.4902, 3);
    expect(hi).toBeCloseTo(0.9433, 3);
    expect(wilson(0, 10)[0]).toBe(0);
    expect(wilson(10, 10)[1]).toBe(1);
    expect(wilson(0, 0)).toEqual([0, 0]);
  });

  it('mean interval uses the sample standard deviation', () => {
    const { mean, ci } = meanCi([1, 2, 3, 4]);
    expect(mean).toBe(2.5);
    const h = (1.959964 * Math.sqrt(5 / 3)) / 2;
    expect(ci[0]).toBeCloseTo(2.5 - h, 9);
    expect(ci[1]).toBeCloseTo(2.5 + h, 9);
  });

  it('Pareto frontier keeps exactly the non-dominated points', () => {
    const pts = [
      { accuracy: 0.5, avgTokens: 100 }, // frontier (cheapest)
      { accuracy: 0.7, avgTokens: 200 }, // frontier
      { accuracy: 0.6, avgTokens: 250 }, // dominated by #1
      { accuracy: 0.7, avgTokens: 300 }, // dominated by #1 (same accuracy, more tokens)
      { accuracy: 0.9, avgTokens: 900 }, // frontier (most accurate)
      { accuracy: 0.9, avgTokens: 900 }, // exact duplicate: kept
    ];
    expect(paretoFrontier(pts)).toEqual([0, 1, 4, 5]);
    expect(paretoFrontier([])).toEqual([]);
  });

  it('orders settings by their numbers', () => {
    const s = ['delta=0.2', 'delta=0.05', 'delta=0.1', 'tokens=1024', 'tokens=512', 'full'];
    expect([...s].sort(compareSettings)).toEqual(['delta=0.05', 'delta=0.1', 'delta=0.2', 'full', 'tokens=512', 'tokens=1024']);
  });
});

describe('run interpretation', () => {
  it('finds a run delta in metrics, then config, then the setting name', () => {
    const m = { extra: { delta: 0.07 } } as never;
    expect(runDelta(m, { delta: 0.2 } as never, 'delta=0.3')).toBe(0.07);
    expect(runDelta(undefined, { delta: 0.2 } as never, 'delta=0.3')).toBe(0.2);
    expect(runDelta(undefined, undefined, 'delta=0.3')).toBe(0.3);
    expect(runDelta(undefined, undefined, 'lynx-delta-0.05-t0.6')).toBe(0.05);
    expect(runDelta(undefined, undefined, 'tokens=512')).toBeNull();
    expect(runDelta(undefined, undefined, 'delta=5')).toBeNull();
  });

  it('a premature exit is an exit whose event label is 0, else a wrong exit answer', () => {
    const events = [{ index: 0, position: 3, charOffset: 10, cue: 'wait', label: 1 as const }, { index: 1, position: 9, charOffset: 30, cue: 'hmm', label: 0 as const }];
    expect(isPrematureExit(pred({ exit: { event: 1, position: 9 }, events, correct: true }))).toBe(true);
    expect(isPrematureExit(pred({ exit: { event: 0, position: 3 }, events, correct: false }))).toBe(false);
    expect(isPrematureExit(pred({ exit: { event: 0, position: 3 }, correct: false }))).toBe(true);
    expect(isPrematureExit(pred({ exit: null, correct: false }))).toBe(false);
  });
});

describe('conformal results', () => {
  it('validates the documented schema', () => {
    const ok = { rule: 'trajectory-ltt', delta: 0.1, threshold: 0.8, heldOut: { n: 10, prematureExitRate: 0.05, exitRate: 0.5 } };
    expect(conformalProblem(ok)).toBeNull();
    expect(conformalProblem({ ...ok, threshold: null })).toBeNull();
    expect(conformalProblem({ ...ok, delta: 0 })).toMatch(/delta/);
    expect(conformalProblem({ ...ok, threshold: 'x' })).toMatch(/threshold/);
    expect(conformalProblem({ ...ok, heldOut: { ...ok.heldOut, prematureExitRate: 1.5 } })).toMatch(/prematureExitRate/);
    expect(conformalProblem({ ...ok, heldOut: { ...ok.heldOut, prematureExitRateCi95: [0.1] } })).toMatch(/Ci95/);
    expect(conformalProblem([ok])).toMatch(/object/);
  });

  it('reads files recursively, arrays too, and turns bad files into warnings', () => {
    const root = join(tmp, 'conf');
    const ok = (delta: number) => ({ rule: 'lynx-class-conditional', delta, threshold: 0.9, heldOut: { n: 100, prematureExitRate: delta / 2, exitRate: 0.4 } });
    mkdirSync(join(root, 'conformal', 'sub'), { recursive: true });
    writeFileSync(join(root, 'conformal', 'a.json'), JSON.stringify(ok(0.1)));
    writeFileSync(join(root, 'conformal', 'sub', 'b.json'), JSON.stringify([ok(0.05), { rule: '' }]));
    writeFileSync(join(root, 'conformal', 'c.json'), '{');
    writeFileSync(join(root, 'conformal', 'notes.txt'), 'ignored');
    const { results, warnings } = readConformalResults(root);
    expect(results.map((r) => [r.delta, r.file])).toEqual([[0.05, 'sub/b.json'], [0.1, 'a.json']]);
    expect(warnings).toHaveLength(2);
    expect(warnings.join('\n')).toContain('sub/b.json[1]');
    expect(warnings.join('\n')).toContain('c.json');
    expect(readConformalResults(join(tmp, 'nowhere'))).toEqual({ results: [], warnings: [] });
  });
});

describe('scanExperiment', () => {
  let root: string;
  beforeAll(() => {
    root = join(tmp, 'exp');
    buildSyntheticExperiment(root);
    // a setting with only unmerged shards, and one with a broken metrics.json
    mkdirSync(join(root, 'eval', 'gsm8k', 'dynasor', 'probe=32', 'shard-0-of-2'), { recursive: true });
    const bad = join(root, 'eval', 'gsm8k', 'deepconf', 'k=8');
    mkdirSync(bad, { recursive: true });
    writeFileSync(join(bad, 'metrics.json'), '{ nope');
  });

  it('reads every run, computes missing metrics, savings, Pareto membership and premature rates', () => {
    const data = scanExperiment(root);
    expect(data.benchmarks).toEqual(['csqa', 'gsm8k', 'math500']);
    expect(data.methods[0]).toBe('full');
    // every setting once, numbers compared as numbers (the page's Setting column sorts by this order)
    expect(new Set(data.settings)).toEqual(new Set(data.runs.map((r) => r.setting)));
    expect(data.settings.length).toBe(new Set(data.settings).size);
    expect(data.settings.filter((x) => x.startsWith('delta='))).toEqual(['delta=0.05', 'delta=0.1', 'delta=0.2']);
    expect(data.runs).toHaveLength(13);
    expect(data.runs.map((r) => r.key).filter((k) => k.startsWith('gsm8k/lynx'))).toEqual(['gsm8k/lynx/delta=0.05', 'gsm8k/lynx/delta=0.1', 'gsm8k/lynx/delta=0.2']);
    const fromPreds = data.runs.find((r) => r.key === 'math500/lynx/delta=0.2')!;
    expect(fromPreds.metricsSource).toBe('predictions');
    expect(fromPreds.delta).toBe(0.2);
    expect(fromPreds.metrics.savingsSource).toBe('predictions baseline tokens');
    const budget = data.runs.find((r) => r.key === 'gsm8k/budget/tokens=64')!;
    expect(budget.metrics.savingsSource).toBe('reference run full · full');
    const full = data.runs.find((r) => r.key === 'gsm8k/full/full')!;
    expect(full.isReference).toBe(true);
    expect(full.metrics.savingsRate).toBeNull();
    expect(full.metrics.prematureExitRate).toBeNull();
    expect(budget.metrics.savingsRate).toBeCloseTo(1 - budget.metrics.avgTokens / full.metrics.avgTokens, 12);
    // premature points: 8 conformal + one per eval run with a delta (3 + 3 + 1)
    expect(data.premature.filter((p) => p.source === 'conformal')).toHaveLength(8);
    expect(data.premature.filter((p) => p.source === 'eval')).toHaveLength(7);
    const lynx = data.runs.find((r) => r.key === 'gsm8k/lynx/delta=0.1')!;
    const raw = readFileSync(join(root, 'eval', 'gsm8k', 'lynx', 'delta=0.1', 'predictions.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as PredictionRecord);
    expect(lynx.metrics.prematureExitRate).toBeCloseTo(raw.filter(isPrematureExit).length / raw.length, 12);
    for (const b of data.benchmarks) expect(data.runs.filter((r) => r.benchmark === b && r.pareto).length).toBeGreaterThan(0);
    expect(data.warnings.join('\n')).toContain('eval/gsm8k/dynasor/probe=32: only unmerged shards');
    expect(data.warnings.join('\n')).toContain('eval/gsm8k/deepconf/k=8: skipped');
    expect(data.warnings.join('\n')).not.toContain(root);
  });

  it('limits embedded traces and text length, and says so per problem', () => {
    const data = scanExperiment(root, { maxTracesPerRun: 2, maxTextChars: 50 });
    const lynx = data.runs.find((r) => r.key === 'gsm8k/lynx/delta=0.1')!;
    expect(lynx.problems.filter((p) => p.textId !== null)).toHaveLength(2);
    expect(data.texts[lynx.problems[0]!.textId!]).toHaveLength(50);
    expect(lynx.problems[0]!.textCut).toBeGreaterThan(0);
    expect(lynx.problems[5]!.textOmitted).toBe('limit');
    const deer = data.runs.find((r) => r.key === 'gsm8k/deer/threshold=0.95')!;
    expect(deer.problems.every((p) => p.textOmitted === 'none')).toBe(true);
  });

  it('takes a metrics-only run as it is, and orders problems by their benchmark index', () => {
    const r2 = join(tmp, 'exp-small');
    const a = join(r2, 'eval', 'aime24', 'deer', 'threshold=0.9');
    mkdirSync(a, { recursive: true });
    writeFileSync(join(a, 'metrics.json'), JSON.stringify({ method: 'deer', setting: 'threshold=0.9', benchmark: 'aime24', n: 30, accuracy: 0.3, accuracyCi95: [0.17, 0.48], avgTokens: 9000, avgTokensCi95: [8000, 10000], wallSec: 100, exitRate: 0.5, extra: { wrongExitRate: 0.2 } }));
    const b = join(r2, 'eval', 'aime24', 'lynx', 'delta=0.1');
    mkdirSync(b, { recursive: true });
    writeFileSync(join(b, 'predictions.jsonl'), [2, 0, 1].map((i) => JSON.stringify({ ...pred({ id: `q${i}` }), index: i })).join('\n') + '\n');
    const data = scanExperiment(r2);
    const deer = data.runs.find((r) => r.method === 'deer')!;
    expect(deer.metrics.accuracyCi95).toEqual([0.17, 0.48]);
    expect(deer.metrics.prematureExitRate).toBe(0.2);
    expect(deer.problems).toEqual([]);
    expect(data.runs.find((r) => r.method === 'lynx')!.problems.map((p) => p.id)).toEqual(['q0', 'q1', 'q2']);
  });

  it('rejects a missing root with a message that says what to give', () => {
    expect(() => scanExperiment(join(tmp, 'missing'))).toThrow(InvalidInputError);
    expect(() => scanExperiment(join(tmp, 'missing'))).toThrow(/experiment root not found/);
  });
});

describe('page assembly', () => {
  it('embeds data so that no model text can close a script element', () => {
    const root = join(tmp, 'exp-html');
    buildSyntheticExperiment(root);
    const { path, data } = writeReport(root, join(tmp, 'out', 'r.html'));
    const html = readFileSync(path, 'utf8');
    // exactly the scripts the page defines, in order, and the data parses back to what was scanned
    expect(html.match(/<script\b/gi)).toHaveLength(4);
    expect(html.match(/<\/script>/gi)).toHaveLength(4);
    const json = /<script type="application\/json" id="lynx-data">([^]*?)<\/script>/.exec(html)![1]!;
    expect(json).not.toMatch(/[<>]/);
    const back = JSON.parse(json) as typeof data;
    expect(back.texts[back.runs.find((r) => r.key === 'gsm8k/lynx/delta=0.1')!.problems[3]!.textId!]).toContain(INJECTION);
    // the full rollout's text of a problem is stored once however many runs replay it
    const ids = back.runs.filter((r) => r.benchmark === 'gsm8k' && r.problems[0]!.textId !== null).map((r) => r.problems[0]!.textId);
    expect(ids.length).toBeGreaterThan(2);
    expect(new Set(ids).size).toBe(1);
    expect(back.runs).toHaveLength(data.runs.length);
    // offline: no external references
    expect(html).not.toMatch(/<(script|link|img)[^>]+(src|href)=["']?https?:/i);
  });

  it('escapes JSON and scripts the way the HTML parser needs', () => {
    const s = jsonForScript({ t: '</script><!-- & \u2028' });
    expect(s).not.toMatch(/[<>&\u2028]/);
    expect(JSON.parse(s)).toEqual({ t: '</script><!-- & \u2028' });
    expect(inlineScript('var a = "</SCRIPT>";')).toBe('var a = "<\\/SCRIPT>";');
    expect(() => inlineScript('x = "<!--"')).toThrow();
    const html = renderReportHtml({ version: 1, title: 'T <b>', rootName: 'r&d', generatedAt: '2026-01-01T00:00:00.000Z', benchmarks: [], methods: [], settings: [], runs: [], tokenKinds: ['output'], baselines: [], premature: [], texts: [], hasConformalFolder: false, warnings: [] });
    expect(html).toContain('<title>T &lt;b&gt; · r&amp;d</title>');
  });
});

describe('output and decoded tokens', () => {
  const run = (method: string, setting: string, tokens: PredictionRecord['tokens'][], extra: Record<string, unknown> = {}) => ({
    dir: `/x/${method}/${setting}`,
    benchmark: 'b',
    method,
    setting,
    metrics: undefined,
    config: undefined,
    predictions: tokens.map((t, i) => pred({ id: `p${i}`, method, setting, tokens: t, correct: i % 2 === 0, ...extra })),
  });
  const t = (total: number, decoded?: number) => ({ reasoning: total, exitCue: 0, answer: 0, total, ...(decoded === undefined ? {} : { decoded, prefilled: 10 }) });

  it('puts every run on both token axes, each with its own Pareto frontier; old runs only on the output one', () => {
    const data = buildReportData(
      [
        run('full', 'full', [t(100, 100), t(100, 100)]),
        // Fewer output tokens than the full rollout but more decoded ones (probes): on the output frontier only.
        run('probe', 'k=8', [t(60, 300), t(60, 300)]),
        run('lynx', 'delta=0.1', [t(70, 72), t(70, 72)]),
        run('old', 'x', [t(50), t(50)]),
      ],
      [],
      { rootName: 'r', hasConformalFolder: false, warnings: [] },
    );
    expect(data.tokenKinds).toEqual(['output', 'decoded']);
    const by = new Map(data.runs.map((r) => [r.method, r]));
    expect(by.get('probe')!.axes.output).toMatchObject({ avg: 60 });
    expect(by.get('probe')!.axes.decoded).toMatchObject({ avg: 300, pareto: false });
    expect(by.get('lynx')!.axes.decoded).toMatchObject({ avg: 72, pareto: true });
    expect(by.get('old')!.axes.decoded).toBeNull();
    expect(by.get('old')!.axes.output!.pareto).toBe(true);
    expect(by.get('probe')!.pareto).toBe(by.get('probe')!.axes.output!.pareto);
    const onlyOld = buildReportData([run('old', 'x', [t(50)])], [], { rootName: 'r', hasConformalFolder: false, warnings: [] });
    expect(onlyOld.tokenKinds).toEqual(['output']);
  });
});
