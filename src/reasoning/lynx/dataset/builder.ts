/**
 * `lynx build-dataset`: sample rollouts, find every cue event, capture its features in the same decode step, and label
 * each event with a forced exit (cut before the cue token, append the exit cue, decode the answer greedily, check it).
 * Forced exits of all events run as forks of the finished rollout and decode together (continuous batching); problems
 * run several at a time.
 *
 * Reproducible: every rollout's sampler seed is derived from (seed, problem id, rollout), contexts run with an F32 KV
 * cache and no flash attention, and by default (`numerics: 'exact'`) each rollout decodes in a fresh context of its
 * own, so nothing about it depends on which other rollouts run at the same time. (In one shared context, llama.cpp's
 * unified KV cache places a sequence's cells according to the others, and attention sums then round differently, by
 * ~1e-6.) An interrupted build therefore resumes (skipping finished rollouts) and ends with the same bytes.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { LlamaModel, SamplerOptions, TapLayer } from '../../../engine/index.js';
import type { Generator, GeneratorFactory, GeneratorNeeds } from '../../../backends/generator.js';
import type { Problem } from '../../../tasks/problem.js';
import { extractAnswer } from '../../../tasks/answer-extract.js';
import { answersEquivalent, type Grading } from '../../../tasks/answer-equiv.js';
import type { PromptStyle } from '../../../tasks/prompts.js';
import { exitCueText, forcedExit, type ExitAccounting } from '../../forced-exit.js';
import { answerTextOf, traceSampler, DEFAULT_SAMPLER, type MethodEnv } from '../../method.js';
import { problemPromptTokens } from '../../prompt-tokens.js';
import { runRollout } from '../../rollout.js';
import { InvalidInputError } from '../../../util/errors.js';
import { inShard, parseShard, type Shard } from '../../../util/shard.js';
import { CueDetector, resolveCues, selectEvents, syntheticEventIndex, type CueHit, type CueOptions } from '../cues.js';
import { concatFeatures, defaultHiddenStateLayers, tapLayersFor, type LastLayerTap } from '../features.js';
import { withWork } from '../../token-counts.js';
import {
  DatasetWriter,
  MANIFEST_FILE,
  mergeDatasets,
  readManifest,
  unitKey,
  type DatasetManifest,
  type EventMeta,
} from './store.js';
import { TensorFile } from '../tensor-io.js';
import { localGenerators } from '../../../backends/local.js';

export type { EventMeta };

export interface RolloutRecord {
  problemIndex: number;
  problemId: string;
  rollout: number;
  events: EventMeta[];
  /** One row per event, `nFeatures` floats each. */
  features: Float32Array;
  /** Generated tokens of the full rollout (thinking, and the answer when the model wrote one) and their text. */
  tokens: number[];
  text: string;
  end: string;
}

export interface BuildOptions {
  model: LlamaModel;
  /** The whole benchmark list: an event's `problemIndex` is its position here (canonical order, shards). */
  problems: Problem[];
  rolloutsPerProblem?: number;
  /** Hugging Face hidden-state indices; default LYNX's for this depth. */
  hiddenStateLayers?: number[];
  /** How the last index L is read: 'final' (after the final norm, as LYNX's Hugging Face features; default) or 'residual'. */
  lastLayer?: LastLayerTap;
  /** Where the labelling forced exits stop decoding (their answer token counts): 'box' (default) or 'lynx'. */
  exitAccounting?: ExitAccounting;
  /** A rollout out of tokens while thinking gets a forced answer (default true); false grades the truncated text, as LYNX. */
  budgetForcing?: boolean;
  cues?: CueOptions['cues'];
  exitCue?: string;
  answerMaxTokens?: number;
  maxTokens?: number;
  maxEventsPerRollout?: number;
  /** Skip this many events at the start of each rollout (LYNX's skip_first). Default 0. */
  skipFirstEvents?: number;
  sampler?: SamplerOptions;
  seed?: number;
  grading?: Grading;
  promptStyle?: PromptStyle;
  /** Build only the problems at positions j with j mod count = index (`--shard i/N`). */
  shard?: Shard;
  /**
   * 'exact' (default): every rollout decodes in a fresh context of its own, so its tokens, features and labels are
   * bit-for-bit the same whatever else runs: an interrupted, resumed or sharded build equals an uninterrupted one byte
   * for byte. 'batched': the rollouts in flight share one context and decode in one llama_decode call (faster, more so
   * on a GPU); llama.cpp's unified KV cache then places each sequence's cells according to what else runs, which moves
   * features by ~1e-6 and, rarely, flips a sampled token, so runs agree only to that precision.
   */
  numerics?: 'exact' | 'batched';
  /** Rollouts in flight at once (in 'exact' mode each in its own context). Default 4. */
  concurrency?: number;
  /** Forced exits of one rollout decoded at once. Default 8. */
  forkConcurrency?: number;
  /** CPU threads of the context. Default: all available cores. */
  threads?: number;
  /**
   * Where rollouts are generated: the local engine (default, `localGenerators(model)`), or a remote server with hidden
   * states read locally (`openAIGenerators`). 'exact' asks it for a generator per rollout, 'batched' for one for all.
   */
  generators?: GeneratorFactory;
  /** Rollouts already in the dataset (resume): `unitKey(problemId, rollout)`. */
  done?: ReadonlySet<string>;
  /** Once aborted, no further rollout is started (those in flight finish and are delivered). */
  signal?: AbortSignal;
  /** Receives each finished rollout, in completion order. */
  onRollout: (r: RolloutRecord) => void | Promise<void>;
}

