/**
 * `lynx build-dataset`: sample rollouts, find every cue event, capture its features in the same decode step, and label
 * each event with a forced exit (cut before the cue token, append the exit cue, decode the answer greedily, check it).
 * Forced exits of all events run as forks of the finished rollout and decode together (continuous batching); problems
 * run several at a time.
 *
 * Reproducible: every rollout's sampler seed is derived from (seed, problem id, rollout), and the context runs with an
 * F32 KV cache and no flash attention, so results do not depend on which other sequences share a batch. An interrupted
 * build therefore resumes (skipping finished rollouts) and ends with the same dataset.
 */
import { LlamaContext, type LlamaModel, type SamplerOptions, type TapLayer } from '../../engine/index.js';
import type { Problem } from '../../eval/benchmarks.js';
import { extractAnswer } from '../../eval/answer-extract.js';
import { answersEquivalent, type Policy } from '../../eval/answer-equiv.js';
import type { PromptStyle } from '../../eval/prompts.js';
import { exitCueText, forcedExit } from '../forced-exit.js';
import { answerTextOf, traceSampler, DEFAULT_SAMPLER, type MethodEnv } from '../method.js';
import { problemPromptTokens } from '../prompt-tokens.js';
import { runRollout } from '../rollout.js';
import { CueDetector, selectEvents, syntheticEventIndex, type CueHit, type CueOptions } from './cues.js';
import { concatFeatures, defaultHiddenStateLayers, tapLayersFor } from './features.js';

/** Metadata of one labelled event (one row of the feature matrix). */
export interface EventMeta {
  problemId: string;
  problemIndex: number;
  rollout: number;
  eventIndex: number;
  /** Generated tokens before the cue token. */
  position: number;
  charOffset: number;
  cue: string;
  synthetic: boolean;
  /** 1 if the forced exit here answers correctly. */
  label: 0 | 1;
  exitAnswer: string | null;
  exitAnswerTokens: number;
  /** The full rollout's answer and correctness, and its length. */
  fullAnswer: string | null;
  fullCorrect: boolean;
  fullTokens: number;
  /** Reasoning tokens of the full rollout (the exit cue and answer tokens come on top). */
  fullReasoningTokens: number;
  gold: string;
}

export interface RolloutRecord {
  problemIndex: number;
  problemId: string;
  rollout: number;
  events: EventMeta[];
  /** One row per event, `nFeatures` floats each. */
  features: Float32Array;
  text: string;
  end: string;
}

export interface BuildOptions {
  model: LlamaModel;
  problems: Problem[];
  rolloutsPerProblem?: number;
  /** Hugging Face hidden-state indices; default LYNX's for this depth. */
  hiddenStateLayers?: number[];
  cues?: CueOptions['cues'];
  exitCue?: string;
  answerMaxTokens?: number;
  maxTokens?: number;
  maxEventsPerRollout?: number;
  /** Skip this many events at the start of each rollout (LYNX's skip_first). Default 0. */
  skipFirstEvents?: number;
  sampler?: SamplerOptions;
  seed?: number;
  policy?: Policy;
  promptStyle?: PromptStyle;
  /** Problems decoded at once. Default 4. */
  concurrency?: number;
  /** Forced exits of one rollout decoded at once. Default 8. */
  forkConcurrency?: number;
  /** Rollouts already in the dataset (resume): `${problemId}#${rollout}`. */
  done?: ReadonlySet<string>;
  /** Receives each finished rollout, in completion order. */
  onRollout: (r: RolloutRecord) => void | Promise<void>;
}

export function rolloutKey(problemId: string, rollout: number): string {
  return `${problemId}#${rollout}`;
}

