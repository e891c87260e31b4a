/**
 * The experiment folder and `lynx train-probe` / `calibrate` / `simulate` on synthetic event datasets whose features
 * carry signal about the label (a Gaussian shift on the first dimensions). No model is needed.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { discoverRuns, loadRun } from '../src/eval/records.js';
import { DEFAULT_DELTAS, type LynxRule, type TrajectoryRule } from '../src/reasoning/calibration/conformal.js';
import { parseRule, ruleFileName } from '../src/reasoning/calibration/rule-files.js';
import { DatasetWriter, readDataset, unitKey, type DatasetRow } from '../src/reasoning/lynx/dataset/store.js';
import { SUMMARY_FILE, calibrateStep, splitProblems, type CalibrationSummary } from '../src/pipeline/calibrate.js';
import { loadEventDatasets } from '../src/pipeline/event-data.js';
import { simulateStep } from '../src/pipeline/simulate.js';
import { trainProbeStep, type ProbeTrainingMetrics } from '../src/pipeline/train-probe.js';
import { loadLynxPolicy } from '../src/reasoning/lynx/policy.js';
import { loadProbe } from '../src/reasoning/lynx/probe/probe.js';
import { Rng } from '../src/util/rng.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const CLI = join(REPO, 'src', 'cli', 'main.ts');
const tmp = mkdtempSync(join(tmpdir(), 'lynx-experiment-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const D = 24;
const LAYERS = [2, 4, 6];
const INFO = { hiddenStateLayers: LAYERS, cues: ['hmm+', 'wait', 'alternatively'], exitCue: 'paper', model: 'synthetic-model', benchmark: 'synth' };

/**
 * One rollout: a full answer right with probability 0.7; forced exits turn right from a random event on when the full
 * rollout is right (10% label noise), rarely right otherwise. Features: N(0, 1) with a shift of ±0.35 on the first 8
 * dimensions by label. Every 20th rollout has no cue and one synthetic event (LYNX's 70% event).
 */
function makeRollout(seed: number, p: number, r: number, opts: { allLabels?: 0 | 1 } = {}): DatasetRow[] {
  const rng = Rng.derive(seed, `${p}#${r}`);
  const fullCorrect = rng.next() < 0.7;
  const synthetic = rng.next() < 0.05;
  const nEvents = synthetic ? 1 : rng.int(1, 8);
  const turn = rng.int(0, nEvents);
  const fullTokens = 400 + rng.int(0, 1200);
  const rows: DatasetRow[] = [];
  let position = 0;
  for (let e = 0; e < nEvents; e++) {
    position = synthetic ? Math.floor(0.7 * fullTokens) - 1 : position + rng.int(10, Math.floor(fullTokens / (nEvents + 1)));
    let label: 0 | 1 = fullCorrect ? (e >= turn ? 1 : 0) : rng.next() < 0.1 ? 1 : 0;
    if (rng.next() < 0.1) label = label ? 0 : 1;
    if (opts.allLabels !== undefined) label = opts.allLabels;
    const features = new Float32Array(D);
    for (let k = 0; k < D; k++) features[k] = rng.normal() + (k < 8 ? (label ? 0.35 : -0.35) : 0);
    rows.push({
      features,
      meta: {
        problemId: `q${p}`,
        problemIndex: p,
        rollout: r,
        eventIndex: e,
        position,
        tokensSoFar: position + 1,
        cue: synthetic ? 'synthetic' : 'wait',
        synthetic,
        label,
        exitAnswer: label ? 'right' : 'wrong',
        exitAnswerTokens: rng.int(3, 12),
        exitCueTokens: 9,
        fullAnswer: fullCorrect ? 'right' : 'wrong',
        fullCorrect,
        fullTokens,
        gold: 'right',
      },
    });
  }
  return rows;
}