/** The rollouts (work units) a build covers, in canonical order: problems of the shard, then rollouts. */
export function buildJobs(opts: Pick<BuildOptions, 'problems' | 'rolloutsPerProblem' | 'shard'>): { problemIndex: number; rollout: number; unit: string }[] {
  const jobs: { problemIndex: number; rollout: number; unit: string }[] = [];
  const rollouts = opts.rolloutsPerProblem ?? 1;
  opts.problems.forEach((p, problemIndex) => {
    if (!inShard(problemIndex, opts.shard)) return;
    for (let r = 0; r < rollouts; r++) jobs.push({ problemIndex, rollout: r, unit: unitKey(p.id, r) });
  });
  return jobs;
}

/** Feature-vector length of a build: one `nEmbd` row per hidden-state layer. */
export function featureCount(model: LlamaModel, hiddenStateLayers?: readonly number[]): number {
  return (hiddenStateLayers ?? defaultHiddenStateLayers(model.info.nLayer)).length * model.info.nEmbd;
}

export async function buildDataset(opts: BuildOptions): Promise<{ rollouts: number; events: number; skipped: number }> {
  const model = opts.model;
  const hs = opts.hiddenStateLayers ?? defaultHiddenStateLayers(model.info.nLayer);
  const taps: TapLayer[] = tapLayersFor(hs, model.info.nLayer, opts.lastLayer ?? 'final');
  const concurrency = Math.max(1, opts.concurrency ?? 4);
  const forkConcurrency = Math.max(1, opts.forkConcurrency ?? 8);
  const maxTokens = opts.maxTokens ?? 4096;
  const answerMaxTokens = opts.answerMaxTokens ?? 64;
  const exitCue = opts.exitCue ?? 'paper';
  const grading = opts.grading ?? 'zst';
  const cueTokens = model.tokenize(exitCueText(exitCue), { addSpecial: false, parseSpecial: true }).length;
  const jobs: { problemIndex: number; rollout: number }[] = [];
  let skipped = 0;
  for (const job of buildJobs(opts)) {
    if (opts.done?.has(job.unit)) skipped++;
    else jobs.push(job);
  }
  if (jobs.length === 0) return { rollouts: 0, events: 0, skipped };
  // Prompts of the whole list, so contexts have the same size for every shard and every resume.
  const prompts = opts.problems.map((p) => problemPromptTokens(model, p, opts.promptStyle));
  const maxPrompt = Math.max(...prompts.map((p) => p.length));
  const perRollout = maxPrompt + maxTokens + forkConcurrency * (cueTokens + answerMaxTokens + 2);
  const exact = (opts.numerics ?? 'exact') === 'exact';
  const generators = opts.generators ?? localGenerators(model, { threads: opts.threads });
  const needs = (rollouts: number): GeneratorNeeds => ({
    rollouts,
    tokensPerRollout: perRollout,
    sequencesPerRollout: 1 + forkConcurrency,
    longestSequence: maxPrompt + maxTokens + cueTokens + answerMaxTokens + 2,
  });
  generators.check?.(needs(exact ? 1 : concurrency));
  // 'batched': one generator (context) for all rollouts in flight, decoded together. 'exact': a fresh one per rollout.
  const shared = exact ? undefined : generators.create(needs(concurrency));
  const env = (generator: Generator): MethodEnv => ({
    generator,
    sampler: opts.sampler ?? { ...DEFAULT_SAMPLER },
    maxTokens,
    exitCue,
    answerMaxTokens,
    exitAccounting: opts.exitAccounting,
    budgetForcing: opts.budgetForcing,
    seed: opts.seed ?? 0,
  });
  let next = 0;
  let rollouts = 0;
  let events = 0;
  let failed = false;
  const worker = async () => {
    while (next < jobs.length && !opts.signal?.aborted && !failed) {
      const job = jobs[next++]!;
      const own = shared ?? generators.create(needs(1));
      let rec: RolloutRecord;
      try {
        rec = await labelRollout(env(own.generator), job.problemIndex, job.rollout);
        rollouts++;
        events += rec.events.length;
        await opts.onRollout(rec);
      } catch (e) {
        failed = true;
        throw e;
      } finally {
        if (own !== shared) own.dispose();
      }
    }
  };
  try {
    // On a failure the other workers finish their rollout (delivered as usual) and stop; only then does the build
    // return, so the caller may free the model.
    const settled = await Promise.allSettled(Array.from({ length: Math.min(concurrency, jobs.length) }, worker));
    const failure = settled.find((x): x is PromiseRejectedResult => x.status === 'rejected');
    if (failure) throw failure.reason;
  } finally {
    shared?.dispose();
  }
  return { rollouts, events, skipped };

  async function labelRollout(env: MethodEnv, problemIndex: number, rollout: number): Promise<RolloutRecord> {
    const problem = opts.problems[problemIndex]!;
    const prompt = prompts[problemIndex]!;
    const seq = env.generator.createSequence();
    try {
      await seq.append(prompt);
      const detector = new CueDetector({ cues: opts.cues });
      const captured = new Map<number, Float32Array>();
      const hits: { hit: CueHit; features: Float32Array; decidedAt?: number }[] = [];
      const textEnds: number[] = []; // generated text length after each token (the cue detector's char offsets)
      let seen = 0;
      let confirmed: readonly CueHit[] = [];
      // `decidedAt`: tokens sampled when online LYNX would score the event (the confirming token included; for a cue
      // only the end of the stream confirms, every token sampled, end-of-sequence included).
      const take = (hit: CueHit, decidedAt?: number) => {
        const features = captured.get(hit.tokenIndex);
        // The detector flags every token a hit can name (capturesLastToken), so this is a bug if it happens.
        if (!features) throw new Error(`cue event at token ${hit.tokenIndex} of ${problem.id}#${rollout} has no captured hidden state`);
        hits.push({ hit, features, decidedAt: decidedAt ?? hit.confirmedAt + 1 });
      };
      const r = await runRollout(seq, {
        maxTokens,
        sampler: traceSampler(env, problem.id, rollout),
        exitCue,
        answerMaxTokens,
        exitAccounting: env.exitAccounting,
        budgetForcing: env.budgetForcing,
        tapLayers: taps,
        tapWhen: (_t, text) => {
          confirmed = detector.push(text.slice(seen));
          seen = text.length;
          return detector.capturesLastToken;
        },
        onToken: (step) => {
          textEnds[step.index] = step.text.length;
        },
        onStep: (step) => {
          if (step.hidden) captured.set(step.index, concatFeatures(step.hidden, taps));
          for (const hit of confirmed) take(hit);
          confirmed = [];
          // Keep only what a later confirmation can still name: this token and the pending candidate.
          const keep = detector.pending?.tokenIndex;
          for (const k of captured.keys()) if (k !== step.index && k !== keep) captured.delete(k);
          return { action: 'continue' };
        },
      });
      // A cue confirmed by the token that ends the thinking, or only by the end of the stream, is still an event.
      for (const hit of confirmed) take(hit);
      const thinkingEndedByStream = r.tokens.length + (r.end === 'natural' ? 1 : 0);
      for (const hit of detector.finish()) take(hit, thinkingEndedByStream);
      const fullCounts = withWork(r.tokenCounts, { decoded: 0, prefilled: prompt.length });
      const fullText = answerTextOf(r, exitCueText(exitCue));
      const fullAnswer = extractAnswer(fullText, problem).answer;
      const fullCorrect = (await answersEquivalent(fullAnswer, problem.gold, { grading })).equivalent;
      const reasoning = r.tokenCounts.reasoning;

      let chosen = selectEvents(hits, { skipFirst: opts.skipFirstEvents, maxEvents: opts.maxEventsPerRollout }).map((h) => ({
        position: h.hit.tokenIndex,
        charOffset: h.hit.charStart,
        cue: h.hit.cue,
        synthetic: false,
        features: h.features,
        decidedAt: h.decidedAt,
      }));
      if (chosen.length === 0 && reasoning > 1) {
        // LYNX: a rollout with no (selected) cue event gets one synthetic event at 70% of its length. Its hidden state was not tapped
        // during generation, so decode that one token again with a tap (the KV cache already holds its prefix).
        const k = Math.min(syntheticEventIndex(reasoning), reasoning - 1);
        const tokens = r.tokens;
        seq.truncate(prompt.length + k);
        const out = await seq.append([tokens[k]!], { taps: { layers: taps } });
        const charOffset = k === 0 ? 0 : textEnds[k - 1]!;
        chosen = [{ position: k, charOffset, cue: SYNTHETIC_CUE, synthetic: true, features: concatFeatures(out.hidden, taps), decidedAt: k + 1 }];
      }

      const metas: EventMeta[] = new Array(chosen.length);
      for (let start = 0; start < chosen.length; start += forkConcurrency) {
        const slice = chosen.slice(start, start + forkConcurrency);
        await Promise.all(
          slice.map(async (ev, j) => {
            const exit = await forcedExit(seq, {
              cue: exitCue,
              maxTokens: answerMaxTokens,
              accounting: opts.exitAccounting,
              at: prompt.length + ev.position,
              mode: 'fork',
            });
            const answer = extractAnswer(exitCueText(exitCue) + exit.text, problem).answer;
            const ok = (await answersEquivalent(answer, problem.gold, { grading })).equivalent;
            metas[start + j] = {
              problemId: problem.id,
              problemIndex,
              rollout,
              eventIndex: start + j,
              position: ev.position,
              tokensSoFar: ev.position + 1,
              cue: ev.cue,
              synthetic: ev.synthetic,
              label: ok ? 1 : 0,
              exitAnswer: answer,
              exitAnswerTokens: exit.answerTokens,
              exitCueTokens: exit.cueTokens,
              fullAnswer,
              fullCorrect,
              fullTokens: r.tokenCounts.total,
              fullReasoningTokens: reasoning,
              fullTokenCounts: fullCounts,
              promptTokens: prompt.length,
              decidedAt: ev.decidedAt,
              gold: problem.gold,
              charOffset: ev.charOffset,
            };
          }),
        );
      }
      const nFeatures = taps.length * model.info.nEmbd;
      const features = new Float32Array(chosen.length * nFeatures);
      chosen.forEach((ev, i) => features.set(ev.features, i * nFeatures));
      return { problemIndex, problemId: problem.id, rollout, events: metas, features, tokens: r.tokens, text: r.text, end: r.end };
    } finally {
      seq.dispose();
    }
  }
}

