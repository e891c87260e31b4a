/**
 * The decoding a step generates with, from a plain description (what `--draft`, `--layer-exit` and a server
 * request say): the full model (nothing to open), self-speculative decoding with early-exit heads (`heads`,
 * `heads:DIR`; DIR defaults to `heads/` next to the model), speculative decoding with a draft model (`model:PATH`),
 * or lossy layer exit with the heads.
 *
 * Self-drafting needs a partial-depth decode that really stops after the head's block. That is checked once, on a
 * scratch sequence; where it does not hold (a graph split over several devices) the heads' truncated GGUF draft
 * model (reasoning/heads/draft-gguf.ts) is written to the cache and drafts instead, with the same tokens.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import {
  draftModelPredictor,
  LlamaContext,
  LlamaModel,
  speculativeDecoding,
  type DecodingMode,
} from '../engine/index.js';
import { OpenHeads, chooseDraftLayer, layerExitMode, selfSpeculativeMode } from '../reasoning/heads/exit.js';
import { writeDraftModel } from '../reasoning/heads/draft-gguf.js';
import { InvalidInputError } from '../util/errors.js';
import { cacheDir } from '../util/paths.js';

export interface DecodingSpec {
  /** Speculative decoding: `heads`, `heads:DIR` (self-drafting from the model's first blocks), `model:PATH` (a draft model). */
  draft?: string;
  /** Lossy layer exit: `heads` or `heads:DIR`. */
  layerExit?: string;
  /** Calibrated accuracy level: the entropy stop of self-drafting, the exit thresholds of layer exit (default 0.9). */
  level?: number;
  /** Drafts per verification at most. Default 5. */
  draftMax?: number;
  /** The head that drafts; default 'auto' (the best analytic speedup). */
  draftLayer?: number | 'auto';
  /** Sampling: the rejection rule (default) or the match rule (plain sampling's tokens for a seed). */
  rule?: 'rejection' | 'match';
  /** Self-drafting from the N tokens the model emits most (reasoning/heads/draft-vocab.ts). Default: the whole vocabulary. */
  draftVocab?: number;
  /** Threads of the heads' matrix products and of a draft model. */
  threads?: number;
}

export type DraftSource = { kind: 'heads'; dir?: string } | { kind: 'model'; path: string };

/** `heads`, `heads:DIR`, `model:PATH`. */
export function parseDraftSource(spec: string, option = '--draft'): DraftSource {
  if (spec === 'heads') return { kind: 'heads' };
  if (spec.startsWith('heads:') && spec.length > 6) return { kind: 'heads', dir: spec.slice(6) };
  if (spec.startsWith('model:') && spec.length > 6) return { kind: 'model', path: spec.slice(6) };
  throw new InvalidInputError(`${option} '${spec}': write heads, heads:DIR (early-exit heads) or model:PATH (a draft GGUF)`);
}

/** Where a model's heads live by default: `heads/` beside its file. */
export function defaultHeadsDir(modelPath: string): string {
  return join(dirname(resolve(modelPath)), 'heads');
}

export interface OpenDecoding {
  mode: DecodingMode;
  /** What was opened, for logs and records; `fallback` says why a truncated draft model stands in for self-drafting. */
  description: string;
  fallback?: string;
  heads?: OpenHeads;
  dispose(): void;
}

export interface OpenDecodingOptions {
  /** Generations that may draft at once (draft-model sequences). Default 1. */
  parallel?: number;
  /** Tokens one generation may hold (the draft model's context per sequence). Default 4096. */
  contextTokens?: number;
  log?: (line: string) => void;
}

/** Does a partial-depth decode of `model` stop after `layer`? One probe on a scratch context. */
export async function partialDepthHolds(model: LlamaModel, layer: number): Promise<boolean> {
  const ctx = new LlamaContext(model, { nCtx: 256, nSeqMax: 1, nBatch: 8 });
  try {
    const seq = ctx.createSequence();
    const r = await seq.probe([0], 0, { layers: [layer] });
    return r.exitedAt === layer && r.stopHeld === true;
  } finally {
    ctx.dispose();
  }
}

