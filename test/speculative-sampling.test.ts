/**
 * Speculative sampling preserves the distribution. The rejection rule (accept d ~ q with min(1, p(d)/q(d)), else draw
 * from max(0, p - q)) emits tokens distributed as p; the TypeScript distribution it computes p with is the one the
 * engine's native sampler chain draws from; on a model, the tokens after the first follow the full model's
 * distribution; and the match rule gives, for a seed, the very tokens of plain sampling.
 *
 * Every draw is seeded, so the tests are deterministic; each statistic is held to its 0.1% chi-square quantile.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { acceptDrafts, LlamaContext, LlamaModel, loadLlama, Sampler, samplerProbs, selfDraftPredictor, softmax, speculativeDecoding, type SamplerOptions } from '../src/engine/index.js';
import { OpenHeads } from '../src/reasoning/heads/exit.js';
import { problemPromptTokens } from '../src/reasoning/prompt-tokens.js';
import { loadBenchmark } from '../src/tasks/registry.js';
import { packageRoot } from '../src/util/paths.js';
import { Rng } from '../src/util/rng.js';
import { EXACT, greedy, writeLensHeads } from './helpers/heads.js';

const DEMO = resolve(packageRoot(), 'models', 'lynx-demo', 'model.gguf');

/** Pearson's statistic over the categories with an expected count of at least 5 (the rest pooled), and its 0.1% bound. */
function chiSquare(counts: ArrayLike<number>, probs: ArrayLike<number>, n: number): { stat: number; bound: number } {
  let stat = 0;
  let df = -1;
  let poolE = 0;
  let poolO = 0;
  for (let i = 0; i < probs.length; i++) {
    const e = probs[i]! * n;
    if (e >= 5) {
      stat += (counts[i]! - e) ** 2 / e;
      df++;
    } else {
      poolE += e;
      poolO += counts[i]!;
    }
  }
  if (poolE >= 5) {
    stat += (poolO - poolE) ** 2 / poolE;
    df++;
  } else if (poolO > poolE + 10 * Math.sqrt(poolE + 1)) stat = Infinity; // mass where there should be none
  // Wilson–Hilferty: the chi-square quantile at 0.999 (z = 3.09).
  const k = Math.max(1, df);
  const bound = k * Math.pow(1 - 2 / (9 * k) + 3.09 * Math.sqrt(2 / (9 * k)), 3);
  return { stat, bound };
}

describe('the rejection rule', () => {
  const V = 12;
  const rng = new Rng(7);
  const logitsOf = () => Float32Array.from({ length: V }, () => rng.normal() * 1.5);
  const p = softmax(logitsOf());
  const q = softmax(logitsOf());

  for (const [name, draftQ] of [['a sampled draft', q], ['an argmax draft (q a point mass)', undefined]] as const) {
    it(`emits tokens distributed as p, with ${name}`, () => {
      const n = 40000;
      const counts = new Float64Array(V);
      const u = new Rng(11);
      let accepted = 0;
      for (let i = 0; i < n; i++) {
        const d = draftQ ? drawIndex(draftQ, u.next()) : argmaxOf(q);
        const v = acceptDrafts([{ token: d, probs: draftQ }], () => p, { rule: 'rejection', targetProbs: (x) => x, uniform: () => u.next() });
        const emitted = v.accepted === 1 ? d : v.next;
        if (v.accepted === 1) accepted++;
        counts[emitted]!++;
      }
      const { stat, bound } = chiSquare(counts, p, n);
      expect(stat).toBeLessThan(bound);
      // Acceptance is 1 - TV(p, q) for a sampled draft, p(d) for an argmax one.
      const expected = draftQ ? 1 - 0.5 * Array.from(p).reduce((a, x, i) => a + Math.abs(x - q[i]!), 0) : p[argmaxOf(q)]!;
      expect(Math.abs(accepted / n - expected)).toBeLessThan(0.01);
    });
  }
});

describe('samplerProbs', () => {
  it("is the distribution the engine's native chain draws from (temperature, top-k, top-p, min-p)", () => {
    const api = loadLlama().api;
    const rng = new Rng(3);
    const logits = Float32Array.from({ length: 60 }, () => rng.normal() * 2);
    for (const opts of [{ temperature: 0.7 }, { temperature: 1.2, topK: 12 }, { temperature: 0.8, topP: 0.9 }, { temperature: 1, topK: 30, topP: 0.95, minP: 0.05 }] as SamplerOptions[]) {
      const expected = samplerProbs(logits, opts);
      const sampler = new Sampler(api, { ...opts, seed: 5 });
      const n = 20000;
      const counts = new Float64Array(logits.length);
      for (let i = 0; i < n; i++) counts[sampler.sampleFromLogits(logits)]!++;
      sampler.dispose();
      const { stat, bound } = chiSquare(counts, expected, n);
      expect(stat, JSON.stringify(opts)).toBeLessThan(bound);
      for (let i = 0; i < logits.length; i++) if (expected[i] === 0) expect(counts[i], `token ${i} is outside the kept set`).toBe(0);
    }
  });
});