/** The `cue` of a synthetic event (LYNX's 70% event of a rollout without cues). */
export const SYNTHETIC_CUE = 'synthetic';

// ---------------------------------------------------------------------------------------------------------------------
// Building into a dataset folder (`lynx build-dataset`), resuming, merging shards (`lynx merge`).

export interface BuildToDirOptions extends Omit<BuildOptions, 'onRollout' | 'done'> {
  outDir: string;
  /** The caller's description of the problem list (benchmark name, selection), recorded in the manifest's `info`. */
  info?: Record<string, unknown>;
  /** Write to disk after this many finished rollouts (a chunk). Default 16. */
  chunkUnits?: number;
  onProgress?: (p: BuildProgress) => void;
}

export interface BuildProgress {
  /** Rollouts of this build done so far (including those found done on disk). */
  done: number;
  total: number;
  /** Events labelled in this run so far. */
  events: number;
  /** Tokens the rollouts built in this run generated (for throughput). */
  tokens: number;
}

export interface BuildToDirResult {
  dir: string;
  /** Rows (events) of the finished dataset. */
  rows: number;
  /** Rollouts built in this run. */
  rollouts: number;
  /** Rollouts found done on disk (resume). */
  skipped: number;
  /** Rollouts (work units) in the finished dataset. */
  units: number;
  info: Record<string, unknown>;
  seconds: number;
}

