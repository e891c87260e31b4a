import type { Command } from 'commander';
import { trainProbeStep, type ProbeTrainingMetrics, type TrainProbeStepOptions } from '../../pipeline/train-probe.js';
import type { ProbeConfig } from '../../reasoning/lynx/probe/probe.js';
import type { KernelChoice } from '../../reasoning/lynx/probe/parallel.js';
import { UsageError } from '../../util/errors.js';
import { checkNoEarlierResult, checkWritableDir } from '../output-checks.js';
import { floatOption, intOption, probabilityOption, threadsOption } from '../options.js';

export interface TrainProbeArgs {
  out: string;
  seed: number;
  hidden: string;
  epochs?: number;
  lr?: number;
  alpha?: number;
  batchSize?: number;
  patience?: number;
  valSplit: number;
  valFraction?: number;
  threads?: number;
  kernels: string;
  quiet?: boolean;
  force?: boolean;
}

/** `--hidden 256,64` */
export function parseHidden(spec: string): number[] {
  const sizes = spec.split(',').map((s) => s.trim());
  if (sizes.length === 0 || sizes.some((s) => !/^\d+$/.test(s) || Number(s) < 1)) {
    throw new UsageError(`--hidden must be positive layer sizes separated by commas (e.g. 256,64), got '${spec}'`);
  }
  return sizes.map(Number);
}

export function registerTrainProbe(program: Command): void {
  program
    .command('train-probe')
    .description("train LYNX's probe on event datasets; writes <out>/probe.json, probe.safetensors and metrics.json")
    .argument('<dataset...>', 'event dataset folders (lynx build-dataset); they must hold the same features')
    .requiredOption('-o, --out <dir>', 'probe folder (EXP/probe)')
    .option('-s, --seed <n>', 'seed of initialisation, splits and shuffling', intOption('--seed', 0), 42)
    .option('--hidden <sizes>', 'hidden layer sizes', '256,64')
    .option('--epochs <n>', 'maximum epochs', intOption('--epochs', 1))
    .option('--lr <x>', 'Adam learning rate', floatOption('--lr', 0))
    .option('--alpha <x>', 'L2 penalty', floatOption('--alpha', 0))
    .option('--batch-size <n>', 'mini-batch rows (default min(200, n))', intOption('--batch-size', 1))
    .option('--patience <n>', 'epochs without improvement before stopping', intOption('--patience', 0))
    .option('--val-split <f>', "stratified share held out for the reported metrics (LYNX's --val-split)", probabilityOption('--val-split', { openMin: true, openMax: true }), 0.2)
    .option('--val-fraction <f>', 'early-stopping share of the training events (default max(0.1, val-split))', probabilityOption('--val-fraction', { openMin: true, openMax: true }))
    .option('--threads <n>', 'threads for the first layer (default min(2, cores))', threadsOption())
    .option('--kernels <k>', 'auto, wasm or js', 'auto')
    .option('-q, --quiet', 'no progress lines')
    .option('--force', 'overwrite a probe already in --out')
    .action((datasets: string[], args: TrainProbeArgs) => {
      const options = trainProbeOptions(datasets, args);
      // Before training: a result that cannot be written, or would replace an earlier one, is refused now.
      checkWritableDir(args.out, '-o');
      checkNoEarlierResult(args.out, ['probe.json', 'probe.safetensors'], 'a probe', '-o', args.force);
      const { metrics, dir } = trainProbeStep({ ...options, log: args.quiet ? undefined : (line) => process.stderr.write(`${line}\n`) });
      process.stdout.write(formatProbeMetrics(metrics) + `wrote ${dir}/probe.json, probe.safetensors, metrics.json\n`);
    });
}

/** The pipeline step's options from the command's arguments. */
export function trainProbeOptions(datasets: string[], args: TrainProbeArgs): Omit<TrainProbeStepOptions, 'log'> {
  if (!['auto', 'wasm', 'js'].includes(args.kernels)) throw new UsageError(`--kernels must be auto, wasm or js, got '${args.kernels}'`);
  if (!(args.valSplit > 0 && args.valSplit < 1)) throw new UsageError('--val-split must be in (0, 1)');
  if (args.valFraction !== undefined && !(args.valFraction > 0 && args.valFraction < 1)) throw new UsageError('--val-fraction must be in (0, 1)');
  const config: Partial<ProbeConfig> = { hidden: parseHidden(args.hidden) };
  if (args.epochs !== undefined) config.maxEpochs = args.epochs;
  if (args.lr !== undefined) config.learningRate = args.lr;
  if (args.alpha !== undefined) config.alpha = args.alpha;
  if (args.batchSize !== undefined) config.batchSize = args.batchSize;
  if (args.patience !== undefined) config.nIterNoChange = args.patience;
  if (args.valFraction !== undefined) config.validationFraction = args.valFraction;
  return { datasets, outDir: args.out, config, seed: args.seed, valSplit: args.valSplit, threads: args.threads, kernels: args.kernels as KernelChoice };
}

export function formatProbeMetrics(m: ProbeTrainingMetrics): string {
  const [[tn, fp], [fn, tp]] = m.cm;
  const f = (x: number, d = 3) => (Number.isFinite(x) ? x.toFixed(d) : 'n/a');
  return (
    `data: ${m.n_events} events from ${m.datasets.map((d) => `${d.name} (${d.rows}, ${(100 * d.labelRate).toFixed(1)}% correct exits)`).join(', ')}\n` +
    `train ${m.n_train} (${m.train_pos} correct / ${m.train_neg} wrong, weights ${f(m.w_pos)} / ${f(m.w_neg)}), validation ${m.n_val} (${m.val_pos} / ${m.val_neg})\n` +
    `validation: AUC ${f(m.val_auc)}, accuracy ${f(m.val_acc)}, ECE ${f(m.val_ece)}, Brier ${f(m.val_brier)}, log loss ${f(m.val_log_loss)}\n` +
    `confusion at p >= 0.5: tn ${tn} fp ${fp} fn ${fn} tp ${tp}\n` +
    `${m.epochs} epochs (best ${m.best_epoch + 1}${m.stopped_early ? ', stopped early' : ''}), ${m.train_seconds.toFixed(1)} s, ${m.kernels} kernels, ${m.threads} thread(s), hidden ${m.hidden.join(',')}\n`
  );
}
