/**
 * DeepConf online end to end on a tiny random model through the real engine: traces of a problem decode together
 * (shared llama_decode calls), the threshold comes from the warm-up traces, later traces stop on a low window, the
 * vote and the token total are over the right traces, and a budget sweep equals direct runs.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LlamaContext, LlamaModel } from '../src/engine/index.js';
import { CountingGenerator } from '../src/backends/counting.js';
import { methodEnv, traceSampler, withPrompt, type MethodEnv, type MethodOutcome } from '../src/reasoning/method.js';
import { runRollout } from '../src/reasoning/rollout.js';
import {
  deepConf,
  deepConfSweep,
  scaledWindow,
  lowestGroupConfidence,
  percentile,
  tokenConfidence,
  weightedMajorityVote,
  type DeepConfOptions,
} from '../src/reasoning/peers/deepconf.js';
import { buildTinyGguf } from './helpers/engine-models.js';

let dir: string;
let model: LlamaModel;
let context: LlamaContext;
let prompt: number[];
let env: MethodEnv;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'lynx-deepconf-'));
  model = LlamaModel.load(buildTinyGguf(join(dir, 'tiny-qwen2.gguf'), { arch: 'qwen2', type: 'f32' }));
  // One thread (spinning workers crawl on a busy machine); F32 KV and no flash attention make every trace independent
  // of which other traces share its batches, so runs with different concurrency compare token for token.
  context = new LlamaContext(model, { nCtx: 8192, nSeqMax: 12, nBatch: 256, threads: 1, kvType: 'f32', flashAttention: false });
  prompt = model.tokenize('<｜User｜>What is 2+2?<｜Assistant｜><think>\n');
  env = methodEnv({ context, maxTokens: 48, seed: 3 });
});

afterAll(() => {
  context?.dispose();
  model?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

interface TraceSummary {
  index: number;
  warmup: boolean;
  confidence: number;
  answer: string | null;
  end: string;
  stopWindow?: number;
  votes: boolean;
  tokens: number;
  decoded: number;
}

const SMALL: DeepConfOptions = { budget: 8, warmupTraces: 4, windowSize: 8, topK: 5 };
const input = (id: string) => ({ problemId: id, promptTokens: prompt });
const traces = (o: MethodOutcome) => o.extra.traces as TraceSummary[];

/**
 * Same traces: tokens, answers, ends and votes exactly; confidences to float32 rounding (a trace decoded in a batch
 * of a different size gets logits that differ in the last bits, which never changed a token here).
 */
function expectSameTraces(a: readonly TraceSummary[], b: readonly TraceSummary[]): void {
  const strip = (t: TraceSummary) => ({ ...t, confidence: 0, stopWindow: t.stopWindow === undefined ? undefined : 0 });
  expect(a.map(strip)).toEqual(b.map(strip));
  a.forEach((t, i) => {
    expect(Math.abs(t.confidence - b[i]!.confidence)).toBeLessThan(1e-6 * Math.abs(t.confidence) + 1e-9);
    if (t.stopWindow !== undefined) expect(Math.abs(t.stopWindow - b[i]!.stopWindow!)).toBeLessThan(1e-6 * Math.abs(t.stopWindow) + 1e-9);
  });
}

