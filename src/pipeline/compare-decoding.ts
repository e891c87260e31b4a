/**
 * `lynx heads compare`: every decoding mode on one prompt set, in one run: the full model (the baseline), self-
 * speculative decoding from each head and draft length, layer exit at each accuracy level (lossy), and speculative
 * decoding with a draft model. Per mode: decode speed and its ratio to the full model's, how many outputs equal the
 * full model's token for token and how much of its output each reproduces before the first difference, and for the
 * speculative modes acceptance and the measured cost of a draft step and of a verification in full-step units, with
 * the speedup those predict (analysis.ts), so a figure measured here can be carried to another machine.
 */
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { LlamaContext, speculativeDecoding, draftModelPredictor, LlamaModel, type DecodingMode, type SamplerOptions } from '../engine/index.js';
import { OpenHeads, layerExitMode, selfSpeculativeMode } from '../reasoning/heads/exit.js';
import { problemPromptTokens } from '../reasoning/prompt-tokens.js';
import { loadBenchmark } from '../tasks/registry.js';
import { InvalidInputError } from '../util/errors.js';
import { partialDepthHolds } from './decoding.js';
import type { HeadTextSource, Log } from './heads.js';
import { openModel } from './model.js';

export interface CompareDecodingOptions {
  model: LlamaModel | string;
  /** Heads folder (self-speculative and layer-exit modes); without it only the full model and a draft model run. */
  heads?: string;
  draftModel?: string;
  /** Prompts: a text file's texts, or a benchmark's problems through the chat template. */
  prompts: HeadTextSource;
  limit?: number;
  maxTokens: number;
  sampler: SamplerOptions;
  draftMax: readonly number[];
  /** Layer-exit levels (default 0.9; [] for none). */
  levels?: readonly number[];
  /** Heads that draft (default all). */
  layers?: readonly number[];
  /** Self-drafting stops above the threshold of this level (default: no stop). */
  draftLevel?: number;
  /** Also self-drafting from these draft vocabularies (the N tokens the model emits most), beside the whole one. */
  draftVocab?: readonly number[];
  threads?: number;
  log?: Log;
}

export interface ModeResult {
  mode: string;
  lossless: boolean;
  /** The drafting head's block, and the draft length. */
  layer?: number;
  draftMax?: number;
  /** The draft vocabulary's size, when self-drafting from part of the vocabulary. */
  draftVocab?: number;
  tokens: number;
  seconds: number;
  tokensPerSecond: number;
  /** tokensPerSecond over the full model's in this run. */
  speedup: number;
  /** Prompts whose tokens equal the full model's, and the mean share of its tokens reproduced before the first difference. */
  identical: number;
  matchingPrefix: number;
  drafted: number;
  accepted: number;
  acceptanceRate: number | null;
  /** Tokens per full-depth decode (a verification, or a layer-exit step that was not exited). */
  tokensPerFullDecode: number | null;
  /** Drafts per verification, the cost of a draft step and of a verification in full one-token steps. */
  draftsPerVerification?: number;
  draftStepCost?: number;
  verifyCost?: number;
  /** tokensPerFullDecode / (draftsPerVerification * draftStepCost + verifyCost): should match the measured speedup. */
  analyticSpeedup?: number;
  exits?: Record<number, number>;
  partialStopsIgnored?: number;
}

export interface Comparison {
  model: string;
  prompts: number;
  maxTokens: number;
  sampler: SamplerOptions;
  /** A full one-token decode step, measured in the full model's run. */
  fullStepMs: number;
  partialDepthHolds: boolean | null;
  modes: ModeResult[];
}

/** Prompt token rows of a source (no generation). */
export function promptRows(model: LlamaModel, src: HeadTextSource, limit: number): number[][] {
  if (src.file) {
    const path = resolve(src.file);
    if (!existsSync(path)) throw new InvalidInputError(`prompt file not found: ${path}`);
    const raw = readFileSync(path, 'utf8');
    const texts = path.endsWith('.jsonl') ? raw.split('\n').filter((l) => l.trim()).map((l) => String((JSON.parse(l) as { text?: unknown }).text ?? '')) : raw.split(/\n\s*\n/);
    const bos = model.info.addBos && model.info.special.bos !== undefined ? [model.info.special.bos] : [];
    return texts.map((t) => t.trim()).filter(Boolean).slice(0, limit).map((t) => [...bos, ...model.tokenize(t, { addSpecial: false, parseSpecial: true })]);
  }
  return loadBenchmark(src.benchmark ?? 'demo:test', src.selection).slice(0, limit).map((p) => problemPromptTokens(model, p));
}