function makeDataset(
  dir: string,
  opts: { seed: number; problems: number; rollouts?: number; first?: number; info?: Record<string, unknown>; allLabels?: 0 | 1 },
): string {
  const w = DatasetWriter.open(dir, { nFeatures: D, info: { ...INFO, ...opts.info } });
  const first = opts.first ?? 0;
  for (let p = first; p < first + opts.problems; p++) {
    for (let r = 0; r < (opts.rollouts ?? 1); r++) w.add(unitKey(`q${p}`, r), makeRollout(opts.seed, p, r, { allLabels: opts.allLabels }));
  }
  w.finish();
  return dir;
}

const EXP = join(tmp, 'exp');
const TRAIN = join(EXP, 'datasets', 'train');
const CALIB = join(EXP, 'datasets', 'calib');
const TEST = join(EXP, 'datasets', 'test');
const SMALL = { hidden: [64, 16] };

let trained: { metrics: ProbeTrainingMetrics };
let calibrated: ReturnType<typeof calibrateStep>;

beforeAll(() => {
  makeDataset(TRAIN, { seed: 1, problems: 500 });
  makeDataset(CALIB, { seed: 2, problems: 1400, first: 1000 });
  makeDataset(TEST, { seed: 3, problems: 200, rollouts: 2, first: 5000 });
});

describe('lynx train-probe', () => {
  it('trains on the datasets and saves probe, info and metrics', () => {
    trained = trainProbeStep({ datasets: [TRAIN], outDir: join(EXP, 'probe'), config: SMALL, seed: 7 });
    const m = trained.metrics;
    expect(m.val_auc).toBeGreaterThan(0.8);
    expect(m.val_acc).toBeGreaterThan(0.7);
    const ds = readDataset(TRAIN);
    expect(m.n_events).toBe(ds.rows);
    expect(m.n_train + m.n_val).toBe(ds.rows);
    expect(m.val_pos + m.val_neg).toBe(m.n_val);
    expect(m.cm.flat().reduce((a, b) => a + b, 0)).toBe(m.n_val);
    expect(m.val_ece).toBeGreaterThanOrEqual(0);
    expect(m.val_brier).toBeLessThan(0.25);
    expect(m.label_rate).toBeCloseTo(ds.meta.filter((x) => x.label).length / ds.rows, 12);
    expect(m.hidden).toEqual([64, 16]);
    expect(m.seed).toBe(7);

    for (const f of ['probe.json', 'probe.safetensors', 'metrics.json']) expect(existsSync(join(EXP, 'probe', f))).toBe(true);
    const onDisk = JSON.parse(readFileSync(join(EXP, 'probe', 'metrics.json'), 'utf8')) as ProbeTrainingMetrics;
    expect(onDisk.val_auc).toBe(m.val_auc);
    expect(onDisk.datasets).toEqual([
      { name: 'train', rows: ds.rows, rollouts: 500, problems: 500, labelRate: m.label_rate, benchmark: 'synth' },
    ]);
    const { header, probe } = loadProbe(join(EXP, 'probe'));
    expect(probe.nFeatures).toBe(D);
    expect(header.info).toMatchObject({ hiddenStateLayers: LAYERS, cues: INFO.cues, exitCue: 'paper', model: 'synthetic-model' });
    expect((header.info!.datasets as { name: string }[])[0]!.name).toBe('train');
    expect(Date.parse(header.info!.trainedAt as string)).not.toBeNaN();
  });

  it('refuses datasets that disagree on layers, cues or model, and single-class data', () => {
    const other = makeDataset(join(tmp, 'other-layers'), { seed: 4, problems: 5, info: { hiddenStateLayers: [2, 4, 7] } });
    expect(() => trainProbeStep({ datasets: [TRAIN, other], outDir: join(tmp, 'p-bad') })).toThrow(
      /disagree on hiddenStateLayers: .*train has \[2,4,6\], .*other-layers has \[2,4,7\]/,
    );
    const otherModel = makeDataset(join(tmp, 'other-model'), { seed: 4, problems: 5, info: { model: 'another-model' } });
    expect(() => loadEventDatasets([TRAIN, otherModel])).toThrow(/disagree on model: .*"synthetic-model".*"another-model"/);
    const noLayers = makeDataset(join(tmp, 'no-layers'), { seed: 4, problems: 5, info: { hiddenStateLayers: undefined } });
    expect(() => loadEventDatasets([noLayers])).toThrow(/does not say which hidden-state layers .*info\.hiddenStateLayers/);
    const allRight = makeDataset(join(tmp, 'all-right'), { seed: 4, problems: 30, allLabels: 1 });
    expect(() => trainProbeStep({ datasets: [allRight], outDir: join(tmp, 'p-bad') })).toThrow(/both labels, but all \d+ forced exits .* were correct/);
    expect(() => loadEventDatasets([join(tmp, 'nowhere')])).toThrow(/no manifest\.json: not a LYNX event dataset/);
    expect(existsSync(join(tmp, 'p-bad'))).toBe(false);
  });

  it('merges several datasets and prefixes problem ids only when they collide', () => {
    const a = makeDataset(join(tmp, 'a'), { seed: 5, problems: 4 });
    const b = makeDataset(join(tmp, 'b'), { seed: 6, problems: 4, first: 4 });
    const c = makeDataset(join(tmp, 'c'), { seed: 7, problems: 4 }); // same ids as a
    const ab = loadEventDatasets([a, b]);
    expect(new Set(ab.meta.map((m) => m.problemId))).toEqual(new Set(['q0', 'q1', 'q2', 'q3', 'q4', 'q5', 'q6', 'q7']));
    const ac = loadEventDatasets([a, c]);
    expect(ac.rows).toBe(readDataset(a).rows + readDataset(c).rows);
    expect(new Set(ac.meta.map((m) => m.problemId)).size).toBe(8);
    expect(ac.meta[0]!.problemId).toBe('a:q0');
    expect(ac.meta[ac.rows - 1]!.problemId).toMatch(/^c:q3$/);
    expect(ac.meta[ac.rows - 1]!.unit).toBe(`c:q3#0`);
    // features follow their rows
    const dc = readDataset(c);
    expect(Array.from(ac.features.subarray((ac.rows - 1) * D, ac.rows * D))).toEqual(Array.from(dc.features.subarray((dc.rows - 1) * D)));
  });
});