describe('DeepConf online', () => {
  it('warm-up sets the threshold, low windows stop traces, the vote and the token total cover the right traces', async () => {
    let stoppedSomewhere = 0;
    for (const id of ['q1', 'q2']) {
      const counter = new CountingGenerator(env.generator);
      const o = await deepConf(SMALL).solve(input(id), { ...env, generator: counter });
      const ts = traces(o);
      expect(ts.map((t) => t.index)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
      expect(ts.filter((t) => t.warmup).map((t) => t.index)).toEqual([0, 1, 2, 3]);

      // Threshold: the 90th percentile of the warm-up traces' lowest group confidences (DeepConf-low).
      const threshold = o.extra.threshold as number;
      expect(threshold).toBeCloseTo(percentile(ts.filter((t) => t.warmup).map((t) => t.confidence), 90), 12);

      for (const t of ts) {
        if (t.warmup) {
          expect(t.end).not.toBe('stopped');
          expect(t.votes).toBe(t.confidence >= threshold && t.answer !== null);
        } else if (t.end === 'stopped') {
          stoppedSomewhere++;
          expect(t.stopWindow).toBeLessThan(threshold);
          expect(t.answer).toBeNull();
          expect(t.votes).toBe(false);
        } else {
          expect(t.votes).toBe(t.confidence >= threshold && t.answer !== null);
        }
      }

      // Every token of every trace is decoded work, stopped and warm-up traces included (what the engine sampled).
      expect(o.tokens.decoded).toBe(ts.reduce((a, t) => a + t.decoded, 0));
      expect({ decoded: o.tokens.decoded, prefilled: o.tokens.prefilled }).toEqual({ decoded: counter.decoded, prefilled: counter.prefilled });
      expect(o.tokens.total).toBe(o.tokens.reasoning + o.tokens.exitCue + o.tokens.answer);

      const voters = ts.filter((t) => t.votes);
      const vote = weightedMajorityVote(voters.map((t) => t.answer), voters.map((t) => t.confidence));
      // The output is one trace, the one shown: the most confident voter for the winner (trace 0 when nothing votes).
      const shown = voters.filter((t) => vote.answer !== null && t.answer === vote.answer).sort((a, b) => b.confidence - a.confidence)[0] ?? ts[0]!;
      expect(o.tokens.total).toBe(shown.tokens);
      expect(o.tokens.decoded).toBeGreaterThan(o.tokens.total);
      expect(o.answer).toBe(vote.answer);
      expect(o.answerText).toBe(vote.answer === null ? '' : `\\boxed{${vote.answer}}`);
      expect(o.exit).toBeNull();
    }
    expect(stoppedSomewhere).toBeGreaterThan(0);
  });

  it('with the default window (scaled to the budget) online traces get stopped; with the original 2,048 none can be', async () => {
    const opts: DeepConfOptions = { budget: 12, warmupTraces: 6, topK: 5 };
    let stopped = 0;
    for (const id of ['w1', 'w2', 'w3']) {
      const scaled = await deepConf(opts).solve(input(id), env);
      expect(scaled.extra.windowSize).toBe(scaledWindow(env.maxTokens));
      stopped += scaled.extra.stoppedOnline as number;
      // A stopped trace costs fewer decoded tokens than it would have.
      const unscaled = await deepConf({ ...opts, windowSize: 2048 }).solve(input(id), env);
      expect(unscaled.extra.stoppedOnline).toBe(0);
      expect(scaled.tokens.decoded).toBeLessThanOrEqual(unscaled.tokens.decoded);
    }
    expect(stopped).toBeGreaterThan(0);
    expect(scaledWindow(64000)).toBe(2048);
    expect(scaledWindow(512)).toBe(16);
  });

  it("a trace's confidence is its lowest window of minus-mean top-k log-probabilities over all its tokens", async () => {
    const o = await deepConf(SMALL).solve(input('q1'), env);
    const warm = traces(o).filter((t) => t.warmup);
    for (const t of warm.slice(0, 2)) {
      // The same trace again (same seed), collecting the token confidences directly.
      const confs: number[] = [];
      await withPrompt(env, prompt, async (seq) => {
        await runRollout(seq, {
          maxTokens: env.maxTokens,
          sampler: traceSampler(env, 'q1', t.index),
          exitCue: env.exitCue,
          topLogprobs: 5,
          onToken: (step) => confs.push(tokenConfidence(step.topLogprobs!.map((x) => x.logprob))),
        });
      });
      expect(confs.length).toBeGreaterThan(0);
      expect(Math.abs(t.confidence - lowestGroupConfidence(confs, 8))).toBeLessThan(1e-6 * t.confidence);
    }
  });

  it('traces of a problem decode together, and the result does not depend on how many decode at once', async () => {
    const before = { ...context.stats };
    const together = await deepConf(SMALL).solve(input('q3'), env);
    const calls = context.stats.decodeCalls - before.decodeCalls;
    const mid = { ...context.stats };
    const alone = await deepConf({ ...SMALL, concurrency: 1 }).solve(input('q3'), env);
    const callsAlone = context.stats.decodeCalls - mid.decodeCalls;

    // Each generated token is one decode step of its trace; batched, the steps of concurrent traces share calls.
    const steps = traces(together).reduce((a, t) => a + t.tokens, 0);
    expect(calls).toBeLessThan(steps / 2);
    expect(callsAlone).toBeGreaterThan(calls * 2);
    expectSameTraces(traces(alone), traces(together));
    expect(alone.tokens).toEqual(together.tokens);
    expect(alone.answer).toEqual(together.answer);
  });

  it('a budget sweep from one run equals direct runs at each budget', async () => {
    const sweep = deepConfSweep([4, 6, 8], { warmupTraces: 4, windowSize: 8, topK: 5 });
    expect(sweep.name).toBe('deepconf-low');
    const all = await sweep.solveAll(input('q2'), env);
    for (const budget of [4, 6, 8]) {
      const direct = await deepConf({ ...SMALL, budget }).solve(input('q2'), env);
      const swept = all.get(`budget=${budget}`)!;
      expectSameTraces(traces(swept), traces(direct));
      expect(swept.tokens).toEqual(direct.tokens);
      expect(swept.answer).toEqual(direct.answer);
      expect(swept.extra.threshold as number).toBeCloseTo(direct.extra.threshold as number, 5);
    }
    expect(() => deepConfSweep([2], { warmupTraces: 4 })).toThrow(/warm-up/);
  });

  it('DeepConf-high keeps more traces; adaptive sampling stops launching once the vote is decided', async () => {
    const low = await deepConf(SMALL).solve(input('q1'), env);
    const high = await deepConf({ ...SMALL, variant: 'high' }).solve(input('q1'), env);
    expect(high.extra.threshold as number).toBeLessThanOrEqual(low.extra.threshold as number);
    expect(traces(high).filter((t) => t.votes).length).toBeGreaterThanOrEqual(traces(low).filter((t) => t.votes).length);
    // The warm-up traces are the same in both (same seeds).
    expect(traces(high).slice(0, 4).map((t) => t.confidence)).toEqual(traces(low).slice(0, 4).map((t) => t.confidence));

    const quick = await deepConf({ ...SMALL, consensus: 1e-9, concurrency: 1 }).solve(input('q1'), env);
    const warmVoters = traces(quick).filter((t) => t.warmup && t.votes).length;
    expect(traces(quick).length).toBe(warmVoters > 0 ? 4 : 8);
  });
});