interface RunOutcome {
  outputs: number[][];
  seconds: number;
}

async function runMode(model: LlamaModel, prompts: number[][], o: CompareDecodingOptions, mode?: DecodingMode): Promise<RunOutcome> {
  const ctx = new LlamaContext(model, { nCtx: Math.max(...prompts.map((p) => p.length)) + o.maxTokens + 64, nSeqMax: 1, threads: o.threads, kvType: 'f32', flashAttention: false });
  try {
    const outputs: number[][] = [];
    let ms = 0;
    for (let i = 0; i < prompts.length; i++) {
      const seq = ctx.createSequence();
      await seq.append(prompts[i]!);
      const out: number[] = [];
      const t0 = performance.now();
      for await (const t of seq.generate({ maxTokens: o.maxTokens, sampler: { ...o.sampler, seed: (o.sampler.seed ?? 0) + i }, decoding: mode })) {
        if (t.stopped) break;
        out.push(t.token);
      }
      ms += performance.now() - t0;
      outputs.push(out);
      seq.dispose();
    }
    return { outputs, seconds: ms / 1000 };
  } finally {
    ctx.dispose();
  }
}

export async function compareDecodingStep(o: CompareDecodingOptions): Promise<Comparison> {
  const model = typeof o.model === 'string' ? await openModel(o.model) : o.model;
  const log = o.log ?? (() => {});
  let heads: OpenHeads | undefined;
  let draft: LlamaModel | undefined;
  try {
    const prompts = promptRows(model, o.prompts, o.limit ?? 8);
    if (prompts.length === 0) throw new InvalidInputError('no prompts to compare on');
    // Warm-up: the first decodes of a process pay for page faults and allocations.
    await runMode(model, prompts.slice(0, 1), { ...o, maxTokens: Math.min(16, o.maxTokens) });
    log(`full model on ${prompts.length} prompts`);
    const full = await runMode(model, prompts, o);
    const fullTokens = full.outputs.reduce((a, x) => a + x.length, 0);
    const fullStepMs = (1000 * full.seconds) / Math.max(1, fullTokens);
    const fullRate = fullTokens / full.seconds;
    const modes: ModeResult[] = [
      { mode: 'full', lossless: true, tokens: fullTokens, seconds: full.seconds, tokensPerSecond: fullRate, speedup: 1, identical: prompts.length, matchingPrefix: 1, drafted: 0, accepted: 0, acceptanceRate: null, tokensPerFullDecode: 1 },
    ];
    const measure = async (mode: DecodingMode, extra: Partial<ModeResult> = {}) => {
      log(`${mode.name}`);
      const r = await runMode(model, prompts, o, mode);
      const s = mode.stats;
      const tokens = r.outputs.reduce((a, x) => a + x.length, 0);
      let identical = 0;
      let prefix = 0;
      r.outputs.forEach((out, i) => {
        const ref = full.outputs[i]!;
        let k = 0;
        while (k < ref.length && k < out.length && ref[k] === out[k]) k++;
        if (k === ref.length && out.length === ref.length) identical++;
        prefix += ref.length > 0 ? k / ref.length : 1;
      });
      const verifications = s.fullDecodes;
      const res: ModeResult = {
        mode: mode.name,
        lossless: mode.lossless,
        ...extra,
        tokens,
        seconds: r.seconds,
        tokensPerSecond: tokens / r.seconds,
        speedup: tokens / r.seconds / fullRate,
        identical,
        matchingPrefix: prefix / prompts.length,
        drafted: s.drafted,
        accepted: s.accepted,
        acceptanceRate: s.drafted > 0 ? s.accepted / s.drafted : null,
        tokensPerFullDecode: verifications > 0 ? s.tokens / verifications : null,
        ...(mode.lossless ? {} : { exits: { ...s.exits } }),
        partialStopsIgnored: s.partialStopsIgnored,
      };
      if (mode.lossless && verifications > 0) {
        const steps = Math.max(1, s.partialDecodes || s.drafted);
        res.draftsPerVerification = s.drafted / verifications;
        res.draftStepCost = s.draftMs / steps / fullStepMs;
        res.verifyCost = s.verifyMs / verifications / fullStepMs;
        res.analyticSpeedup = res.tokensPerFullDecode! / (res.draftsPerVerification * res.draftStepCost + res.verifyCost);
      }
      modes.push(res);
    };
    let holds: boolean | null = null;
    if (o.heads) {
      heads = OpenHeads.open(o.heads, model.info.path, { threads: o.threads });
      const layers = o.layers ?? heads.layers;
      holds = await partialDepthHolds(model, layers[0] ?? heads.layers[0]!);
      for (const layer of layers) {
        for (const draftMax of o.draftMax) {
          await measure(selfSpeculativeMode(heads, { layer, draftMax, level: o.draftLevel, nParams: model.info.nParams }), { layer, draftMax });
        }
      }
      for (const n of o.draftVocab ?? []) {
        const partial = OpenHeads.open(o.heads, model.info.path, { threads: o.threads, draftVocab: n });
        try {
          for (const layer of layers) {
            for (const draftMax of o.draftMax) await measure(selfSpeculativeMode(partial, { layer, draftMax, level: o.draftLevel, nParams: model.info.nParams }), { layer, draftMax, draftVocab: n });
          }
        } finally {
          partial.dispose();
        }
      }
      if (heads.calibration) {
        for (const level of o.levels ?? [0.9]) await measure(layerExitMode(heads, { level }));
      }
    }
    if (o.draftModel) {
      draft = await LlamaModel.loadAsync(o.draftModel);
      const context = new LlamaContext(draft, { nCtx: 8192, nSeqMax: 1, threads: o.threads, kvType: 'f32', flashAttention: false });
      for (const draftMax of o.draftMax) {
        await measure(speculativeDecoding({ predictor: draftModelPredictor({ context }), draftMax, name: `speculative(model:${o.draftModel}, draft-max ${draftMax})` }), { draftMax });
      }
    }
    return { model: model.info.path, prompts: prompts.length, maxTokens: o.maxTokens, sampler: o.sampler, fullStepMs, partialDepthHolds: holds, modes };
  } finally {
    heads?.dispose();
    draft?.dispose();
    if (typeof o.model === 'string') model.dispose();
  }
}