describe('the split by problem', () => {
  it('is disjoint, seeded and sized round(f · P)', () => {
    const ids = Array.from({ length: 101 }, (_, i) => `p${i}`);
    const held = splitProblems([...ids, ...ids], 0.3, 11);
    expect(held.size).toBe(30);
    expect([...held].every((id) => ids.includes(id))).toBe(true);
    expect(splitProblems(ids.slice().reverse(), 0.3, 11)).toEqual(held);
    expect(splitProblems(ids, 0.3, 12)).not.toEqual(held);
    expect(splitProblems(ids, 0, 11).size).toBe(0);
    expect(splitProblems(['a', 'b'], 0.9, 1).size).toBe(1);
    expect(() => splitProblems(['a'], 0.5, 1)).toThrow(/cannot hold out part of 1 problem/);
    expect(() => splitProblems(ids, 1, 1)).toThrow(/\[0, 1\)/);
  });
});

describe('lynx calibrate', () => {
  it('writes 7 deltas × 3 rules and a summary with held-out rates next to delta', () => {
    calibrated = calibrateStep({ probeDir: join(EXP, 'probe'), datasets: [CALIB], outDir: join(EXP, 'conformal'), seed: 3 });
    const files = readdirSync(join(EXP, 'conformal')).sort();
    const expected = ['lynx', 'ltt', 'crc'].flatMap((r) => DEFAULT_DELTAS.map((d) => ruleFileName(r as 'lynx', d)));
    expect(files).toEqual([...expected, SUMMARY_FILE].sort());
    expect(calibrated.files).toHaveLength(21);

    const s = JSON.parse(readFileSync(join(EXP, 'conformal', SUMMARY_FILE), 'utf8')) as CalibrationSummary;
    expect(s.schema).toBe('lynx.conformal-summary/1');
    expect(s.rules).toHaveLength(21);
    const ds = readDataset(CALIB);
    const { calibration, heldOut } = s.split;
    expect(calibration.problems + heldOut!.problems).toBe(1400);
    expect(heldOut!.problems).toBe(420);
    expect(calibration.events + heldOut!.events).toBe(ds.rows);
    expect(calibration.correctExits + calibration.wrongExits).toBe(calibration.events);
    expect(s.probe.hiddenStateLayers).toEqual(LAYERS);
    expect(s.data[0]!.name).toBe('calib');

    for (const e of s.rules) {
      const rule = parseRule(JSON.parse(readFileSync(join(EXP, 'conformal', e.file), 'utf8')));
      expect(rule.rule).toBe(e.rule);
      expect(rule.delta).toBe(e.delta);
      expect(rule.threshold).toBe(e.threshold);
      expect(rule.heldOut!.prematureExitRate).toBe(e.heldOut!.prematureExitRate);
      expect(e.heldOut!.n).toBe(heldOut!.rollouts);
      expect(e.guarantee.length).toBeGreaterThan(40);
      if (e.rule === 'lynx') {
        expect(e.nCal).toBe(calibration.events); // the calibration part only
        expect(e.guaranteedRate).toBe('eventErrorRate');
        expect(e.heldOut!.empiricalRate).toBe(e.heldOut!.eventErrorRate);
        expect(e.valid).toBe(true);
        // LYNX's per-event guarantee, on about 900 held-out wrong exits: close to or below delta ...
        expect(e.heldOut!.empiricalRate).toBeLessThanOrEqual(e.delta + 0.03);
        expect(e.heldOut!.withinDelta).toBe(e.heldOut!.empiricalRate <= e.delta);
      } else {
        expect(e.nCal).toBe(calibration.problems);
        expect(e.guaranteedRate).toBe('prematureExitRate');
        expect(e.heldOut!.empiricalRate).toBeLessThanOrEqual(e.delta + 0.05);
      }
      expect(e.heldOut!.savingsRate).toBeCloseTo(e.heldOut!.avgSavings! / e.heldOut!.baselineAvgTokens, 12);
    }
    // ... and not trivially: at large delta the rules do exit, and accept wrong exits at a rate near delta.
    const lynx10 = s.rules.find((e) => e.rule === 'lynx' && e.delta === 0.1)!;
    expect(lynx10.heldOut!.empiricalRate).toBeGreaterThan(0.06);
    expect(lynx10.heldOut!.exitRate).toBeGreaterThan(0.3);
    expect(s.rules.find((e) => e.rule === 'ltt' && e.delta === 0.1)!.heldOut!.empiricalRate).toBeGreaterThan(0.06);
    expect(s.rules.find((e) => e.rule === 'crc' && e.delta === 0.2)!.heldOut!.savingsRate).toBeGreaterThan(0.1);
  });

  it('gives thresholds monotone in delta', () => {
    const byRule = (name: string) => calibrated.rules.filter((r) => r.rule === name).sort((a, b) => a.delta - b.delta);
    for (const name of ['ltt', 'crc']) {
      const t = byRule(name).map((r) => (r as TrajectoryRule).threshold ?? Infinity);
      for (let i = 1; i < t.length; i++) expect(t[i]!).toBeLessThanOrEqual(t[i - 1]!);
      expect(t[t.length - 1]!).toBeLessThan(t[0]!);
    }
    // LYNX's rule exits iff p >= 1 - qPos and p > qNeg: the label-0 bound falls with delta, the label-1 bound rises.
    const lynx = byRule('lynx') as LynxRule[];
    for (let i = 1; i < lynx.length; i++) {
      expect(lynx[i]!.qNeg).toBeLessThanOrEqual(lynx[i - 1]!.qNeg);
      expect(1 - lynx[i]!.qPos).toBeGreaterThanOrEqual(1 - lynx[i - 1]!.qPos);
      expect(lynx[i]!.threshold!).toBeGreaterThanOrEqual(1 - lynx[i]!.qPos);
      expect(lynx[i]!.threshold!).toBeGreaterThan(lynx[i]!.qNeg);
    }
    expect(lynx[lynx.length - 1]!.threshold!).toBeLessThan(lynx[0]!.threshold!);
  });

  it('yields a policy loadLynxPolicy can read', () => {
    const policy = loadLynxPolicy(EXP, { rule: 'lynx', delta: 0.05 });
    expect(policy.hiddenStateLayers).toEqual(LAYERS);
    expect(policy.cues).toEqual(INFO.cues);
    expect(policy.rule.rule).toBe('lynx');
    expect(policy.rule.delta).toBe(0.05);
    expect(policy.probe.nFeatures).toBe(D);
    const crc = loadLynxPolicy(EXP, { rule: 'crc', delta: 0.1 });
    expect(crc.rule.threshold).toBe(calibrated.rules.find((r) => r.rule === 'crc' && r.delta === 0.1)!.threshold);
  });

  it('calibrates on everything with --held-out 0 and removes rule files of an earlier calibration', () => {
    const out = join(tmp, 'conformal-all');
    calibrateStep({ probeDir: join(EXP, 'probe'), datasets: [CALIB], outDir: out });
    expect(readdirSync(out)).toHaveLength(22);
    const r = calibrateStep({ probeDir: EXP, datasets: [CALIB], outDir: out, heldOutFraction: 0, deltas: [0.1, 0.05], rules: ['lynx', 'crc'] });
    expect(readdirSync(out).sort()).toEqual(['conformal_calib_005.json', 'conformal_calib_010.json', 'crc_005.json', 'crc_010.json', SUMMARY_FILE].sort());
    expect(r.summary.split.heldOut).toBeNull();
    expect(r.summary.rules.map((e) => `${e.rule}@${e.delta}`)).toEqual(['lynx@0.05', 'lynx@0.1', 'crc@0.05', 'crc@0.1']);
    for (const e of r.summary.rules) expect(e.heldOut).toBeUndefined();
    expect(r.summary.rules[0]!.nCal).toBe(readDataset(CALIB).rows);
    expect(r.summary.rules[2]!.nCal).toBe(1400);
  });

  it('fails clearly on a missing probe, a mismatched probe and single-class calibration data', () => {
    expect(() => calibrateStep({ probeDir: join(tmp, 'no-probe'), datasets: [CALIB], outDir: join(tmp, 'c-bad') })).toThrow(
      /no probe at .*no-probe.*train one with 'lynx train-probe'/,
    );
    const allWrong = makeDataset(join(tmp, 'all-wrong'), { seed: 8, problems: 40, allLabels: 0 });
    expect(() => calibrateStep({ probeDir: join(EXP, 'probe'), datasets: [allWrong], outDir: join(tmp, 'c-bad') })).toThrow(
      /calibration data has a single class: all \d+ forced exits were wrong/,
    );
    const otherLayers = join(tmp, 'other-layers');
    expect(() => calibrateStep({ probeDir: join(EXP, 'probe'), datasets: [otherLayers], outDir: join(tmp, 'c-bad') })).toThrow(
      /probe in .* reads hidden-state layers \[2,4,6\] but the datasets hold layers \[2,4,7\]/,
    );
    const otherModel = join(tmp, 'other-model');
    expect(() => calibrateStep({ probeDir: join(EXP, 'probe'), datasets: [otherModel], outDir: join(tmp, 'c-bad') })).toThrow(
      /trained with model "synthetic-model" but the datasets have "another-model"/,
    );
    expect(() => calibrateStep({ probeDir: join(EXP, 'probe'), datasets: [CALIB], outDir: join(tmp, 'c-bad'), deltas: [0] })).toThrow(/delta must be in \(0, 1\)/);
    expect(() => calibrateStep({ probeDir: join(EXP, 'probe'), datasets: [CALIB], outDir: join(tmp, 'c-bad'), rules: ['nope' as 'lynx'] })).toThrow(
      /unknown rule 'nope'/,
    );
    expect(existsSync(join(tmp, 'c-bad'))).toBe(false);
  });
});