/** Open what `spec` asks for on `model`; undefined for the full model. */
export async function openDecoding(model: LlamaModel, spec: DecodingSpec, o: OpenDecodingOptions = {}): Promise<OpenDecoding | undefined> {
  if (spec.draft && spec.layerExit) throw new InvalidInputError('--draft and --layer-exit exclude each other: speculative decoding is lossless, layer exit is not');
  if (spec.layerExit) {
    const src = parseDraftSource(spec.layerExit, '--layer-exit');
    if (src.kind !== 'heads') throw new InvalidInputError('--layer-exit needs early-exit heads: heads or heads:DIR');
    if (spec.draftVocab !== undefined) throw new InvalidInputError('--draft-vocab is for speculative decoding (--draft): layer exit emits the heads\' own tokens and needs them over the whole vocabulary');
    const heads = openHeads(model, src.dir, spec.threads);
    const mode = layerExitMode(heads, { level: spec.level });
    return { mode, description: mode.name, heads, dispose: () => heads.dispose() };
  }
  if (!spec.draft) return undefined;
  const src = parseDraftSource(spec.draft);
  const draftMax = spec.draftMax ?? 5;
  if (src.kind === 'model') {
    if (spec.draftVocab !== undefined) throw new InvalidInputError('--draft-vocab applies to self-drafting with heads (--draft heads[:DIR]), not to a draft model');
    return openDraftModel(model, src.path, draftMax, spec, o);
  }
  const heads = openHeads(model, src.dir, spec.threads, spec.draftVocab);
  const layer = spec.draftLayer === undefined || spec.draftLayer === 'auto' ? chooseDraftLayer(heads, model.info.nParams, draftMax).layer : spec.draftLayer;
  if (!heads.layers.includes(layer)) {
    heads.dispose();
    throw new InvalidInputError(`--draft-layer ${layer}: ${heads.dir} has heads on blocks ${heads.layers.join(', ')}`);
  }
  if (await partialDepthHolds(model, layer)) {
    const mode = selfSpeculativeMode(heads, { layer, level: spec.level, draftMax, rule: spec.rule, nParams: model.info.nParams });
    return { mode, description: mode.name, heads, dispose: () => heads.dispose() };
  }
  // The early stop does not hold here: draft with the same blocks and head as a model of their own.
  const out = join(cacheDir(), 'drafts', `${heads.heads.model.normChecksum}-${heads.heads.model.nLayer}-heads${layer}.gguf`);
  if (!existsSync(out)) {
    mkdirSync(dirname(out), { recursive: true });
    writeDraftModel(model.info.path, heads.heads, layer, out);
  }
  heads.dispose();
  // A GGUF's output covers the whole vocabulary: the truncated model drafts over all of it.
  const reason = `a partial-depth decode of ${model.info.path} does not stop after block ${layer} (its graph has several splits): drafting with the truncated model ${out}${spec.draftVocab !== undefined ? ' over the whole vocabulary (--draft-vocab does not apply to it)' : ''}`;
  o.log?.(reason);
  const opened = await openDraftModel(model, out, draftMax, spec, o);
  return { ...opened, fallback: reason };
}

function openHeads(model: LlamaModel, dir: string | undefined, threads?: number, draftVocab?: number): OpenHeads {
  const where = dir ?? defaultHeadsDir(model.info.path);
  if (!existsSync(where)) throw new InvalidInputError(`no early-exit heads at ${where}: train them with 'lynx heads train -m ${model.info.path} -o ${where}' or give heads:DIR`);
  return OpenHeads.open(where, model.info.path, { threads, draftVocab });
}

async function openDraftModel(target: LlamaModel, path: string, draftMax: number, spec: DecodingSpec, o: OpenDecodingOptions): Promise<OpenDecoding> {
  if (!existsSync(path)) throw new InvalidInputError(`draft model not found: ${path}`);
  const draft = await LlamaModel.loadAsync(path);
  try {
    const parallel = o.parallel ?? 1;
    const context = new LlamaContext(draft, { nCtx: parallel * (o.contextTokens ?? 4096), nSeqMax: parallel, threads: spec.threads, kvType: 'f32', flashAttention: false });
    const mode = speculativeDecoding({ predictor: draftModelPredictor({ context }), draftMax, rule: spec.rule, name: `speculative(model:${path}, draft-max ${draftMax})` });
    return { mode, description: mode.name, dispose: () => draft.dispose() };
  } catch (e) {
    draft.dispose();
    throw e;
  }
}