const nullable = <T>(x: T | undefined): T | null => (x === undefined ? null : x);

/** Identity of the problem list: ids, texts, gold answers and choices, hashed. */
export function problemsDigest(problems: readonly Problem[]): string {
  const h = createHash('sha256');
  for (const p of problems) h.update(JSON.stringify([p.id, p.problem, p.gold, p.choices ?? null]) + '\n');
  return h.digest('hex').slice(0, 16);
}

/**
 * The manifest `info` of a build: everything that determines the dataset's rows. A resume must give the same (every
 * field but `shard` must also agree between the shards `lynx merge` joins). Concurrency and threads are not part of
 * it: they do not change the result.
 */
export function datasetInfo(opts: Omit<BuildToDirOptions, 'outDir'>): Record<string, unknown> {
  const { model } = opts;
  const hs = opts.hiddenStateLayers ?? defaultHiddenStateLayers(model.info.nLayer);
  tapLayersFor(hs, model.info.nLayer); // validates
  const sampler = opts.sampler ?? DEFAULT_SAMPLER;
  const cues = resolveCues(opts.cues).specs.map((c) => c.trim().toLowerCase());
  return {
    ...opts.info,
    model: {
      file: basename(model.info.path),
      architecture: model.info.architecture,
      nLayer: model.info.nLayer,
      nEmbd: model.info.nEmbd,
      nParams: model.info.nParams,
    },
    problems: { count: opts.problems.length, digest: problemsDigest(opts.problems) },
    rolloutsPerProblem: opts.rolloutsPerProblem ?? 1,
    hiddenStateLayers: hs.slice(),
    lastLayer: opts.lastLayer ?? 'final',
    nFeatures: featureCount(model, hs),
    cues,
    exitCue: opts.exitCue ?? 'paper',
    exitCueText: exitCueText(opts.exitCue ?? 'paper'),
    seed: opts.seed ?? 0,
    sampler: {
      temperature: nullable(sampler.temperature),
      topP: nullable(sampler.topP),
      topK: nullable(sampler.topK),
      minP: nullable(sampler.minP),
    },
    maxTokens: opts.maxTokens ?? 4096,
    answerMaxTokens: opts.answerMaxTokens ?? 64,
    exitAccounting: opts.exitAccounting ?? 'box',
    budgetForcing: opts.budgetForcing ?? true,
    maxEventsPerRollout: nullable(opts.maxEventsPerRollout),
    skipFirstEvents: opts.skipFirstEvents ?? 0,
    policy: opts.grading ?? 'zst',
    promptStyle: nullable(opts.promptStyle),
    numerics: opts.numerics ?? 'exact',
    shard: opts.shard ? `${opts.shard.index}/${opts.shard.count}` : null,
    // Only a remote generator is recorded (a different sampler is a different dataset); local manifests stay as they were.
    ...(opts.generators?.info ? { generator: opts.generators.info } : {}),
  };
}

