/**
 * Early-exit heads put to use: loaded for a model (refused when trained for another), run on ggml, and turned into
 * the engine's decoding modes, self-speculative decoding (lossless; drafts from one head's block, stopping where its
 * entropy passes the calibrated threshold) and layer exit (lossy; the first head under its threshold emits).
 */
import { bestDraftLength, layerExitDecoding, selfDraftPredictor, speculativeDecoding, type DecodingMode, type LayerHead } from '../../engine/index.js';
import { HeadForward, type HeadWeightType } from '../../graph/head-forward.js';
import { InvalidInputError } from '../../util/errors.js';
import { loadCalibration, thresholdsAt, type HeadsCalibration } from './calibrate.js';
import { argmaxCoverage, draftVocabulary, gatherRows } from './draft-vocab.js';
import { EarlyExitHeads, modelFingerprint } from './heads.js';

export interface OpenHeadsOptions {
  threads?: number;
  /** How the matrices are held on the backend. Default 'f32' up to 16M values per head, else 'q8_0' (a quarter of the bytes). */
  weightType?: HeadWeightType;
  /**
   * Draft from the N tokens the full model emits most (draft-vocab.ts): a head's matrix product over N rows, not the
   * whole vocabulary. Speculative decoding only (lossless still); layer exit needs whole heads.
   */
  draftVocab?: number;
}

/** Heads of a model, ready to run. */
export class OpenHeads {
  readonly heads: EarlyExitHeads;
  readonly forward: HeadForward;
  readonly calibration: HeadsCalibration | null;
  readonly dir: string;
  /** The draft vocabulary (ascending ids) when opened with `draftVocab`; the heads' logits are over these tokens. */
  readonly tokens?: Int32Array;

  private constructor(dir: string, heads: EarlyExitHeads, forward: HeadForward, calibration: HeadsCalibration | null, tokens?: Int32Array) {
    this.dir = dir;
    this.heads = heads;
    this.forward = forward;
    this.calibration = calibration;
    this.tokens = tokens;
  }

  /** The tokens of the vocabulary a head drafts from. */
  get draftVocabSize(): number {
    return this.tokens?.length ?? this.heads.model.nVocab;
  }

  /** Share of the training data's argmax tokens inside the draft vocabulary (NaN: no counts recorded; 1: whole vocabulary). */
  get draftVocabCoverage(): number {
    if (!this.tokens) return 1;
    return this.heads.argmaxCounts ? argmaxCoverage(this.heads.argmaxCounts, this.tokens) : NaN;
  }

  /** Load the heads folder `dir` for the GGUF at `modelPath`. */
  static open(dir: string, modelPath: string, o: OpenHeadsOptions = {}): OpenHeads {
    const heads = EarlyExitHeads.load(dir);
    const { fingerprint, norm } = modelFingerprint(modelPath);
    heads.checkModel(fingerprint, dir);
    const calibration = loadCalibration(dir);
    const stale = calibration?.heads.find((h) => !heads.layers.includes(h.layer));
    if (stale) throw new InvalidInputError(`${dir}: calibration.json calibrates a head on block ${stale.layer}, but the heads are on blocks ${heads.layers.join(', ')}: calibrate again with 'lynx heads calibrate -m MODEL --heads ${dir}'`);
    const m = heads.model;
    const tokens = o.draftVocab !== undefined && o.draftVocab !== m.nVocab ? draftVocabulary(m.nVocab, o.draftVocab, heads.argmaxCounts) : undefined;
    const rows = tokens?.length ?? m.nVocab;
    const matrices = tokens ? new Map([...heads.matrices].map(([l, w]) => [l, gatherRows(w, m.nEmbd, tokens)])) : heads.matrices;
    const size = m.nEmbd * rows;
    const type = o.weightType ?? (size > 16 * 2 ** 20 && m.nEmbd % 32 === 0 ? 'q8_0' : 'f32');
    const forward = new HeadForward({ nEmbd: m.nEmbd, nVocab: rows, rmsEps: m.rmsEps, norm, matrices, type, threads: o.threads });
    return new OpenHeads(dir, heads, forward, calibration, tokens);
  }

  get layers(): number[] {
    return this.heads.layers;
  }

  /** The head on `layer` as the engine's LayerHead. */
  head(layer: number): LayerHead {
    if (!this.layers.includes(layer)) throw new InvalidInputError(`${this.dir} has no head on block ${layer} (heads: ${this.layers.join(', ')})`);
    const forward = this.forward;
    return { layer, logits: (hidden) => forward.logits(layer, hidden), ...(this.tokens ? { tokens: this.tokens } : {}) };
  }

