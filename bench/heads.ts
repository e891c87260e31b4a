/**
 * `npm run bench -- --suite heads`: early-exit heads and self-speculative decoding.
 *
 * On the demo reasoner with its shipped heads (models/lynx-demo/heads), greedy, on demo:test prompts: per head and
 * draft length γ, the acceptance rate and mean accepted length; wall time against plain greedy decoding in the same
 * run, the two alternated (plain, speculative, plain, speculative, ...) so drift on a shared machine hits both alike;
 * the measured cost of a draft step (a partial-depth decode through block K plus the head) and of a verification,
 * in units of a plain decode step; and the analytic speedup those predict, E / (γ·c + 1) with
 * E = (1 - α^(γ+1)) / (1 - α). The same for the draft-model predictor (the truncated GGUF of a head).
 *
 * On the R1-1.5B-shape bench model (random weights, bench/engine.ts): heads distilled on random weights would say
 * nothing about acceptance, so only the measured cost ratio of a draft step (with the model's own output matrix as
 * the head, which costs what a trained head costs) against the analytic cost model, and the speedup that model
 * predicts for a real 8B model at the acceptance rates the demo's heads reach.
 *
 *   npm run bench -- --suite heads [--threads 1] [--prompts 8] [--tokens 128] [--rounds 2] [--no-demo] [--no-r1]
 *     [--r1-threads N] [--r1-types q8_0,f16] [--r1-layers 6,13,20] [--r1-gammas 2,4,6] [--r1-tokens 24] [--r1-draft-vocab 32768]
 *
 * The demo reasoner is best measured on one thread: its steps are so short that several thread pools (the model's
 * contexts, the heads' ggml backend) spinning at their barriers on a 2-core machine made single runs 5-25x slower.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import {
  draftModelPredictor,
  expectedTokensPerVerification,
  LlamaContext,
  LlamaModel,
  speculativeDecoding,
  type DecodingMode,
} from '../src/engine/index.js';
import { GgufFile } from '../src/formats/gguf/reader.js';
import { writeDraftModel } from '../src/reasoning/heads/draft-gguf.js';
import { draftStepCost, OpenHeads, selfSpeculativeMode } from '../src/reasoning/heads/exit.js';
import { EarlyExitHeads, modelFingerprint } from '../src/reasoning/heads/heads.js';
import { problemPromptTokens } from '../src/reasoning/prompt-tokens.js';
import { loadBenchmark } from '../src/tasks/registry.js';
import { cacheDir, packageRoot } from '../src/util/paths.js';
import { R1_1_5B_SHAPE, writeBenchModel } from './engine.js';

type Log = (s: string) => void;

/** DeepSeek-R1-Distill-Llama-8B's shape, for the prediction. */
const R1_8B = { nLayer: 32, nEmbd: 4096, nVocab: 128256, nParams: 8.03e9 };
const GAMMAS = [2, 4, 6];
/** Tokens per R1-shape run: a plain step there takes about 0.2 s on one thread. */
const R1_TOKENS = 24;

export interface HeadsBenchRow {
  predictor: string;
  /** The drafting head's block (self-drafting), or the head the draft model was cut at. */
  layer: number;
  gamma: number;
  tokens: number;
  identical: number;
  prompts: number;
  drafted: number;
  accepted: number;
  verifications: number;
  acceptanceRate: number;
  /**
   * Per-position acceptance α, the formula's: accepted / (accepted + rejections), a verification rejecting at most
   * once (its first wrong draft). Unlike accepted / drafted it does not count the drafts after a rejection.
   */
  alpha: number;
  /** Accepted drafts per verification, and tokens per verification (those plus the full model's own token). */
  meanAcceptedLength: number;
  tokensPerVerification: number;
  /** Plain and speculative wall time in this run (ms, summed over rounds) and plain / speculative. */
  plainMs: number;
  speculativeMs: number;
  measuredSpeedup: number;
  /** A draft step and a verification in plain decode steps (measured). */
  draftStepCost: number;
  verifyCost: number;
  /** E(α, γ) / (γ·c + 1), and with the measured verification cost: E / (γ·c + v). */
  analyticSpeedup: number;
  analyticSpeedupMeasuredVerify: number;
}

function argOf(args: string[], name: string, dflt: number): number {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : dflt;
}

