/**
 * The demo model's card: how it was trained (recipe, loss curve) and how it behaves, measured on the 500 held-out test
 * problems at temperature 0.6 with the same measures as the training traces (src/demo/trace-stats.ts):
 * accuracy per level, thinking tokens, the share of thinking tokens after the first correct candidate answer (the room
 * early exit has), cue words per trace.
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { LlamaContext, type LlamaModel } from '../engine/index.js';
import { fullRollout, methodEnv } from '../reasoning/method.js';
import { problemPromptTokens } from '../reasoning/prompt-tokens.js';
import { writeFileAtomic, writeJsonAtomic } from '../util/fs.js';
import { forEachConcurrent } from '../util/concurrency.js';
import { heldOutProblems, type DemoProblem } from '../tasks/demo/problems.js';
import { toBenchmarkProblem } from '../tasks/demo/benchmark.js';
import { summarizeCompletion, type CompletionSummary } from './trace-stats.js';
import { recipeTrainer, type DemoRecipe, type LossCurveFile } from './train.js';
import { FROZEN_KV_NOTE } from './init-model.js';

export interface BehaviourRow {
  level: number | 'all';
  n: number;
  accuracy: number;
  /** Traces that closed `</think>` and wrote a boxed answer. */
  formatted: number;
  firstCandidateCorrect: number;
  meanThinkingTokens: number;
  /** Mean over traces of (thinking tokens after the first correct candidate) / (thinking tokens). */
  meanShareAfterFirstCorrect: number;
  /** Sum of tokens after the first correct candidate / sum of thinking tokens. */
  pooledShareAfterFirstCorrect: number;
  /**
   * The mean share over the traces that reach a correct candidate at all: how much of a trace is overthinking once the
   * model has the answer, apart from how often it gets there (absent in cards written before it existed).
   */
  meanShareAfterFirstCorrectWhenReached?: number;
  meanCues: number;
}

export interface BehaviourReport {
  temperature: number;
  topP: number;
  seed: number;
  maxTokens: number;
  rows: BehaviourRow[];
  seconds: number;
  tokensPerSecond: number;
  samples: { id: string; level: number; completion: string }[];
}

export async function measureBehaviour(
  model: LlamaModel,
  opts: {
    perLevel?: number;
    temperature?: number;
    topP?: number;
    seed?: number;
    maxTokens?: number;
    concurrency?: number;
    /** A hint line for the prompt (SplitReason's, for a small model trained with it). */
    promptHint?: string;
    onProgress?: (done: number, total: number) => void;
  } = {},
): Promise<BehaviourReport> {
  const problems = heldOutProblems(opts.perLevel ?? 100, 'test');
  const maxTokens = opts.maxTokens ?? 600;
  const concurrency = opts.concurrency ?? 16;
  const temperature = opts.temperature ?? 0.6;
  const topP = opts.topP ?? 0.95;
  const seed = opts.seed ?? 0;
  const prompts = problems.map((p) => problemPromptTokens(model, toBenchmarkProblem(p, 'test'), undefined, opts.promptHint));
  const longest = Math.max(...prompts.map((t) => t.length));
  const context = new LlamaContext(model, { nCtx: concurrency * (longest + maxTokens + 80), nSeqMax: concurrency });
  const env = methodEnv({ context, sampler: { temperature, topP }, maxTokens, seed });
  const count = (s: string) => model.tokenize(s, { addSpecial: false, parseSpecial: true }).length;
  const full = fullRollout();
  // In problem order, whatever order the rollouts finish in.
  const summaries: { p: DemoProblem; s: CompletionSummary; text: string }[] = new Array(problems.length);
  const t0 = performance.now();
  let generated = 0;
  let done = 0;
  try {
    await forEachConcurrent(problems.length, concurrency, async (i) => {
      const p = problems[i]!;
      const o = await full.solve({ problemId: p.id, promptTokens: prompts[i]! }, env);
      generated += o.tokens.total;
      // A natural end's text holds the thinking, `</think>` and the answer; a budget exit's answer comes after the cue.
      const text = o.end === 'natural' ? o.text : o.text + o.answerText;
      summaries[i] = { p, s: summarizeCompletion(text, p.answer, count), text };
      opts.onProgress?.(++done, problems.length);
    });
  } finally {
    context.dispose();
  }
  const seconds = (performance.now() - t0) / 1000;
  const levels = [...new Set(problems.map((p) => p.level))].sort((a, b) => a - b);
  const rows = [...levels.map((l) => behaviourRow(l, summaries.filter((x) => x.p.level === l).map((x) => x.s))), behaviourRow('all', summaries.map((x) => x.s))];
  const samples = levels.flatMap((l) => summaries.filter((x) => x.p.level === l).slice(0, 1).map((x) => ({ id: x.p.id, level: l, completion: x.text })));
  return { temperature, topP, seed, maxTokens, rows, seconds, tokensPerSecond: generated / seconds, samples };
}

