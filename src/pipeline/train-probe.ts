/** `lynx train-probe`: LYNX's probe trained on event datasets, written with its metrics into a probe folder. */
import { join } from 'node:path';
import { InvalidInputError } from '../util/errors.js';
import { writeJsonAtomic } from '../util/fs.js';
import { DEFAULT_PROBE_CONFIG, saveProbe, trainProbe, type Probe, type ProbeConfig, type ProbeMetrics } from '../reasoning/lynx/probe/probe.js';
import type { KernelChoice } from '../reasoning/lynx/probe/parallel.js';
import { nullForNonFinite } from '../util/json.js';
import { labelsOf, loadEventDatasets, type Log, type DatasetRecord } from './event-data.js';

export const PROBE_METRICS_FILE = 'metrics.json';

// ---------------------------------------------------------------------------------------------------------------
// train-probe

export interface TrainProbeStepOptions {
  datasets: readonly string[];
  outDir: string;
  config?: Partial<ProbeConfig>;
  /** Seed of the probe (initialisation, splits, shuffling); overrides config.seed. Default 42 (LYNX's). */
  seed?: number;
  /** Stratified share of the events held out for the reported metrics (LYNX's --val-split). Default 0.2. */
  valSplit?: number;
  threads?: number;
  kernels?: KernelChoice;
  log?: Log;
}

/** metrics.json of a probe folder: LYNX's probe metrics plus the class balance and the data it saw. */
export interface ProbeTrainingMetrics extends ProbeMetrics {
  n_events: number;
  label_rate: number;
  val_pos: number;
  val_neg: number;
  threads: number;
  stopped_early: boolean;
  datasets: DatasetRecord[];
}

/** Train LYNX's probe on one or more event datasets and save it (probe.json, probe.safetensors, metrics.json). */
export function trainProbeStep(opts: TrainProbeStepOptions): { probe: Probe; metrics: ProbeTrainingMetrics; dir: string } {
  const data = loadEventDatasets(opts.datasets);
  const y = labelsOf(data.meta);
  const pos = y.reduce((s, v) => s + v, 0);
  if (pos === 0 || pos === data.rows) {
    throw new InvalidInputError(
      `the probe needs events of both labels, but all ${data.rows} forced exits in ${opts.datasets.join(', ')} were ${pos ? 'correct' : 'wrong'}`,
    );
  }
  const config: Partial<ProbeConfig> = { ...opts.config, ...(opts.seed !== undefined ? { seed: opts.seed } : {}) };
  const seed = config.seed ?? DEFAULT_PROBE_CONFIG.seed;
  opts.log?.(`training on ${data.rows} events (${pos} correct exits, ${data.rows - pos} wrong) × ${data.spec.nFeatures} features`);
  const { probe, metrics, history, validation } = trainProbe(
    { data: data.features, rows: data.rows, cols: data.spec.nFeatures },
    y,
    {
      valSplit: opts.valSplit,
      config: { ...config, seed },
      threads: opts.threads,
      kernels: opts.kernels,
      onEpoch: opts.log
        ? (epoch, loss, score) => {
            if (epoch % 10 === 0) opts.log!(`epoch ${epoch + 1}: loss ${loss.toFixed(4)}${score === undefined ? '' : `, early-stopping score ${score.toFixed(4)}`}`);
          }
        : undefined,
    },
  );
  const full: ProbeTrainingMetrics = {
    ...metrics,
    n_events: data.rows,
    label_rate: pos / data.rows,
    val_pos: validation.nPos,
    val_neg: validation.nNeg,
    threads: history.threads,
    stopped_early: history.stoppedEarly,
    datasets: data.datasets,
  };
  const resolved: ProbeConfig = { ...DEFAULT_PROBE_CONFIG, ...config, seed, hidden: probe.hidden };
  saveProbe(opts.outDir, probe, {
    hiddenStateLayers: data.spec.hiddenStateLayers,
    lastLayer: data.spec.lastLayer,
    ...(data.spec.cues !== undefined ? { cues: data.spec.cues } : {}),
    ...(data.exitCue !== undefined ? { exitCue: data.exitCue } : {}),
    ...(data.spec.model !== undefined ? { model: data.spec.model } : {}),
    datasets: data.datasets,
    config: resolved,
    valSplit: metrics.val_split,
    valAuc: metrics.val_auc,
    trainedAt: new Date().toISOString(),
  });
  writeJsonAtomic(join(opts.outDir, PROBE_METRICS_FILE), nullForNonFinite(full));
  return { probe, metrics: full, dir: opts.outDir };
}