/** The comparison as a Markdown table. */
export function formatComparison(c: Comparison): string {
  const f = (x: number | null | undefined, d = 2) => (x === null || x === undefined || !Number.isFinite(x) ? '—' : x.toFixed(d));
  const lines = [
    `${c.model}: ${c.prompts} prompts x ${c.maxTokens} tokens, ${c.sampler.temperature ? `temperature ${c.sampler.temperature}` : 'greedy'}; full step ${c.fullStepMs.toFixed(2)} ms${c.partialDepthHolds === false ? '; partial-depth decodes do NOT stop early here' : ''}`,
    '',
    '| mode | tok/s | vs full | identical | prefix kept | acceptance | tokens / full decode | draft step cost | verify cost | analytic |',
    '|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const m of c.modes) {
    lines.push(
      `| ${m.mode}${m.lossless ? '' : ' (lossy)'} | ${f(m.tokensPerSecond, 1)} | ${f(m.speedup)}x | ${m.identical}/${c.prompts} | ${f(100 * m.matchingPrefix, 1)}% | ` +
        `${m.acceptanceRate === null ? '—' : `${f(100 * m.acceptanceRate, 1)}%`} | ${f(m.tokensPerFullDecode)} | ${f(m.draftStepCost)} | ${f(m.verifyCost)} | ${m.analyticSpeedup ? `${f(m.analyticSpeedup)}x` : '—'} |`,
    );
  }
  return lines.join('\n') + '\n';
}
