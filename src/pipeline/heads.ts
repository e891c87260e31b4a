/**
 * `lynx heads train|calibrate|draft-model` as plain functions: early-exit heads distilled from a model on its own
 * text, calibrated on held-out text, and a truncated draft model of one of them.
 *
 * Text: a file (`.txt`, texts separated by blank lines; `.jsonl`, a `text` field per line), or a benchmark's
 * problems through the model's chat template continued by the model itself (default: the demo task). The model's
 * own continuations are what its heads see when they draft, so that is the default.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { LlamaContext, type LlamaModel, type SamplerOptions } from '../engine/index.js';
import { GgufFile } from '../formats/gguf/reader.js';
import { HeadForward } from '../graph/head-forward.js';
import { problemPromptTokens } from '../reasoning/prompt-tokens.js';
import { calibrateHeads, saveCalibration, scoreHeads, type HeadsCalibration } from '../reasoning/heads/calibrate.js';
import { collectHeadData, readHeadCache, splitRows, writeHeadCache } from '../reasoning/heads/data.js';
import { countArgmax } from '../reasoning/heads/draft-vocab.js';
import { writeDraftModel } from '../reasoning/heads/draft-gguf.js';
import { checkHeadLayers, EarlyExitHeads, evenlySpacedLayers, modelFingerprint, type HeadMetrics } from '../reasoning/heads/heads.js';
import type { CoverageRule } from '../reasoning/calibration/coverage.js';
import { loadBenchmark, type BenchmarkSelection } from '../tasks/registry.js';
import { trainHeads, type HeadDataStream, type HeadEval, type HeadTrainingData } from '../training/head-trainer.js';
import { forEachConcurrent } from '../util/concurrency.js';
import { InvalidInputError } from '../util/errors.js';
import { openModel } from './model.js';

export type Log = (line: string) => void;

/** Where the text for heads comes from. */
export interface HeadTextSource {
  /** A text file: `.txt` (texts separated by blank lines) or `.jsonl` (a `text` field per line). */
  file?: string;
  /** A benchmark whose problems the model continues itself (default `demo:probe` for training, `demo:calib` for calibration). */
  benchmark?: string;
  selection?: BenchmarkSelection;
  /** Tokens the model generates after each problem's prompt. Default 256. */
  generate?: number;
  /** Sampling of those continuations. Default temperature 0.6, top-p 0.95. */
  sampler?: SamplerOptions;
  seed?: number;
}

/** Token rows of a text source: texts tokenized, or prompts and the model's own continuations. */
export async function headTokenRows(model: LlamaModel, src: HeadTextSource, o: { maxRows?: number; concurrency?: number; threads?: number; log?: Log } = {}): Promise<number[][]> {
  if (src.file) {
    const path = resolve(src.file);
    if (!existsSync(path)) throw new InvalidInputError(`text file not found: ${path}`);
    const raw = readFileSync(path, 'utf8');
    const texts = path.endsWith('.jsonl')
      ? raw.split('\n').filter((l) => l.trim() !== '').map((l, i) => {
          const v = JSON.parse(l) as { text?: unknown };
          if (typeof v.text !== 'string') throw new InvalidInputError(`${path}:${i + 1} has no "text" string`);
          return v.text;
        })
      : raw.split(/\n\s*\n/).map((t) => t.trim()).filter((t) => t !== '');
    const bos = model.info.addBos && model.info.special.bos !== undefined ? [model.info.special.bos] : [];
    return texts.slice(0, o.maxRows).map((t) => [...bos, ...model.tokenize(t, { addSpecial: false, parseSpecial: true })]).filter((r) => r.length > 1);
  }
  const problems = loadBenchmark(src.benchmark ?? 'demo:probe', src.selection).slice(0, o.maxRows);
  if (problems.length === 0) throw new InvalidInputError(`no problems in ${src.benchmark}`);
  const generate = src.generate ?? 256;
  const concurrency = Math.max(1, Math.min(o.concurrency ?? 8, problems.length));
  const context = new LlamaContext(model, { nCtx: concurrency * (generate + 512), nSeqMax: concurrency, threads: o.threads });
  const rows: number[][] = new Array(problems.length);
  try {
    let done = 0;
    await forEachConcurrent(problems.length, concurrency, async (i) => {
      const prompt = problemPromptTokens(model, problems[i]!);
      const seq = context.createSequence();
      try {
        await seq.append(prompt);
        const out: number[] = [];
        const sampler = { temperature: 0.6, topP: 0.95, ...src.sampler, seed: (src.seed ?? 0) + i };
        for await (const t of seq.generate({ maxTokens: generate, sampler })) {
          if (t.stopped) break;
          out.push(t.token);
        }
        rows[i] = [...prompt, ...out];
      } finally {
        seq.dispose();
      }
      if (++done % 20 === 0) o.log?.(`  generated ${done}/${problems.length} texts`);
    });
  } finally {
    context.dispose();
  }
  return rows;
}

