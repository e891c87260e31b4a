/**
 * What limits LYNX's savings on an experiment folder (`lynx demo experiment` writes one), measured, not timed:
 *
 *   npx tsx bench/oracle-limits.ts EXP [--out bench/results/<date>-oracle-limits.json]
 *
 * From the test dataset (labelled full rollouts) scored by the probe, and the calibration dataset:
 *
 * - the bound: the oracle frontier's saving at the full rollout's accuracy and one and two points below it;
 * - features: the probe's AUC on the test events and the saving of its best single threshold chosen on the test set
 *   itself (no calibration at all) at the same accuracies: what the probe's ranking allows; and the same for probes
 *   trained (LYNX's configuration, seed 42) on 25%, 50% and all of the probe dataset's problems, and on the probe and
 *   calibration datasets together: whether more training data would lift it;
 * - calibration: every calibrated LYNX rule's accuracy, saving, share of the oracle's saving at its accuracy, and the
 *   best threshold's saving there; and LYNX's rule at δ 0.05 / 0.1 calibrated on 25%, 50% and all of the calibration
 *   problems (20 seeded draws each): whether more calibration data would move it;
 * - events: how often a right full rollout has no cue event whose forced exit is right, how deep into the reasoning the
 *   first right one sits, the events per rollout and the tokens between them.
 *
 * Output tokens throughout, as the savings of BENCHMARKS.md.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { loadEventDatasets, labelsOf, withGold } from '../src/pipeline/event-data.js';
import { readRules } from '../src/reasoning/calibration/rule-files.js';
import { rocAuc } from '../src/reasoning/calibration/stats.js';
import { datasetRollouts } from '../src/reasoning/lynx/dataset/store.js';
import {
  calibrationSizeCurve,
  compareWithOracle,
  oracleFrontier,
  oracleLimits,
  thresholdFrontier,
  tokensAtAccuracy,
} from '../src/reasoning/lynx/oracle.js';
import { fitProbe, loadProbe, type Probe } from '../src/reasoning/lynx/probe/probe.js';
import { Rng } from '../src/util/rng.js';
import { baselineCounts, simulateRollout } from '../src/reasoning/lynx/simulate.js';

const args = process.argv.slice(2);
const exp = args[0];
if (!exp) throw new Error('usage: tsx bench/oracle-limits.ts EXP [--out FILE]');
const outPath = args.includes('--out') ? args[args.indexOf('--out') + 1] : undefined;

const { probe } = loadProbe(join(exp, 'probe'));
const test = loadEventDatasets([join(exp, 'datasets', 'test')]);
const testScores = probe.predict(test.features, test.rows);
const rollouts = withGold(datasetRollouts(test, testScores), test.meta);
const cal = loadEventDatasets([join(exp, 'datasets', 'calib')]);
const calScores = probe.predict(cal.features, cal.rows);

const n = rollouts.length;
const baseTokens = rollouts.reduce((a, r) => a + baselineCounts(r).total, 0) / n;
const fullAccuracy = rollouts.filter((r) => r.fullCorrect).length / n;
const oracle = oracleFrontier(rollouts);
const probeFront = thresholdFrontier(rollouts);
const saving = (t: number | null) => (t === null ? null : 1 - t / baseTokens);
const pct = (x: number | null | undefined) => (x === null || x === undefined ? '—' : `${(100 * x).toFixed(1)}%`);

const real = test.meta.map((m, i) => ({ m, p: testScores[i]! })).filter((x) => !x.m.synthetic);
const auc = rocAuc(Float64Array.from(real, (x) => x.p), Uint8Array.from(real, (x) => x.m.label));

const bound = [0, 0.01, 0.02].map((drop) => {
  const accuracy = fullAccuracy - drop;
  return {
    accuracy,
    oracleSavingsRate: saving(tokensAtAccuracy(oracle, accuracy, n)),
    probeSavingsRate: saving(tokensAtAccuracy(probeFront, accuracy, n)),
  };
});

const rules = readRules(join(exp, 'conformal'), { rules: ['lynx', 'ltt', 'crc'] }).map((rule) => {
  const outcomes = rollouts.map((r) => simulateRollout(rule, r));
  const accuracy = outcomes.filter((o) => o.correct).length / n;
  const avgTokens = outcomes.reduce((a, o) => a + o.tokens.total, 0) / n;
  return { rule: rule.rule, delta: rule.delta, refused: rule.rule === 'lynx' ? rule.refused : false, ...compareWithOracle(rollouts, { accuracy, avgTokens }, { oracle, probe: probeFront }) };
});

const calibration = [0.05, 0.1].map((delta) => ({
  delta,
  curve: calibrationSizeCurve({ problemIds: cal.meta.map((m) => m.problemId), p: calScores, labels: labelsOf(cal.meta) }, rollouts, delta, { seed: 0 }),
}));

const perRollout = rollouts.map((r) => r.events.filter((e) => !e.synthetic));
const gaps = perRollout.flatMap((evs) => evs.slice(1).map((e, i) => e.tokenIndex - evs[i]!.tokenIndex));
const events = {
  perRollout: perRollout.reduce((a, e) => a + e.length, 0) / n,
  meanGap: gaps.length ? gaps.reduce((a, b) => a + b, 0) / gaps.length : null,
  firstEventRightShare: perRollout.filter((e) => e.length > 0 && e[0]!.correct).length / Math.max(1, perRollout.filter((e) => e.length > 0).length),
  ...oracleLimits(rollouts),
};

/** A probe's features on the test set: AUC over real events, best single threshold's saving one point below full. */
function featureQuality(p: Probe) {
  const scores = p.predict(test.features, test.rows);
  const rs = withGold(datasetRollouts(test, scores), test.meta);
  const keep = test.meta.map((m, i) => ({ m, s: scores[i]! })).filter((x) => !x.m.synthetic);
  return {
    auc: rocAuc(Float64Array.from(keep, (x) => x.s), Uint8Array.from(keep, (x) => x.m.label)),
    bestSavingOnePointBelow: saving(tokensAtAccuracy(thresholdFrontier(rs), fullAccuracy - 0.01, n)),
  };
}
const train = loadEventDatasets([join(exp, 'datasets', 'probe')]);
const trainBoth = loadEventDatasets([join(exp, 'datasets', 'probe'), join(exp, 'datasets', 'calib')]);
const trainingSize = [
  ...[0.25, 0.5, 1].map((fraction) => ({ data: train, fraction, name: 'probe dataset' })),
  { data: trainBoth, fraction: 1, name: 'probe + calibration datasets' },
].map(({ data, fraction, name }) => {
  const problems = [...new Set(data.meta.map((m) => m.problemId))].sort();
  const keep = new Set(Rng.derive(42, `training-size/${fraction}`).shuffle(problems).slice(0, Math.round(fraction * problems.length)));
  const indices = data.meta.flatMap((m, i) => (keep.has(m.problemId) ? [i] : []));
  const { probe: p } = fitProbe({ data: data.features, rows: data.rows, cols: data.spec.nFeatures }, labelsOf(data.meta), { seed: 42 }, { indices });
  return { name, fraction, events: indices.length, ...featureQuality(p) };
});