function stable(v: unknown): string {
  return JSON.stringify(v, (_k, x) =>
    x && typeof x === 'object' && !Array.isArray(x) ? Object.fromEntries(Object.entries(x as object).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : x,
  );
}

/** Fields (top-level keys) whose values differ between two infos, skipping `ignore`. */
export function infoDifferences(a: Record<string, unknown>, b: Record<string, unknown>, ignore: readonly string[] = []): string[] {
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].filter((k) => !ignore.includes(k)).sort();
  return keys.filter((k) => stable(a[k]) !== stable(b[k]));
}

const show = (v: unknown) => (v === undefined ? '(absent)' : stable(v));

/**
 * Check that `dir` (when it already holds a dataset) was built with the same settings and is intact: the manifest
 * parses, every chunk it names exists with the rows it claims. Throws an InvalidInputError naming what differs.
 */
export function checkResumable(dir: string, nFeatures: number, info: Record<string, unknown>): DatasetManifest | undefined {
  if (!existsSync(join(dir, MANIFEST_FILE))) return undefined;
  const m = readManifest(dir);
  const diff = infoDifferences(m.info, info);
  if (diff.length > 0) {
    const lines = diff.map((k) => `  ${k}: ${show(m.info[k])} there, ${show(info[k])} now`);
    throw new InvalidInputError(
      `${dir} holds a dataset built with other settings (${diff.join(', ')} ${diff.length === 1 ? 'differs' : 'differ'}):\n${lines.join('\n')}\n` +
        'resume with the same options, or build into another folder',
    );
  }
  if (m.nFeatures !== nFeatures) throw new InvalidInputError(`${dir} holds a dataset with ${m.nFeatures} features, this build makes ${nFeatures}: use another folder`);
  for (const c of m.chunks) {
    const metaPath = join(dir, c.meta);
    if (!existsSync(metaPath)) throw new InvalidInputError(`${metaPath} is missing (named in the manifest): the dataset is damaged; delete the folder and build it again`);
    const lines = readFileSync(metaPath, 'utf8').split('\n').filter((l) => l.trim() !== '').length;
    if (lines !== c.rows) throw new InvalidInputError(`${metaPath} has ${lines} rows, the manifest says ${c.rows}: the dataset is damaged; delete the folder and build it again`);
    let f: TensorFile;
    try {
      f = TensorFile.open(join(dir, c.features));
    } catch (e) {
      throw new InvalidInputError(`${(e as Error).message}: the dataset is damaged; delete the folder and build it again`, { cause: e });
    }
    try {
      const shape = f.shape('features');
      if (shape[0] !== c.rows || shape[1] !== nFeatures) {
        throw new InvalidInputError(`${f.path} holds [${shape}] features, the manifest says [${c.rows}, ${nFeatures}]: the dataset is damaged`);
      }
    } finally {
      f.close();
    }
  }
  return m;
}

