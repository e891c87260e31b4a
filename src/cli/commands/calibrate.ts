import type { Command } from 'commander';
import { DEFAULT_DELTAS } from '../../reasoning/calibration/conformal.js';
import { DEFAULT_HELD_OUT_FRACTION, calibrateStep, type CalibrateStepOptions, type CalibrationSummary } from '../../pipeline/calibrate.js';
import { RULE_NAMES, checkRules } from '../../reasoning/calibration/rule-files.js';
import { UsageError, asUsage } from '../../util/errors.js';
import { checkNoEarlierResult, checkWritableDir } from '../output-checks.js';
import { intOption, listOption, probabilityOption } from '../options.js';

export interface CalibrateArgs {
  probe: string;
  data: string[];
  out: string;
  deltas?: string[];
  rules?: string[];
  heldOut: number;
  seed: number;
  alpha: number;
  gridStep: number;
  allowClipped?: boolean;
  quiet?: boolean;
  force?: boolean;
}

const collect = (value: string, previous: string[]) => [...previous, value];

/** `--deltas 0.01,0.05` */
export function parseDeltas(xs: readonly string[] | undefined): number[] {
  if (!xs || xs.length === 0) return [...DEFAULT_DELTAS];
  return xs.map((x) => {
    const d = Number(x);
    if (!(Number.isFinite(d) && d > 0 && d < 1)) throw new UsageError(`--deltas: '${x}' is not a number in (0, 1)`);
    return d;
  });
}

export function registerCalibrate(program: Command): void {
  program
    .command('calibrate')
    .description(
      'calibrate the exit rules (lynx per event, ltt and crc per problem) at every delta on calibration datasets scored by the probe; ' +
        'writes one rule file per rule and delta and summary.json (held-out rates next to delta)',
    )
    .requiredOption('--probe <dir>', 'probe folder (EXP/probe) or experiment folder')
    .option('--data <dir>', 'calibration dataset folder, disjoint from the probe training data (repeat for several)', collect, [])
    .requiredOption('-o, --out <dir>', 'rule folder (EXP/conformal)')
    .option('--deltas <list>', `error levels (default ${DEFAULT_DELTAS.join(',')})`, listOption)
    .option('--rules <list>', 'lynx, ltt, crc (default all)', listOption)
    .option('--held-out <f>', 'share of the calibration problems held out to measure each rule (0: none)', probabilityOption('--held-out', { openMax: true }), DEFAULT_HELD_OUT_FRACTION)
    .option('-s, --seed <n>', 'seed of the problem split', intOption('--seed', 0), 0)
    .option('--alpha <a>', 'ltt: probability that the risk bound fails', probabilityOption('--alpha', { openMin: true, openMax: true }), 0.1)
    .option('--grid-step <x>', 'ltt, crc: threshold grid step', probabilityOption('--grid-step', { openMin: true }), 0.001)
    .option('--allow-clipped', "lynx: exit with a rule whose quantile was clipped (too few wrong-exit events for delta), as LYNX does; default: refuse it (it never exits)")
    .option('-q, --quiet', 'no progress lines')
    .option('--force', 'overwrite rules already in --out')
    .action((args: CalibrateArgs) => {
      const options = calibrateOptions(args);
      checkWritableDir(args.out, '-o');
      checkNoEarlierResult(args.out, ['summary.json', 'conformal_calib_*', 'ltt_*', 'crc_*'], 'calibrated rules', '-o', args.force);
      const { summary } = calibrateStep({ ...options, log: args.quiet ? undefined : (line) => process.stderr.write(`${line}\n`) });
      process.stdout.write(formatCalibration(summary) + `wrote ${summary.rules.length} rule files and summary.json to ${args.out}\n`);
    });
}

/** The pipeline step's options from the command's arguments. */
export function calibrateOptions(args: CalibrateArgs): Omit<CalibrateStepOptions, 'log'> {
  if (args.data.length === 0) throw new UsageError('give the calibration data with --data DIR (repeat for several folders)');
  if (!(args.heldOut >= 0 && args.heldOut < 1)) throw new UsageError('--held-out must be in [0, 1)');
  return {
    probeDir: args.probe,
    datasets: args.data,
    outDir: args.out,
    deltas: parseDeltas(args.deltas),
    rules: args.rules ? asUsage(() => checkRules(args.rules!)) : [...RULE_NAMES],
    heldOutFraction: args.heldOut,
    seed: args.seed,
    trajectory: { alpha: args.alpha, gridStep: args.gridStep },
    ...(args.allowClipped ? { allowClipped: true } : {}),
  };
}

/** The delta × rule table `lynx calibrate` prints. */
export function formatCalibration(s: CalibrationSummary): string {
  const rows: string[][] = [['delta', 'rule', 'threshold', s.split.heldOut ? 'held-out rate (guaranteed <= delta)' : 'held-out rate', 'exit rate', 'token savings', 'accuracy (full)']];
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  for (const delta of [...new Set(s.rules.map((r) => r.delta))].sort((a, b) => a - b)) {
    for (const r of s.rules.filter((x) => x.delta === delta)) {
      let threshold = r.threshold === null ? 'never exits' : `p >= ${r.threshold.toFixed(4)}`;
      if (r.rule === 'lynx') {
        const clip = r.valid ? '' : r.refused ? `, refused: clipped, needs ${r.neededNeg} wrong exits` : ', clipped: no guarantee';
        threshold += ` (q+ ${r.qPos == null ? 'inf' : r.qPos.toFixed(4)}, q- ${r.qNeg == null ? 'inf' : r.qNeg.toFixed(4)}${clip})`;
      }
      const h = r.heldOut;
      const kind = r.guaranteedRate === 'eventErrorRate' ? 'per event' : 'per problem';
      rows.push([
        String(delta),
        r.rule,
        threshold,
        h ? `${h.empiricalRate.toFixed(4)} ${h.withinDelta ? '<=' : '>'} ${delta} ${kind}` : '-',
        h ? pct(h.exitRate) : '-',
        h ? (h.avgSavings === null ? 'n/a' : `${h.avgSavings.toFixed(0)} tok${h.savingsRate === null ? '' : ` (${pct(h.savingsRate)})`}`) : '-',
        h ? `${pct(h.accuracy)} (${pct(h.baselineAccuracy)})` : '-',
      ]);
    }
  }
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  const c = s.split.calibration;
  const head =
    `calibration: ${c.problems} problems, ${c.rollouts} rollouts, ${c.events} events (${c.correctExits} correct / ${c.wrongExits} wrong exits)` +
    (s.split.heldOut
      ? `; held out (by problem, ${s.split.heldOutFraction}): ${s.split.heldOut.problems} problems, ${s.split.heldOut.rollouts} rollouts, ${s.split.heldOut.events} events\n`
      : '; nothing held out\n');
  return head + rows.map((r) => r.map((x, i) => x.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n') + '\n';
}
