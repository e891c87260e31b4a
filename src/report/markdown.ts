/**
 * `lynx report EXP --markdown FILE`: the experiment's results as Markdown tables (for BENCHMARKS.md, model cards,
 * issue notes): one table per benchmark with every method and setting (accuracy with its 95% interval, average output
 * and decoded tokens, each against the full rollout, exit rate, the saving as a share of the oracle's at the same
 * accuracy where `lynx simulate` measured it, the sum of per-problem wall times), and the calibration summary
 * (held-out error rate next to δ) when `conformal/summary.json` exists.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { discoverRuns, readMetrics, type RunMetrics } from '../eval/records.js';
import type { ComposeSummary } from '../reasoning/compose/stats.js';
import { readJson } from '../util/fs.js';

const pct = (x: number | undefined) => (x === undefined || Number.isNaN(x) ? '—' : `${(100 * x).toFixed(1)}%`);
const ci = (c: [number, number] | undefined) => (c ? ` [${(100 * c[0]).toFixed(1)}, ${(100 * c[1]).toFixed(1)}]` : '');

function settingOrder(s: string): number {
  const m = /=(-?[\d.]+)/.exec(s);
  return m ? Number(m[1]) : s === 'full' ? -Infinity : 0;
}

/**
 * Big/small compositions of one benchmark: accuracy against wall time per mode (relative to the big model alone when
 * that run is there), offload share by tokens, hand-offs and each model's tokens per problem. Empty without such runs.
 */
export function composeTable(runs: readonly RunMetrics[]): string[] {
  const rows = runs.filter((m) => m.extra?.compose);
  if (rows.length === 0) return [];
  const big = rows.find((m) => (m.extra!.compose as ComposeSummary).mode === 'big' && m.method === 'big');
  const out = ['Big/small composition (per problem: tokens decoded / prefilled by each model):', ''];
  out.push('| mode | setting | n | accuracy [95% CI] | Σ wall time (s) | wall vs big only | offload share | hand-offs | small decoded / prefilled | big decoded / prefilled |');
  out.push('|---|---|---|---|---|---|---|---|---|---|');
  for (const m of rows) {
    const c = m.extra!.compose as ComposeSummary;
    const rel = big && big.wallSec > 0 ? `${((100 * m.wallSec) / big.wallSec).toFixed(0)}%` : '—';
    out.push(
      `| ${m.method} | ${m.setting} | ${m.n} | ${pct(m.accuracy)}${ci(m.accuracyCi95)} | ${m.wallSec.toFixed(1)} | ${rel} | ${pct(c.offloadShare)} | ${c.handoffsPerProblem.toFixed(1)} | ${c.small.decoded.toFixed(0)} / ${c.small.prefilled.toFixed(0)} | ${c.big.decoded.toFixed(0)} / ${c.big.prefilled.toFixed(0)} |`,
    );
  }
  out.push('');
  return out;
}

/** Markdown tables of every finished run under `root/eval` and of `root/conformal/summary.json`. */
export function experimentMarkdown(root: string): string {
  const runs = discoverRuns(root).map((f) => ({ ...f, m: readMetrics(f.dir) }));
  const out: string[] = [];
  for (const bench of [...new Set(runs.map((r) => r.benchmark))]) {
    const rs = runs.filter((r) => r.benchmark === bench);
    const full = rs.find((r) => r.method === 'full')?.m;
    rs.sort((a, b) => (a.method === 'full' ? -1 : b.method === 'full' ? 1 : a.method.localeCompare(b.method)) || settingOrder(a.setting) - settingOrder(b.setting));
    out.push(`### ${bench}`, '');
    out.push('| method | setting | n | accuracy [95% CI] | output tokens | vs full | decoded tokens | vs full | exit rate | share of oracle saving | Σ wall time per problem (s) |');
    out.push('|---|---|---|---|---|---|---|---|---|---|---|');
    const rel = (x: number | undefined, ref: number | undefined) =>
      x === undefined || ref === undefined || !(ref > 0) ? '—' : `${x / ref < 1 ? '−' : '+'}${Math.abs(100 * (1 - x / ref)).toFixed(1)}%`;
    for (const r of rs) {
      const m: RunMetrics = r.m;
      const isFull = r.method === 'full';
      const oracle = (m.extra?.oracle as { oracleShare?: number | null } | undefined)?.oracleShare;
      out.push(
        `| ${m.method} | ${m.setting} | ${m.n} | ${pct(m.accuracy)}${ci(m.accuracyCi95)} | ${m.avgTokens.toFixed(1)} | ${isFull ? '—' : rel(m.avgTokens, full?.avgTokens)} | ` +
          `${m.avgDecoded === undefined ? '—' : m.avgDecoded.toFixed(1)} | ${isFull ? '—' : rel(m.avgDecoded, full?.avgDecoded)} | ${pct(m.exitRate)} | ` +
          `${typeof oracle === 'number' ? pct(oracle) : '—'} | ${m.wallSec ? m.wallSec.toFixed(1) : '—'} |`,
      );
    }
    out.push('');
    out.push(...composeTable(rs.map((r) => r.m)));
  }
  const summaryPath = join(root, 'conformal', 'summary.json');
  if (existsSync(summaryPath)) {
    const s = readJson<{ rules: { rule: string; delta: number; threshold: number | null; guaranteedRate: string; heldOut?: Record<string, number | boolean> }[] }>(summaryPath);
    out.push('### Calibration: held-out rate next to δ', '');
    out.push('| rule | δ | threshold | guaranteed rate | held-out rate | exit rate | token savings | accuracy (full) |');
    out.push('|---|---|---|---|---|---|---|---|');
    for (const e of s.rules) {
      const h = e.heldOut ?? {};
      out.push(
        `| ${e.rule} | ${e.delta} | ${e.threshold === null ? 'never' : e.threshold.toFixed(4)} | ${e.guaranteedRate} | ${h.empiricalRate === undefined ? '—' : (h.empiricalRate as number).toFixed(3)} | ${pct(h.exitRate as number)} | ${pct(h.savingsRate as number)} | ${pct(h.accuracy as number)} (${pct(h.baselineAccuracy as number)}) |`,
      );
    }
    out.push('');
  }
  return out.join('\n');
}