/**
 * Build (or resume building) a dataset folder: every rollout is one work unit, written in chunks as rollouts finish;
 * at the end the folder is compacted into canonical order, so the result does not depend on interruptions, on the
 * order rollouts finished in, or on the concurrency. Aborting (`signal`) writes the finished rollouts at once, then
 * rejects with the signal's reason once the rollouts in flight are done.
 */
export async function buildDatasetToDir(opts: BuildToDirOptions): Promise<BuildToDirResult> {
  const t0 = performance.now();
  const info = datasetInfo(opts);
  const nFeatures = info.nFeatures as number;
  checkResumable(opts.outDir, nFeatures, info);
  const writer = DatasetWriter.open(opts.outDir, { nFeatures, info, chunkUnits: opts.chunkUnits ?? 16, chunkRows: 2048 });
  const jobs = buildJobs(opts);
  const done = new Set(jobs.filter((j) => writer.isDone(j.unit)).map((j) => j.unit));
  let progressDone = done.size;
  let events = 0;
  let tokens = 0;
  opts.onProgress?.({ done: progressDone, total: jobs.length, events, tokens });
  const onAbort = () => writer.flush();
  opts.signal?.addEventListener('abort', onAbort);
  let result: { rollouts: number; skipped: number };
  try {
    result = await buildDataset({
      ...opts,
      done,
      onRollout: (rec) => {
        const d = nFeatures;
        writer.add(
          unitKey(rec.problemId, rec.rollout),
          rec.events.map((meta, i) => ({ meta, features: rec.features.subarray(i * d, (i + 1) * d) })),
        );
        events += rec.events.length;
        tokens += rec.tokens.length;
        opts.onProgress?.({ done: ++progressDone, total: jobs.length, events, tokens });
      },
    });
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
    // Whatever happened, keep the rollouts that finished.
    if (!writer.complete) writer.flush();
  }
  if (opts.signal?.aborted) throw opts.signal.reason ?? new Error('aborted');
  try {
    writer.finish();
  } catch (e) {
    if (e instanceof InvalidInputError) {
      throw new InvalidInputError(`${e.message} (while compacting ${opts.outDir}: the dataset is damaged; delete the folder and build it again)`, { cause: e });
    }
    throw e;
  }
  const m = readManifest(opts.outDir);
  return { dir: opts.outDir, rows: m.rows, rollouts: result.rollouts, skipped: result.skipped, units: m.units.length, info, seconds: (performance.now() - t0) / 1000 };
}