export interface TrainHeadsStepOptions {
  /** A loaded model, or a GGUF file / Hugging Face folder. */
  model: LlamaModel | string;
  /** Heads folder to write. */
  out: string;
  /** Blocks with a head; default `count` evenly spaced ones. */
  layers?: readonly number[];
  count?: number;
  /** Start from the model's output matrix (the logit lens; default) or from zeros. */
  init?: 'output' | 'zero';
  data?: HeadTextSource;
  /** At most this many texts, and positions. */
  maxRows?: number;
  maxPositions?: number;
  /** Share of the texts held out to measure the heads before and after training. Default 0.1. */
  heldOut?: number;
  /** Keep only the teacher's top k tokens (default: all for a vocabulary up to 4096, else 64). */
  topK?: number;
  /** Hidden-state cache file: read when it exists, else written after decoding. */
  cache?: string;
  /** Stream the training data from the engine chunk by chunk instead of holding it (no cache). */
  online?: boolean;
  batch?: number;
  epochs?: number;
  lr?: number;
  threads?: number;
  seed?: number;
  /** Weights file precision. Default F32. */
  dtype?: 'F32' | 'F16';
  log?: Log;
  signal?: AbortSignal;
}

/** Positions of one online chunk. */
const ONLINE_CHUNK = 4096;

export async function trainHeadsStep(o: TrainHeadsStepOptions): Promise<{ heads: EarlyExitHeads; dir: string; metrics: HeadMetrics[] }> {
  const model = typeof o.model === 'string' ? await openModel(o.model) : o.model;
  const log = o.log ?? (() => {});
  try {
    const { fingerprint, norm } = modelFingerprint(model.info.path);
    const nLayer = model.info.nLayer;
    const layers = o.layers ? checkHeadLayers(o.layers, nLayer) : evenlySpacedLayers(nLayer, o.count ?? 3);
    const V = model.info.nVocab;
    const topK = o.topK ?? (V <= 4096 ? undefined : 64);
    const init = initialMatrices(model.info.path, layers, o.init ?? 'output', fingerprint.nEmbd, V);
    const context = new LlamaContext(model, { nCtx: 4096, nSeqMax: 1, nBatch: 512, threads: o.threads, kvType: 'f32', flashAttention: false });
    try {
      let train: HeadTrainingData | HeadDataStream;
      let validation: HeadTrainingData;
      const collect = (rows: number[][], maxPositions?: number) =>
        collectHeadData({ context, rows, layers, topK, maxPositions, signal: o.signal, onProgress: (n) => n % 8192 < 512 && log(`  decoded ${n} positions`) });
      if (o.cache && existsSync(o.cache)) {
        log(`reading the hidden-state cache ${o.cache}`);
        const all = readHeadCache(o.cache, layers);
        // The split it was written with (training positions first), else the held-out share of the positions.
        const written = Number(all.metadata.heldOutFrom);
        const cut = Number.isInteger(written) && written > 0 && written < all.rows ? written : Math.round(all.rows * (1 - (o.heldOut ?? 0.1)));
        train = sliceData(all, 0, cut);
        validation = sliceData(all, cut, all.rows);
      } else {
        log(`text for ${layers.length} heads on blocks ${layers.join(', ')}:`);
        const rows = await headTokenRows(model, o.data ?? {}, { maxRows: o.maxRows, threads: o.threads, log });
        const { train: trainRows, heldOut } = splitRows(rows, o.heldOut ?? 0.1);
        log(`decoding ${rows.length} texts (${rows.reduce((a, r) => a + r.length, 0)} positions) with taps on blocks ${layers.join(', ')}`);
        validation = await collect(heldOut);
        if (o.online) {
          train = onlineStream(trainRows, o.maxPositions, (part, max) => collect(part, max));
        } else {
          train = await collect(trainRows, o.maxPositions);
          if (o.cache) {
            // The cache holds both parts, training first, so a re-run splits it the same way.
            writeHeadCache(o.cache, concatData(train, validation), { model: fingerprint.file, layers: layers.join(','), heldOutFrom: String(train.rows) });
            log(`wrote the hidden-state cache ${o.cache}`);
          }
        }
      }
      // How often each token is the full model's argmax: ranks a draft vocabulary (--draft-vocab) later.
      const counts = new Int32Array(V);
      countArgmax(counts, validation.teacher.argmax);
      if ('chunks' in train) train = countingStream(train, counts);
      else countArgmax(counts, train.teacher.argmax);
      const rowsOf = (d: HeadTrainingData | HeadDataStream) => ('chunks' in d ? d.positions : d.rows);
      log(`training on ${rowsOf(train)} positions, measuring on ${validation.rows} held out (teacher ${topK ? `top ${topK}` : 'whole distribution'})`);
      const evals: HeadEval[] = [];
      const t0 = performance.now();
      const { matrices, report } = await trainHeads(train, validation, {
        nEmbd: fingerprint.nEmbd,
        nVocab: V,
        rmsEps: fingerprint.rmsEps,
        norm,
        init,
        batch: o.batch,
        epochs: o.epochs,
        lr: o.lr,
        threads: o.threads,
        seed: o.seed,
        signal: o.signal,
        onEval: (e) => {
          evals.push(e);
          log(`  step ${e.step}: head ${e.layer} agreement ${(100 * e.agreement).toFixed(1)}%, KL ${e.kl.toFixed(3)}`);
        },
        onStep: (s) => s.layer === layers[0] && s.step % 100 === 0 && log(`  step ${s.step}/${s.total}, lr ${s.lr.toExponential(2)}`),
      });
      const metrics = layers.map((layer): HeadMetrics => {
        const mine = evals.filter((e) => e.layer === layer);
        const first = mine[0];
        const last = mine[mine.length - 1];
        return { layer, tokens: last?.rows ?? 0, agreementBefore: first?.agreement ?? NaN, agreementAfter: last?.agreement ?? NaN, klBefore: first?.kl ?? NaN, klAfter: last?.kl ?? NaN };
      });
      const heads = EarlyExitHeads.create(fingerprint, matrices, {
        training: {
          init: o.init ?? 'output',
          data: o.cache && existsSync(o.cache) ? { cache: o.cache } : { ...(o.data ?? { benchmark: 'demo:probe' }) },
          teacher: topK ? `top-${topK}` : 'full',
          temperature: 1,
          online: o.online === true,
          positions: report.rows,
          heldOutPositions: validation.rows,
          steps: report.steps,
          epochs: report.epochs,
          batch: report.batch,
          lr: o.lr ?? 3e-3,
          seconds: report.seconds,
          wallSeconds: (performance.now() - t0) / 1000,
          evals: report.evals,
        },
        metrics,
      }, counts);
      heads.save(o.out, o.dtype);
      return { heads, dir: o.out, metrics };
    } finally {
      context.dispose();
    }
  } finally {
    if (typeof o.model === 'string') model.dispose();
  }
}