  /** The calibrated thresholds at `level`, or an error saying how to calibrate. */
  thresholds(level: number): Map<number, number | null> {
    if (!this.calibration) throw new InvalidInputError(`${this.dir} is not calibrated: run 'lynx heads calibrate -m MODEL --heads ${this.dir}'`);
    return thresholdsAt(this.calibration, level);
  }

  dispose(): void {
    this.forward.dispose();
  }
}

/** Relative cost of drafting one token from block `layer`: the blocks 0..layer and the head against a full step. */
export function draftStepCost(nLayer: number, layer: number, nEmbd: number, nVocab: number, nParams: number, draftVocab = nVocab): number {
  const head = nEmbd * nVocab;
  // Weights read per token: every block and the output matrix (one embedding row is nothing).
  const blocks = Math.max(1, nParams - 2 * head);
  return (((layer + 1) / nLayer) * blocks + nEmbd * draftVocab) / (blocks + head);
}

export interface SelfSpeculativeOptions {
  /** The head that drafts, or 'auto': the one with the best analytic speedup from its calibrated agreement. */
  layer?: number | 'auto';
  /** Stop drafting above the head's threshold at this calibrated accuracy level; omit to draft the maximum always. */
  level?: number;
  draftMax?: number;
  rule?: 'rejection' | 'match';
  /** The model's parameter count (for 'auto'; LlamaModel.info.nParams). */
  nParams?: number;
}

/** The head 'auto' picks: the best E[tokens] / cost over the heads, from the calibrated agreement (or the trained one). */
export function chooseDraftLayer(open: OpenHeads, nParams: number, draftMax: number): { layer: number; speedup: number; gamma: number } {
  const m = open.heads.model;
  let best: { layer: number; speedup: number; gamma: number } | undefined;
  for (const layer of open.layers) {
    const alpha =
      open.calibration?.heads.find((h) => h.layer === layer)?.agreement ?? open.heads.manifest.metrics?.find((x) => x.layer === layer)?.agreementAfter;
    if (alpha === undefined) continue;
    // A draft vocabulary drafts no token outside it: about its coverage of the model's argmaxes is kept.
    const coverage = Number.isFinite(open.draftVocabCoverage) ? open.draftVocabCoverage : 1;
    const b = bestDraftLength({ alpha: alpha * coverage, draftCost: draftStepCost(m.nLayer, layer, m.nEmbd, m.nVocab, nParams, open.draftVocabSize), maxGamma: draftMax });
    if (!best || b.speedup > best.speedup) best = { layer, speedup: b.speedup, gamma: b.gamma };
  }
  if (!best) return { layer: open.layers[open.layers.length - 1]!, speedup: NaN, gamma: draftMax };
  return best;
}

export function selfSpeculativeMode(open: OpenHeads, o: SelfSpeculativeOptions = {}): DecodingMode {
  const draftMax = o.draftMax ?? 5;
  const layer = o.layer === undefined || o.layer === 'auto' ? chooseDraftLayer(open, o.nParams ?? 0, draftMax).layer : o.layer;
  const threshold = o.level !== undefined ? open.thresholds(o.level).get(layer) : undefined;
  if (threshold === null) throw new InvalidInputError(`the head on block ${layer} never reaches accuracy level ${o.level} on the calibration data, so it would never draft: choose a lower --accuracy-level or another head`);
  const entropyStop = threshold ?? Infinity;
  return speculativeDecoding({
    predictor: selfDraftPredictor({ head: open.head(layer), entropyStop }),
    draftMax,
    rule: o.rule,
    name: `self-speculative(heads@${layer}${open.tokens ? `, draft vocab ${open.tokens.length}` : ''}${o.level !== undefined ? `, level ${o.level}` : ''}, draft-max ${draftMax})`,
  });
}

export interface LayerExitModeOptions {
  /** The calibrated accuracy level whose thresholds decide. Default 0.9. */
  level?: number;
  /** Heads to use (default all). */
  layers?: readonly number[];
}

export function layerExitMode(open: OpenHeads, o: LayerExitModeOptions = {}): DecodingMode {
  if (open.tokens) throw new InvalidInputError(`a draft vocabulary (--draft-vocab) is for speculative decoding: layer exit emits the heads' own tokens and needs them over the whole vocabulary`);
  const level = o.level ?? 0.9;
  const t = open.thresholds(level);
  const layers = (o.layers ?? open.layers).filter((l) => t.get(l) !== null && t.get(l) !== undefined);
  if (layers.length === 0) throw new InvalidInputError(`no head reaches accuracy level ${level} on the calibration data: choose a lower --accuracy-level`);
  return layerExitDecoding({
    heads: layers.map((l) => open.head(l)),
    thresholds: layers.map((l) => t.get(l)!),
    name: `layer-exit(heads@${layers.join(',')}, level ${level}, lossy)`,
  });
}