describe('speculative sampling on the demo reasoner', () => {
  let dir: string;
  let model: LlamaModel;
  let heads: OpenHeads;
  let prompt: number[];
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'lynx-spec-sampling-'));
    model = LlamaModel.load(DEMO);
    writeLensHeads(DEMO, [3, 4], dir);
    heads = OpenHeads.open(dir, DEMO, { threads: 1 });
    prompt = problemPromptTokens(model, loadBenchmark('demo:test', { limit: 1 })[0]!);
  });
  afterAll(() => {
    heads?.dispose();
    model?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  it.each([
    ['a head that drafts', undefined],
    ['a head over a draft vocabulary of 300 tokens (q 0 outside it)', 300],
  ] as const)('the second token follows the full model: %s, the rejection rule, temperature 1', async (_name, draftVocab) => {
    const drafting = draftVocab ? OpenHeads.open(dir, DEMO, { threads: 1, draftVocab }) : heads;
    const ctx = new LlamaContext(model, { ...EXACT, nCtx: 2048, nSeqMax: 2, threads: 1 });
    try {
      // Where to look: a point of the greedy trace whose next token is likely (so conditioning on it keeps most draws),
      // whose token after that is uncertain, and where the head's draft is accepted about as often as not (so both
      // paths of the rule, acceptance and correction, are taken many times).
      const g = (await greedy(model, prompt, 120)).tokens;
      const probe = ctx.createSequence();
      await probe.append(prompt);
      const r = await probe.extend(g, { taps: { layers: [4], positions: g.map((_, i) => i) } });
      const rows = r.rows.slice();
      probe.dispose();
      const V = model.info.nVocab;
      const E = model.info.nEmbd;
      const dist = (i: number) => softmax(rows.subarray(i * V, (i + 1) * V));
      let j = -1;
      let best = -1;
      for (let i = 1; i + 1 < g.length; i++) {
        if (dist(i - 1)[g[i]!]! < 0.6 || entropyOf(dist(i)) < 0.3) continue;
        const p = dist(i);
        const q = softmax(heads.head(4).logits(r.hidden!.get(4)!.slice(i * E, (i + 1) * E)));
        let tv = 0;
        for (let v = 0; v < V; v++) tv += Math.abs(p[v]! - q[v]!) / 2;
        const balance = Math.min(tv, 1 - tv);
        if (balance > best) [best, j] = [balance, i];
      }
      expect(best).toBeGreaterThan(0.15);
      const base = ctx.createSequence();
      await base.append([...prompt, ...g.slice(0, j)]);
      const first = g[j]!;
      const exact = dist(j);
      const mode = speculativeDecoding({ predictor: selfDraftPredictor({ head: drafting.head(4) }), draftMax: 3, rule: 'rejection' });
      const counts = new Float64Array(V);
      let n = 0;
      for (let seed = 0; n < 1500 && seed < 6000; seed++) {
        const s = base.fork();
        const got: number[] = [];
        for await (const t of s.generate({ maxTokens: 2, sampler: { temperature: 1, seed }, decoding: mode })) got.push(t.token);
        s.dispose();
        if (got[0] !== first || got.length < 2) continue;
        counts[got[1]!]!++;
        n++;
      }
      expect(n).toBe(1500);
      // Both paths of the rule were taken many times: accepted drafts and corrections.
      expect(mode.stats.accepted).toBeGreaterThan(200);
      expect(mode.stats.drafted - mode.stats.accepted).toBeGreaterThan(200);
      const { stat, bound } = chiSquare(counts, exact, n);
      expect(stat).toBeLessThan(bound);
    } finally {
      ctx.dispose();
      if (drafting !== heads) drafting.dispose();
    }
  });

  it('the match rule gives plain sampling\'s tokens for a seed, token for token', async () => {
    const sampler = { temperature: 0.8, topP: 0.95 };
    for (const seed of [1, 2, 3]) {
      const run = async (speculate: boolean) => {
        const ctx = new LlamaContext(model, { ...EXACT, nCtx: 1024, nSeqMax: 1, threads: 1 });
        try {
          const s = ctx.createSequence();
          await s.append(prompt);
          const out: number[] = [];
          const decoding = speculate ? speculativeDecoding({ predictor: selfDraftPredictor({ head: heads.head(3) }), draftMax: 4, rule: 'match' }) : undefined;
          for await (const t of s.generate({ maxTokens: 80, sampler: { ...sampler, seed }, decoding })) out.push(t.token);
          return out;
        } finally {
          ctx.dispose();
        }
      };
      expect(await run(true)).toEqual(await run(false));
    }
  });
});

function entropyOf(p: Float32Array): number {
  let h = 0;
  for (const x of p) if (x > 0) h -= x * Math.log(x);
  return h;
}

function drawIndex(p: Float32Array, u: number): number {
  let c = 0;
  for (let i = 0; i < p.length; i++) {
    c += p[i]!;
    if (u < c) return i;
  }
  return p.length - 1;
}

function argmaxOf(p: Float32Array): number {
  let b = 0;
  for (let i = 1; i < p.length; i++) if (p[i]! > p[b]!) b = i;
  return b;
}
