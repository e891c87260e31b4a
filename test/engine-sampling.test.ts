import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LlamaContext, LlamaModel, loadLlama } from '../src/engine/index.js';
import { argmax, Sampler, type SamplerOptions } from '../src/engine/sampler.js';
import { buildTinyGguf } from './helpers/engine-models.js';

const EXACT = { kvType: 'f32', flashAttention: false } as const;
const PROMPT = 'The quick brown fox jumps over the lazy dog. 12 + 30 = 42';
/** No ties, so every truncation has one right answer. */
const LOGITS = [3, 2, 1.5, 1, 0, -0.5, -1, -2];

/** How often each token is drawn from fixed logits, each draw by a fresh sampler with its own seed. */
function drawCounts(logits: number[], opts: SamplerOptions, draws: number): number[] {
  const api = loadLlama().api;
  const counts = new Array<number>(logits.length).fill(0);
  const l = Float32Array.from(logits);
  for (let seed = 0; seed < draws; seed++) {
    const s = new Sampler(api, { ...opts, seed });
    counts[s.sampleFromLogits(l)]!++;
    s.dispose();
  }
  return counts;
}

describe('sampler chain', () => {
  it('applies temperature before top-p, as Hugging Face and vLLM do', () => {
    // At T = 1 token 0 has p ≈ 0.48, so a 0.9 nucleus would also hold tokens 1-3; at T = 0.25 token 0 alone has
    // p ≈ 0.98 ≥ 0.9. Temperature first: only token 0 is ever drawn.
    const logits = [2, 1, 0, 0, -1, -1, -2, -2];
    const counts = drawCounts(logits, { temperature: 0.25, topP: 0.9 }, 400);
    expect(counts[0]).toBe(400);
    // Without top-p the same temperature leaves token 1 about 1.8% of the mass: it must show up.
    const free = drawCounts(logits, { temperature: 0.25 }, 400);
    expect(free[1]).toBeGreaterThan(0);
  });

  it('top-p keeps the smallest set of most likely tokens reaching p, and draws from all of it', () => {
    // softmax at T = 1: 0.546, 0.201, 0.122, 0.074, ... (cumulative 0.747 after two, 0.869 after three): a 0.8
    // nucleus is tokens 0-2, so 3 and up are never drawn and 0-2 all are.
    const counts = drawCounts(LOGITS, { temperature: 1, topP: 0.8 }, 600);
    expect(counts.slice(3).every((c) => c === 0)).toBe(true);
    expect(counts.slice(0, 3).every((c) => c > 0)).toBe(true);
    expect(counts[0]).toBeGreaterThan(counts[1]!);
  });

  it('top-k and min-p truncate the temperature-scaled distribution', () => {
    const topK = drawCounts(LOGITS, { temperature: 1, topK: 2 }, 300);
    expect(topK.slice(2).every((c) => c === 0)).toBe(true);
    expect(topK[1]).toBeGreaterThan(0);
    // min-p 0.2 at T = 2: p/p_max is e^((l - 3) / 2): token 4 0.223 (kept), token 5 0.174 (dropped). Temperature
    // last would compare at T = 1, where token 4 is at 0.050 and would be dropped.
    const minP = drawCounts(LOGITS, { temperature: 2, minP: 0.2 }, 600);
    expect(minP[4]).toBeGreaterThan(0);
    expect(minP[5]! + minP[6]! + minP[7]!).toBe(0);
  });
});

describe('greedy', () => {
  it('the TypeScript argmax picks what llama.cpp\'s greedy sampler picks, ties to the first index', () => {
    const api = loadLlama().api;
    const native = (l: Float32Array) => {
      // llama.cpp's own choice of the single best candidate: top-k 1 leaves one token, which the draw must take.
      const s = new Sampler(api, { temperature: 1, topK: 1 });
      const id = s.sampleFromLogits(l);
      s.dispose();
      return id;
    };
    let state = 12345;
    for (let trial = 0; trial < 20; trial++) {
      const l = new Float32Array(5000);
      for (let i = 0; i < l.length; i++) {
        state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
        l[i] = Math.round((state / 2 ** 32) * 40) / 4; // coarse values: ties are common
      }
      expect(argmax(l)).toBe(native(l));
      expect(new Sampler(api, {}).sampleFromLogits(l)).toBe(argmax(l));
    }
    expect(argmax(Float32Array.from([1, 3, 3, 2]))).toBe(1);
  });
});

