/**
 * Samplers from the decoding literature, each against its paper's definition: Top-H's kept set on hand-computed
 * distributions, its draws' frequencies, the annealing schedule of exploratory annealed decoding, and Mirostat's
 * observed surprise converging to τ on a real trained model (stories260K); seeded runs reproduce, and a fork carries
 * Mirostat's state on as a copy.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LlamaContext, LlamaModel } from '../src/engine/index.js';
import { annealedTemperature } from '../src/engine/annealing.js';
import { Sampler, type SamplerOptions } from '../src/engine/sampler.js';
import { entropy, softmax, topHSelect } from '../src/engine/top-h.js';
import { convertToGguf } from '../src/import/convert.js';
import { STORIES } from './helpers/stories-hf.js';

/** Top-H by the paper's Algorithm 1, written out plainly: sort, add, renormalise, stop at the first violation. */
function topHByTheBook(p: number[], alpha: number): number[] {
  const order = p.map((x, i) => [x, i] as const).sort((a, b) => b[0] - a[0]);
  const bound = alpha * entropy(p);
  const kept: number[] = [];
  for (const [, i] of order) {
    const s = [...kept, i];
    const mass = s.reduce((a, j) => a + p[j]!, 0);
    const h = entropy(s.map((j) => p[j]! / mass));
    if (h > bound) break;
    kept.push(i);
  }
  return kept;
}

describe('Top-H', () => {
  it('keeps the set the paper keeps, worked by hand', () => {
    // p = (1/2, 1/4, 1/8, 1/8): H(p) = 1.75 bits = 1.2130 nats.
    const p = Float64Array.from([0.125, 0.5, 0.125, 0.25]);
    // α = 0.5: bound 0.6065 nats; {0.5, 0.25} has H = 0.6365 > bound: only the top token.
    expect([...topHSelect(p, 0.5).ids]).toEqual([1]);
    // α = 0.6: bound 0.7278; {0.5, 0.25} fits (0.6365), adding 1/8 gives (4/7, 2/7, 1/7), H = 0.9557: stop.
    const s = topHSelect(p, 0.6);
    expect([...s.ids]).toEqual([1, 3]);
    expect([...s.q].map((x) => +x.toFixed(12))).toEqual([2 / 3, 1 / 3].map((x) => +x.toFixed(12)));
    expect(s.entropy).toBeCloseTo(1.75 * Math.LN2, 12);
    expect(s.bound).toBeCloseTo(0.6 * 1.75 * Math.LN2, 12);
    // α close to 1 keeps more but never everything (Theorem 3).
    expect(topHSelect(p, 0.99).ids.length).toBe(3);
  });

  it('equals the plain algorithm on random and flat distributions, beyond its first chunk of candidates', () => {
    let seed = 7;
    const rand = () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32);
    for (const [n, spread, alpha] of [[50, 4, 0.4], [2000, 0.3, 0.8], [2000, 0.05, 0.95], [300, 8, 0.2]] as const) {
      const logits = Array.from({ length: n }, () => rand() * spread);
      const p = softmax(logits);
      const ours = [...topHSelect(p, alpha).ids];
      expect(ours).toEqual(topHByTheBook([...p], alpha));
      if (spread < 0.1) expect(ours.length).toBeGreaterThan(64); // the chunked search went past 64 candidates
    }
  });
});