export interface DatasetSummary {
  rows: number;
  /** Rollouts (work units) in the dataset, with or without events. */
  rollouts: number;
  labelOnes: number;
  synthetic: number;
  /** Rollouts whose full answer is correct, among those with at least one event. */
  fullCorrect: number;
  rolloutsWithEvents: number;
}

/** Counts over a dataset folder's metadata (features are not read). */
export function summarizeDataset(dir: string): DatasetSummary {
  const m = readManifest(dir);
  const s: DatasetSummary = { rows: 0, rollouts: m.units.length, labelOnes: 0, synthetic: 0, fullCorrect: 0, rolloutsWithEvents: 0 };
  const seen = new Set<string>();
  for (const c of m.chunks) {
    for (const line of readFileSync(join(dir, c.meta), 'utf8').split('\n')) {
      if (line.trim() === '') continue;
      let meta: EventMeta;
      try {
        meta = JSON.parse(line) as EventMeta;
      } catch {
        throw new InvalidInputError(`${join(dir, c.meta)} holds a line that is not valid JSON: the dataset is damaged`);
      }
      s.rows++;
      if (meta.label === 1) s.labelOnes++;
      if (meta.synthetic) s.synthetic++;
      const unit = meta.unit ?? unitKey(meta.problemId, meta.rollout);
      if (!seen.has(unit)) {
        seen.add(unit);
        s.rolloutsWithEvents++;
        if (meta.fullCorrect) s.fullCorrect++;
      }
    }
  }
  return s;
}

/**
 * Join the shards of one build (`--shard i/N`, i = 0..N-1, each finished) into one dataset. Their infos must agree in
 * every field but `shard`; the merge is recorded as unsharded, so it equals (byte for byte) the unsharded build.
 */
export function mergeShards(inputs: readonly string[], outDir: string): { dir: string; rows: number; units: number; shards: string[] } {
  if (inputs.length === 0) throw new InvalidInputError('give the shard folders to merge');
  const manifests = inputs.map((dir) => {
    if (!existsSync(join(dir, MANIFEST_FILE))) throw new InvalidInputError(`${dir} has no ${MANIFEST_FILE}: not a LYNX event dataset`);
    const m = readManifest(dir);
    if (!m.complete) throw new InvalidInputError(`the dataset in ${dir} is unfinished (${m.units.length} rollouts so far): run its build again to complete it`);
    return m;
  });
  const first = manifests[0]!;
  manifests.forEach((m, i) => {
    const diff = infoDifferences(first.info, m.info, ['shard']);
    if (diff.length > 0) {
      const lines = diff.map((k) => `  ${k}: ${show(first.info[k])} in ${inputs[0]}, ${show(m.info[k])} in ${inputs[i]}`);
      throw new InvalidInputError(`${inputs[i]} and ${inputs[0]} are not shards of one build (${diff.join(', ')} ${diff.length === 1 ? 'differs' : 'differ'}):\n${lines.join('\n')}`);
    }
  });
  const shards = manifests.map((m, i) => {
    const spec = m.info.shard;
    if (typeof spec !== 'string') throw new InvalidInputError(`${inputs[i]} is not a shard (its info has no shard i/N): nothing to merge it with`);
    return { ...parseShard(spec), dir: inputs[i]! };
  });
  const count = shards[0]!.count;
  const byIndex = new Map<number, string>();
  for (const s of shards) {
    if (s.count !== count) throw new InvalidInputError(`${s.dir} is shard ${s.index}/${s.count}, ${shards[0]!.dir} is one of ${count}: not one build`);
    const other = byIndex.get(s.index);
    if (other !== undefined) throw new InvalidInputError(`shard ${s.index}/${count} given twice (${other} and ${s.dir})`);
    byIndex.set(s.index, s.dir);
  }
  const missing = Array.from({ length: count }, (_, i) => i).filter((i) => !byIndex.has(i));
  if (missing.length > 0) throw new InvalidInputError(`shard${missing.length > 1 ? 's' : ''} ${missing.map((i) => `${i}/${count}`).join(', ')} missing: give all ${count} shards`);
  const ds = mergeDatasets(inputs, outDir, { info: { ...first.info, shard: null } });
  return { dir: outDir, rows: ds.rows, units: readManifest(outDir).units.length, shards: shards.map((s) => `${s.index}/${s.count}`) };
}