describe('parallel sampling', () => {
  let dir: string;
  let model: LlamaModel;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'lynx-sampling-'));
    model = LlamaModel.load(buildTinyGguf(join(dir, 'tiny-qwen2.gguf'), { arch: 'qwen2', type: 'f32' }));
  });

  afterAll(() => {
    model?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Generate with n sequences at once; tokens, log-probabilities and the number of decode calls. */
  async function generateBatch(parallelSampling: boolean, n: number, steps: number) {
    const ctx = new LlamaContext(model, { ...EXACT, nCtx: 1024, nSeqMax: n, nBatch: 128, parallelSampling });
    const seqs = [];
    for (let i = 0; i < n; i++) {
      const s = ctx.createSequence();
      await s.append(model.tokenize(`${PROMPT} ${i}`));
      seqs.push(s);
    }
    const before = ctx.stats.decodeCalls;
    const runs = await Promise.all(
      seqs.map(async (s, i) => {
        const tokens: number[] = [];
        const lps: number[] = [];
        const sampler = { temperature: 0.9, topP: 0.95, seed: 100 + i };
        for await (const t of s.generate({ maxTokens: steps, stop: { eog: false }, sampler, topLogprobs: 3 })) {
          tokens.push(t.token);
          lps.push(t.logprob!);
          expect(t.topLogprobs).toHaveLength(3);
        }
        return { tokens, lps };
      }),
    );
    const calls = ctx.stats.decodeCalls - before;
    ctx.dispose();
    return { runs, calls };
  }

  it('draws the same tokens as serial sampling, with every sequence still in one decode call per step', async () => {
    const n = 6;
    const steps = 16;
    const serial = await generateBatch(false, n, steps);
    const parallel = await generateBatch(true, n, steps);
    for (let i = 0; i < n; i++) {
      expect(parallel.runs[i]!.tokens).toEqual(serial.runs[i]!.tokens);
      expect(parallel.runs[i]!.lps).toEqual(serial.runs[i]!.lps);
    }
    // Each yielded token is decoded (the first was drawn from the prompt's logits): one call per step for all n.
    expect(parallel.calls).toBe(steps);
    expect(serial.calls).toBe(steps);
    // The seeds differ, so the sequences do too: the comparison above is not between identical runs.
    expect(new Set(serial.runs.map((r) => r.tokens.join(','))).size).toBeGreaterThan(1);
  });

  it('a context disposed while its draws are on worker threads is freed after them, and rejects later work', async () => {
    const ctx = new LlamaContext(model, { ...EXACT, nCtx: 512, nSeqMax: 2, nBatch: 64, parallelSampling: true });
    const a = ctx.createSequence();
    const b = ctx.createSequence();
    await a.append(model.tokenize(PROMPT));
    await b.append(model.tokenize(PROMPT));
    const ga = a.generate({ maxTokens: 4, stop: { eog: false }, sampler: { temperature: 1, seed: 1 } });
    const gb = b.generate({ maxTokens: 4, stop: { eog: false }, sampler: { temperature: 1, seed: 2 } });
    await Promise.all([ga.next(), gb.next()]);
    // Both sequences' next decode is in flight; dispose while it (or its draws) runs.
    const next = Promise.allSettled([ga.next(), gb.next()]);
    await new Promise((r) => setImmediate(r));
    ctx.dispose();
    // setImmediate callbacks run in order: the step's flush ran just before this, so its draws are still out.
    expect((ctx as unknown as { freeWhenRead: boolean }).freeWhenRead).toBe(true);
    const outcomes = await next;
    // Either the step finished before the dispose took effect, or it was refused with a clear error; no crash.
    for (const o of outcomes) {
      if (o.status === 'rejected') expect(String(o.reason)).toMatch(/disposed/);
    }
    await expect(ga.next()).rejects.toThrow(/disposed/);
  });
});