/** Greedy generation of every prompt; wall time of the decode loops (prefill excluded). */
async function run(ctx: LlamaContext, prompts: number[][], maxTokens: number, mode?: DecodingMode, noEog = false): Promise<{ outputs: number[][]; ms: number }> {
  const outputs: number[][] = [];
  let ms = 0;
  for (const p of prompts) {
    const seq = ctx.createSequence();
    try {
      await seq.append(p);
      const out: number[] = [];
      const t0 = performance.now();
      for await (const t of seq.generate({ maxTokens, sampler: { temperature: 0 }, decoding: mode, ...(noEog ? { stop: { eog: false } } : {}) })) {
        if (t.stopped) break;
        out.push(t.token);
      }
      ms += performance.now() - t0;
      outputs.push(out);
    } finally {
      seq.dispose();
    }
  }
  return { outputs, ms };
}

interface Contexts {
  plain: LlamaContext;
  tapped: LlamaContext;
}

/** Plain and speculative runs alternated `rounds` times; the figures of one predictor at one γ. */
async function compare(c: Contexts, prompts: number[][], maxTokens: number, rounds: number, mode: DecodingMode, label: { predictor: string; layer: number; gamma: number }, noEog = false): Promise<HeadsBenchRow> {
  let plainMs = 0;
  let plainTokens = 0;
  let specMs = 0;
  let identical = 0;
  let reference: number[][] = [];
  for (let r = 0; r < rounds; r++) {
    const plain = await run(c.plain, prompts, maxTokens, undefined, noEog);
    plainMs += plain.ms;
    plainTokens += plain.outputs.reduce((a, o) => a + o.length, 0);
    reference = plain.outputs;
    const spec = await run(c.tapped, prompts, maxTokens, mode, noEog);
    specMs += spec.ms;
    if (r === 0) identical = spec.outputs.filter((o, i) => o.length === plain.outputs[i]!.length && o.every((t, j) => t === plain.outputs[i]![j])).length;
  }
  const s = mode.stats;
  const stepMs = plainMs / plainTokens;
  const alpha = s.accepted / Math.max(1, s.accepted + s.fullDecodes - s.allAccepted);
  const gamma = s.fullDecodes > 0 ? s.drafted / s.fullDecodes : label.gamma;
  const draftSteps = Math.max(1, s.partialDecodes || s.drafted);
  const cost = s.draftMs / draftSteps / stepMs;
  const verifyCost = s.verifyMs / Math.max(1, s.fullDecodes) / stepMs;
  const e = expectedTokensPerVerification(alpha, gamma);
  const specTokens = s.tokens;
  return {
    ...label,
    tokens: specTokens / rounds,
    identical,
    prompts: reference.length,
    drafted: s.drafted,
    accepted: s.accepted,
    verifications: s.fullDecodes,
    acceptanceRate: s.drafted > 0 ? s.accepted / s.drafted : 0,
    alpha,
    meanAcceptedLength: s.accepted / Math.max(1, s.fullDecodes),
    tokensPerVerification: specTokens / Math.max(1, s.fullDecodes),
    plainMs,
    speculativeMs: specMs,
    // Per token, since a run that differs may differ in length.
    measuredSpeedup: plainMs / plainTokens / (specMs / specTokens),
    draftStepCost: cost,
    verifyCost,
    analyticSpeedup: e / (gamma * cost + 1),
    analyticSpeedupMeasuredVerify: e / (gamma * cost + verifyCost),
  };
}

const f = (x: number, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : '—');

function table(rows: HeadsBenchRow[], log: Log): void {
  log('\n| predictor | γ | acceptance | α | accepted / verify | tokens / verify | identical | plain ms | spec ms | measured speedup | draft step c | verify v | analytic E/(γc+1) | E/(γc+v) |');
  log('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const r of rows) {
    log(
      `| ${r.predictor} | ${r.gamma} | ${f(100 * r.acceptanceRate, 1)}% | ${f(100 * r.alpha, 1)}% | ${f(r.meanAcceptedLength)} | ${f(r.tokensPerVerification)} | ${r.identical}/${r.prompts} | ` +
        `${f(r.plainMs, 0)} | ${f(r.speculativeMs, 0)} | ${f(r.measuredSpeedup)}x | ${f(r.draftStepCost, 3)} | ${f(r.verifyCost)} | ${f(r.analyticSpeedup)}x | ${f(r.analyticSpeedupMeasuredVerify)}x |`,
    );
  }
}