/** The starting matrices: the model's own output matrix (its logit lens) or zeros. */
function initialMatrices(modelPath: string, layers: number[], init: 'output' | 'zero', E: number, V: number): Map<number, Float32Array> {
  if (init === 'zero') return new Map(layers.map((l) => [l, new Float32Array(E * V)]));
  if (init !== 'output') throw new InvalidInputError(`--init must be output or zero, got '${String(init)}'`);
  const f = GgufFile.open(modelPath);
  try {
    const name = f.tensorInfo('output.weight') ? 'output.weight' : 'token_embd.weight';
    const w = f.tensor(name);
    return new Map(layers.map((l) => [l, w.slice()]));
  } finally {
    f.close();
  }
}

/** `stream`, counting each first-epoch chunk's argmax tokens into `counts` as it passes. */
function countingStream(stream: HeadDataStream, counts: Int32Array): HeadDataStream {
  return {
    positions: stream.positions,
    async *chunks(epoch) {
      for await (const d of stream.chunks(epoch)) {
        if (epoch === 1) countArgmax(counts, d.teacher.argmax);
        yield d;
      }
    },
  };
}

/** Training data decoded chunk by chunk, again every epoch (online distillation: memory for one chunk only). */
function onlineStream(rows: number[][], maxPositions: number | undefined, collect: (rows: number[][], max?: number) => Promise<HeadTrainingData>): HeadDataStream {
  const total = Math.min(maxPositions ?? Infinity, rows.reduce((a, r) => a + r.length, 0));
  return {
    positions: total,
    async *chunks() {
      let used = 0;
      let part: number[][] = [];
      let size = 0;
      for (const r of rows) {
        if (used + size >= total) break;
        part.push(r);
        size += r.length;
        if (size >= ONLINE_CHUNK) {
          const d = await collect(part, total - used);
          used += d.rows;
          yield d;
          part = [];
          size = 0;
        }
      }
      if (part.length > 0 && used < total) yield await collect(part, total - used);
    },
  };
}