const result = { exp, rollouts: n, fullAccuracy, baseTokens, probeAuc: auc, bound, rules, calibration, events, trainingSize };
console.log(`${n} test rollouts, full accuracy ${pct(fullAccuracy)}, ${baseTokens.toFixed(1)} output tokens; probe AUC on test events ${auc.toFixed(3)}`);
console.log('\n| accuracy | oracle saving | best probe threshold saving | share |');
console.log('|---|---|---|---|');
for (const b of bound) console.log(`| ${pct(b.accuracy)} | ${pct(b.oracleSavingsRate)} | ${pct(b.probeSavingsRate)} | ${b.oracleSavingsRate && b.probeSavingsRate !== null ? pct(b.probeSavingsRate / b.oracleSavingsRate) : '—'} |`);
console.log('\n| rule | δ | accuracy | saving | oracle saving at that accuracy | share of oracle | best probe threshold there |');
console.log('|---|---|---|---|---|---|---|');
for (const r of rules) {
  console.log(`| ${r.rule}${r.refused ? ' (refused)' : ''} | ${r.delta} | ${pct(r.accuracy)} | ${pct(r.savingsRate)} | ${pct(r.oracleSavingsRate)} | ${pct(r.oracleShare)} | ${pct(r.probeSavingsRate)} |`);
}
console.log('\n| δ | calibration share | wrong-exit events | refused draws | accuracy (min–max) | saving (min–max) |');
console.log('|---|---|---|---|---|---|');
for (const c of calibration) {
  for (const p of c.curve) {
    console.log(
      `| ${c.delta} | ${pct(p.fraction)} | ${p.nNeg.toFixed(0)} | ${p.refused}/${p.draws} | ${pct(p.accuracy.mean)} (${pct(p.accuracy.min)}–${pct(p.accuracy.max)}) | ${pct(p.savingsRate.mean)} (${pct(p.savingsRate.min)}–${pct(p.savingsRate.max)}) |`,
    );
  }
}
console.log('\n| probe trained on | events | test AUC | best threshold saving, 1 point below full |');
console.log('|---|---|---|---|');
for (const t of trainingSize) console.log(`| ${pct(t.fraction)} of the ${t.name} | ${t.events} | ${t.auc.toFixed(3)} | ${pct(t.bestSavingOnePointBelow)} |`);
console.log(
  `\nevents: ${events.perRollout.toFixed(2)} per rollout, ${events.meanGap?.toFixed(1) ?? '—'} tokens apart; first event right in ${pct(events.firstEventRightShare)} of rollouts with events; ` +
    `${events.fullCorrectWithoutCorrectEvent} right full rollouts have no right event; ${events.withoutEvents} rollouts have no event; ` +
    `the oracle exits ${pct(events.oracleExitDepth)} into the reasoning on average`,
);
if (outPath) {
  mkdirSync(dirname(outPath), { recursive: true });
  writeFileSync(outPath, JSON.stringify(result, null, 2) + '\n');
}