describe('lynx simulate', () => {
  it('writes a run folder per rule and delta plus the full-rollout baseline', () => {
    const r = simulateStep({ exp: EXP, datasets: [TEST], resamples: 200 });
    const ds = readDataset(TEST);
    expect(r.rollouts).toBe(400);
    expect(r.events).toBe(ds.rows);
    expect(r.rolloutsWithoutEvents).toBe(0);
    expect(r.runs).toHaveLength(21);
    const runs = discoverRuns(EXP);
    // 21 rule settings, the full rollout and the oracle exit.
    expect(runs).toHaveLength(23);
    expect(new Set(runs.map((x) => x.benchmark))).toEqual(new Set(['synth']));
    expect(new Set(runs.map((x) => x.method))).toEqual(new Set(['lynx', 'lynx-ltt', 'lynx-crc', 'full', 'oracle']));
    for (const folder of runs) {
      const run = loadRun(folder);
      expect(run.predictions).toHaveLength(400);
      expect(run.metrics!.n).toBe(400);
      expect(run.config!.simulated).toBe(true);
      for (const f of ['metrics.json', 'predictions.jsonl', 'config.json']) expect(existsSync(join(folder.dir, f))).toBe(true);
      expect(run.predictions[0]!.gold).toBe('right');
    }
    const full = loadRun(runs.find((x) => x.method === 'full')!);
    const fullCorrect = new Map(ds.meta.map((m) => [`${m.problemId}#${m.rollout}`, m.fullCorrect]));
    expect(full.setting).toBe('full');
    expect(full.metrics!.exitRate).toBe(0);
    expect(full.metrics!.accuracy).toBeCloseTo([...fullCorrect.values()].filter(Boolean).length / 400, 12);
    expect(full.predictions.every((p) => p.exit === null && p.tokens.total === p.baseline!.tokens)).toBe(true);

    // The rule runs exit, save tokens, and carry LYNX's metrics; the baseline they report is the full run.
    const crc = loadRun(runs.find((x) => x.method === 'lynx-crc' && x.setting === 'delta=0.2')!);
    expect(crc.metrics!.exitRate).toBeGreaterThan(0.2);
    expect(crc.metrics!.savingsRate).toBeGreaterThan(0.1);
    expect(crc.metrics!.baselineAccuracy).toBe(full.metrics!.accuracy);
    expect(crc.metrics!.baselineAvgTokens).toBe(full.metrics!.avgTokens);
    expect((crc.metrics!.extra!.lynx as { rollouts_attempted: number }).rollouts_attempted).toBe(400);
    expect((crc.config!.rule as { rule: string }).rule).toBe('crc');
    const strict = loadRun(runs.find((x) => x.method === 'lynx' && x.setting === 'delta=0.01')!);
    const loose = loadRun(runs.find((x) => x.method === 'lynx' && x.setting === 'delta=0.3')!);
    expect(loose.metrics!.exitRate!).toBeGreaterThan(strict.metrics!.exitRate!);
  });

  it('filters rules and deltas and names what is missing', () => {
    const out = join(tmp, 'exp-filtered');
    const r = simulateStep({
      exp: out,
      probeDir: join(EXP, 'probe'),
      conformalDir: join(EXP, 'conformal'),
      datasets: [TEST],
      benchmark: 'other-bench',
      rules: ['ltt'],
      deltas: [0.05, 0.1],
      resamples: 100,
    });
    expect(r.runs.map((x) => `${x.method} ${x.setting}`)).toEqual(['lynx-ltt delta=0.05', 'lynx-ltt delta=0.1']);
    expect(discoverRuns(out).map((x) => `${x.benchmark}/${x.method}`)).toEqual(['other-bench/full', 'other-bench/lynx-ltt', 'other-bench/lynx-ltt', 'other-bench/oracle']);
    expect(() => simulateStep({ exp: out, probeDir: join(EXP, 'probe'), conformalDir: join(EXP, 'conformal'), datasets: [TEST], deltas: [0.07] })).toThrow(
      /no rule matching/,
    );
    expect(() =>
      simulateStep({ exp: out, probeDir: join(EXP, 'probe'), conformalDir: join(tmp, 'conformal-all'), datasets: [TEST], rules: ['ltt'], deltas: [0.05] }),
    ).toThrow(/has no ltt rule for delta 0.05 \(ltt_005\.json\)/);
    expect(() => simulateStep({ exp: join(tmp, 'empty-exp'), probeDir: join(EXP, 'probe'), datasets: [TEST] })).toThrow(/no conformal folder .*lynx calibrate/);
  });
});