function sliceData(d: HeadTrainingData, from: number, to: number): HeadTrainingData {
  const t = d.teacher;
  const E = d.rows > 0 ? d.hidden.values().next().value!.length / d.rows : 0;
  return {
    rows: to - from,
    hidden: new Map([...d.hidden].map(([l, h]) => [l, h.subarray(from * E, to * E)])),
    teacher: {
      k: t.k,
      ids: t.ids?.subarray(from * t.k, to * t.k),
      probs: t.probs.subarray(from * t.k, to * t.k),
      argmax: t.argmax.subarray(from, to),
      entropy: t.entropy.subarray(from, to),
    },
  };
}

function concatData(a: HeadTrainingData, b: HeadTrainingData): HeadTrainingData {
  const cat = <T extends Float32Array | Int32Array>(x: T, y: T): T => {
    const out = new (x.constructor as new (n: number) => T)(x.length + y.length);
    out.set(x);
    out.set(y, x.length);
    return out;
  };
  return {
    rows: a.rows + b.rows,
    hidden: new Map([...a.hidden].map(([l, h]) => [l, cat(h, b.hidden.get(l)!)])),
    teacher: {
      k: a.teacher.k,
      ids: a.teacher.ids && b.teacher.ids ? cat(a.teacher.ids, b.teacher.ids) : undefined,
      probs: cat(a.teacher.probs, b.teacher.probs),
      argmax: cat(a.teacher.argmax, b.teacher.argmax),
      entropy: cat(a.teacher.entropy, b.teacher.entropy),
    },
  };
}

export interface CalibrateHeadsStepOptions {
  model: LlamaModel | string;
  /** Heads folder (calibration.json is written into it). */
  heads: string;
  data?: HeadTextSource;
  maxRows?: number;
  maxPositions?: number;
  levels?: readonly number[];
  rule?: CoverageRule;
  alpha?: number;
  /** Share of the texts kept apart to check each threshold on data it was not chosen on. Default 0.5; 0: none. */
  check?: number;
  threads?: number;
  log?: Log;
  signal?: AbortSignal;
}

export async function calibrateHeadsStep(o: CalibrateHeadsStepOptions): Promise<{ calibration: HeadsCalibration; dir: string }> {
  const model = typeof o.model === 'string' ? await openModel(o.model) : o.model;
  const log = o.log ?? (() => {});
  try {
    const heads = EarlyExitHeads.load(o.heads);
    const { fingerprint, norm } = modelFingerprint(model.info.path);
    heads.checkModel(fingerprint, o.heads);
    const rows = await headTokenRows(model, o.data ?? { benchmark: 'demo:calib' }, { maxRows: o.maxRows, threads: o.threads, log });
    const checkShare = o.check ?? 0.5;
    const { train: calibRows, heldOut: checkRows } = checkShare > 0 ? splitRows(rows, checkShare) : { train: rows, heldOut: [] };
    const context = new LlamaContext(model, { nCtx: 4096, nSeqMax: 1, nBatch: 512, threads: o.threads, kvType: 'f32', flashAttention: false });
    const forward = new HeadForward({ nEmbd: fingerprint.nEmbd, nVocab: fingerprint.nVocab, rmsEps: fingerprint.rmsEps, norm, matrices: heads.matrices, threads: o.threads });
    try {
      const collect = (r: number[][], max?: number) => collectHeadData({ context, rows: r, layers: heads.layers, topK: 1, maxPositions: max, signal: o.signal });
      log(`calibrating heads on blocks ${heads.layers.join(', ')} on ${calibRows.length} texts${checkRows.length ? `, checking on ${checkRows.length}` : ''}`);
      const calib = scoreHeads(forward, await collect(calibRows, o.maxPositions));
      const check = checkRows.length > 0 ? scoreHeads(forward, await collect(checkRows, o.maxPositions)) : undefined;
      const calibration = calibrateHeads(calib, { levels: o.levels, rule: o.rule, alpha: o.alpha, check });
      saveCalibration(o.heads, calibration);
      return { calibration, dir: o.heads };
    } finally {
      forward.dispose();
      context.dispose();
    }
  } finally {
    if (typeof o.model === 'string') model.dispose();
  }
}

/** Write the truncated draft model of one head (reasoning/heads/draft-gguf.ts). */
export function draftModelStep(o: { model: string; heads: string; layer: number; out: string }): string {
  const heads = EarlyExitHeads.load(o.heads);
  heads.checkModel(modelFingerprint(o.model).fingerprint, o.heads);
  writeDraftModel(o.model, heads, o.layer, o.out);
  return o.out;
}

/** The heads folder of the shipped demo model. */
export function demoHeadsDir(root: string): string {
  return join(root, 'heads');
}