async function benchDemo(o: { threads: number; prompts: number; tokens: number; rounds: number }, log: Log): Promise<HeadsBenchRow[]> {
  const path = resolve(packageRoot(), 'models', 'lynx-demo', 'model.gguf');
  const headsDir = resolve(packageRoot(), 'models', 'lynx-demo', 'heads');
  const model = LlamaModel.load(path);
  const heads = OpenHeads.open(headsDir, path, { threads: o.threads });
  const tmp = mkdtempSync(join(tmpdir(), 'lynx-bench-heads-'));
  const prompts = loadBenchmark('demo:test', { limit: o.prompts }).map((p) => problemPromptTokens(model, p));
  const nCtx = Math.max(...prompts.map((p) => p.length)) + o.tokens + 64;
  const c: Contexts = {
    plain: new LlamaContext(model, { nCtx, nSeqMax: 1, threads: o.threads, taps: false }),
    tapped: new LlamaContext(model, { nCtx, nSeqMax: 1, threads: o.threads, taps: true }),
  };
  const rows: HeadsBenchRow[] = [];
  try {
    log(`demo reasoner: ${prompts.length} demo:test prompts x ${o.tokens} tokens, greedy, ${o.rounds} alternated rounds, ${o.threads} thread(s); heads on blocks ${heads.layers.join(', ')} of ${model.info.nLayer}`);
    await run(c.plain, prompts.slice(0, 2), 32); // warm-up: page faults and allocations
    await run(c.tapped, prompts.slice(0, 2), 32, selfSpeculativeMode(heads, { layer: heads.layers[0]!, draftMax: 4 }));
    for (const layer of heads.layers) {
      for (const gamma of GAMMAS) {
        const row = await compare(c, prompts, o.tokens, o.rounds, selfSpeculativeMode(heads, { layer, draftMax: gamma }), { predictor: `self-draft heads@${layer}`, layer, gamma });
        log(`  heads@${layer} γ ${gamma}: acceptance ${f(100 * row.acceptanceRate, 1)}%, ${f(row.measuredSpeedup)}x measured, ${f(row.analyticSpeedup)}x analytic`);
        rows.push(row);
      }
    }
    // The draft-model predictor: the truncated GGUF of a head (what --draft model:PATH and the GPU fallback run).
    for (const layer of heads.layers) {
      const file = join(tmp, `draft-${layer}.gguf`);
      writeDraftModel(path, heads.heads, layer, file);
      const draft = LlamaModel.load(file);
      const dctx = new LlamaContext(draft, { nCtx, nSeqMax: 1, threads: o.threads });
      try {
        for (const gamma of GAMMAS) {
          const mode = speculativeDecoding({ predictor: draftModelPredictor({ context: dctx }), draftMax: gamma, name: `draft-model heads@${layer}` });
          const row = await compare(c, prompts, o.tokens, o.rounds, mode, { predictor: `draft model (blocks 0..${layer} + head)`, layer, gamma });
          log(`  draft model @${layer} γ ${gamma}: acceptance ${f(100 * row.acceptanceRate, 1)}%, ${f(row.measuredSpeedup)}x measured, ${f(row.analyticSpeedup)}x analytic`);
          rows.push(row);
        }
      } finally {
        dctx.dispose();
        draft.dispose();
      }
    }
    return rows;
  } finally {
    c.plain.dispose();
    c.tapped.dispose();
    heads.dispose();
    model.dispose();
    rmSync(tmp, { recursive: true, force: true });
  }
}

interface R1Row extends HeadsBenchRow {
  weightType: R1WeightType;
  plainStepMs: number;
  analyticDraftStepCost: number;
}

type R1WeightType = 'q8_0' | 'f16';
interface R1Options {
  threads: number;
  rounds: number;
  /** The model's (and the lens head's) weight type: q8_0 is compute-bound on a few CPU cores, f16 memory-bound. */
  type: R1WeightType;
  layers: number[];
  gammas: number[];
  tokens: number;
  /** Draft vocabularies to measure beside the whole one (the head over the first N token ids: the cost is the same). */
  draftVocabs: number[];
}