describe('the CLI', () => {
  const lynx = (...args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', CLI, ...args], { cwd: REPO, encoding: 'utf8' });

  it('runs train-probe, calibrate and simulate end to end', () => {
    const exp = join(tmp, 'cli-exp');
    const t = lynx('train-probe', TRAIN, '-o', join(exp, 'probe'), '--hidden', '32,8', '--epochs', '30', '--seed', '3', '-q');
    expect(t.status, t.stderr).toBe(0);
    expect(t.stdout).toMatch(/validation: AUC 0\.[89]\d\d/);
    expect(t.stdout).toMatch(/confusion at p >= 0\.5: tn \d+ fp \d+ fn \d+ tp \d+/);
    expect(loadProbe(join(exp, 'probe')).probe.hidden).toEqual([32, 8]);

    const c = lynx('calibrate', '--probe', join(exp, 'probe'), '--data', CALIB, '-o', join(exp, 'conformal'), '--deltas', '0.05,0.2', '--rules', 'lynx,crc', '-q');
    expect(c.status, c.stderr).toBe(0);
    const lines = c.stdout.split('\n');
    expect(lines.filter((l) => /^0\.(05|2)\s+(lynx|crc)\s+p >= /.test(l))).toHaveLength(4);
    expect(c.stdout).toMatch(/^0\.05\s+lynx\s+p >= 0\.\d{4} \(q\+ .*\)\s+0\.\d{4} (<=|>) 0\.05 per event\s+\d+\.\d%/m);
    expect(readdirSync(join(exp, 'conformal'))).toHaveLength(5);

    const s = lynx('simulate', '--exp', exp, '--data', TEST, '--resamples', '100');
    expect(s.status, s.stderr).toBe(0);
    expect(s.stdout).toMatch(/simulated 4 rule settings, the full-rollout baseline and the oracle exit on 400 rollouts/);
    expect(discoverRuns(exp)).toHaveLength(6);
  });

  it('exits with 1 (bad data) or 2 (bad option) and a clear message on bad input', () => {
    const a = lynx('train-probe', join(tmp, 'nowhere'), '-o', join(tmp, 'cli-bad'));
    expect(a.status).toBe(1);
    expect(a.stderr).toMatch(/lynx: .*nowhere has no manifest\.json/);
    const b = lynx('calibrate', '--probe', join(EXP, 'probe'), '--data', CALIB, '-o', join(tmp, 'cli-bad'), '--deltas', '0.05,1.5');
    expect(b.status).toBe(2);
    expect(b.stderr).toMatch(/--deltas: '1\.5' is not a number in \(0, 1\)/);
    const c = lynx('train-probe', TRAIN, join(tmp, 'other-layers'), '-o', join(tmp, 'cli-bad'), '--hidden', '8');
    expect(c.status).toBe(1);
    expect(c.stderr).toMatch(/disagree on hiddenStateLayers/);
    expect(existsSync(join(tmp, 'cli-bad'))).toBe(false);
  });
});