export async function buildDataset(opts: BuildOptions): Promise<{ rollouts: number; events: number; skipped: number }> {
  const model = opts.model;
  const hs = opts.hiddenStateLayers ?? defaultHiddenStateLayers(model.info.nLayer);
  const taps: TapLayer[] = tapLayersFor(hs, model.info.nLayer);
  const concurrency = opts.concurrency ?? 4;
  const forkConcurrency = opts.forkConcurrency ?? 8;
  const maxTokens = opts.maxTokens ?? 4096;
  const answerMaxTokens = opts.answerMaxTokens ?? 64;
  const exitCue = opts.exitCue ?? 'paper';
  const cueTokens = model.tokenize(exitCueText(exitCue), { parseSpecial: true }).length;
  const prompts = opts.problems.map((p) => problemPromptTokens(model, p, opts.promptStyle));
  const maxPrompt = Math.max(...prompts.map((p) => p.length));
  const perRollout = maxPrompt + maxTokens + forkConcurrency * (cueTokens + answerMaxTokens + 2);
  const context = new LlamaContext(model, {
    nCtx: concurrency * perRollout,
    nSeqMax: concurrency * (1 + forkConcurrency),
    nBatch: 512,
    kvType: 'f32',
    flashAttention: false,
  });
  const env: MethodEnv = {
    model,
    context,
    sampler: opts.sampler ?? { ...DEFAULT_SAMPLER },
    maxTokens,
    exitCue,
    answerMaxTokens,
    seed: opts.seed ?? 0,
  };
  const jobs: { problemIndex: number; rollout: number }[] = [];
  let skipped = 0;
  opts.problems.forEach((p, problemIndex) => {
    for (let r = 0; r < (opts.rolloutsPerProblem ?? 1); r++) {
      if (opts.done?.has(rolloutKey(p.id, r))) skipped++;
      else jobs.push({ problemIndex, rollout: r });
    }
  });
  let next = 0;
  let rollouts = 0;
  let events = 0;
  const worker = async () => {
    while (next < jobs.length) {
      const job = jobs[next++]!;
      const rec = await labelRollout(job.problemIndex, job.rollout);
      rollouts++;
      events += rec.events.length;
      await opts.onRollout(rec);
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(concurrency, jobs.length) }, worker));
  } finally {
    context.dispose();
  }
  return { rollouts, events, skipped };

  async function labelRollout(problemIndex: number, rollout: number): Promise<RolloutRecord> {
    const problem = opts.problems[problemIndex]!;
    const prompt = prompts[problemIndex]!;
    const seq = context.createSequence();
    try {
      await seq.append(prompt);
      const detector = new CueDetector({ cues: opts.cues });
      const captured = new Map<number, Float32Array>();
      const hits: { hit: CueHit; features: Float32Array }[] = [];
      let seen = 0;
      let confirmed: readonly CueHit[] = [];
      const r = await runRollout(seq, {
        maxTokens,
        sampler: traceSampler(env, problem.id, rollout),
        exitCue,
        answerMaxTokens,
        tapLayers: taps,
        tapWhen: (_t, text) => {
          confirmed = detector.push(text.slice(seen));
          seen = text.length;
          return detector.capturesLastToken;
        },
        onStep: (step) => {
          if (step.hidden) captured.set(step.index, concatFeatures(step.hidden, taps));
          for (const hit of confirmed) hits.push({ hit, features: captured.get(hit.tokenIndex)! });
          confirmed = [];
          for (const k of captured.keys()) if (k < step.index - 1) captured.delete(k);
          return { action: 'continue' };
        },
      });
      // A cue confirmed only by the end of the thinking (or the stream) is still an event.
      for (const hit of detector.finish()) {
        const f = captured.get(hit.tokenIndex);
        if (f) hits.push({ hit, features: f });
      }
      const fullText = answerTextOf(r, exitCueText(exitCue));
      const fullAnswer = extractAnswer(fullText, problem).answer;
      const fullCorrect = (await answersEquivalent(fullAnswer, problem.gold, { policy: opts.policy ?? 'zst' })).equivalent;
      const reasoning = r.tokenCounts.reasoning;

      let chosen = selectEvents(hits, { skipFirst: opts.skipFirstEvents, maxEvents: opts.maxEventsPerRollout }).map((h) => ({
        position: h.hit.tokenIndex,
        charOffset: h.hit.charStart,
        cue: h.hit.cue,
        synthetic: false,
        features: h.features,
      }));
      if (chosen.length === 0 && reasoning > 1) {
        // LYNX: a rollout without cues gets one synthetic event at 70% of its length. Its hidden state was not tapped
        // during generation, so decode that one token again with a tap (the KV cache already holds its prefix).
        const k = Math.min(syntheticEventIndex(reasoning), reasoning - 1);
        const tokens = r.tokens;
        seq.truncate(prompt.length + k);
        const out = await seq.append([tokens[k]!], { taps: { layers: taps } });
        chosen = [{ position: k, charOffset: model.detokenize(tokens.slice(0, k)).length, cue: '', synthetic: true, features: concatFeatures(out.hidden, taps) }];
      }

      const metas: EventMeta[] = new Array(chosen.length);
      for (let start = 0; start < chosen.length; start += forkConcurrency) {
        const slice = chosen.slice(start, start + forkConcurrency);
        await Promise.all(
          slice.map(async (ev, j) => {
            const exit = await forcedExit(seq, { cue: exitCue, maxTokens: answerMaxTokens, at: prompt.length + ev.position, mode: 'fork' });
            const answer = extractAnswer(exitCueText(exitCue) + exit.text, problem).answer;
            const ok = (await answersEquivalent(answer, problem.gold, { policy: opts.policy ?? 'zst' })).equivalent;
            metas[start + j] = {
              problemId: problem.id,
              problemIndex,
              rollout,
              eventIndex: start + j,
              position: ev.position,
              charOffset: ev.charOffset,
              cue: ev.cue,
              synthetic: ev.synthetic,
              label: ok ? 1 : 0,
              exitAnswer: answer,
              exitAnswerTokens: exit.answerTokens,
              fullAnswer,
              fullCorrect,
              fullTokens: r.tokenCounts.total,
              fullReasoningTokens: reasoning,
              gold: problem.gold,
            };
          }),
        );
      }
      const nFeatures = taps.length * model.info.nEmbd;
      const features = new Float32Array(chosen.length * nFeatures);
      chosen.forEach((ev, i) => features.set(ev.features, i * nFeatures));
      return { problemIndex, problemId: problem.id, rollout, events: metas, features, text: r.text, end: r.end };
    } finally {
      seq.dispose();
    }
  }
}