/**
 * Self-speculative decoding on the R1-1.5B shape with the model's own output matrix as the head on block K (a lens
 * head, costing what a trained 1536 x 151,936 head costs). The costs are this machine's; the acceptance is the random
 * weights' (their blocks add little to the residual stream, so a lens head agrees often), not a trained model's.
 */
async function benchR1Shape(o: R1Options, log: Log): Promise<R1Row[]> {
  const file = join(cacheDir(), 'bench', `r1-distill-qwen-1.5b-shape.${o.type}.gguf`);
  if (!existsSync(file)) {
    mkdirSync(join(cacheDir(), 'bench'), { recursive: true });
    log(`writing ${file}`);
    writeBenchModel(file, o.type);
  }
  const { nLayer, nEmbd, nVocab } = R1_1_5B_SHAPE;
  const tmp = mkdtempSync(join(tmpdir(), 'lynx-bench-heads-r1-'));
  const model = LlamaModel.load(file);
  try {
    const g = GgufFile.open(file);
    const w = g.tensor('output.weight');
    g.close();
    EarlyExitHeads.create(modelFingerprint(file).fingerprint, new Map(o.layers.map((l) => [l, w]))).save(tmp, 'F16');
    const prompt = model.tokenize('The benchmark prompt for decoding speed.');
    const nCtx = prompt.length + o.tokens + Math.max(...o.gammas) + 16;
    const c: Contexts = {
      plain: new LlamaContext(model, { nCtx, nSeqMax: 1, threads: o.threads, taps: false }),
      tapped: new LlamaContext(model, { nCtx, nSeqMax: 1, threads: o.threads, taps: true }),
    };
    const rows: R1Row[] = [];
    try {
      log(`\nR1-1.5B shape (random weights, ${o.type}), ${o.tokens} tokens x ${o.rounds} alternated rounds, ${o.threads} thread(s); lens heads (a ${nEmbd} x ${nVocab} head) on blocks ${o.layers.join(', ')}`);
      await run(c.plain, [prompt], 4, undefined, true);
      for (const draftVocab of [undefined, ...o.draftVocabs]) {
        // The head held as the model's output matrix is.
        const heads = OpenHeads.open(tmp, file, { threads: o.threads, weightType: o.type, draftVocab });
        try {
          for (const layer of o.layers) {
            for (const gamma of o.gammas) {
              const predictor = `lens head @${layer}${draftVocab ? `, draft vocab ${draftVocab}` : ''}`;
              const row = await compare(c, [prompt], o.tokens, o.rounds, selfSpeculativeMode(heads, { layer, draftMax: gamma }), { predictor, layer, gamma }, true);
              const r: R1Row = {
                ...row,
                weightType: o.type,
                plainStepMs: row.plainMs / (o.tokens * o.rounds),
                analyticDraftStepCost: draftStepCost(nLayer, layer, nEmbd, nVocab, model.info.nParams, draftVocab),
              };
              log(`  ${predictor} γ ${gamma}: acceptance ${f(100 * r.acceptanceRate, 1)}%, ${f(r.measuredSpeedup)}x measured (${r.identical}/1 identical); c = ${f(r.draftStepCost, 3)} measured, ${f(r.analyticDraftStepCost, 3)} from weights read; v (${gamma + 1} tokens) = ${f(r.verifyCost)}; plain step ${f(r.plainStepMs, 0)} ms`);
              rows.push(r);
            }
          }
        } finally {
          heads.dispose();
        }
      }
    } finally {
      c.plain.dispose();
      c.tapped.dispose();
    }
    return rows;
  } finally {
    model.dispose();
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** The speedup predicted for an 8B model (memory-bound decode, v = 1) at the demo heads' acceptance, per γ. */
function predict8B(demo: HeadsBenchRow[], r1: R1Row[], log: Log): Record<string, unknown>[] {
  // Measured / analytic draft cost on the 1.5B shape: how far this machine is from the weights-read cost model.
  const correction = r1.length > 0 ? r1.reduce((a, r) => a + r.draftStepCost / r.analyticDraftStepCost, 0) / r1.length : 1;
  const out: Record<string, unknown>[] = [];
  log(`\nPredicted for an 8B model (${R1_8B.nLayer} blocks, ${R1_8B.nEmbd} wide, ${R1_8B.nVocab} vocabulary), v = 1; c from weights read${r1.length ? `, and x ${f(correction)} (measured/analytic on the 1.5B shape)` : ''}`);
  log('\n| head (8B block) | from demo head | α | γ | c (weights) | speedup | c (corrected) | speedup |');
  log('|---|---|---|---|---|---|---|---|');
  const demoLayers = [...new Set(demo.filter((r) => r.predictor.startsWith('self-draft')).map((r) => r.layer))];
  for (const dl of demoLayers) {
    // The same relative depth: demo block dl of 6 -> 8B block round((dl + 1) / 6 * 32) - 1.
    const k = Math.round(((dl + 1) / 6) * R1_8B.nLayer) - 1;
    const c = draftStepCost(R1_8B.nLayer, k, R1_8B.nEmbd, R1_8B.nVocab, R1_8B.nParams);
    for (const gamma of GAMMAS) {
      const row = demo.find((r) => r.predictor.startsWith('self-draft') && r.layer === dl && r.gamma === gamma);
      if (!row) continue;
      const e = expectedTokensPerVerification(row.alpha, gamma);
      const s = e / (gamma * c + 1);
      const s2 = e / (gamma * c * correction + 1);
      log(`| ${k} | ${dl} | ${f(100 * row.alpha, 1)}% | ${gamma} | ${f(c, 3)} | ${f(s)}x | ${f(c * correction, 3)} | ${f(s2)}x |`);
      out.push({ block8B: k, demoLayer: dl, alpha: row.alpha, gamma, draftStepCost: c, speedup: s, correctedDraftStepCost: c * correction, correctedSpeedup: s2 });
    }
  }
  // What acceptance a head needs for the target: the least α whose best γ (up to 8) reaches 1.5x; with the whole
  // vocabulary and with a 32,768-token draft vocabulary (draft-vocab.ts).
  log('\n| 8B head block | draft vocabulary | c (weights) | α for 1.5x (best γ ≤ 8) | γ |');
  log('|---|---|---|---|---|');
  for (const k of [3, 7, 10, 15]) {
    for (const draftVocab of [R1_8B.nVocab, 32768]) {
      const c = draftStepCost(R1_8B.nLayer, k, R1_8B.nEmbd, R1_8B.nVocab, R1_8B.nParams, draftVocab);
      let need: { alpha: number; gamma: number } | undefined;
      for (let a = 0.3; a < 1 && !need; a += 0.01) {
        for (let gamma = 1; gamma <= 8; gamma++) if (expectedTokensPerVerification(a, gamma) / (gamma * c + 1) >= 1.5) { need = { alpha: a, gamma }; break; }
      }
      log(`| ${k} | ${draftVocab} | ${f(c, 3)} | ${need ? `${f(100 * need.alpha, 0)}%` : 'none'} | ${need?.gamma ?? '—'} |`);
      out.push({ block8B: k, draftVocab, draftStepCost: c, alphaFor1_5x: need?.alpha ?? null, gamma: need?.gamma ?? null });
    }
  }
  return out;
}

export async function benchHeads(args: string[], log: Log): Promise<Record<string, unknown>> {
  const threads = argOf(args, '--threads', 1);
  const o = { threads, prompts: argOf(args, '--prompts', 8), tokens: argOf(args, '--tokens', 128), rounds: argOf(args, '--rounds', 2) };
  const list = (name: string, dflt: number[]) => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1]!.split(',').map(Number) : dflt;
  };
  const demo = args.includes('--no-demo') ? [] : await benchDemo(o, log);
  table(demo, log);
  const types = (args.indexOf('--r1-types') >= 0 ? args[args.indexOf('--r1-types') + 1]!.split(',') : ['q8_0', 'f16']) as R1WeightType[];
  const r1: R1Row[] = [];
  if (!args.includes('--no-r1')) {
    for (const type of types) {
      const rows = await benchR1Shape({ threads: argOf(args, '--r1-threads', threads), rounds: Math.min(2, o.rounds), type, layers: list('--r1-layers', [6, 13, 20]), gammas: list('--r1-gammas', [2, 4, 6]), tokens: argOf(args, '--r1-tokens', R1_TOKENS), draftVocabs: list('--r1-draft-vocab', [32768]) }, log);
      table(rows, log);
      r1.push(...rows);
    }
  }
  const prediction = predict8B(demo, r1, log);
  return { settings: o, demo, r1Shape: r1, prediction8B: prediction };
}