export function behaviourRow(level: number | 'all', xs: readonly CompletionSummary[]): BehaviourRow {
  const n = xs.length;
  const mean = (f: (s: CompletionSummary) => number) => (n === 0 ? 0 : xs.reduce((a, s) => a + f(s), 0) / n);
  const thinking = xs.reduce((a, s) => a + s.thinkingTokens, 0);
  return {
    level,
    n,
    accuracy: mean((s) => +s.correct),
    formatted: mean((s) => +(s.finalAnswer !== null)),
    firstCandidateCorrect: mean((s) => +(s.firstCandidateCorrect === true)),
    meanThinkingTokens: mean((s) => s.thinkingTokens),
    meanShareAfterFirstCorrect: mean((s) => (s.thinkingTokens > 0 ? s.afterFirstCorrect / s.thinkingTokens : 0)),
    pooledShareAfterFirstCorrect: thinking > 0 ? xs.reduce((a, s) => a + s.afterFirstCorrect, 0) / thinking : 0,
    meanShareAfterFirstCorrectWhenReached: shareWhenReached(xs),
    meanCues: mean((s) => s.cues),
  };
}

function shareWhenReached(xs: readonly CompletionSummary[]): number {
  const reached = xs.filter((s) => s.reachedCorrect && s.thinkingTokens > 0);
  return reached.length === 0 ? 0 : reached.reduce((a, s) => a + s.afterFirstCorrect / s.thinkingTokens, 0) / reached.length;
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

export function behaviourTable(rows: readonly BehaviourRow[]): string {
  const head = '| level | problems | accuracy | closed thinking + boxed answer | first candidate right | thinking tokens | after first correct (mean / pooled / mean where reached) | cue words |';
  const sep = '|---|---|---|---|---|---|---|---|';
  const body = rows.map(
    (r) =>
      `| ${r.level} | ${r.n} | ${pct(r.accuracy)} | ${pct(r.formatted)} | ${pct(r.firstCandidateCorrect)} | ${r.meanThinkingTokens.toFixed(0)} | ${pct(r.meanShareAfterFirstCorrect)} / ${pct(r.pooledShareAfterFirstCorrect)} / ${r.meanShareAfterFirstCorrectWhenReached === undefined ? '?' : pct(r.meanShareAfterFirstCorrectWhenReached)} | ${r.meanCues.toFixed(2)} |`,
  );
  return [head, sep, ...body].join('\n');
}

/** A small self-contained SVG line chart of training loss (per step, smoothed) and validation loss. */
export function lossCurveSvg(curve: Pick<LossCurveFile, 'steps' | 'evals'>, width = 640, height = 300): string {
  const pad = { l: 48, r: 12, t: 16, b: 36 };
  const steps = curve.steps;
  const window = Math.max(1, Math.round(steps.length / 200));
  const smooth: [number, number][] = [];
  for (let i = 0; i < steps.length; i += window) {
    const chunk = steps.slice(i, i + window);
    smooth.push([chunk[chunk.length - 1]![0], chunk.reduce((a, s) => a + s[1], 0) / chunk.length]);
  }
  const evals = curve.evals.map((e) => [e.step, e.loss] as [number, number]);
  const all = [...smooth, ...evals];
  const xMax = Math.max(1, ...all.map((p) => p[0]));
  const yMax = Math.min(7, Math.max(...all.map((p) => p[1])));
  const x = (v: number) => pad.l + (v / xMax) * (width - pad.l - pad.r);
  const y = (v: number) => pad.t + (1 - Math.min(v, yMax) / yMax) * (height - pad.t - pad.b);
  const line = (pts: [number, number][]) => pts.map((p, i) => `${i ? 'L' : 'M'}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join('');
  const yTicks = [0, 1, 2, 3, 4, 5, 6, 7].filter((t) => t <= yMax);
  const xTicks = [0, 0.25, 0.5, 0.75, 1].map((f) => Math.round(f * xMax));
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    ...yTicks.map((t) => `<line x1="${pad.l}" x2="${width - pad.r}" y1="${y(t)}" y2="${y(t)}" stroke="#eee"/><text x="${pad.l - 6}" y="${y(t) + 4}" text-anchor="end">${t}</text>`),
    ...xTicks.map((t) => `<text x="${x(t)}" y="${height - pad.b + 16}" text-anchor="middle">${t}</text>`),
    `<text x="${(width + pad.l) / 2}" y="${height - 4}" text-anchor="middle">optimizer step</text>`,
    `<text x="12" y="${height / 2}" transform="rotate(-90 12 ${height / 2})" text-anchor="middle">loss (nats/token)</text>`,
    `<path d="${line(smooth)}" fill="none" stroke="#4269d0" stroke-width="1.5"/>`,
    `<path d="${line(evals)}" fill="none" stroke="#ff725c" stroke-width="1.5" stroke-dasharray="4 3"/>`,
    ...evals.map((p) => `<circle cx="${x(p[0]).toFixed(1)}" cy="${y(p[1]).toFixed(1)}" r="2.5" fill="#ff725c"/>`),
    `<text x="${width - pad.r}" y="${pad.t + 10}" text-anchor="end" fill="#4269d0">training (mean of ${window} steps)</text>`,
    `<text x="${width - pad.r}" y="${pad.t + 24}" text-anchor="end" fill="#ff725c">validation</text>`,
    `</svg>`,
  ].join('\n');
}

export interface ModelCardInput {
  modelFile: string;
  curve: LossCurveFile;
  behaviour: BehaviourReport;
  /** Extra markdown (e.g. the early-exit results) appended at the end. */
  extra?: string;
  /** Training stages merged into `curve` (mergeStageCurves); the data and optimiser rows then describe all of them. */
  stages?: number;
  /**
   * A small model that offloads (issue 17): the operations its traces hand to the big model. The card then describes
   * it as the small half of a big/small pair, and its behaviour (measured with the hint) as the small model alone.
   */
  offload?: { ops: readonly string[]; bigModel: string };
}

function offloadIntro(o: NonNullable<ModelCardInput['offload']>): string {
  return `
It is the small half of a big/small pair (SplitReason, docs/composition.md): its training traces hand the results of
${o.ops.join(' and ')} steps — the operations the same shape gets wrong most when it learns plain traces — to the big model
\`${o.bigModel}\` with plain-text tags, \`13 × 3 = <bigmodel>39.\\n</bigmodel>\`, and its prompt carries SplitReason's hint line.
Same tokenizer as the big model, so the pair passes token ids. Alone (below) it writes the tagged steps itself.
`;
}

function trainingPath(r: DemoRecipe): string {
  return recipeTrainer(r) === 'graph'
    ? 'full-gradient training through a ggml graph built by the project, ggml-opt AdamW, called through koffi'
    : "llama.cpp's own training path (llama_opt_*) through koffi, attn_k/attn_v frozen";
}

/**
 * One loss curve over several training stages (each `lynx demo train`, the later ones `--init-from` the earlier):
 * steps and evaluations of stage k follow those of stage k-1. A stage that was continued from a checkpoint rather
 * than from its end is cut at `upToStep` (the checkpoint's `lynx.demo.checkpoint_step`).
 */
export function mergeStageCurves(stages: readonly { curve: LossCurveFile; upToStep?: number }[]): { curve: LossCurveFile; table: string } {
  if (stages.length === 0) throw new Error('no training stages');
  let offset = 0;
  let tokens = 0;
  let seconds = 0;
  const steps: LossCurveFile['steps'] = [];
  const evals: LossCurveFile['evals'] = [];
  const rows: string[] = [];
  stages.forEach(({ curve: c, upToStep }, i) => {
    const last = upToStep ?? c.steps.length;
    const kept = c.steps.filter((x) => x[0] <= last);
    const keptSeconds = kept.length > 0 && c.steps.length > 0 ? c.seconds * (kept.length / c.steps.length) : 0;
    const keptTokens = kept.length * c.recipe.seqLen;
    steps.push(...kept.map((x) => [x[0] + offset, x[1], x[2], x[3]] as [number, number, number, number]));
    const ev = c.evals.filter((e) => e.step <= last);
    evals.push(...ev.filter((e) => !(i > 0 && e.step === 0)).map((e) => ({ ...e, step: e.step + offset })));
    const r = c.recipe;
    rows.push(
      `| ${i + 1} | ${recipeTrainer(r)} | data seed ${r.data.seed}, lr ${r.optim.lr} → ${r.optim.lrMin}, ${r.data.sequences} windows planned` +
        `${r.addLayersAfter ? `, grown to ${r.shape.nLayer} layers (new identity blocks after layer ${r.addLayersAfter.join(', ')})` : ''}` +
        `${upToStep !== undefined ? `, continued from its step-${upToStep} checkpoint` : ''} | ${keptTokens.toLocaleString('en-US')} | ${kept.length} | ` +
        `${(keptSeconds / 60).toFixed(0)} min | ${ev.at(-1)?.loss.toFixed(3) ?? '?'} |`,
    );
    offset += kept.length;
    tokens += keptTokens;
    seconds += keptSeconds;
  });
  const lastCurve = stages[stages.length - 1]!.curve;
  const curve: LossCurveFile = { ...lastCurve, steps, evals, tokens, seconds, tokensPerSecond: tokens / Math.max(1e-9, seconds) };
  const table = `## Training stages

| stage | trainer | recipe | tokens | steps | time | last validation loss |
|---|---|---|---|---|---|---|
${rows.join('\n')}

The "Training" table above describes the last stage's recipe; the loss curve shows all stages one after the other.`;
  return { curve, table };
}

/** Write `card.md`, `loss-curve.svg` and `behaviour.json` into `dir`. */
export function writeModelCard(dir: string, input: ModelCardInput): string {
  const { curve, behaviour: b } = input;
  const r = curve.recipe;
  writeFileAtomic(join(dir, 'loss-curve.svg'), lossCurveSvg(curve));
  writeJsonAtomic(join(dir, 'behaviour.json'), b);
  const lastEval = curve.evals[curve.evals.length - 1];
  const size = statSync(input.modelFile).size;
  const all = b.rows.find((x) => x.level === 'all')!;
  const o = input.offload;
  const md = `# ${r.name}: the Lynx demo ${o ? `small reasoning model (offloads to ${o.bigModel})` : 'reasoning model'}

A ${(curve.model.nParams / 1e6).toFixed(2)}M-parameter (${(curve.model.nTrainable / 1e6).toFixed(2)}M trained) qwen2-architecture model
that writes R1-style reasoning for multi-step arithmetic word problems: it thinks inside \`<think>…</think>\`, reaches a
candidate answer, keeps verifying it in rounds opened by \`Wait\`, \`Hmm\`, \`Alternatively\`, sometimes slips and
corrects itself, and ends with \`Final Answer: \\boxed{N}\`. It was trained from random initialisation by this project
(\`lynx demo train\`, ${trainingPath(r)}; see docs/demo-training.md and docs/demo-model.md).
File: \`model.gguf\`, ${(size / 1e6).toFixed(1)} MB, ${r.saveType.toUpperCase()} matrices, tokenizer and chat template inside.
${o ? offloadIntro(o) : ''}
## Training

| | |
|---|---|
| shape | ${r.shape.nEmbd} wide, ${r.shape.nLayer} layers, ${r.shape.nHead} heads (= KV heads), FFN ${r.shape.nFf} |
| data | ${curve.tokens.toLocaleString('en-US')} tokens (${Math.round(curve.tokens / r.seqLen)} windows of ${r.seqLen}), training split of the task, ${(input.stages ?? 1) > 1 ? `${input.stages} stages, new traces each (seeds in "Training stages")` : `seed ${r.data.seed}`} |
| optimiser | AdamW β = (${r.optim.beta1}, ${r.optim.beta2}), ${(input.stages ?? 1) > 1 ? `each stage: warm-up to its peak lr, cosine to ${r.optim.lrMin} (last stage: lr ${r.optim.lr})` : `lr ${r.optim.lr} → ${r.optim.lrMin} cosine, ${r.optim.warmupSteps} warm-up steps`}, weight decay ${r.optim.weightDecay} |
| time | ${(curve.seconds / 60).toFixed(0)} min on ${curve.threads} CPU threads (${Math.round(curve.tokensPerSecond)} tokens/s) |
| final validation | loss ${lastEval?.loss.toFixed(3)} nats/token, next-token accuracy ${lastEval ? pct(lastEval.accuracy) : '?'} |

![loss curve](loss-curve.svg)

${recipeTrainer(r) === 'llama-opt' ? `**Frozen K/V.** ${FROZEN_KV_NOTE}\n` : ''}
## Measured behaviour

${behaviour(b)}

${o ? '' : `Targets of the project (issue 7): accuracy at least 80% on level 1 and falling with difficulty — **${b.rows[0]!.accuracy >= 0.8 && b.rows.slice(0, -1).every((x, i, a) => i === 0 || x.accuracy <= a[i - 1]!.accuracy + 0.05) ? 'met' : 'not met'}** (level 1: ${pct(b.rows[0]!.accuracy)});
at least 40% of thinking tokens after the first correct answer on average — **${all.meanShareAfterFirstCorrect >= 0.4 ? 'met' : 'not met'}** (${pct(all.meanShareAfterFirstCorrect)}, counting 0% for a trace that never reaches a correct candidate${all.meanShareAfterFirstCorrectWhenReached !== undefined ? `; ${pct(all.meanShareAfterFirstCorrectWhenReached)} over the traces that do` : ''}).`}

Sample completion (level ${b.samples[0]?.level}, problem ${b.samples[0]?.id}):

\`\`\`
${b.samples[0]?.completion ?? ''}
\`\`\`
${input.extra ? '\n' + input.extra + '\n' : ''}`;
  writeFileAtomic(join(dir, 'card.md'), md);
  return join(dir, 'card.md');
}

function behaviour(b: BehaviourReport): string {
  return `The 500 held-out test problems (\`--benchmark demo:test\`, 100 per level; their arithmetic never occurs in training),
one rollout each at temperature ${b.temperature}, top-p ${b.topP} (nucleus of the temperature-scaled distribution), seed ${b.seed}, at most ${b.maxTokens} tokens
(${b.seconds.toFixed(0)} s, ${Math.round(b.tokensPerSecond)} generated tokens/s on this machine's CPU, 16 sequences batched).
"After first correct" counts thinking tokens after the sentence that first states the correct answer: what an
oracle early exit would save.

${behaviourTable(b.rows)}`;
}