describe('host samplers through Sampler', () => {
  let dir: string;
  let model: LlamaModel;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'lynx-samplers-'));
    const out = join(dir, 'stories260K.gguf');
    convertToGguf(join(STORIES, 'stories260K.bin'), out, { tokenizer: join(STORIES, 'tok512.bin'), type: 'f32', progress: false });
    model = LlamaModel.load(out);
  });
  afterAll(() => {
    model?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  const api = () => model.llama.api;

  it('Top-H draws only kept tokens, at their renormalised frequencies, reproducibly for a seed', () => {
    const logits = new Float32Array(model.info.nVocab).fill(-30);
    [2, 1.5, 1, 0.5, 0].forEach((v, i) => (logits[10 + i] = v));
    const opts: SamplerOptions = { temperature: 1, topH: 0.7, seed: 3 };
    const sel = topHSelect(softmax(logits), 0.7);
    const s = new Sampler(api(), opts);
    const counts = new Map<number, number>();
    const N = 20_000;
    const draws: number[] = [];
    for (let i = 0; i < N; i++) {
      const t = s.sampleFromLogits(logits);
      draws.push(t);
      counts.set(t, (counts.get(t) ?? 0) + 1);
    }
    s.dispose();
    expect([...counts.keys()].sort((a, b) => a - b)).toEqual([...sel.ids].sort((a, b) => a - b));
    sel.ids.forEach((id, k) => expect(Math.abs(counts.get(id)! / N - sel.q[k]!)).toBeLessThan(0.015));
    const again = new Sampler(api(), opts);
    expect(Array.from({ length: 200 }, () => again.sampleFromLogits(logits))).toEqual(draws.slice(0, 200));
    again.dispose();
  });

  it('annealing follows τ_t = max(1 + τmax − e^(t/d), τmin) after the warm-up, and samples with it', () => {
    const sched = { tauMax: 1.2, tauMin: 0.1, decay: 100, warmup: 10 };
    expect(annealedTemperature(sched, 0)).toBe(1);
    expect(annealedTemperature(sched, 9)).toBe(1);
    expect(annealedTemperature(sched, 10)).toBeCloseTo(2.2 - Math.exp(0.1), 12);
    expect(annealedTemperature(sched, 100 * Math.log(1.2))).toBeCloseTo(1, 12);
    expect(annealedTemperature(sched, 1000)).toBe(0.1);
    // Hot at first, then near-greedy: a hot start varies across seeds, the cold end is the argmax.
    const logits = new Float32Array(model.info.nVocab).fill(-30);
    logits[5] = 1;
    logits[6] = 0;
    const firsts = new Set<number>();
    for (let seed = 0; seed < 40; seed++) {
      const s = new Sampler(api(), { annealing: { tauMax: 5, tauMin: 0.01, decay: 10 }, seed });
      const seq = Array.from({ length: 60 }, () => s.sampleFromLogits(logits));
      firsts.add(seq[0]!);
      expect(seq.slice(40).every((t) => t === 5)).toBe(true);
      s.dispose();
    }
    expect(firsts.size).toBeGreaterThan(1);
  });

  it('refuses combinations that have no meaning, naming them', () => {
    expect(() => new Sampler(api(), { temperature: 1, topH: 0.4, topP: 0.9 })).toThrow(/topH .* drop topP/);
    expect(() => new Sampler(api(), { temperature: 1, mirostat: { version: 2, tau: 3, eta: 0.1 }, topK: 40 })).toThrow(/mirostat .* drop topK/);
    expect(() => new Sampler(api(), { topH: 1 })).toThrow(/topH must be in \(0, 1\)/);
    expect(() => new Sampler(api(), { mirostat: { version: 3 as 1, tau: 3, eta: 0.1 } })).toThrow(/version must be 1 or 2/);
  });

  describe('Mirostat on stories260K', () => {
    let context: LlamaContext;
    beforeAll(() => {
      context = new LlamaContext(model, { nCtx: 2048, nSeqMax: 4, threads: 1, kvType: 'f32', flashAttention: false });
    });
    afterAll(() => context?.dispose());

    /** Mean observed surprise (−log₂ p of the sampled token under the model, T = 1) over the last tokens of a run. */
    async function run(mirostat: SamplerOptions['mirostat'], seed: number, n = 400) {
      const seq = context.createSequence();
      try {
        await seq.append([model.info.special.bos!]);
        const tokens: number[] = [];
        const surprise: number[] = [];
        for await (const t of seq.generate({ maxTokens: n, sampler: { temperature: 1, mirostat, seed }, logprobs: true, stop: { eog: false } })) {
          tokens.push(t.token);
          surprise.push(-t.logprob! / Math.LN2);
        }
        const tail = surprise.slice(100);
        return { tokens, mean: tail.reduce((a, b) => a + b, 0) / tail.length };
      } finally {
        seq.dispose();
      }
    }

    it('brings the observed surprise to τ (v1 and v2), and a seed reproduces the run', async () => {
      // Unconstrained, this model's surprise is about 1.9 bits a token; Mirostat holds it near each target instead.
      const natural = (await run(undefined, 11)).mean;
      for (const version of [2, 1] as const) {
        const means: number[] = [];
        for (const tau of [1, 1.5]) {
          const r = await run({ version, tau, eta: 0.1 }, 11);
          expect({ version, tau, off: Math.abs(r.mean - tau) < 0.35 }).toEqual({ version, tau, off: true });
          means.push(r.mean);
        }
        expect(means[0]!).toBeLessThan(means[1]!);
        expect(means[0]!).toBeLessThan(natural - 0.5);
      }
      const a = await run({ version: 2, tau: 1.5, eta: 0.1 }, 5, 120);
      const b = await run({ version: 2, tau: 1.5, eta: 0.1 }, 5, 120);
      const c = await run({ version: 2, tau: 1.5, eta: 0.1 }, 6, 120);
      expect(a.tokens).toEqual(b.tokens);
      expect(c.tokens).not.toEqual(a.tokens);
    });

    it('keeps μ with the sequence between generate calls, and a fork continues from a copy of it', async () => {
      const opts: SamplerOptions = { temperature: 1, mirostat: { version: 2, tau: 2, eta: 0.3 }, seed: 9 };
      const gen = async (seq: ReturnType<typeof context.createSequence>, n: number) => {
        const out: number[] = [];
        for await (const t of seq.generate({ maxTokens: n, sampler: opts, stop: { eog: false } })) out.push(t.token);
        return out;
      };
      // One call of 80 tokens equals two calls of 40: the state carried over.
      const one = context.createSequence();
      await one.append([model.info.special.bos!]);
      const whole = await gen(one, 80);
      one.dispose();
      const two = context.createSequence();
      await two.append([model.info.special.bos!]);
      const first = await gen(two, 40);
      const fork = two.fork();
      const second = await gen(two, 40);
      expect([...first, ...second]).toEqual(whole);
      // The fork has the same KV, μ and RNG: it continues exactly as the parent did.
      expect(await gen(fork, 40)).toEqual(second);
      fork.dispose();
      two.dispose();
    });
  });
});
